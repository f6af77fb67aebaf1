/* runtime/stats.c: scheduler snapshots for gortctl: Go's schedtrace figures and the goroutine listing. */
#include <stdlib.h>
#include <string.h>

#include "stats.h"

_Atomic int64_t gclock_now;

int64_t gclock_fresh(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	int64_t now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	int64_t old = atomic_load_explicit(&gclock_now, memory_order_relaxed);
	while (old < now && !atomic_compare_exchange_weak_explicit(&gclock_now, &old, now, memory_order_relaxed,
								   memory_order_relaxed))
		;
	return now;
}

static void count_live(struct g *gp, void *arg)
{
	uint32_t st = readgstatus(gp);
	*(int64_t *)arg += st != G_DEAD && st != G_IDLE;
}

void sched_stats_read(struct sched_stats *ret, int32_t *runq, int nrunq)
{
	memset(ret, 0, sizeof(*ret));
	if (!runtime_started())
		return;
	/* Go's schedtrace holds sched.lock for the whole line, so that the counts
	 * agree with each other (an M moving from idle to spinning is seen once). */
	lock(&sched.lock);
	if (!allp) { /* runtime_stop took it away: stopping */
		unlock(&sched.lock);
		return;
	}
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
	forEachG(count_live, &live);
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
	/* M structs live until the runtime stops, so a stale gp->m is still one */
	struct m *mp = st == G_RUNNING || st == G_SYSCALL ? RACY(gp->m) : NULL;
	struct p *pp = mp && st == G_RUNNING ? RACY(mp->p) : NULL;
	s->v[s->n++] = (struct ginfo){
		.goid = RACY(gp->goid),
		.parentgoid = RACY(gp->parentgoid),
		.task = RACY(gp->task),
		.status = st,
		.waitreason = RACY(gp->waitreason),
		.since = RACY(gp->waitsince),
		.fn = RACY(gp->fn),
		.m = mp ? RACY(mp->id) : -1,
		.p = pp ? RACY(pp->id) : -1,
	};
}

__attribute__((no_sanitize("thread"))) int procs_snapshot(struct pinfo **ret_p, size_t *ret_np,
							  struct minfo **ret_m, size_t *ret_nm)
{
	struct pinfo *pv = NULL;
	struct minfo *mv = NULL;
	size_t np = 0, nm = 0;
	if (runtime_started()) {
		lock(&sched.lock);
		if (!allp) { /* runtime_stop took it away: stopping */
			unlock(&sched.lock);
			goto out;
		}
		size_t mcap = (size_t)sched.mnext + 1;
		pv = calloc((size_t)gomaxprocs, sizeof(*pv));
		mv = calloc(mcap, sizeof(*mv));
		if (!pv || !mv) {
			unlock(&sched.lock);
			free(pv);
			free(mv);
			return -ENOMEM;
		}
		for (int32_t i = 0; i < gomaxprocs; i++) {
			struct p *pp = allp[i];
			struct m *mp = RACY(pp->m);
			uint32_t h = atomic_load_explicit(&pp->runqhead, memory_order_acquire);
			uint32_t t = atomic_load_explicit(&pp->runqtail, memory_order_acquire);
			int32_t q = (int32_t)(t - h);
			struct g *cur = mp ? RACY(mp->curg) : NULL;
			pv[np++] = (struct pinfo){
				.id = pp->id,
				.status = atomic_load(&pp->status),
				.m = mp ? RACY(mp->id) : -1,
				.runqsize = (q < 0 ? 0 : q) + (atomic_load(&pp->runnext) != NULL),
				.curg = cur ? RACY(cur->goid) : 0,
				.schedtick = RACY(pp->schedtick),
				.syscalltick = atomic_load(&pp->syscalltick),
				.gfreecnt = RACY(pp->gfreecnt),
			};
		}
		for (struct m *mp = sched.allm; mp && nm < mcap; mp = mp->alllink) {
			if (RACY(mp->exiting))
				continue;
			struct g *cur = RACY(mp->curg);
			struct p *pp = RACY(mp->p);
			bool idle = false;
			for (struct m *i = sched.midle; i; i = i->schedlink)
				idle |= i == mp;
			mv[nm++] = (struct minfo){
				.id = mp->id,
				.procid = mp->procid,
				.p = pp ? pp->id : -1,
				.curg = cur ? RACY(cur->goid) : 0,
				.spinning = RACY(mp->spinning),
				.idle = idle || RACY(mp->idlelocked),
				.syscall = cur && readgstatus(cur) == G_SYSCALL,
				.locked = RACY(mp->lockedg) != NULL,
			};
		}
		unlock(&sched.lock);
	}
out:
	*ret_p = pv;
	*ret_np = np;
	*ret_m = mv;
	*ret_nm = nm;
	return 0;
}

struct bytask {
	struct task *t;
	size_t i;
};

static int bytask_cmp(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)((const struct bytask *)a)->t, y = (uintptr_t)((const struct bytask *)b)->t;
	return x < y ? -1 : x > y;
}

struct bytask_walk {
	struct bytask *v;
	size_t n;
	struct gstates *ret;
};

__attribute__((no_sanitize("thread"))) static void bytask_one(struct g *gp, void *arg)
{
	struct bytask_walk *w = arg;
	uint32_t st = readgstatus(gp);
	if (st == G_DEAD || st == G_IDLE)
		return;
	struct bytask key = { .t = RACY(gp->task) };
	struct bytask *hit = bsearch(&key, w->v, w->n, sizeof(*w->v), bytask_cmp);
	if (!hit)
		return;
	struct gstates *s = &w->ret[hit->i];
	switch (st) {
	case G_RUNNABLE:
	case G_PREEMPTED:
		s->runnable++;
		break;
	case G_RUNNING:
		s->running++;
		break;
	case G_SYSCALL:
		s->syscall++;
		break;
	default:
		s->waiting++;
	}
}

int goroutines_by_task(struct task *const *tasks, size_t n, struct gstates *ret)
{
	memset(ret, 0, n * sizeof(*ret));
	if (n == 0 || !runtime_started())
		return 0;
	struct bytask *v = malloc(n * sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		v[i] = (struct bytask){ .t = tasks[i], .i = i };
	qsort(v, n, sizeof(*v), bytask_cmp);
	struct bytask_walk w = { .v = v, .n = n, .ret = ret };
	forEachG(bytask_one, &w);
	free(v);
	return 0;
}

const char *pstatus_string(uint32_t status)
{
	static const char *const names[] = {
		[P_IDLE] = "idle",
		[P_RUNNING] = "running",
		[P_SYSCALL] = "syscall",
		[P_DEAD] = "dead",
	};
	return status < ARRAY_SIZE(names) && names[status] ? names[status] : "unknown";
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
