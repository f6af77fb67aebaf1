/* runtime/lock_futex.c: runtime-internal locks and notes on Linux futexes (Go's lock_futex.go). */
#include <linux/futex.h>
#include <sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>

#include "runtime.h"

/*
 * mutex: key is 0 (unlocked) or 1 (locked). lock takes it with one exchange;
 * unlock is a plain release store followed by a plain load of a sleeper count:
 * no locked instruction, so unlocking does not wait for the store buffer to
 * drain (that wait was a fifth of a channel hand-off). A plain store followed
 * by a load is not ordered on any CPU (store->load), so a locker about to sleep
 * could miss the unlock and the unlocker miss the sleeper -- unless the sleeper
 * forces the order for both: after counting itself it calls
 * membarrier(PRIVATE_EXPEDITED), which runs a full barrier on every running
 * thread of the process (a descheduled one passes one when it is switched in),
 * and only then looks at key again. Wherever that barrier falls in an
 * unlocker's program order, either its store of 0 comes before it (then the
 * sleeper's next exchange sees 0 and takes the lock) or its load of the count
 * comes after it (then it sees the sleeper and wakes it). The count stays up
 * until the sleeper has the lock, so one membarrier covers every later unlock
 * too. It is the asymmetric Dekker pattern of userspace RCU and of the JVM's
 * biased locks: the rare side (a lock contended long enough to sleep: after
 * spinning and yielding) pays an inter-processor interrupt so the common side
 * pays nothing.
 *
 * The count is not in the lock: an unlocker reads it after its store, when
 * another thread may already have taken the lock and freed the object that
 * holds it (a channel closed by one goroutine and freed by another). The counts
 * live in a static table indexed by a hash of the lock's address, so that read
 * is always of live memory; a count raised by another lock of the same slot
 * costs a spurious futex wake (sleepers recheck; a wake on memory freed since is
 * harmless, and its EFAULT if unmapped is ignored).
 *
 * Without membarrier (kernel < 4.14, seccomp), unlock exchanges key instead: a
 * full barrier of its own, which orders the load of the count.
 *
 * The scheduler uses the same fence (membarrier_ok, membarrier_all) for its
 * biased runnext: the owner puts and takes with plain stores, and a thief or
 * an M about to sleep pays the barrier (proc.c's essay, "Runnext").
 */
#define ACTIVE_SPIN 4
#define ACTIVE_SPIN_CNT 30
#define PASSIVE_SPIN 1

#ifndef MEMBARRIER_CMD_PRIVATE_EXPEDITED
#define MEMBARRIER_CMD_PRIVATE_EXPEDITED (1 << 3)
#define MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED (1 << 4)
#endif

#define LOCK_SLOTS 256
static _Atomic uint32_t lock_sleepers[LOCK_SLOTS];

static inline _Atomic uint32_t *lock_sleepers_of(struct mutex *l)
{
	return &lock_sleepers[((uintptr_t)l * 0x9e3779b97f4a7c15ULL) >> 56];
}

/* set once, before main (a constructor, before any other: another one may
 * start a thread that takes locks): whether sleepers can use membarrier */
static bool lock_plain_unlock;

/* membarrier_ok, membarrier_all: see runtime.h. */
bool membarrier_ok(void)
{
	return lock_plain_unlock;
}

int membarrier_all(void)
{
	if (!lock_plain_unlock)
		return -ENOSYS;
	int saved = errno;
	int r = syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0 ? 0 : -errno;
	errno = saved;
	return r;
}

__attribute__((constructor(101))) static void lock_init(void)
{
	/* GORT_LOCK_NO_MEMBARRIER=1: the exchange protocol, as where membarrier
	 * is missing (make check runs the channel suite so) */
	const char *off = getenv("GORT_LOCK_NO_MEMBARRIER");
	if (off && strcmp(off, "1") == 0)
		return;
	lock_plain_unlock = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
}

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

static inline bool lock_try(struct mutex *l)
{
	return atomic_load_explicit(&l->key, memory_order_relaxed) == 0 &&
	       atomic_exchange_explicit(&l->key, 1, memory_order_acquire) == 0;
}

/* lock: takes l, spinning, then yielding the thread, then sleeping on it; pins the
 * calling goroutine to its M until unlock (m->locks). This function can't fail. */
void lock(struct mutex *l)
{
	struct g *gp = getg();
	if (gp)
		gp->m->locks++;

	if (likely(atomic_exchange_explicit(&l->key, 1, memory_order_acquire) == 0))
		return;
	for (int i = 0; i < ACTIVE_SPIN; i++) {
		if (lock_try(l))
			return;
		procyield(ACTIVE_SPIN_CNT);
	}
	for (int i = 0; i < PASSIVE_SPIN; i++) {
		if (lock_try(l))
			return;
		sched_yield();
	}
	/* sleep: count ourselves, make every unlocker see that (the essay), then
	 * sleep whenever it is still taken */
	_Atomic uint32_t *nsleep = lock_sleepers_of(l);
	atomic_fetch_add_explicit(nsleep, 1, memory_order_seq_cst);
	/* membarrier failing now (a seccomp filter installed since, or ENOMEM):
	 * an unlocker may not see our count, so sleep 1 ms at a time instead */
	int saved = errno;
	bool fenced = !lock_plain_unlock || syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0;
	while (atomic_exchange_explicit(&l->key, 1, memory_order_acquire) != 0)
		futexsleep(&l->key, 1, fenced ? -1 : 1000000);
	errno = saved;
	atomic_fetch_sub_explicit(nsleep, 1, memory_order_relaxed);
}

/* unlock: releases l, taken by this thread, and wakes a sleeper if there is one. */
void unlock(struct mutex *l)
{
	if (lock_plain_unlock) {
		if (unlikely(atomic_load_explicit(&l->key, memory_order_relaxed) == 0))
			throw("unlock of unlocked lock");
		atomic_store_explicit(&l->key, 0, memory_order_release);
		/* the load of the count stays after the store in the code the CPU
		 * runs: membarrier orders them only at an instruction boundary */
		atomic_signal_fence(memory_order_seq_cst);
	} else if (unlikely(atomic_exchange_explicit(&l->key, 0, memory_order_seq_cst) == 0)) {
		throw("unlock of unlocked lock");
	}
	/* l may be freed by now: only its address is used below */
	if (unlikely(atomic_load_explicit(lock_sleepers_of(l), memory_order_relaxed) != 0)) {
		/* EFAULT if the address went with its memory: not the caller's errno */
		int saved = errno;
		(void)syscall(SYS_futex, &l->key, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
		errno = saved;
	}

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
