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
	int64_t waitsince;       /* nanotime() when it started waiting */
	gort_fn fn;              /* entry */
};

/* goroutines_snapshot: every goroutine that is not dead, in creation order of
 * their G structs, as a malloc'ed array (free it). Callable from any thread.
 * Returns 0 or -ENOMEM. */
int goroutines_snapshot(struct ginfo **ret, size_t *ret_n);

/* forEachG (proc.c): fn(gp, arg) for every G ever allocated, under allglock. */
void forEachG(void (*fn)(struct g *gp, void *arg), void *arg);

/* gstatus_string: "runnable", "running", "syscall", "waiting", ... */
const char *gstatus_string(uint32_t status);

#endif
