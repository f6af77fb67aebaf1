/* runtime/stats.h: snapshots of the scheduler for gortctl stats and ps (Go's schedtrace and goroutine listing). */
#ifndef GORT_STATS_H
#define GORT_STATS_H

#include "runtime.h"

/* Go's schedtrace line: "gomaxprocs=2 idleprocs=1 threads=4 spinningthreads=0
 * idlethreads=1 runqueue=0 [0 1]". */
struct sched_stats {
	int32_t gomaxprocs;
	int32_t idleprocs;       /* Ps on the idle list */
	int32_t threads;         /* Ms alive */
	int32_t spinningthreads; /* Ms looking for work */
	int32_t idlethreads;     /* Ms parked on the idle list */
	int32_t syscallthreads;  /* Ms in system calls */
	int32_t runqueue;        /* Gs on the global run queue */
	int64_t goroutines;      /* Gs that are not dead */
};

/* sched_stats_read: a consistent snapshot, taken under sched.lock as Go's
 * schedtrace does; runq[i] (for i < nrunq and i < gomaxprocs; runq may be NULL)
 * receives P i's local run queue length. Callable from any thread, goroutine or
 * not; an unstarted runtime reads as zeros. This function can't fail. */
void sched_stats_read(struct sched_stats *ret, int32_t *runq, int nrunq);

/* One goroutine, as gortctl ps shows it. task is compared, never dereferenced:
 * the task may have ended since the snapshot. */
struct ginfo {
	int64_t goid;
	int64_t parentgoid;
	struct task *task;
	uint32_t status;         /* enum gstatus */
	uint8_t waitreason;      /* enum waitreason, when waiting */
	int64_t since;           /* gclock() since when it is in this status (0: unknown) */
	gort_fn fn;              /* entry */
	int64_t m;               /* running or in a syscall: its M's id, else -1 */
	int32_t p;               /* running: its P's id, else -1 */
};

/* goroutines_snapshot: every goroutine that is not dead, in creation order of
 * their G structs, as a malloc'ed array (free it). Callable from any thread.
 * Returns 0 or -ENOMEM. */
int goroutines_snapshot(struct ginfo **ret, size_t *ret_n);

/* Goroutines by state, for one task. */
struct gstates {
	int64_t runnable, running, waiting, syscall;
};
/* goroutines_by_task: ret[i] counts the live goroutines of tasks[i] by state
 * (tasks are compared, never dereferenced; NULL counts the runtime's own), in
 * one walk of every G: O(goroutines * log tasks), no allocation per goroutine.
 * Any thread. Returns 0 or -ENOMEM. */
int goroutines_by_task(struct task *const *tasks, size_t n, struct gstates *ret);

/* forEachG (proc.c): fn(gp, arg) for every G ever allocated, under allglock. */
void forEachG(void (*fn)(struct g *gp, void *arg), void *arg);

/* One P and one M, as gortctl top shows them (read racily, as Go's
 * schedtrace(detailed) does). */
struct pinfo {
	int32_t id;
	uint32_t status;         /* enum pstatus */
	int64_t m;               /* its M's id, -1 if none */
	int32_t runqsize;        /* local run queue (runnext included) */
	int64_t curg;            /* goid running on it, 0 if none */
	uint32_t schedtick, syscalltick;
	int32_t gfreecnt;        /* dead Gs cached for reuse */
};
struct minfo {
	int64_t id;
	int32_t procid;          /* thread id */
	int32_t p;               /* its P, -1 if none */
	int64_t curg;            /* goid of its current G, 0 if none (on g0) */
	bool spinning, idle, syscall, locked;
};

/* procs_snapshot: every P (ret_p: gomaxprocs entries) and every M alive
 * (ret_m), as malloc'ed arrays (free them), under sched.lock. Any thread.
 * Returns 0 (both empty when the runtime is not started) or -ENOMEM. */
int procs_snapshot(struct pinfo **ret_p, size_t *ret_np, struct minfo **ret_m, size_t *ret_nm);

/* pstatus_string: "idle", "running", "syscall", "dead". */
const char *pstatus_string(uint32_t status);

/* gstatus_string: "runnable", "running", "syscall", "waiting", ... */
const char *gstatus_string(uint32_t status);

#endif
