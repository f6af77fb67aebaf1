/* runtime/sync.c: Go's sync package for goroutines: mutex (with starvation mode), once, wait groups. */
#include "sema.h"

/* gort_wg state: counter in the high 32 bits, waiters in the low 32, as Go's
 * WaitGroup; the waiters sleep on wg->sema. */

GORT_EXPORT void gort_wg_add(gort_wg *wg, int64_t n)
{
	uint64_t state = __atomic_add_fetch(&wg->state, (uint64_t)n << 32, __ATOMIC_ACQ_REL);
	int32_t v = (int32_t)(state >> 32);
	uint32_t w = (uint32_t)state;
	if (v < 0)
		gort_panic("sync: negative WaitGroup counter");
	if (w != 0 && n > 0 && v == (int32_t)n)
		gort_panic("sync: WaitGroup misuse: Add called concurrently with Wait");
	if (v > 0 || w == 0)
		return;
	/* Counter is 0 and there are waiters: nobody may change state now. */
	if (__atomic_load_n(&wg->state, __ATOMIC_ACQUIRE) != state)
		gort_panic("sync: WaitGroup misuse: Add called concurrently with Wait");
	__atomic_store_n(&wg->state, 0, __ATOMIC_RELEASE);
	for (; w != 0; w--)
		semrelease(&wg->sema, false);
}

GORT_EXPORT void gort_wg_done(gort_wg *wg)
{
	gort_wg_add(wg, -1);
}

GORT_EXPORT void gort_wg_wait(gort_wg *wg)
{
	uint64_t state = __atomic_load_n(&wg->state, __ATOMIC_ACQUIRE);
	for (;;) {
		if ((int32_t)(state >> 32) == 0)
			return;
		if (__atomic_compare_exchange_n(&wg->state, &state, state + 1, false, __ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE)) {
			semacquire(&wg->sema, false, WAIT_WAITGROUP);
			if (__atomic_load_n(&wg->state, __ATOMIC_ACQUIRE) != 0)
				gort_panic("sync: WaitGroup is reused before previous Wait has returned");
			return;
		}
	}
}

/*
 * gort_mutex: Go's sync.Mutex. state = waiters << 3 | starving | woken | locked.
 *
 * Normal mode: waiters queue FIFO on m->sema, but a woken waiter competes with
 * newly arriving goroutines (which are on a CPU already and usually win); a
 * loser goes back to the front of the queue. A waiter that fails to get the
 * mutex for more than 1 ms switches it to starvation mode: unlock then hands
 * the mutex straight to the waiter at the front (semrelease with handoff),
 * newcomers don't spin or grab it and queue at the tail. The last waiter, or
 * one that waited under 1 ms, switches back to normal mode. Normal mode is much
 * faster (a goroutine can take the mutex several times in a row); starvation
 * mode bounds the tail latency.
 */
enum {
	MUTEX_LOCKED = 1,
	MUTEX_WOKEN = 2,
	MUTEX_STARVING = 4,
	MUTEX_WAITER_SHIFT = 3,
};
#define STARVATION_THRESHOLD_NS 1000000
#define MUTEX_SPIN 4

static inline uint32_t mload(gort_mutex *m)
{
	return __atomic_load_n(&m->state, __ATOMIC_RELAXED);
}

static inline bool mcas(gort_mutex *m, uint32_t old, uint32_t new)
{
	return __atomic_compare_exchange_n(&m->state, &old, new, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

/* Go's sync_runtime_canSpin: spin only a few times, only on a multicore machine
 * with another P running (who could release the mutex), and only while our own
 * P has nothing else to run. */
static bool canspin(int iter)
{
	if (iter >= MUTEX_SPIN || gomaxprocs <= 1)
		return false;
	if (gomaxprocs <= atomic_load_explicit(&sched.npidle, memory_order_relaxed) +
				 atomic_load_explicit(&sched.nmspinning, memory_order_relaxed) + 1)
		return false;
	struct g *gp = getg();
	struct p *pp = gp ? gp->m->p : NULL;
	if (!pp)
		return false;
	return atomic_load_explicit(&pp->runqhead, memory_order_relaxed) ==
		       atomic_load_explicit(&pp->runqtail, memory_order_relaxed) &&
	       !atomic_load_explicit(&pp->runnext, memory_order_relaxed);
}

static void mutex_lock_slow(gort_mutex *m, enum waitreason reason)
{
	int64_t waitstart = 0;
	bool starving = false, awoke = false;
	int iter = 0;
	uint32_t old = mload(m);
	for (;;) {
		/* Spin while it's locked in normal mode and spinning makes sense;
		 * set woken so that unlock doesn't wake anyone meanwhile. */
		if ((old & (MUTEX_LOCKED | MUTEX_STARVING)) == MUTEX_LOCKED && canspin(iter)) {
			if (!awoke && !(old & MUTEX_WOKEN) && (old >> MUTEX_WAITER_SHIFT) != 0 &&
			    mcas(m, old, old | MUTEX_WOKEN))
				awoke = true;
			procyield(30);
			iter++;
			old = mload(m);
			continue;
		}
		uint32_t new = old;
		/* Newcomers don't take a starving mutex: it goes to the queue's head. */
		if (!(old & MUTEX_STARVING))
			new |= MUTEX_LOCKED;
		if (old & (MUTEX_LOCKED | MUTEX_STARVING))
			new += 1u << MUTEX_WAITER_SHIFT;
		/* Switch to starvation mode, unless it was just unlocked (then
		 * unlock expects waiters that starvation mode can't have yet). */
		if (starving && (old & MUTEX_LOCKED))
			new |= MUTEX_STARVING;
		if (awoke) {
			if (!(new & MUTEX_WOKEN))
				throw("sync: inconsistent mutex state");
			new &= ~(uint32_t)MUTEX_WOKEN;
		}
		if (!mcas(m, old, new)) {
			old = mload(m);
			continue;
		}
		if (!(old & (MUTEX_LOCKED | MUTEX_STARVING)))
			return; /* took it */
		/* A waiter that waited already goes back to the queue's head. */
		bool lifo = waitstart != 0;
		if (waitstart == 0)
			waitstart = nanotime();
		semacquire(&m->sema, lifo, reason);
		starving = starving || nanotime() - waitstart > STARVATION_THRESHOLD_NS;
		old = mload(m);
		if (old & MUTEX_STARVING) {
			/* Handed off to us: the mutex is ours, but state still says
			 * unlocked with us among the waiters. */
			if ((old & (MUTEX_LOCKED | MUTEX_WOKEN)) || (old >> MUTEX_WAITER_SHIFT) == 0)
				throw("sync: inconsistent mutex state");
			uint32_t delta = MUTEX_LOCKED - (1u << MUTEX_WAITER_SHIFT);
			if (!starving || (old >> MUTEX_WAITER_SHIFT) == 1)
				delta -= MUTEX_STARVING; /* leave starvation mode */
			__atomic_add_fetch(&m->state, delta, __ATOMIC_ACQ_REL);
			return;
		}
		awoke = true;
		iter = 0;
	}
}

GORT_EXPORT void gort_mutex_lock(gort_mutex *m)
{
	uint32_t zero = 0;
	if (likely(__atomic_compare_exchange_n(&m->state, &zero, MUTEX_LOCKED, false, __ATOMIC_ACQUIRE,
					       __ATOMIC_RELAXED)))
		return;
	mutex_lock_slow(m, WAIT_MUTEX);
}

GORT_EXPORT bool gort_mutex_trylock(gort_mutex *m)
{
	uint32_t old = mload(m);
	if (old & (MUTEX_LOCKED | MUTEX_STARVING))
		return false;
	return __atomic_compare_exchange_n(&m->state, &old, old | MUTEX_LOCKED, false, __ATOMIC_ACQUIRE,
					   __ATOMIC_RELAXED);
}

static void mutex_unlock_slow(gort_mutex *m, uint32_t new)
{
	if (!((new + MUTEX_LOCKED) & MUTEX_LOCKED))
		gort_panic("sync: unlock of unlocked mutex");
	if (new & MUTEX_STARVING) {
		/* Hand the mutex to the first waiter and let it run now. MUTEX_LOCKED
		 * stays clear: the waiter sets it; while starving, newcomers don't take
		 * the mutex anyway. */
		semrelease(&m->sema, true);
		return;
	}
	uint32_t old = new;
	for (;;) {
		/* Nobody to wake, or somebody already woken/spinning, or it was
		 * taken again: nothing to do. */
		if ((old >> MUTEX_WAITER_SHIFT) == 0 || (old & (MUTEX_LOCKED | MUTEX_WOKEN | MUTEX_STARVING)))
			return;
		new = (old - (1u << MUTEX_WAITER_SHIFT)) | MUTEX_WOKEN;
		if (mcas(m, old, new)) {
			semrelease(&m->sema, false);
			return;
		}
		old = mload(m);
	}
}

GORT_EXPORT void gort_mutex_unlock(gort_mutex *m)
{
	uint32_t new = __atomic_sub_fetch(&m->state, MUTEX_LOCKED, __ATOMIC_RELEASE);
	if (unlikely(new != 0))
		mutex_unlock_slow(m, new);
}

int mutex_waiter_gone(uint32_t *addr)
{
	gort_mutex *m = (gort_mutex *)((char *)addr - offsetof(gort_mutex, sema));
	uint32_t old = mload(m);
	if (old & MUTEX_STARVING) {
		/* handed off: take it as mutex_lock_slow does (leaving starvation
		 * mode: the ghost did not starve) and unlock it at once */
		if ((old & (MUTEX_LOCKED | MUTEX_WOKEN)) || (old >> MUTEX_WAITER_SHIFT) == 0)
			throw("sync: inconsistent mutex state");
		__atomic_add_fetch(&m->state, MUTEX_LOCKED - (1u << MUTEX_WAITER_SHIFT) - MUTEX_STARVING,
				   __ATOMIC_ACQ_REL);
		old = __atomic_sub_fetch(&m->state, MUTEX_LOCKED, __ATOMIC_RELEASE);
		if (old & MUTEX_STARVING)
			return 2; /* a waiter starved meanwhile: hand it on (mutex_unlock_slow) */
	} else {
		/* woken in normal mode: MUTEX_WOKEN was set for us (the woken
		 * waiter clears it on its next attempt) */
		while (!mcas(m, old, old & ~(uint32_t)MUTEX_WOKEN))
			old = mload(m);
		old &= ~(uint32_t)MUTEX_WOKEN;
	}
	/* wake the next waiter, as mutex_unlock_slow does */
	for (;;) {
		if ((old >> MUTEX_WAITER_SHIFT) == 0 || (old & (MUTEX_LOCKED | MUTEX_WOKEN | MUTEX_STARVING)))
			return 0;
		if (mcas(m, old, (old - (1u << MUTEX_WAITER_SHIFT)) | MUTEX_WOKEN))
			return 1;
		old = mload(m);
	}
}

/*
 * gort_once: Go's sync.Once, whose slow path is
 *
 *	o.m.Lock(); defer o.m.Unlock()
 *	if o.done.Load() == 0 { defer o.done.Store(1); f() }
 *
 * Every caller returns only after fn has completed; if fn never returns (it
 * blocks forever) the other callers wait forever; if fn's goroutine ends
 * instead (Goexit, panic) the deferred calls still run: the once counts as done
 * and the waiters return. gort has no deferred calls, so the goroutine running
 * fn keeps a record of the once on its own stack (g->oncing); whatever ends a
 * goroutine for good -- gort_exit, the end of its task, whether it parked,
 * spun or ended the task itself -- calls once_abandon first, which completes
 * each recorded once as the defers would. A once in memory that outlives the
 * task (the embedding program's, a plugin's) is thus never left half taken.
 *
 * The state is not a mutex (a goroutine waiting on a mutex that is taken away
 * by its task's end would leave the mutex's waiter count wrong): m.state is
 * ONCE_RUNNING | waiters * ONCE_WAITER, m.sema the waiters' semaphore. The
 * finisher stores done and then swaps the state to 0, waking the waiters it
 * counted; a waiter counts itself and then checks done again (both sequentially
 * consistent): either it sees done or the finisher sees it. A waiter its task
 * took away leaves one release without a taker on a once that is done for
 * good: harmless.
 */
enum { ONCE_RUNNING = 1, ONCE_WAITER = 2 };

struct oncerec {
	gort_once *once;
	struct oncerec *next;
};

static void once_finish(gort_once *once)
{
	__atomic_store_n(&once->done, 1, __ATOMIC_SEQ_CST);
	uint32_t s = __atomic_exchange_n(&once->m.state, 0, __ATOMIC_SEQ_CST);
	for (uint32_t w = s / ONCE_WAITER; w != 0; w--)
		semrelease(&once->m.sema, false);
}

void once_abandon(struct g *gp)
{
	struct oncerec *r = gp->oncing;
	gp->oncing = NULL;
	for (; r; r = r->next)
		once_finish(r->once);
}

static void once_slow(gort_once *once, void (*fn)(void))
{
	struct g *gp = getg();
	if (gp && gp == gp->m->g0)
		gp = NULL; /* a thread, not a goroutine: nothing ends it but returning */
	for (;;) {
		uint32_t s = __atomic_load_n(&once->m.state, __ATOMIC_SEQ_CST);
		if (!(s & ONCE_RUNNING)) {
			if (!__atomic_compare_exchange_n(&once->m.state, &s, s | ONCE_RUNNING, false,
							 __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
				continue;
			/* ours; it may have been completed just before we took it */
			if (!__atomic_load_n(&once->done, __ATOMIC_SEQ_CST)) {
				struct oncerec rec = { .once = once, .next = gp ? gp->oncing : NULL };
				if (gp)
					gp->oncing = &rec;
				fn();
				if (gp)
					gp->oncing = rec.next;
			}
			once_finish(once);
			return;
		}
		if (!__atomic_compare_exchange_n(&once->m.state, &s, s + ONCE_WAITER, false, __ATOMIC_SEQ_CST,
						 __ATOMIC_SEQ_CST))
			continue;
		if (__atomic_load_n(&once->done, __ATOMIC_SEQ_CST))
			return;
		semacquire(&once->m.sema, false, WAIT_ONCE);
		if (__atomic_load_n(&once->done, __ATOMIC_ACQUIRE))
			return;
	}
}

GORT_EXPORT void gort_once_do(gort_once *once, void (*fn)(void))
{
	if (likely(__atomic_load_n(&once->done, __ATOMIC_ACQUIRE)))
		return;
	if (unlikely(!fn))
		gort_panic("sync: once with a NULL function");
	once_slow(once, fn);
}
