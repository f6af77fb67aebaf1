/* runtime/lock_futex.c: runtime-internal locks and notes on Linux futexes (Go's lock_futex.go). */
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>

#include "runtime.h"

/* mutex key: 0 unlocked, 1 locked, 2 locked with possible sleepers. */
enum { MUTEX_UNLOCKED = 0, MUTEX_LOCKED = 1, MUTEX_SLEEPING = 2 };
#define ACTIVE_SPIN 4
#define ACTIVE_SPIN_CNT 30
#define PASSIVE_SPIN 1

/* futexsleep: if *addr == val, sleep until woken or ns elapse (ns < 0: no limit).
 * Returns 0 when woken (or spuriously), -ETIMEDOUT, -EAGAIN if *addr != val. */
int futexsleep(_Atomic uint32_t *addr, uint32_t val, int64_t ns)
{
	struct timespec ts, *tsp = NULL;
	if (ns >= 0) {
		ts.tv_sec = ns / 1000000000;
		ts.tv_nsec = ns % 1000000000;
		tsp = &ts;
	}
	long r = syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, tsp, NULL, 0);
	return r < 0 ? -errno : 0;
}

void futexwakeup(_Atomic uint32_t *addr, int cnt)
{
	if (syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, cnt, NULL, NULL, 0) < 0)
		throw("futexwakeup failed");
}

void lock(struct mutex *l)
{
	struct g *gp = getg();
	if (gp)
		gp->m->locks++;

	uint32_t v = atomic_exchange_explicit(&l->key, MUTEX_LOCKED, memory_order_acquire);
	if (likely(v == MUTEX_UNLOCKED))
		return;

	/* wait is MUTEX_LOCKED or MUTEX_SLEEPING: what we must leave in key when we
	 * take the lock, so that a sleeper we may have displaced still gets woken. */
	uint32_t wait = v;
	for (;;) {
		for (int i = 0; i < ACTIVE_SPIN; i++) {
			while (atomic_load_explicit(&l->key, memory_order_relaxed) == MUTEX_UNLOCKED) {
				uint32_t z = MUTEX_UNLOCKED;
				if (atomic_compare_exchange_weak_explicit(&l->key, &z, wait, memory_order_acquire,
									  memory_order_relaxed))
					return;
			}
			procyield(ACTIVE_SPIN_CNT);
		}
		for (int i = 0; i < PASSIVE_SPIN; i++) {
			while (atomic_load_explicit(&l->key, memory_order_relaxed) == MUTEX_UNLOCKED) {
				uint32_t z = MUTEX_UNLOCKED;
				if (atomic_compare_exchange_weak_explicit(&l->key, &z, wait, memory_order_acquire,
									  memory_order_relaxed))
					return;
			}
			sched_yield();
		}
		v = atomic_exchange_explicit(&l->key, MUTEX_SLEEPING, memory_order_acquire);
		if (v == MUTEX_UNLOCKED)
			return;
		wait = MUTEX_SLEEPING;
		futexsleep(&l->key, MUTEX_SLEEPING, -1);
	}
}

void unlock(struct mutex *l)
{
	uint32_t v = atomic_exchange_explicit(&l->key, MUTEX_UNLOCKED, memory_order_release);
	if (unlikely(v == MUTEX_UNLOCKED))
		throw("unlock of unlocked lock");
	if (v == MUTEX_SLEEPING)
		futexwakeup(&l->key, 1);

	struct g *gp = getg();
	if (gp && --gp->m->locks < 0)
		throw("runtime lock count underflow");
}

/* note key: 0 clear, 1 woken. One sleeper, one waker, then noteclear. */
void noteclear(struct note *n)
{
	atomic_store_explicit(&n->key, 0, memory_order_relaxed);
}

void notewakeup(struct note *n)
{
	uint32_t old = atomic_exchange_explicit(&n->key, 1, memory_order_release);
	if (old != 0)
		throw("notewakeup: double wakeup");
	futexwakeup(&n->key, 1);
}

void notesleep(struct note *n)
{
	while (atomic_load_explicit(&n->key, memory_order_acquire) == 0)
		futexsleep(&n->key, 0, -1);
}

bool notetsleep(struct note *n, int64_t ns)
{
	if (ns < 0) {
		notesleep(n);
		return true;
	}
	int64_t deadline = nanotime() + ns;
	while (atomic_load_explicit(&n->key, memory_order_acquire) == 0) {
		futexsleep(&n->key, 0, ns);
		if (atomic_load_explicit(&n->key, memory_order_acquire) != 0)
			break;
		ns = deadline - nanotime();
		if (ns <= 0)
			return false;
	}
	return true;
}
