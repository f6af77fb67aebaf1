/* runtime/sema.c: semaphores that park goroutines, keyed by address in a hashed table of wait lists. */
#include "sema.h"

/*
 * As in Go's sema.go: the semaphore is a uint32 in the user's object (a mutex, a
 * wait group), and the waiters live in a table hashed by its address, so the
 * public objects stay two words and zero is ready to use. Each bucket keeps a
 * FIFO list of waiters (on their own stacks) and a count of waiters, so that
 * semrelease skips the lock when nobody waits.
 *
 * Ghosts. A waiter whose task ends never returns from semacquire (its
 * goroutine is discarded), but the object it waited on may outlive the task
 * (the embedding program's, a plugin's, another task's) and counts it: a
 * mutex among its waiters, a wait group among those its Wait releases.
 * Dropped from the list, its release would find nobody and stay behind as a
 * stale count that a later waiter takes for its own: a wait group reused
 * afterwards panicked ("reused before previous Wait has returned"), a mutex
 * kept a phantom waiter and a stray count, which in starvation mode passes
 * for a handoff. So semcancel_task leaves a ghost in the waiter's place (same
 * place in the FIFO, heap-allocated: the goroutine's stack is going): when a
 * release reaches it, the ghost takes the count as the waiter would have and
 * then does what the waiter would do on its way out -- for a mutex, the part
 * of the woken waiter (handed the mutex: take it and unlock it; woken in
 * normal mode: clear MUTEX_WOKEN and wake the next), for a wait group or a
 * once, nothing more. (Not for objects in the task's own module, which go
 * with it.) A waiter a release woke but that is discarded before
 * it ran (its task ended in between) is completed the same way, from gdiscard
 * (sema_abandon). Caveat: a ghost waits for a release as the waiter did;
 * an object freed without ever being released again leaves its ghosts keyed
 * on the address, to take a release meant for whatever is allocated there
 * next (as a goroutine blocked on freed memory would), or that is set back to
 * its zero value while they wait. So ghosts last only as long as the runtime:
 * runtime_stop drops the rest (sema_drop_ghosts), and a program that calls
 * gort_run again starts with none, as before ghosts.
 */

#define SEMTAB_SIZE 251

struct semwaiter {
	uint32_t *addr;
	struct g *g;
	struct semwaiter *next, *prev;
	bool acquired; /* handoff: the releaser took the count for us */
	uint8_t reason; /* the waitreason: what kind of object (ghosts) */
	bool ghost;     /* its task ended: g is gone, the node is malloc'ed */
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

/* Under root->lock: w leaves root's list and stops counting as a waiter. */
static void semroot_unlink(struct semroot *root, struct semwaiter *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		root->head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		root->tail = w->prev;
	atomic_fetch_sub(&root->nwait, 1);
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
	struct semwaiter w = { .addr = addr, .g = gp, .reason = (uint8_t)reason };
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
		gp->semwait = &w;
		gopark(sema_unlock, &root->lock, reason);
		gp->semwait = NULL;
		if (w.acquired || cansemacquire(addr))
			return;
	}
}

static int ghost_woken(struct semwaiter *w);

void semrelease(uint32_t *addr, bool handoff)
{
	struct semroot *root = semroot(addr);
again:;
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
	semroot_unlink(root, w);
	/* handoff: take the count for the waiter, so that nobody arriving
	 * meanwhile can, and let it run now in our place (Go's goyield). */
	bool handed = handoff && cansemacquire(addr);
	if (handed)
		w->acquired = true;
	struct g *gp = w->g;
	bool ghost = w->ghost;
	unlock(&root->lock);
	if (ghost) {
		int next = ghost_woken(w);
		if (next) {
			handoff = next == 2;
			goto again;
		}
		return;
	}
	goready(gp);
	struct g *me = getg();
	if (handed && me && me != me->m->g0 && me->m->locks == 0)
		gosched();
}

/* A release reached ghost w (off the list now, ours): it takes the count as
 * its waiter would have, or waits again if somebody arriving took it first
 * (as semacquire's loop does), then leaves as its waiter would. Returns the
 * release to make next on w's address (mutex_waiter_gone's codes). */
static int ghost_woken(struct semwaiter *w)
{
	uint32_t *addr = w->addr;
	if (!w->acquired && !cansemacquire(addr)) {
		struct semroot *root = semroot(addr);
		lock(&root->lock);
		atomic_fetch_add(&root->nwait, 1);
		if (!cansemacquire(addr)) {
			w->next = NULL;
			w->prev = root->tail;
			if (root->tail)
				root->tail->next = w;
			else
				root->head = w;
			root->tail = w;
			unlock(&root->lock);
			return 0;
		}
		atomic_fetch_sub(&root->nwait, 1);
		unlock(&root->lock);
	}
	enum waitreason reason = (enum waitreason)w->reason;
	free(w);
	return reason == WAIT_MUTEX ? mutex_waiter_gone(addr) : 0;
}

void sema_abandon(struct g *gp)
{
	/* woken: a release took w off the list (semcancel_task would have
	 * cleared semwait), and its count is there or handed to w */
	struct semwaiter *w = gp->semwait;
	gp->semwait = NULL;
	uintptr_t modlo, modhi;
	task_module_range(gp->task, &modlo, &modhi);
	if ((uintptr_t)w->addr >= modlo && (uintptr_t)w->addr < modhi)
		return; /* the object goes with the task */
	struct semwaiter *gh = malloc(sizeof(*gh));
	if (!gh)
		return;
	uint32_t *addr = w->addr;
	*gh = (struct semwaiter){ .addr = addr, .acquired = w->acquired, .reason = w->reason, .ghost = true };
	int next = ghost_woken(gh);
	if (next)
		semrelease(addr, next == 2);
}

void sema_drop_ghosts(void)
{
	for (int i = 0; i < SEMTAB_SIZE; i++) {
		struct semroot *root = &semtable[i];
		lock(&root->lock);
		for (struct semwaiter *w = root->head, *next; w; w = next) {
			next = w->next;
			if (!w->ghost)
				continue;
			semroot_unlink(root, w);
			free(w);
		}
		unlock(&root->lock);
	}
}

void semcancel_task(struct task *t, struct gqueue *ret)
{
	/* objects in the task's own module go with it: no ghost for those (one
	 * would wait there for whatever is loaded at that address next) */
	uintptr_t modlo, modhi;
	task_module_range(t, &modlo, &modhi);
	for (int i = 0; i < SEMTAB_SIZE; i++) {
		struct semroot *root = &semtable[i];
		if (atomic_load(&root->nwait) == 0)
			continue;
		lock(&root->lock);
		/* A waiter on the list is parked: it enqueued itself under this lock
		 * and only gopark's unlock function released it. */
		for (struct semwaiter *w = root->head, *next; w; w = next) {
			next = w->next;
			if (w->ghost || w->g->task != t)
				continue;
			/* a ghost in its place; for the task's own object, or
			 * without memory, the waiter just goes (and a release
			 * for it stays behind) */
			bool dies = (uintptr_t)w->addr >= modlo && (uintptr_t)w->addr < modhi;
			struct semwaiter *gh = dies ? NULL : malloc(sizeof(*gh));
			if (gh) {
				*gh = (struct semwaiter){ .addr = w->addr, .next = w->next, .prev = w->prev,
							  .reason = w->reason, .ghost = true };
				if (gh->prev)
					gh->prev->next = gh;
				else
					root->head = gh;
				if (gh->next)
					gh->next->prev = gh;
				else
					root->tail = gh;
			} else {
				semroot_unlink(root, w);
			}
			w->g->semwait = NULL; /* the ghost has it now */
			gqueue_push(ret, w->g);
		}
		unlock(&root->lock);
	}
}
