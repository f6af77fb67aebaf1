/* runtime/sysmon.h: the monitor thread's interface to the scheduler: lifecycle, the execute() hook, counters. */
#ifndef GORT_SYSMON_H
#define GORT_SYSMON_H

#include "runtime.h"

/* sysmon_start: starts the monitor thread (runtime_start, once allp exists).
 * Returns 0 or a negative errno from pthread_create; the runtime then runs
 * without preemption or retake. sysmon_stop: stops and joins it (runtime_stop,
 * once every M has exited, so that nothing it looks at is freed under it);
 * a no-op if it is not running. */
int sysmon_start(void);
void sysmon_stop(void);

/* Counters for gortctl stats. All are totals since sysmon_start, except
 * delay_ns and sample. Preemption: every time slice overrun (a G running
 * >= forcePreemptNS on one schedtick) is one request; a request ends taken
 * cooperatively (the G reached a runtime entry point with the flag set), taken
 * by signal (the handler found a safe point), or by the G yielding, blocking or
 * ending on its own. Each signal that found no safe point counts once in
 * preempt_deferred and is sent again on a later round. */
struct sysmon_stats {
	uint64_t rounds;               /* sysmon wakeups that looked at the Ps */
	uint64_t idle_rounds;          /* rounds that retook nothing (the delay grows after 50 in a row) */
	int64_t delay_ns;              /* the sleep sysmon chose last (deep sleep: its timeout) */
	uint64_t deep_sleeps;          /* sleeps until kicked because every P was idle */
	uint64_t kicks;                /* deep sleeps ended early by a P starting work */
	uint64_t retakes;              /* Ps taken from Ms blocked in system calls */
	uint64_t syscall_handoffs;     /* retaken Ps handed straight to another M (work was waiting) */
	uint64_t syscall_exits_slow;   /* exitsyscalls that found their P gone */
	uint64_t preempt_requested;    /* time slice overruns flagged (g->preempt) */
	uint64_t preempt_signals;      /* preemption signals sent to Ms whose G ignored the flag */
	uint64_t preempt_cooperative;  /* preemptions taken at a runtime entry point */
	uint64_t preempt_async;        /* preemptions taken by the signal at a safe point */
	uint64_t preempt_deferred;     /* signals that found no safe point (libc, runtime, locks, syscall) */
	uint64_t scavenged;            /* pooled dead Gs whose stack pages went back to the kernel */
	/* the last scheduler sample (Go's schedtrace figures), taken at most every 10 ms */
	struct {
		int64_t when;          /* nanotime() of the sample, 0 if none yet */
		int32_t procs, idleprocs, syscallprocs, threads, idlethreads, spinning;
		int32_t runqueue;      /* global run queue */
		int32_t localrunq;     /* sum of the local run queues */
	} sample;
};

/* sysmon_stats_read: copies the counters into *ret. Any thread, runtime started
 * or not (then: the last run's totals, or zeros). Returns 0, or -EINVAL if ret
 * is NULL. */
int sysmon_stats_read(struct sysmon_stats *ret);

/* sysmon_set_forcepreempt: the time slice after which sysmon asks a G to yield
 * (Go's forcePreemptNS, default 10 ms); tests shorten it to preempt
 * continuously. Returns the previous value, or -EINVAL unless
 * 50 us <= ns <= 10 s. Any thread. */
int64_t sysmon_set_forcepreempt(int64_t ns);

/* ---- the scheduler's side (proc.c, syscall.c, preempt.c) ---- */

/* The counters, written wherever the event happens (relaxed atomics; the
 * preemption signal handler increments them too, which is async-signal-safe). */
struct sysmon_counters {
	_Atomic uint64_t rounds, idle_rounds, deep_sleeps, kicks;
	_Atomic int64_t delay_ns;
	_Atomic uint64_t retakes, syscall_handoffs, syscall_exits_slow;
	_Atomic uint64_t preempt_requested, preempt_signals, preempt_cooperative;
	_Atomic uint64_t preempt_async, preempt_deferred, scavenged;
};
extern struct sysmon_counters sysmon_counters;
static inline void sysmon_count(_Atomic uint64_t *c)
{
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* 1 while sysmon sleeps until kicked because every P was idle. */
extern _Atomic uint32_t sysmon_deepsleep;
/* sysmon_kick: wakes sysmon from its deep sleep (work is back). Any thread. */
void sysmon_kick(void);

/* execute() calls this as gp starts on pp: publishes pp's schedtick for
 * sysmon's time slice accounting (pp->schedtick is the owner's plain counter; a
 * G inheriting the slice through runnext keeps the tick, so a chain of them
 * shares one 10 ms slice, as in Go), and kicks sysmon if it sleeps deeply
 * because every P was idle. The load pairs with sysmon's store-then-check of
 * npidle (both sequentially consistent; pidleget's decrement comes first here),
 * so either sysmon sees this P busy or this sees sysmon asleep. */
static inline void sysmon_note_execute(struct p *pp, struct g *gp)
{
	(void)gp;
	atomic_store_explicit(&pp->sysmontick, pp->schedtick, memory_order_relaxed);
	if (unlikely(atomic_load_explicit(&sysmon_deepsleep, memory_order_seq_cst)))
		sysmon_kick();
}

#endif
