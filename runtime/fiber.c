/* runtime/fiber.c: tells ASan and TSan about goroutine stack switches (sanitizer builds only). */
#include "runtime.h"

#ifdef GORT_FIBER_HOOKS
#include <sanitizer/common_interface_defs.h>
#if defined(__SANITIZE_THREAD__)
#define GORT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GORT_TSAN 1
#endif
#endif
#ifdef GORT_TSAN
#include <sanitizer/tsan_interface.h>
#endif
#if defined(__SANITIZE_ADDRESS__)
#define GORT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GORT_ASAN 1
#endif
#endif

/*
 * ASan: start_switch_fiber before each switch (with the stack being switched to)
 * and finish_switch_fiber after it, on the new stack. g0 restarts from its top
 * on every mcall and a dying G never comes back, so neither keeps a fake stack.
 * TSan: every G is a fiber; switching to it orders everything before the switch
 * before everything after (flags 0).
 *
 * gopark's direct switch (proc.c: mswitch runs park_direct_m as g0 on the next
 * G's stack, then resumes that G without another stack change) is one stack
 * switch, gp's stack to next's, so it is one annotated switch, gp to next:
 * fiber_switch_direct starts it before mswitch, and next's own fiber_switched
 * (or fiber_started, for a new G) finishes it once next runs its code again.
 * In between, park_direct_m runs on next's stack inside the started switch,
 * which both sanitizers allow: ASan takes the stack bounds of the stack being
 * switched to while sp is on it (AsanThread::GetStackBounds) and uses no fake
 * stack until the finish; TSan attributes park_direct_m to next's fiber, after
 * the switch's synchronisation, and its calls return before next's frames
 * continue, so next's shadow call stack stays balanced. The one g0 annotation
 * on the way, park_commit's switched_to_g0 -> fiber_switched(g0), would finish
 * the switch there (with g0's NULL fake stack, and next's own finish would
 * then find no switch started): direct_pending makes it a no-op.
 */

#ifdef GORT_ASAN
/* A direct switch has started on this thread and next has not finished it yet. */
static __thread bool direct_pending;
#endif

void fiber_create(struct g *gp)
{
#ifdef GORT_TSAN
	gp->fiber = __tsan_create_fiber(0);
#else
	(void)gp;
#endif
}

/* mexit: back on the thread's own fiber before the thread ends. */
void fiber_exit_m(struct m *mp)
{
#ifdef GORT_TSAN
	__tsan_switch_to_fiber(mp->tsan_fiber0, 0);
#else
	(void)mp;
#endif
}

void fiber_reset(struct g *gp)
{
#ifdef GORT_TSAN
	fiber_destroy(gp);
	fiber_create(gp);
#else
	(void)gp;
#endif
}

void fiber_destroy(struct g *gp)
{
#ifdef GORT_TSAN
	if (gp->fiber)
		__tsan_destroy_fiber(gp->fiber);
	gp->fiber = NULL;
#else
	(void)gp;
#endif
}

void fiber_init_g0(struct g *g0)
{
#ifdef GORT_TSAN
	g0->fiber = g0->m->tsan_fiber0 = __tsan_get_current_fiber();
#else
	(void)g0;
#endif
}

void fiber_switch(struct g *from, struct g *to, bool from_dying)
{
#ifdef GORT_ASAN
	bool from_g0 = from == from->m->g0 || (to->m && from == to->m->g0);
	__sanitizer_start_switch_fiber(from_dying || from_g0 ? NULL : &from->asan_fake_stack,
				       (const void *)to->stacklo, to->stackhi - to->stacklo);
#else
	(void)from;
	(void)from_dying;
#endif
#ifdef GORT_TSAN
	/* TSan keeps a shadow call stack per fiber. g0 restarts from its top on
	 * every mcall and a dying G never returns, so their old shadow stacks
	 * would only grow: give them fresh fibers. */
	if (to->m && to == to->m->g0) {
		if (to->fiber != to->m->tsan_fiber0)
			__tsan_destroy_fiber(to->fiber);
		to->fiber = __tsan_create_fiber(0);
	}
	__tsan_switch_to_fiber(to->fiber, 0);
#endif
}

/* gopark's direct switch from gp to next is about to run (mswitch): starts the
 * annotated switch that next's own fiber_switched (or fiber_started) finishes,
 * park_direct_m running in between (see above). Can't fail. */
void fiber_switch_direct(struct g *gp, struct g *next)
{
	/* The sanitizer calls are made here, not through fiber_switch: TSan's
	 * shadow call stack sees this function entered on gp's fiber and left
	 * on next's, and every switch must leave the same one frame behind on
	 * the fiber it leaves (gp pops it when it resumes, whichever way), or
	 * a G's shadow stack drifts with each direct switch until it overflows
	 * (seen: SIGSEGV in CurrentStackId within minutes of test-chan). */
#ifdef GORT_ASAN
	direct_pending = true;
	__sanitizer_start_switch_fiber(&gp->asan_fake_stack, (const void *)next->stacklo,
				       next->stackhi - next->stacklo);
#endif
#ifdef GORT_TSAN
	__tsan_switch_to_fiber(next->fiber, 0);
#endif
	(void)gp;
	(void)next;
}

void fiber_switched(struct g *to)
{
#ifdef GORT_ASAN
	bool is_g0 = to->m && to == to->m->g0;
	if (is_g0 && direct_pending)
		return; /* park_direct_m: next finishes the switch */
	direct_pending = false;
	__sanitizer_finish_switch_fiber(is_g0 ? NULL : to->asan_fake_stack, NULL, NULL);
#else
	(void)to;
#endif
}

/* goentry calls this first on a new goroutine's stack. */
void fiber_started(void)
{
#ifdef GORT_ASAN
	direct_pending = false;
	__sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
}
#endif
