/* runtime/timer.c: per-P 4-ary timer heaps, checked by schedule/findrunnable; gort_sleep. */
#include <time.h>

#include "timer.h"

/*
 * Each P keeps its timers in a 4-ary min-heap under its own lock (the owner and
 * thieves running the P's expired timers from stealwork both take it; nobody
 * else contends). p->timer0when mirrors the earliest deadline so that the
 * scheduler's fast paths and an idle M choosing how long to sleep read one word
 * per P. No thread polls: the M blocked in netpoll sleeps exactly until the
 * earliest timer of any P, and addtimer wakes it when a new one is earlier.
 *
 * The heap holds (when, timer) pairs rather than timer pointers: a timer
 * usually lives on its sleeping goroutine's stack, one cache line (and page)
 * per goroutine, so comparing through pointers missed the cache at every step
 * of a sift with 100,000 sleepers. Only the moved entries' idx is written back.
 * Expired timers are taken out in batches, one lock round trip per batch.
 */

/* An entry is a struct timer * (ENT_TRACKED: a deletable one, whose idx the
 * heap keeps), or, for gort_sleep, the sleeping struct g * itself (ENT_SLEEPG):
 * firing it touches no memory on the sleeper's stack, only the G it readies. */
struct timerent {
	int64_t when;
	uintptr_t t;
};
#define ENT_TRACKED ((uintptr_t)1)
#define ENT_SLEEPG  ((uintptr_t)2)
#define ENT_FLAGS   (ENT_TRACKED | ENT_SLEEPG)

static inline struct timer *enttimer(struct timerent e)
{
	return (struct timer *)(e.t & ~ENT_FLAGS);
}

static inline struct g *entg(struct timerent e)
{
	return (struct g *)(e.t & ~ENT_FLAGS);
}

struct ptimers {
	struct mutex lock;
	struct timerent *heap;
	int32_t n, cap;
};

#define TIMER_BATCH 32

void timers_init_p(struct p *pp)
{
	pp->timers = calloc(1, sizeof(*pp->timers));
	if (!pp->timers)
		throw("timers_init_p: out of memory");
}

void timers_destroy_p(struct p *pp)
{
	if (pp->timers)
		free(pp->timers->heap);
	free(pp->timers);
	pp->timers = NULL;
}

static inline void setent(struct timerent *h, int32_t i, struct timerent e)
{
	h[i] = e;
	if (e.t & ENT_TRACKED)
		enttimer(e)->idx = i;
}

/* Moves h[i] up to its place; returns where it went. */
static int32_t siftup(struct timerent *h, int32_t i)
{
	struct timerent e = h[i];
	while (i > 0) {
		int32_t parent = (i - 1) / 4;
		if (e.when >= h[parent].when)
			break;
		setent(h, i, h[parent]);
		i = parent;
	}
	setent(h, i, e);
	return i;
}

/* Moves h[i] down to its place; returns where it went. */
static int32_t siftdown(struct timerent *h, int32_t n, int32_t i)
{
	struct timerent e = h[i];
	for (;;) {
		int32_t c = i * 4 + 1;
		if (c >= n)
			break;
		int32_t best = c;
		int64_t w = h[c].when;
		int32_t end = c + 4 < n ? c + 4 : n;
		for (int32_t k = c + 1; k < end; k++)
			if (h[k].when < w) {
				w = h[k].when;
				best = k;
			}
		if (w >= e.when)
			break;
		setent(h, i, h[best]);
		i = best;
	}
	setent(h, i, e);
	return i;
}

static void heap_remove(struct ptimers *ts, int32_t i)
{
	int32_t last = --ts->n;
	if (i != last) {
		ts->heap[i] = ts->heap[last];
		siftup(ts->heap, siftdown(ts->heap, ts->n, i));
	}
}

static inline void update_timer0(struct p *pp)
{
	struct ptimers *ts = pp->timers;
	atomic_store(&pp->timer0when, ts->n ? ts->heap[0].when : 0);
}

/* Puts ent on the current P's heap; 0, or -ENOMEM. */
static int heap_add(int64_t when, uintptr_t ent)
{
	struct g *me = getg();
	struct p *pp = me && me->m->p ? me->m->p : allp[0];
	struct ptimers *ts = pp->timers;
	lock(&ts->lock);
	if (ts->n == ts->cap) {
		int32_t ncap = ts->cap ? ts->cap * 2 : 64;
		struct timerent *nh = realloc(ts->heap, (size_t)ncap * sizeof(*nh));
		if (!nh) {
			unlock(&ts->lock);
			return -ENOMEM;
		}
		ts->heap = nh;
		ts->cap = ncap;
	}
	ts->heap[ts->n] = (struct timerent){ when, ent };
	bool first = siftup(ts->heap, ts->n++) == 0;
	if (!(ent & ENT_SLEEPG))
		atomic_store_explicit(&((struct timer *)(ent & ~ENT_FLAGS))->pp, pp, memory_order_release);
	if (first)
		update_timer0(pp);
	unlock(&ts->lock);
	/* not t->when: once unlocked, t may fire and its memory be reused */
	if (first)
		wakenetpoller(when);
	return 0;
}

int addtimer(struct timer *t)
{
	if (t->when <= 0)
		t->when = 1;
	return heap_add(t->when, (uintptr_t)t | (t->nodelete ? 0 : ENT_TRACKED));
}

static void sleep_ready(void *arg);

bool deltimer(struct timer *t)
{
	if (unlikely(t->nodelete))
		throw("deltimer: a nodelete timer");
	struct p *pp = atomic_load(&t->pp);
	if (!pp)
		return false;
	struct ptimers *ts = pp->timers;
	lock(&ts->lock);
	bool armed = atomic_load(&t->pp) == pp;
	if (armed) {
		bool wasfirst = t->idx == 0;
		heap_remove(ts, t->idx);
		atomic_store_explicit(&t->pp, NULL, memory_order_relaxed);
		if (wasfirst)
			update_timer0(pp);
	}
	unlock(&ts->lock);
	return armed;
}

int64_t checktimers(struct p *pp, int64_t now)
{
	struct ptimers *ts = pp->timers;
	int64_t next = atomic_load_explicit(&pp->timer0when, memory_order_relaxed);
	if (next == 0 || next > now)
		return next;
	struct {
		void (*f)(void *);
		void *arg;
	} fire[TIMER_BATCH];
	for (;;) {
		int nf = 0;
		lock(&ts->lock);
		/* Pop first, touch the timers after: each lives on its own cold
		 * stack, and prefetching them while the heap is sifted overlaps
		 * those misses instead of taking them one after another. */
		int np = 0;
		while (nf < TIMER_BATCH && ts->n > 0 && ts->heap[0].when <= now) {
			struct timerent e = ts->heap[0];
			heap_remove(ts, 0);
			if (e.t & ENT_SLEEPG) {
				fire[nf].f = sleep_ready;
				fire[nf].arg = entg(e);
				__builtin_prefetch(fire[nf].arg, 1);
			} else {
				struct timer *t = enttimer(e);
				__builtin_prefetch(t, 1);
				np++;
				fire[nf].f = NULL; /* filled in below */
				fire[nf].arg = t;
			}
			nf++;
		}
		for (int i = 0; i < nf && np > 0; i++) {
			if (fire[i].f)
				continue;
			struct timer *t = fire[i].arg;
			fire[i].f = t->f;
			fire[i].arg = t->arg;
			/* t may be gone as soon as this is seen (deltimer: "fired") */
			atomic_store_explicit(&t->pp, NULL, memory_order_release);
		}
		update_timer0(pp);
		next = ts->n ? ts->heap[0].when : 0;
		unlock(&ts->lock);
		for (int i = 0; i < nf; i++)
			fire[i].f(fire[i].arg);
		if (next == 0 || next > now)
			return next;
	}
}

static void sleep_ready(void *arg)
{
	goready(arg);
}

static bool sleep_park(struct g *gp, void *arg)
{
	int64_t when = *(int64_t *)arg;
	/* out of memory: wake at once rather than never */
	return heap_add(when > 0 ? when : 1, (uintptr_t)gp | ENT_SLEEPG) == 0;
}

GORT_EXPORT void gort_sleep(int64_t ns)
{
	if (ns <= 0)
		return;
	struct g *gp = getg();
	if (!gp || gp == gp->m->g0) {
		struct timespec ts = { ns / 1000000000, ns % 1000000000 };
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		return;
	}
	int64_t when = nanotime() + ns;
	gopark(sleep_park, &when, WAIT_SLEEP);
}

void timers_cancel_task(struct task *t, struct gqueue *ret)
{
	for (int32_t i = 0; i < gomaxprocs; i++) {
		struct p *pp = allp[i];
		struct ptimers *ts = pp->timers;
		if (atomic_load(&pp->timer0when) == 0)
			continue;
		lock(&ts->lock);
		/* Keep the others in place, then restore the heap order: one pass,
		 * however many sleepers the task had. */
		int32_t n = 0;
		for (int32_t k = 0; k < ts->n; k++) {
			struct timerent e = ts->heap[k];
			if ((e.t & ENT_SLEEPG) && entg(e)->task == t) {
				gqueue_push(ret, entg(e));
				continue;
			}
			setent(ts->heap, n++, e);
		}
		if (n != ts->n) {
			ts->n = n;
			for (int32_t k = (n - 2) / 4; n > 1 && k >= 0; k--)
				siftdown(ts->heap, n, k);
			update_timer0(pp);
		}
		unlock(&ts->lock);
	}
}
