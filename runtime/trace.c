/* runtime/trace.c: lifecycle events: per-P buffers the scheduler writes without a lock, and the collector thread that orders, symbolizes and fans them out. */

/*
 * Events
 * ======
 *
 * The scheduler reports what happens to goroutines (created, started,
 * stopped and why, unblocked and by whom, ended), to Ps (started, stopped)
 * and to tasks (started, exited), after Go's execution tracer. Consumers are
 * plugins' on_event hooks, gortd's `gortctl events` and `gortctl trace`, and
 * in-process subscribers (tests, benchmarks).
 *
 * Nobody listening costs one relaxed load of trace_on and a branch that is
 * predicted not taken at each hook site (traceEnabled() in runtime.h); the
 * hooks themselves are out of line, in this file.
 *
 * Writing. Each P has a buffer of its own (pbufs[p->id]): a single-producer
 * ring whose only writer is whichever M owns the P at the time (owning a P is
 * exclusive, and handing one over orders the writes), read by the collector.
 * An event is a few stores and one release store of head: no lock, no locked
 * instruction. Events raised without a P (a thread outside the scheduler
 * starting a task, sysmon readying io waiters, an M back from a system call
 * whose P was taken) go to one shared multi-producer ring (one CAS each), as
 * do task events (rare, and they carry the task's name). A full buffer drops
 * the event and counts it: a consumer that stalls never stalls the scheduler.
 * The drop counts become DROPPED events in the stream, and stats.
 *
 * The collector is a thread of its own, off the Ps, started with the first
 * listener. Every trace_period_ns (or sooner, when a buffer is half full or a
 * flush is asked for) it drains every buffer, resolves entry functions to
 * symbols, orders the batch by time and delivers it: to the history ring,
 * to subscribers and to plugins (plugin_emit: each plugin's own bounded
 * queue). Buffers are ordered by time each, but an event taken from one
 * buffer may be older than one already taken from another (its writer read
 * the clock, then was descheduled before publishing it): events younger than
 * trace_holdback_ns stay for the next round, so that a batch rarely delivers
 * out of order. Ties break by kind so that a stop precedes the unblock that
 * follows it and an unblock the start.
 *
 * Symbols and module unload. An event carries the entry function's address;
 * the collector turns it into a name (module_pc_symbol: the module's own
 * symbol table, static functions included) while the code is still mapped.
 * A task's module is unloaded only after its reaper called trace_flush,
 * which returns once everything written before it has been collected and
 * symbolized; the symbol cache is keyed by task and address
 * and cleared at each flush, so a later module at the same address is never
 * named after the old one.
 *
 * Rejected: one global MPSC queue (a contended cache line on every switch);
 * symbolizing at the hook (a lookup under the module table's lock: too slow for
 * the switch path); a lock per P buffer (the owner is the only writer, so
 * there is nothing to exclude).
 */

#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "gort_plugin.h"
#include "module.h"
#include "sysmon.h"
#include "task.h"
#include "trace.h"

#define PBUF_SIZE   16384u   /* events per P buffer (a power of two) */
#define SBUF_SIZE   8192u    /* the shared buffer */
#define TRACE_PROCS 1024     /* runtime_start's limit on procs */
#define SYMCACHE    4096
#define PEND_MAX    (1u << 20) /* events the collector holds at most */
#define SAMPLE_NS   (100 * 1000000LL)

_Atomic int32_t trace_on;
_Atomic int32_t trace_tasks_on;

/* Anyone listening, to anything: the collector runs rounds. */
static bool listened(void)
{
	return atomic_load(&trace_on) != 0 || atomic_load(&trace_tasks_on) != 0;
}

int64_t trace_period_ns = 10 * 1000000;
int64_t trace_holdback_ns = 2 * 1000000;

/* What the hooks write: 48 bytes. */
struct rawev {
	int64_t time, task, goid, arg;
	uintptr_t pc;
	int32_t m;
	int16_t proc;
	uint8_t kind, reason;
};

struct pbuf {
	_Atomic uint64_t head;        /* next slot the P's owner writes */
	_Atomic uint64_t dropped;     /* events the owner could not write */
	char pad[48];
	_Atomic uint64_t tail;        /* next slot the collector reads */
	uint64_t dropseen;            /* the collector's */
	char pad2[48];
	struct rawev ev[PBUF_SIZE];
};

struct sslot {
	_Atomic uint64_t seq;
	struct rawev ev;
	char name[TRACE_ENTRY_MAX];   /* task events: the task's name */
};

static struct pbuf *_Atomic pbufs[TRACE_PROCS];
static _Atomic int32_t pbuf_want;    /* Ps that found no buffer: the collector allocates */
static struct sslot *_Atomic sbuf;
static _Atomic uint64_t shead;
static uint64_t stail;               /* the collector's */
static _Atomic uint64_t sdropped;
static uint64_t sdropseen;

static pthread_mutex_t tlock = PTHREAD_MUTEX_INITIALIZER; /* starting the collector, buffers */
static bool collector_started;
static _Atomic uint32_t cwake;       /* futex word: the collector sleeps on it */

static pthread_mutex_t flushlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t flushcond = PTHREAD_COND_INITIALIZER;
static _Atomic uint64_t flush_req;
static uint64_t flush_done;          /* under flushlock */

struct trace_sub {
	struct trace_sub *next;
	void (*fn)(const struct trace_event *ev, void *arg);
	void *arg;
	int64_t since;
};
static pthread_mutex_t sublock = PTHREAD_MUTEX_INITIALIZER; /* held while delivering */
static struct trace_sub *subs;

static pthread_mutex_t hlock = PTHREAD_MUTEX_INITIALIZER;
static struct trace_event *hist;
static uint32_t hsize;               /* a power of two; 0: off */
static uint64_t hhead;               /* events ever put in: numbered 1..hhead */

static _Atomic uint64_t st_events, st_dropped, st_rounds;

/* ---- writing (the hooks) ---- */

static void kick(void)
{
	if (atomic_exchange(&cwake, 1) == 0)
		futexwakeup(&cwake, 1);
}

static void sbuf_put(const struct rawev *ev, const char *name)
{
	struct sslot *ring = atomic_load_explicit(&sbuf, memory_order_acquire);
	if (!ring) {
		atomic_fetch_add_explicit(&sdropped, 1, memory_order_relaxed);
		return;
	}
	uint64_t pos = atomic_load_explicit(&shead, memory_order_relaxed);
	struct sslot *s;
	for (;;) {
		s = &ring[pos & (SBUF_SIZE - 1)];
		uint64_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
		int64_t diff = (int64_t)(seq - pos);
		if (diff == 0) {
			if (atomic_compare_exchange_weak_explicit(&shead, &pos, pos + 1, memory_order_relaxed,
								  memory_order_relaxed))
				break;
		} else if (diff < 0) {
			atomic_fetch_add_explicit(&sdropped, 1, memory_order_relaxed);
			return;
		} else {
			pos = atomic_load_explicit(&shead, memory_order_relaxed);
		}
	}
	s->ev = *ev;
	s->name[0] = '\0';
	if (name)
		snprintf(s->name, sizeof s->name, "%s", name);
	atomic_store_explicit(&s->seq, pos + 1, memory_order_release);
	if ((pos & (SBUF_SIZE / 2 - 1)) == 0)
		kick();
}

/* Writes ev into pp's buffer (pp owned by the caller), or the shared one. */
static void put(struct p *pp, const struct rawev *ev)
{
	struct pbuf *b = pp ? atomic_load_explicit(&pbufs[pp->id], memory_order_acquire) : NULL;
	if (unlikely(!b)) {
		if (pp) {
			int32_t want = atomic_load_explicit(&pbuf_want, memory_order_relaxed);
			while (want <= pp->id &&
			       !atomic_compare_exchange_weak(&pbuf_want, &want, pp->id + 1))
				;
		}
		sbuf_put(ev, NULL);
		return;
	}
	uint64_t h = atomic_load_explicit(&b->head, memory_order_relaxed);
	uint64_t t = atomic_load_explicit(&b->tail, memory_order_acquire);
	if (unlikely(h - t >= PBUF_SIZE)) {
		/* the owner is the only writer: no locked instruction */
		atomic_store_explicit(&b->dropped, atomic_load_explicit(&b->dropped, memory_order_relaxed) + 1,
				      memory_order_relaxed);
		return;
	}
	b->ev[h & (PBUF_SIZE - 1)] = *ev;
	atomic_store_explicit(&b->head, h + 1, memory_order_release);
	if (unlikely(h - t == PBUF_SIZE / 2))
		kick();
}

/* The caller's M and P (either may be NULL: a thread outside the scheduler). */
static inline void here(struct m **ret_m, struct p **ret_p)
{
	struct g *me = getg();
	struct m *mp = me ? me->m : NULL;
	*ret_m = mp;
	*ret_p = mp ? mp->p : NULL;
}

static void emit_go(uint8_t kind, struct g *gp, int64_t arg, uintptr_t pc, uint8_t reason)
{
	/* goroutine events are about tasks' goroutines; the runtime's own
	 * (reapers) and one that left its ending task send none */
	struct task *t = gp->task;
	if (!t)
		return;
	struct m *mp;
	struct p *pp;
	here(&mp, &pp);
	struct rawev ev = {
		.time = nanotime(),
		.task = t->id,
		.goid = gp->goid,
		.arg = arg,
		.pc = pc,
		.m = mp ? (int32_t)mp->id : -1,
		.proc = pp ? (int16_t)pp->id : -1,
		.kind = kind,
		.reason = reason,
	};
	put(pp, &ev);
}

void traceGoCreate(struct g *newg)
{
	emit_go(GORT_EV_GO_CREATE, newg, newg->parentgoid, (uintptr_t)newg->fn, 0);
}

void traceGoStart(struct g *gp)
{
	emit_go(GORT_EV_GO_START, gp, 0, (uintptr_t)gp->fn, 0);
}

void traceGoStop(struct g *gp, int reason)
{
	emit_go(GORT_EV_GO_STOP, gp, reason == GORT_STOP_PARKED ? gp->waitreason : 0, 0, (uint8_t)reason);
}

void traceGoUnpark(struct g *gp)
{
	struct g *me = getg();
	int64_t by = me && me != me->m->g0 ? me->goid : 0;
	emit_go(GORT_EV_GO_UNBLOCK, gp, by, 0, 0);
}

void traceGoEnd(struct g *gp)
{
	emit_go(GORT_EV_GO_END, gp, 0, 0, 0);
}

static void emit_proc(uint8_t kind)
{
	struct m *mp;
	struct p *pp;
	here(&mp, &pp);
	if (!pp)
		return;
	struct rawev ev = {
		.time = nanotime(),
		.m = mp ? (int32_t)mp->id : -1,
		.proc = (int16_t)pp->id,
		.kind = kind,
	};
	put(pp, &ev);
}

void traceProcStart(void)
{
	emit_proc(GORT_EV_PROC_START);
}

void traceProcStop(void)
{
	emit_proc(GORT_EV_PROC_STOP);
}

void traceProcRetaken(struct p *pp)
{
	struct rawev ev = {
		.time = nanotime(),
		.m = -1,
		.proc = (int16_t)pp->id,
		.kind = GORT_EV_PROC_STOP,
	};
	put(pp, &ev);
}

void traceTask(uint32_t kind, int64_t task, const char *name, int status, int code)
{
	struct m *mp;
	struct p *pp;
	here(&mp, &pp);
	struct rawev ev = {
		.time = nanotime(),
		.task = task,
		.arg = code,
		.m = mp ? (int32_t)mp->id : -1,
		.proc = pp ? (int16_t)pp->id : -1,
		.kind = (uint8_t)kind,
		.reason = (uint8_t)status,
	};
	sbuf_put(&ev, name);
}

/* ---- the collector ---- */

struct sym {
	int64_t task;
	uintptr_t pc;
	char name[TRACE_ENTRY_MAX];
};
static struct sym symcache[SYMCACHE];

static void symname(int64_t task, uintptr_t pc, char *out)
{
	struct sym *s = &symcache[((pc >> 4) ^ (uint64_t)task * 0x9e3779b97f4a7c15ULL) & (SYMCACHE - 1)];
	if (s->pc != pc || s->task != task) {
		const char *own = task_entry_name((gort_fn)pc);
		s->pc = pc;
		s->task = task;
		if (own)
			snprintf(s->name, sizeof s->name, "%s", own);
		else
			module_pc_format(pc, s->name, sizeof s->name);
	}
	memcpy(out, s->name, TRACE_ENTRY_MAX);
}

/* Events collected and not yet delivered, as runs each in time order: the
 * held-back rest of the last round, then one run per buffer drained. */
static struct trace_event *pend, *pend2;
static size_t npend, cappend;
static size_t runs[TRACE_PROCS + 4];
static int nruns;

static void run_mark(void)
{
	if (nruns == 0 || runs[nruns - 1] != npend)
		runs[nruns++] = npend;
}

static struct trace_event *pend_add(void)
{
	if (npend == cappend) {
		size_t cap = cappend ? cappend * 2 : 4096;
		if (cap > PEND_MAX)
			return NULL;
		struct trace_event *v = realloc(pend, cap * sizeof(*v));
		if (!v)
			return NULL;
		pend = v;
		v = realloc(pend2, cap * sizeof(*v));
		if (!v)
			return NULL;
		pend2 = v;
		cappend = cap;
	}
	return &pend[npend++];
}

static int cmp_event(const void *a, const void *b);

static void convert(const struct rawev *r, const char *name, struct trace_event *e)
{
	*e = (struct trace_event){
		.time = r->time,
		.task = r->task,
		.goid = r->goid,
		.arg = r->arg,
		.proc = r->proc,
		.m = r->m,
		.kind = r->kind,
		.reason = r->reason,
	};
	if (r->kind == GORT_EV_GO_STOP && r->reason == GORT_STOP_PARKED) {
		e->wait = (uint8_t)r->arg;
		e->arg = 0;
	}
	if (name)
		snprintf(e->entry, sizeof e->entry, "%s", name);
	else if (r->pc)
		symname(r->task, r->pc, e->entry);
}

static void add_dropped(int64_t now, int32_t proc, uint64_t n)
{
	atomic_fetch_add_explicit(&st_dropped, n, memory_order_relaxed);
	run_mark();
	struct trace_event *e = pend_add();
	if (e)
		*e = (struct trace_event){ .time = now, .arg = (int64_t)n, .proc = proc, .m = -1,
					   .kind = TRACE_EV_DROPPED };
}

/* Moves everything written so far into pend. */
static void collect(int64_t now)
{
	int32_t want = atomic_load(&pbuf_want);
	for (int32_t i = 0; i < want && i < TRACE_PROCS; i++) {
		if (atomic_load(&pbufs[i]))
			continue;
		struct pbuf *b = calloc(1, sizeof(*b));
		if (b)
			atomic_store_explicit(&pbufs[i], b, memory_order_release);
	}
	for (int i = 0; i < TRACE_PROCS; i++) {
		struct pbuf *b = atomic_load_explicit(&pbufs[i], memory_order_acquire);
		if (!b)
			break;
		uint64_t h = atomic_load_explicit(&b->head, memory_order_acquire);
		uint64_t t = atomic_load_explicit(&b->tail, memory_order_relaxed);
		run_mark();
		for (; t != h; t++) {
			struct trace_event *e = pend_add();
			if (!e)
				break;
			convert(&b->ev[t & (PBUF_SIZE - 1)], NULL, e);
		}
		atomic_store_explicit(&b->tail, t, memory_order_release);
		uint64_t d = atomic_load_explicit(&b->dropped, memory_order_relaxed);
		if (d != b->dropseen) {
			add_dropped(now, i, d - b->dropseen);
			b->dropseen = d;
		}
	}
	/* the shared buffer: its writers read the clock before they take a slot,
	 * so its run is only nearly in order: an insertion sort puts it right */
	run_mark();
	size_t shared0 = npend;
	struct sslot *ring = atomic_load_explicit(&sbuf, memory_order_acquire);
	for (; ring;) {
		struct sslot *s = &ring[stail & (SBUF_SIZE - 1)];
		if (atomic_load_explicit(&s->seq, memory_order_acquire) != stail + 1)
			break;
		struct trace_event *e = pend_add();
		if (!e)
			break;
		convert(&s->ev, s->name[0] ? s->name : NULL, e);
		atomic_store_explicit(&s->seq, stail + SBUF_SIZE, memory_order_release);
		stail++;
	}
	for (size_t i = shared0 + 1; i < npend; i++) {
		struct trace_event e = pend[i];
		size_t j = i;
		for (; j > shared0 && cmp_event(&pend[j - 1], &e) > 0; j--)
			pend[j] = pend[j - 1];
		pend[j] = e;
	}
	uint64_t d = atomic_load_explicit(&sdropped, memory_order_relaxed);
	if (d != sdropseen) {
		add_dropped(now, -1, d - sdropseen);
		sdropseen = d;
	}
}

static int64_t last_sample;
static struct sysmon_stats last_ss;
static int64_t last_goroutines;

/* A scheduler sample every SAMPLE_NS, when anything in it changed: sysmon's
 * latest (Go's schedtrace figures, kept under its own lock, readable while the
 * runtime starts or stops) and the tasks' goroutines (the task table's). */
static void sample(int64_t now)
{
	if (now - last_sample < SAMPLE_NS)
		return;
	last_sample = now;
	struct sysmon_stats ys;
	sysmon_stats_read(&ys);
	int64_t gs = task_goroutines_total();
	if (ys.sample.when == 0 || (ys.sample.when == last_ss.sample.when && gs == last_goroutines))
		return;
	if (gs == last_goroutines && ys.sample.runqueue == last_ss.sample.runqueue &&
	    ys.sample.idleprocs == last_ss.sample.idleprocs && ys.sample.threads == last_ss.sample.threads &&
	    ys.sample.procs == last_ss.sample.procs)
		return;
	last_ss = ys;
	last_goroutines = gs;
	run_mark();
	struct trace_event *e = pend_add();
	if (e)
		*e = (struct trace_event){ .time = now, .arg = gs, .proc = ys.sample.procs, .m = ys.sample.threads,
					   .reason = (uint8_t)(ys.sample.idleprocs > 255 ? 255 : ys.sample.idleprocs),
					   .kind = TRACE_EV_SAMPLE };
	/* the global run queue rides in goid (no goroutine is meant) */
	if (e)
		e->goid = ys.sample.runqueue;
}

/* A stop before the unblock that follows it, an unblock before the start. */
static int rank(uint8_t kind)
{
	switch (kind) {
	case GORT_EV_TASK_START:
		return 0;
	case GORT_EV_GO_CREATE:
		return 1;
	case GORT_EV_GO_STOP:
		return 2;
	case GORT_EV_GO_UNBLOCK:
		return 3;
	case GORT_EV_GO_START:
		return 4;
	case GORT_EV_GO_END:
		return 5;
	case GORT_EV_TASK_EXIT:
		return 7;
	default:
		return 6;
	}
}

static int cmp_event(const void *a, const void *b)
{
	const struct trace_event *x = a, *y = b;
	if (x->time != y->time)
		return x->time < y->time ? -1 : 1;
	return rank(x->kind) - rank(y->kind);
}

static void to_plugins(const struct trace_event *e)
{
	if (e->kind >= GORT_EV_KIND_COUNT)
		return;
	struct gort_event ev = {
		.size = sizeof ev,
		.kind = e->kind,
		.time = e->time,
		.task = e->task,
		.goid = e->goid,
		.parent = e->kind == GORT_EV_GO_CREATE || e->kind == GORT_EV_GO_UNBLOCK ? e->arg : 0,
		.proc = e->proc,
		.m = e->m,
		.reason = e->reason,
		.code = e->kind == GORT_EV_TASK_EXIT ? (int32_t)e->arg : 0,
	};
	bool named = e->kind == GORT_EV_GO_CREATE || e->kind == GORT_EV_TASK_START || e->kind == GORT_EV_TASK_EXIT;
	const char *wait = e->kind == GORT_EV_GO_STOP && e->reason == GORT_STOP_PARKED
				   ? waitreason_string((enum waitreason)e->wait)
				   : NULL;
	plugin_emit(&ev, named && e->entry[0] ? e->entry : NULL, wait);
}

static void deliver(const struct trace_event *v, size_t n)
{
	if (n == 0)
		return;
	atomic_fetch_add_explicit(&st_events, n, memory_order_relaxed);
	pthread_mutex_lock(&hlock);
	if (hsize) {
		for (size_t i = 0; i < n; i++)
			hist[hhead++ & (hsize - 1)] = v[i];
	}
	pthread_mutex_unlock(&hlock);
	pthread_mutex_lock(&sublock);
	for (struct trace_sub *s = subs; s; s = s->next)
		for (size_t i = 0; i < n; i++)
			if (v[i].time >= s->since)
				s->fn(&v[i], s->arg);
	pthread_mutex_unlock(&sublock);
	if (atomic_load_explicit(&plugins_listening, memory_order_relaxed))
		for (size_t i = 0; i < n; i++)
			to_plugins(&v[i]);
}

/* Orders pend by merging its runs (each in order already): a few
 * comparisons per event where a sort would take log n of them. */
static void merge(void)
{
	size_t head[TRACE_PROCS + 4], end[TRACE_PROCS + 4];
	int k = 0;
	for (int i = 0; i < nruns; i++) {
		size_t e = i + 1 < nruns ? runs[i + 1] : npend;
		if (e > runs[i]) {
			head[k] = runs[i];
			end[k] = e;
			k++;
		}
	}
	if (k <= 1)
		return;
	for (size_t o = 0; o < npend; o++) {
		int best = -1;
		for (int i = 0; i < k; i++)
			if (head[i] < end[i] && (best < 0 || cmp_event(&pend[head[i]], &pend[head[best]]) < 0))
				best = i;
		pend2[o] = pend[head[best]++];
	}
	struct trace_event *t = pend;
	pend = pend2;
	pend2 = t;
}

/* One round: collect, order, deliver what is older than the hold-back
 * window (everything when all). */
static void round_once(bool all)
{
	int64_t now = nanotime();
	collect(now);
	if (listened())
		sample(now);
	if (npend == 0) {
		nruns = 0;
		return;
	}
	merge();
	size_t n = npend;
	if (!all) {
		int64_t cutoff = now - trace_holdback_ns;
		while (n > 0 && pend[n - 1].time > cutoff)
			n--;
	}
	deliver(pend, n);
	memmove(pend, pend + n, (npend - n) * sizeof(*pend));
	npend -= n;
	/* what is held back is one run, in order */
	nruns = 0;
	if (npend)
		runs[nruns++] = 0;
}

static void *collector(void *arg)
{
	(void)arg;
	prctl(PR_SET_NAME, "gort-trace");
	uint64_t served = 0;
	for (;;) {
		uint64_t req = atomic_load(&flush_req);
		bool on = listened();
		if (req != served)
			memset(symcache, 0, sizeof symcache); /* a module may go: forget its names after */
		round_once(req != served || !on);
		atomic_fetch_add_explicit(&st_rounds, 1, memory_order_relaxed);
		if (req != served) {
			pthread_mutex_lock(&flushlock);
			flush_done = req;
			pthread_cond_broadcast(&flushcond);
			pthread_mutex_unlock(&flushlock);
			served = req;
		}
		atomic_store(&cwake, 0);
		if (atomic_load(&flush_req) != served)
			continue;
		on = listened();
		futexsleep(&cwake, 0, on || npend ? trace_period_ns : -1);
	}
	return NULL;
}

/* A listener: of every event (all), or of task events only (the scheduler's
 * hooks stay off: only task starts and exits, and samples, are written). */
static int add_listener(bool all)
{
	pthread_mutex_lock(&tlock);
	if (!atomic_load(&sbuf)) {
		struct sslot *ring = calloc(SBUF_SIZE, sizeof(*ring));
		if (!ring) {
			pthread_mutex_unlock(&tlock);
			return -ENOMEM;
		}
		for (uint64_t i = 0; i < SBUF_SIZE; i++)
			atomic_init(&ring[i].seq, i);
		atomic_store_explicit(&sbuf, ring, memory_order_release);
	}
	if (!collector_started) {
		sigset_t all, old;
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		pthread_t th;
		int r = pthread_create(&th, NULL, collector, NULL);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (r != 0) {
			pthread_mutex_unlock(&tlock);
			return -r;
		}
		pthread_detach(th);
		collector_started = true;
	}
	atomic_fetch_add(all ? &trace_on : &trace_tasks_on, 1);
	pthread_mutex_unlock(&tlock);
	kick();
	return 0;
}

static void drop_listener(bool all)
{
	if (atomic_fetch_sub(all ? &trace_on : &trace_tasks_on, 1) <= 0)
		throw("trace_release: no listener");
	kick();
}

int trace_acquire(void)
{
	return add_listener(true);
}

void trace_release(void)
{
	drop_listener(true);
}


int trace_subscribe(void (*fn)(const struct trace_event *ev, void *arg), void *arg, struct trace_sub **ret)
{
	struct trace_sub *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->fn = fn;
	s->arg = arg;
	s->since = nanotime();
	int r = trace_acquire();
	if (r < 0) {
		free(s);
		return r;
	}
	pthread_mutex_lock(&sublock);
	s->next = subs;
	subs = s;
	pthread_mutex_unlock(&sublock);
	*ret = s;
	return 0;
}

void trace_unsubscribe(struct trace_sub *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&sublock);
	for (struct trace_sub **pp = &subs; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	pthread_mutex_unlock(&sublock);
	free(s);
	trace_release();
}

void trace_flush(void)
{
	if (!listened())
		return;
	/* the wait blocks the thread: a goroutine lets its P go meanwhile */
	gort_syscall_enter();
	pthread_mutex_lock(&flushlock);
	uint64_t want = atomic_fetch_add(&flush_req, 1) + 1;
	kick();
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 2;
	while (flush_done < want)
		if (pthread_cond_timedwait(&flushcond, &flushlock, &dl) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&flushlock);
	gort_syscall_exit();
}

/* ---- the history ring ---- */

static bool hall; /* the ring's listener is of every event */

int trace_history_enable(uint32_t n, bool all)
{
	uint32_t size = 1;
	while (size < n && size < (1u << 24))
		size <<= 1;
	struct trace_event *v = calloc(size, sizeof(*v));
	if (!v)
		return -ENOMEM;
	pthread_mutex_lock(&hlock);
	if (hsize) {
		pthread_mutex_unlock(&hlock);
		free(v);
		return -EEXIST;
	}
	hist = v;
	hsize = size;
	hhead = 0;
	hall = all;
	pthread_mutex_unlock(&hlock);
	int r = add_listener(all);
	if (r < 0) {
		pthread_mutex_lock(&hlock);
		hist = NULL;
		hsize = 0;
		pthread_mutex_unlock(&hlock);
		free(v);
	}
	return r;
}

void trace_history_disable(void)
{
	pthread_mutex_lock(&hlock);
	struct trace_event *v = hist;
	bool was = hsize != 0, all = hall;
	hist = NULL;
	hsize = 0;
	pthread_mutex_unlock(&hlock);
	free(v);
	if (was)
		drop_listener(all);
}

int trace_history_read(uint64_t *cursor, struct trace_event *out, int max, uint64_t *ret_missed)
{
	pthread_mutex_lock(&hlock);
	if (!hsize) {
		pthread_mutex_unlock(&hlock);
		return -ENODEV;
	}
	uint64_t oldest = hhead > hsize ? hhead - hsize + 1 : 1;
	uint64_t next = *cursor + 1, missed = 0;
	if (next < oldest) {
		if (*cursor != 0)
			missed = oldest - next;
		next = oldest;
	}
	int n = 0;
	for (; next <= hhead && n < max; next++)
		out[n++] = hist[(next - 1) & (hsize - 1)];
	*cursor = next - 1;
	pthread_mutex_unlock(&hlock);
	if (ret_missed)
		*ret_missed = missed;
	return n;
}

uint64_t trace_history_now(void)
{
	pthread_mutex_lock(&hlock);
	uint64_t h = hsize ? hhead : 0;
	pthread_mutex_unlock(&hlock);
	return h;
}

void trace_stats_read(struct trace_stats *ret)
{
	ret->listeners = atomic_load(&trace_on);
	ret->events = atomic_load(&st_events);
	ret->dropped = atomic_load(&st_dropped);
	ret->rounds = atomic_load(&st_rounds);
	pthread_mutex_lock(&hlock);
	ret->history = hsize;
	pthread_mutex_unlock(&hlock);
}

/* ---- names ---- */

const char *trace_kind_string(unsigned kind)
{
	static const char *const names[] = {
		[GORT_EV_GO_CREATE] = "go-create",   [GORT_EV_GO_START] = "go-start",
		[GORT_EV_GO_STOP] = "go-stop",       [GORT_EV_GO_UNBLOCK] = "go-unblock",
		[GORT_EV_GO_END] = "go-end",         [GORT_EV_TASK_START] = "task-start",
		[GORT_EV_TASK_EXIT] = "task-exit",   [GORT_EV_PROC_START] = "proc-start",
		[GORT_EV_PROC_STOP] = "proc-stop",
	};
	if (kind == TRACE_EV_DROPPED)
		return "dropped";
	if (kind == TRACE_EV_SAMPLE)
		return "sample";
	return kind < ARRAY_SIZE(names) && names[kind] ? names[kind] : "?";
}

const char *trace_stop_string(unsigned reason)
{
	switch (reason) {
	case GORT_STOP_YIELD:
		return "yield";
	case GORT_STOP_PREEMPTED:
		return "preempted";
	case GORT_STOP_PARKED:
		return "parked";
	case GORT_STOP_SYSCALL:
		return "syscall";
	default:
		return "?";
	}
}

/* ---- GORT_TRACE: an in-process consumer for any program (benchmarks) ----
 * GORT_TRACE=count: a subscriber that counts the events it is given (the
 * totals go to stderr at exit); GORT_TRACE=history: the history ring gortd
 * keeps (65536 events). Unset or anything else: nobody listens. */

static _Atomic uint64_t env_count;

static void env_count_fn(const struct trace_event *ev, void *arg)
{
	(void)ev;
	(void)arg;
	atomic_fetch_add_explicit(&env_count, 1, memory_order_relaxed);
}

static void env_report(void)
{
	struct trace_stats st;
	trace_flush();
	trace_stats_read(&st);
	fprintf(stderr, "gort: GORT_TRACE: %llu events delivered (%llu to the counter), %llu dropped\n",
		(unsigned long long)st.events, (unsigned long long)atomic_load(&env_count),
		(unsigned long long)st.dropped);
}

__attribute__((constructor)) static void trace_env_init(void)
{
	const char *v = getenv("GORT_TRACE");
	if (!v)
		return;
	struct trace_sub *s;
	if (strcmp(v, "count") == 0 && trace_subscribe(env_count_fn, NULL, &s) == 0)
		atexit(env_report);
	else if (strcmp(v, "history") == 0 && trace_history_enable(65536, true) == 0)
		atexit(env_report);
}
