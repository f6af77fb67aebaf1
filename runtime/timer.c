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
 */

struct ptimers {
	struct mutex lock;
	struct timer **heap;
	int32_t n, cap;
};

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

static void siftup(struct timer **h, int32_t i)
{
	struct timer *t = h[i];
	while (i > 0) {
		int32_t parent = (i - 1) / 4;
		if (t->when >= h[parent]->when)
			break;
		h[i] = h[parent];
		h[i]->idx = i;
		i = parent;
	}
	h[i] = t;
	t->idx = i;
}

static void siftdown(struct timer **h, int32_t n, int32_t i)
{
	struct timer *t = h[i];
	for (;;) {
		int32_t c = i * 4 + 1;
		if (c >= n)
			break;
		int32_t best = c;
		for (int32_t k = c + 1; k < c + 4 && k < n; k++)
			if (h[k]->when < h[best]->when)
				best = k;
		if (h[best]->when >= t->when)
			break;
		h[i] = h[best];
		h[i]->idx = i;
		i = best;
	}
	h[i] = t;
	t->idx = i;
}

static void heap_remove(struct ptimers *ts, int32_t i)
{
	int32_t last = --ts->n;
	if (i != last) {
		ts->heap[i] = ts->heap[last];
		ts->heap[i]->idx = i;
		siftdown(ts->heap, ts->n, i);
		siftup(ts->heap, ts->heap[i]->idx);
	}
}

static inline void update_timer0(struct p *pp)
{
	struct ptimers *ts = pp->timers;
	atomic_store(&pp->timer0when, ts->n ? ts->heap[0]->when : 0);
}

int addtimer(struct timer *t)
{
	struct g *me = getg();
	struct p *pp = me && me->m->p ? me->m->p : allp[0];
	struct ptimers *ts = pp->timers;
	if (t->when <= 0)
		t->when = 1;
	lock(&ts->lock);
	if (ts->n == ts->cap) {
		int32_t ncap = ts->cap ? ts->cap * 2 : 64;
		struct timer **nh = realloc(ts->heap, (size_t)ncap * sizeof(*nh));
		if (!nh) {
			unlock(&ts->lock);
			return -ENOMEM;
		}
		ts->heap = nh;
		ts->cap = ncap;
	}
	ts->heap[ts->n] = t;
	siftup(ts->heap, ts->n++);
	atomic_store(&t->pp, pp);
	bool first = ts->heap[0] == t;
	if (first)
		update_timer0(pp);
	unlock(&ts->lock);
	if (first)
		wakenetpoller(t->when);
	return 0;
}

bool deltimer(struct timer *t)
{
	struct p *pp = atomic_load(&t->pp);
	if (!pp)
		return false;
	struct ptimers *ts = pp->timers;
	lock(&ts->lock);
	bool armed = atomic_load(&t->pp) == pp;
	if (armed) {
		heap_remove(ts, t->idx);
		atomic_store(&t->pp, NULL);
		update_timer0(pp);
	}
	unlock(&ts->lock);
	return armed;
}

int64_t checktimers(struct p *pp, int64_t now)
{
	struct ptimers *ts = pp->timers;
	int64_t next = atomic_load(&pp->timer0when);
	if (next == 0 || next > now)
		return next;
	lock(&ts->lock);
	while (ts->n > 0 && ts->heap[0]->when <= now) {
		struct timer *t = ts->heap[0];
		heap_remove(ts, 0);
		void (*f)(void *) = t->f;
		void *arg = t->arg;
		atomic_store(&t->pp, NULL); /* t may be gone once f runs */
		unlock(&ts->lock);
		f(arg);
		lock(&ts->lock);
	}
	update_timer0(pp);
	next = ts->n ? ts->heap[0]->when : 0;
	unlock(&ts->lock);
	return next;
}

static void sleep_ready(void *arg)
{
	goready(arg);
}

static bool sleep_park(struct g *gp, void *arg)
{
	struct timer *t = arg;
	t->arg = gp;
	if (addtimer(t) < 0)
		return false; /* out of memory: wake at once rather than never */
	return true;
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
	struct timer t = { .when = nanotime() + ns, .f = sleep_ready };
	gopark(sleep_park, &t, WAIT_SLEEP);
}
