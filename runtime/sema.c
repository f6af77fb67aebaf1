/* runtime/sema.c: semaphores that park goroutines, keyed by address in a hashed table of wait lists. */
#include "sema.h"

/*
 * As in Go's sema.go: the semaphore is a uint32 in the user's object (a mutex, a
 * wait group), and the waiters live in a table hashed by its address, so the
 * public objects stay two words and zero is ready to use. Each bucket keeps a
 * FIFO list of waiters (on their own stacks) and a count of waiters, so that
 * semrelease skips the lock when nobody waits.
 */

#define SEMTAB_SIZE 251

struct semwaiter {
	uint32_t *addr;
	struct g *g;
	struct semwaiter *next, *prev;
	bool acquired; /* handoff: the releaser took the count for us */
};

struct semroot {
	struct mutex lock;
	struct semwaiter *head, *tail;
	_Atomic uint32_t nwait;
} __attribute__((aligned(64)));

static struct semroot semtable[SEMTAB_SIZE];

static struct semroot *semroot(uint32_t *addr)
{
	return &semtable[((uintptr_t)addr >> 3) % SEMTAB_SIZE];
}

static bool cansemacquire(uint32_t *addr)
{
	uint32_t v = __atomic_load_n(addr, __ATOMIC_ACQUIRE);
	while (v > 0)
		if (__atomic_compare_exchange_n(addr, &v, v - 1, true, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			return true;
	return false;
}

static bool sema_unlock(struct g *gp, void *arg)
{
	(void)gp;
	unlock(arg);
	return true;
}

void semacquire(uint32_t *addr, bool lifo, enum waitreason reason)
{
	if (cansemacquire(addr))
		return;
	struct g *gp = getg();
	if (unlikely(!gp || gp == gp->m->g0))
		gort_panic("sync: blocking wait outside a goroutine");
	struct semroot *root = semroot(addr);
	struct semwaiter w = { .addr = addr, .g = gp };
	for (;;) {
		lock(&root->lock);
		atomic_fetch_add(&root->nwait, 1);
		if (cansemacquire(addr)) {
			atomic_fetch_sub(&root->nwait, 1);
			unlock(&root->lock);
			return;
		}
		if (lifo && root->head) {
			w.next = root->head;
			w.prev = NULL;
			root->head->prev = &w;
			root->head = &w;
		} else {
			w.next = NULL;
			w.prev = root->tail;
			if (root->tail)
				root->tail->next = &w;
			else
				root->head = &w;
			root->tail = &w;
		}
		gopark(sema_unlock, &root->lock, reason);
		if (w.acquired || cansemacquire(addr))
			return;
	}
}

void semrelease(uint32_t *addr, bool handoff)
{
	struct semroot *root = semroot(addr);
	/* Sequentially consistent with semacquire's nwait increment and its
	 * retry: either it sees the count or we see it waiting. */
	__atomic_fetch_add(addr, 1, __ATOMIC_SEQ_CST);
	if (atomic_load(&root->nwait) == 0)
		return;
	lock(&root->lock);
	if (atomic_load(&root->nwait) == 0) {
		unlock(&root->lock);
		return;
	}
	struct semwaiter *w = root->head;
	while (w && w->addr != addr)
		w = w->next;
	if (!w) {
		unlock(&root->lock);
		return;
	}
	if (w->prev)
		w->prev->next = w->next;
	else
		root->head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		root->tail = w->prev;
	atomic_fetch_sub(&root->nwait, 1);
	/* handoff: take the count for the waiter, so that nobody arriving
	 * meanwhile can, and let it run now in our place (Go's goyield). */
	bool handed = handoff && cansemacquire(addr);
	if (handed)
		w->acquired = true;
	struct g *gp = w->g;
	unlock(&root->lock);
	goready(gp);
	struct g *me = getg();
	if (handed && me && me != me->m->g0 && me->m->locks == 0)
		gosched();
}

void semcancel_task(struct task *t, struct gqueue *ret)
{
	for (int i = 0; i < SEMTAB_SIZE; i++) {
		struct semroot *root = &semtable[i];
		if (atomic_load(&root->nwait) == 0)
			continue;
		lock(&root->lock);
		/* A waiter on the list is parked: it enqueued itself under this lock
		 * and only gopark's unlock function released it. */
		for (struct semwaiter *w = root->head, *next; w; w = next) {
			next = w->next;
			if (w->g->task != t)
				continue;
			if (w->prev)
				w->prev->next = w->next;
			else
				root->head = w->next;
			if (w->next)
				w->next->prev = w->prev;
			else
				root->tail = w->prev;
			atomic_fetch_sub(&root->nwait, 1);
			gqueue_push(ret, w->g);
		}
		unlock(&root->lock);
	}
}
