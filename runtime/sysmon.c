/* runtime/sysmon.c: the monitor thread (no P): retake, preemption requests, idle backoff, scavenging, statistics. */

/*
 * sysmon
 * ======
 *
 * As in the seed, sysmon is independent of the scheduler: a thread of its own
 * with no P, not an M (it is in no M list, never runs goroutines, and getg() is
 * NULL on it: the scheduler functions it calls -- lock, handoffp, startm -- all
 * work from a thread without a G, as they must for gort_run's caller). It wakes
 * up, looks at every P, acts, and sleeps again:
 *
 * Cadence (Go's). 20 us between rounds while rounds find work; after 50 rounds in
 * a row that retook nothing the delay doubles each round, up to 10 ms. Sleeping
 * only at that rate would make preemption up to 10 ms late, so each round also
 * computes the earliest moment it must look again -- the end of a running G's
 * time slice, the next signal of an outstanding request -- and sleeps no longer.
 * When every P is idle and the delay has reached 10 ms there is nothing to
 * watch: sysmon sleeps "deeply", until kicked or for a second (scavenging).
 * execute() kicks it (sysmon_note_execute): sysmon stores sysmon_deepsleep = 1
 * and then checks npidle == gomaxprocs once more, the M that starts a G took its
 * P off the idle list (npidle--) before loading the flag, all sequentially
 * consistent: either sysmon sees the busy P and does not sleep, or the M sees the
 * flag and wakes it. A kick starts the short rounds again, but the delay
 * doubles from the first of them (Go's 50 rounds of 20 us are for rounds that
 * retake: after a kick the running G's slice end is in wake_at anyway, and a
 * server whose Ps all go idle between bursts of requests kicked sysmon ~30
 * times a second, each kick then costing 60 wakeups of sysmon, ~1,700 a
 * second; now ~11). Sleeps are on a futex word, so sysmon_stop and kicks end
 * them at once.
 *
 * Each round:
 *  - retake: a P in P_SYSCALL whose syscalltick has not moved since the last
 *    round (its M has been in the same system call for at least one round) is
 *    taken (CAS P_SYSCALL -> P_IDLE) and handed off (handoffp) if anything else
 *    could use it: its run queue is not empty, or no P is idle and no M spins;
 *    after 10 ms it is taken anyway. exitsyscall then finds its P gone.
 *  - preemption: a P in P_RUNNING whose schedtick (published by execute) has not
 *    moved for forcePreemptNS has run one G, or a chain of Gs inheriting its slice
 *    through runnext, for too long: sysmon sets the G's preempt flag (it yields at
 *    its next runtime entry point) and, if it is still there 100 us later,
 *    signals its M (preempt.c decides whether the thread is at a safe point).
 *    Failed signals are retried with a doubling interval (up to 10 ms).
 *  - io completions nobody has reaped for 10 ms (netpoll_if_stale, netpoll.c).
 *  - every 10 ms a sample of the scheduler's figures; every second the stack
 *    pages of pooled dead Gs beyond the pool's watermark go back to the kernel
 *    (gfree_scavenge).
 *
 * sysmon reads the running M and G of a P without synchronisation, as Go's
 * does: they may be stale by the time it acts, which costs at most a spurious
 * flag on a G that just started (it yields once, early) or a signal to a thread
 * that moved on (the handler checks). Ms and Gs are never freed while sysmon
 * runs: runtime_stop stops it after every M has exited. During the shutdown
 * itself sysmon preempts every running G at once, so that goroutines spinning
 * in loops without calls cannot keep gort_run from returning.
 */

#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "sysmon.h"

#define SYSMON_MIN_DELAY   (20 * 1000LL)             /* 20 us */
#define SYSMON_MAX_DELAY   (10 * 1000 * 1000LL)      /* 10 ms */
#define SYSMON_IDLE_ROUNDS 50                        /* short rounds before the delay grows */
#define SYSMON_DEEP_SLEEP  (1000 * 1000 * 1000LL)    /* every P idle: until kicked, or this */
#define SYSCALL_RETAKE_NS  (10 * 1000 * 1000LL)      /* a syscall P is retaken after this anyway */
#define PREEMPT_GRACE_NS   (100 * 1000LL)            /* the flag alone, before the signal */
#define STOPPING_RETRY_NS  (1000 * 1000LL)           /* signal retries while the runtime stops */
#define SCAVENGE_PERIOD    (1000 * 1000 * 1000LL)
#define SCAVENGE_BATCH     256
#define SAMPLE_PERIOD      (10 * 1000 * 1000LL)

/* What sysmon saw of one P (Go's sysmontick), sysmon's own. */
struct sysmontick {
	bool running;       /* P_RUNNING last round */
	bool insyscall;     /* P_SYSCALL last round */
	bool requested;     /* preemption asked for the current slice */
	uint32_t schedtick;
	int64_t schedwhen;  /* when sysmon first saw schedtick */
	uint32_t syscalltick;
	int64_t syscallwhen;
	int64_t signalat;   /* when to (re)send the preemption signal */
	int64_t retry;      /* the current interval between signals */
};

struct sysmon_counters sysmon_counters;
_Atomic uint32_t sysmon_deepsleep;

static _Atomic uint32_t wakeword;  /* futex: 1 = wake up (kick or stop) */
static _Atomic bool stopreq;
static bool running;
static pthread_t thread;
static struct sysmontick *ticks;   /* [gomaxprocs] */
static _Atomic int64_t forcepreempt_ns = 10 * 1000 * 1000;

static pthread_mutex_t samplelock = PTHREAD_MUTEX_INITIALIZER;
static __typeof__(((struct sysmon_stats *)0)->sample) lastsample;

/* ---- the P's running G, peeked at ---- */

/* See the essay: a racy read by design, so not instrumented by TSan. */
__attribute__((no_sanitize_thread)) static struct g *peek_curg(struct p *pp, struct m **ret_m)
{
	struct m *mp = *(struct m *volatile *)&pp->m;
	if (!mp)
		return NULL;
	struct g *gp = *(struct g *volatile *)&mp->curg;
	if (!gp || gp == mp->g0 || readgstatus(gp) != G_RUNNING)
		return NULL;
	*ret_m = mp;
	return gp;
}

/* The slice of pp's current G is over: flag it, then signal (Go's preemptone). */
static void preemptone(struct p *pp, struct sysmontick *pd, int64_t now, bool stopping)
{
	struct m *mp;
	struct g *gp = peek_curg(pp, &mp);
	if (!gp)
		return; /* between goroutines: the next one starts a new slice */
	if (!pd->requested) {
		pd->requested = true;
		atomic_store_explicit(&gp->preempt, true, memory_order_relaxed);
		sysmon_count(&sysmon_counters.preempt_requested);
		pd->retry = stopping ? 0 : PREEMPT_GRACE_NS;
		pd->signalat = now + pd->retry;
		if (!stopping)
			return;
	}
	if (now < pd->signalat)
		return;
	/* Still the same slice: the G ignored the flag (or a chain of Gs inherited
	 * the slice; the flag goes to whichever runs now). */
	atomic_store_explicit(&gp->preempt, true, memory_order_relaxed);
	preemptM(mp);
	int64_t max = stopping ? STOPPING_RETRY_NS : SYSMON_MAX_DELAY;
	pd->retry = pd->retry < PREEMPT_GRACE_NS ? PREEMPT_GRACE_NS : pd->retry * 2;
	if (pd->retry > max)
		pd->retry = max;
	pd->signalat = now + pd->retry;
}

/* retake: one pass over the Ps (Go's retake); returns how many syscall Ps it
 * took and lowers *wake_at to the next moment something is due. */
static int retake(int64_t now, int64_t *wake_at)
{
	int n = 0;
	bool stopping = atomic_load(&sched.stopping);
	int64_t slice = atomic_load_explicit(&forcepreempt_ns, memory_order_relaxed);
	for (int32_t i = 0; i < gomaxprocs; i++) {
		struct p *pp = allp[i];
		struct sysmontick *pd = &ticks[i];
		uint32_t s = atomic_load_explicit(&pp->status, memory_order_acquire);

		if (s == P_RUNNING) {
			uint32_t t = atomic_load_explicit(&pp->sysmontick, memory_order_relaxed);
			if (!pd->running || pd->schedtick != t) {
				pd->running = true;
				pd->schedtick = t;
				pd->schedwhen = now;
				pd->requested = false;
			}
			int64_t due = stopping ? now : pd->schedwhen + slice;
			if (now >= due) {
				preemptone(pp, pd, now, stopping);
				due = pd->requested ? pd->signalat : now + SYSMON_MAX_DELAY;
			}
			if (due < *wake_at)
				*wake_at = due;
		} else {
			pd->running = false;
			pd->requested = false;
		}

		if (s != P_SYSCALL) {
			pd->insyscall = false;
			continue;
		}
		uint32_t t = atomic_load_explicit(&pp->syscalltick, memory_order_relaxed);
		if (!pd->insyscall || pd->syscalltick != t) {
			/* first seen in this call: give it one round */
			pd->insyscall = true;
			pd->syscalltick = t;
			pd->syscallwhen = now;
			continue;
		}
		if (stopping)
			continue;
		/* Nothing else to run and someone could pick work up anyway: leave the
		 * P with its M for now (it will want it back), but not forever. */
		if (runqempty(pp) && atomic_load(&sched.nmspinning) + atomic_load(&sched.npidle) > 0 &&
		    now - pd->syscallwhen < SYSCALL_RETAKE_NS)
			continue;
		uint32_t want = P_SYSCALL;
		if (!atomic_compare_exchange_strong_explicit(&pp->status, &want, P_IDLE, memory_order_acq_rel,
							     memory_order_relaxed))
			continue; /* exitsyscall got it back first */
		if (traceEnabled())
			traceProcRetaken(pp);
		n++;
		pd->insyscall = false;
		sysmon_count(&sysmon_counters.retakes);
		atomic_fetch_add_explicit(&pp->syscalltick, 1, memory_order_relaxed);
		if (handoffp(pp))
			sysmon_count(&sysmon_counters.syscall_handoffs);
	}
	return n;
}

/* Go's schedtrace figures, under sched.lock as schedtrace takes them. */
static void sample(int64_t now)
{
	__typeof__(lastsample) s = { .when = now, .procs = gomaxprocs };
	lock(&sched.lock);
	s.idleprocs = atomic_load(&sched.npidle);
	s.threads = sched.nmlive;
	s.idlethreads = sched.nmidle;
	s.spinning = atomic_load(&sched.nmspinning);
	s.runqueue = atomic_load(&sched.runqsize);
	unlock(&sched.lock);
	for (int32_t i = 0; i < gomaxprocs; i++) {
		struct p *pp = allp[i];
		if (atomic_load_explicit(&pp->status, memory_order_relaxed) == P_SYSCALL)
			s.syscallprocs++;
		uint32_t head = atomic_load_explicit(&pp->runqhead, memory_order_acquire);
		uint32_t tail = atomic_load_explicit(&pp->runqtail, memory_order_acquire);
		uint32_t len = tail - head;
		if (len <= RUNQ_SIZE)
			s.localrunq += (int32_t)len;
		if (atomic_load_explicit(&pp->runnext, memory_order_relaxed))
			s.localrunq++;
	}
	pthread_mutex_lock(&samplelock);
	lastsample = s;
	pthread_mutex_unlock(&samplelock);
}

/* Sleeps until ns elapse or a kick/stop; true if woken. */
static bool sysmon_sleep(int64_t ns)
{
	futexsleep(&wakeword, 0, ns);
	return atomic_exchange(&wakeword, 0) != 0;
}

static void *sysmon(void *arg)
{
	(void)arg;
	int idle = 0;
	int64_t delay = SYSMON_MIN_DELAY;
	int64_t now = nanotime();
	int64_t wake_at = now;
	int64_t next_scavenge = now + SCAVENGE_PERIOD;
	int64_t next_sample = now;

	for (;;) {
		if (idle == 0)
			delay = SYSMON_MIN_DELAY;
		else if (idle > SYSMON_IDLE_ROUNDS)
			delay *= 2;
		if (delay > SYSMON_MAX_DELAY)
			delay = SYSMON_MAX_DELAY;
		int64_t ns = wake_at - now;
		if (ns > delay)
			ns = delay;
		if (ns < SYSMON_MIN_DELAY)
			ns = SYSMON_MIN_DELAY;
		atomic_store_explicit(&sysmon_counters.delay_ns, delay, memory_order_relaxed);
		sysmon_sleep(ns);
		if (atomic_load(&stopreq))
			break;
		now = nanotime();

		bool kicked = false;
		if (delay == SYSMON_MAX_DELAY && !atomic_load(&sched.stopping) &&
		    atomic_load(&sched.npidle) == gomaxprocs) {
			/* Every P idle: sleep until a P starts work (see the essay for
			 * the store-then-check that keeps the kick from being lost). */
			atomic_store(&sysmon_deepsleep, 1);
			if (atomic_load(&sched.npidle) == gomaxprocs && !atomic_load(&sched.stopping)) {
				sysmon_count(&sysmon_counters.deep_sleeps);
				atomic_store_explicit(&sysmon_counters.delay_ns, SYSMON_DEEP_SLEEP, memory_order_relaxed);
				sysmon_sleep(SYSMON_DEEP_SLEEP);
			}
			/* whoever cleared the flag kicked us */
			kicked = atomic_exchange(&sysmon_deepsleep, 0) == 0;
			if (atomic_load(&stopreq))
				break;
			now = nanotime();
		}

		sysmon_count(&sysmon_counters.rounds);
		gclock_fresh(); /* the scheduler's coarse clock (runtime.h's gclock) */
		wake_at = INT64_MAX;
		int n = retake(now, &wake_at);

		/* io completions nobody has reaped for 10 ms (Go's sysmon netpoll) */
		netpoll_if_stale();

		if (now >= next_sample) {
			sample(now);
			next_sample = now + SAMPLE_PERIOD;
		}
		if (now >= next_scavenge) {
			int r = gfree_scavenge(SCAVENGE_BATCH);
			if (r > 0)
				atomic_fetch_add_explicit(&sysmon_counters.scavenged, (uint64_t)r, memory_order_relaxed);
			next_scavenge = now + SCAVENGE_PERIOD;
		}
		if (n > 0) {
			idle = 0;
		} else if (kicked) {
			/* short rounds again, but backing off from the first: the
			 * kicker's P has its preemption deadline in wake_at already */
			idle = SYSMON_IDLE_ROUNDS + 1;
			delay = SYSMON_MIN_DELAY / 2; /* doubled at the loop's top */
		} else {
			idle++;
			sysmon_count(&sysmon_counters.idle_rounds);
		}
	}
	return NULL;
}

static void counters_reset(void)
{
	_Atomic uint64_t *all[] = {
		&sysmon_counters.rounds, &sysmon_counters.idle_rounds, &sysmon_counters.deep_sleeps,
		&sysmon_counters.kicks, &sysmon_counters.retakes, &sysmon_counters.syscall_handoffs,
		&sysmon_counters.syscall_exits_slow, &sysmon_counters.preempt_requested,
		&sysmon_counters.preempt_signals, &sysmon_counters.preempt_cooperative,
		&sysmon_counters.preempt_async, &sysmon_counters.preempt_deferred, &sysmon_counters.scavenged,
	};
	for (size_t i = 0; i < ARRAY_SIZE(all); i++)
		atomic_store(all[i], 0);
	atomic_store(&sysmon_counters.delay_ns, SYSMON_MIN_DELAY);
	pthread_mutex_lock(&samplelock);
	memset(&lastsample, 0, sizeof lastsample);
	pthread_mutex_unlock(&samplelock);
}

int sysmon_start(void)
{
	if (running)
		return -EBUSY;
	ticks = calloc((size_t)gomaxprocs, sizeof(*ticks));
	if (!ticks)
		return -ENOMEM;
	counters_reset();
	atomic_store(&stopreq, false);
	atomic_store(&wakeword, 0);
	atomic_store(&sysmon_deepsleep, 0);
	/* no signal is for sysmon: the host program's go to its own threads, the
	 * preemption signal only to Ms */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int r = pthread_create(&thread, NULL, sysmon, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0) {
		free(ticks);
		ticks = NULL;
		return -r;
	}
	running = true;
	return 0;
}

void sysmon_stop(void)
{
	if (!running)
		return;
	atomic_store(&stopreq, true);
	atomic_store(&wakeword, 1);
	futexwakeup(&wakeword, 1);
	pthread_join(thread, NULL);
	running = false;
	free(ticks);
	ticks = NULL;
	atomic_store(&sysmon_deepsleep, 0);
}

/* sysmon_kick: see sysmon.h. Exactly one kicker wins the exchange. */
void sysmon_kick(void)
{
	if (atomic_exchange(&sysmon_deepsleep, 0) != 1)
		return;
	sysmon_count(&sysmon_counters.kicks);
	atomic_store(&wakeword, 1);
	futexwakeup(&wakeword, 1);
}

int sysmon_stats_read(struct sysmon_stats *ret)
{
	if (!ret)
		return -EINVAL;
	struct sysmon_counters *c = &sysmon_counters;
	*ret = (struct sysmon_stats){
		.rounds = atomic_load_explicit(&c->rounds, memory_order_relaxed),
		.idle_rounds = atomic_load_explicit(&c->idle_rounds, memory_order_relaxed),
		.delay_ns = atomic_load_explicit(&c->delay_ns, memory_order_relaxed),
		.deep_sleeps = atomic_load_explicit(&c->deep_sleeps, memory_order_relaxed),
		.kicks = atomic_load_explicit(&c->kicks, memory_order_relaxed),
		.retakes = atomic_load_explicit(&c->retakes, memory_order_relaxed),
		.syscall_handoffs = atomic_load_explicit(&c->syscall_handoffs, memory_order_relaxed),
		.syscall_exits_slow = atomic_load_explicit(&c->syscall_exits_slow, memory_order_relaxed),
		.preempt_requested = atomic_load_explicit(&c->preempt_requested, memory_order_relaxed),
		.preempt_signals = atomic_load_explicit(&c->preempt_signals, memory_order_relaxed),
		.preempt_cooperative = atomic_load_explicit(&c->preempt_cooperative, memory_order_relaxed),
		.preempt_async = atomic_load_explicit(&c->preempt_async, memory_order_relaxed),
		.preempt_deferred = atomic_load_explicit(&c->preempt_deferred, memory_order_relaxed),
		.scavenged = atomic_load_explicit(&c->scavenged, memory_order_relaxed),
	};
	pthread_mutex_lock(&samplelock);
	ret->sample = lastsample;
	pthread_mutex_unlock(&samplelock);
	return 0;
}

int64_t sysmon_set_forcepreempt(int64_t ns)
{
	if (ns < 50 * 1000 || ns > 10 * 1000 * 1000 * 1000LL)
		return -EINVAL;
	return atomic_exchange(&forcepreempt_ns, ns);
}
