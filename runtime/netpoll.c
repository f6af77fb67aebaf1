/* runtime/netpoll.c: where one idle M waits for the earliest timer or an io completion. */
#include "runtime.h"

/*
 * Until io completions exist, the only thing an idle M waits for besides new
 * work (which comes with a startm of its own) is the earliest timer: the poller
 * sleeps on a futex word with that timeout and netpoll_break wakes it early
 * when an earlier timer appears or the runtime stops.
 */

static _Atomic uint32_t pollwake;

void netpoll_init(void)
{
	atomic_store(&pollwake, 0);
}

void netpoll_fini(void)
{
}

bool netpoll_pending(void)
{
	return false;
}

bool netpoll_waiters(void)
{
	return false;
}

void netpoll(int64_t delay, struct gqueue *ret)
{
	(void)ret;
	if (delay == 0)
		return;
	if (atomic_exchange(&pollwake, 0) != 0)
		return;
	futexsleep(&pollwake, 0, delay);
	atomic_store(&pollwake, 0);
}

void netpoll_break(void)
{
	if (atomic_exchange(&pollwake, 1) == 0)
		futexwakeup(&pollwake, 1);
}
