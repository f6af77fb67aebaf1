/* runtime/sync.c: sync primitives for goroutines: wait groups (and the mutex and once, Go's sync package). */
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
