/* runtime/timer.h: per-P timers, run by the scheduler (schedule, findrunnable). */
#ifndef GORT_TIMER_H
#define GORT_TIMER_H

#include "runtime.h"

/* A timer fires f(arg) on some M holding a P, at or after when. The memory is
 * the caller's (often the parked goroutine's stack) until it fired or was deleted. */
struct timer {
	int64_t when;
	void (*f)(void *arg);
	void *arg;
	struct p *_Atomic pp; /* heap it is in, NULL once fired or deleted */
	int32_t idx;          /* its place in that heap (not kept if nodelete) */
	bool nodelete;        /* never deltimer'd: the heap need not track where
			       * it is, which saves a cache miss on its memory
			       * (often its owner's stack) at every step of a sift */
};

/* addtimer: arm t on the current P (or P 0 from a thread without one). Can't fail
 * except on out of memory (-ENOMEM, t not armed). */
int addtimer(struct timer *t);
/* deltimer: disarm t; true if it was armed (f will not run), false if it already
 * fired or is firing. Not for a nodelete timer (throws). */
bool deltimer(struct timer *t);
/* timers_cancel_task: disarms the gort_sleep timers of task t's goroutines and
 * queues those goroutines (still waiting) on ret, for the ending task's reaper
 * to ready. */
void timers_cancel_task(struct task *t, struct gqueue *ret);

#endif
