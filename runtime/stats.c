/* runtime/stats.c: scheduler snapshots for gortctl: Go's schedtrace figures and the goroutine listing. */
#include <stdlib.h>
#include <string.h>

#include "stats.h"

void sched_stats_read(struct sched_stats *ret, int32_t *runq, int nrunq)
{
	memset(ret, 0, sizeof(*ret));
	if (!runtime_started())
		return;
	/* Go's schedtrace holds sched.lock for the whole line, so that the counts
	 * agree with each other (an M moving from idle to spinning is seen once). */
	lock(&sched.lock);
	ret->gomaxprocs = gomaxprocs;
	ret->idleprocs = atomic_load(&sched.npidle);
	ret->threads = sched.nmlive;
	ret->spinningthreads = atomic_load(&sched.nmspinning);
	ret->idlethreads = sched.nmidle;
	ret->syscallthreads = atomic_load(&sched.nmsys);
	ret->runqueue = atomic_load(&sched.runqsize);
	for (int i = 0; runq && i < nrunq && i < gomaxprocs; i++) {
		struct p *pp = allp[i];
		uint32_t h = atomic_load_explicit(&pp->runqhead, memory_order_acquire);
		uint32_t t = atomic_load_explicit(&pp->runqtail, memory_order_acquire);
		int32_t n = (int32_t)(t - h);
		runq[i] = n < 0 ? 0 : n; /* a thief may move head past a stale tail */
	}
	unlock(&sched.lock);

	int64_t live = 0;
	struct ginfo *v;
	size_t n;
	/* Counting walks allgs; without memory the count stays 0 rather than fail. */
	if (goroutines_snapshot(&v, &n) == 0) {
		live = (int64_t)n;
		free(v);
	}
	ret->goroutines = live;
}

struct snap {
	struct ginfo *v;
	size_t n, cap;
	bool oom;
};

/* The fields are read racily, as Go's schedtrace(detailed) reads them: a
 * goroutine may change state under us, and each field is one aligned word
 * read through a volatile pointer. ThreadSanitizer is told so. */
#define RACY(x) (*(const volatile __typeof__(x) *)&(x))

__attribute__((no_sanitize("thread"))) static void snap_one(struct g *gp, void *arg)
{
	struct snap *s = arg;
	uint32_t st = readgstatus(gp);
	if (st == G_DEAD || st == G_IDLE || s->oom)
		return;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 256;
		struct ginfo *v = realloc(s->v, cap * sizeof(*v));
		if (!v) {
			s->oom = true;
			return;
		}
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = (struct ginfo){
		.goid = RACY(gp->goid),
		.parentgoid = RACY(gp->parentgoid),
		.task = RACY(gp->task),
		.status = st,
		.waitreason = RACY(gp->waitreason),
		.waitsince = RACY(gp->waitsince),
		.fn = RACY(gp->fn),
	};
}

int goroutines_snapshot(struct ginfo **ret, size_t *ret_n)
{
	struct snap s = { 0 };
	if (runtime_started())
		forEachG(snap_one, &s);
	if (s.oom) {
		free(s.v);
		return -ENOMEM;
	}
	*ret = s.v;
	*ret_n = s.n;
	return 0;
}

const char *gstatus_string(uint32_t status)
{
	static const char *const names[] = {
		[G_IDLE] = "idle",
		[G_RUNNABLE] = "runnable",
		[G_RUNNING] = "running",
		[G_SYSCALL] = "syscall",
		[G_WAITING] = "waiting",
		[G_PREEMPTED] = "preempted",
		[G_DEAD] = "dead",
	};
	return status < ARRAY_SIZE(names) && names[status] ? names[status] : "unknown";
}
