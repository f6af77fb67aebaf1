/* runtime/syscall.c: calls that may block the thread: entersyscall/exitsyscall (gort_syscall_enter/exit), whose P sysmon may hand off. */

/*
 * System calls
 * ============
 *
 * A goroutine about to block its thread in the kernel (a call io_uring does not
 * cover, a library that sleeps) brackets the call with gort_syscall_enter and
 * gort_syscall_exit: Go's entersyscall and exitsyscall.
 *
 * entersyscall is the fast path of a few plain stores and one release store:
 * the G becomes G_SYSCALL, the M remembers its P in m->oldp and lets go of it
 * (m->p = NULL, p->m = NULL), and the P becomes P_SYSCALL. The P keeps its run
 * queue and timers; nobody runs them while the call lasts -- unless sysmon, on a
 * round that finds the same syscalltick as the round before, takes the P
 * (retake: CAS P_SYSCALL -> P_IDLE) and hands it to another M (handoffp). That
 * CAS is the only point of contention: whoever wins owns the P.
 *
 * exitsyscall, in order:
 *   1. CAS P_SYSCALL -> P_RUNNING on the old P: still ours (the common case when
 *      the call was short); rewire it to the M and carry on.
 *   2. Any idle P (under sched.lock).
 *   3. Neither: on g0 (mcall), the G goes to the global run queue and the M parks
 *      (stopm) until there is work for it. A G locked to its thread waits on its
 *      own M instead (stoplockedm): whoever dequeues it hands that M a P
 *      (startlockedm), so a locked G keeps its thread through system calls.
 * While the runtime stops, a G that lost its P is dropped, as runnable ones are.
 *
 * Between the two calls the G has no P: it must call nothing of the runtime
 * that needs one (no goroutine creation, no parking); sysmon never preempts it
 * there (the signal handler sees G_SYSCALL and defers). Sections do not nest:
 * gort_syscall_enter inside a section and gort_syscall_exit outside one do
 * nothing.
 */

#include "gort_plugin.h"
#include "sysmon.h"

/* entersyscall: see runtime.h. From a goroutine that holds a P. */
void entersyscall(void)
{
	struct g *gp = getg();
	struct m *mp = gp->m;
	struct p *pp = mp->p;
	/* io requests queued must not wait behind a call that may block */
	netpoll_entersyscall();
	/* only this M writes syscalltick while it owns pp: no locked instruction */
	atomic_store_explicit(&pp->syscalltick,
			      atomic_load_explicit(&pp->syscalltick, memory_order_relaxed) + 1,
			      memory_order_relaxed);
	/* the run slice ends here (system call sections are not CPU time) */
	int64_t now = gclock();
	if (gp->task)
		task_count(gp->task, pp, cpu_ns, now - gp->waitsince);
	gp->waitsince = now;
	if (traceEnabled())
		traceGoStop(gp, GORT_STOP_SYSCALL); /* into pp's buffer: still ours */
	casgstatus(gp, G_RUNNING, G_SYSCALL);
	mp->oldp = pp;
	mp->p = NULL;
	pp->m = NULL;
	/* publishes the stores above to whoever takes pp with a CAS */
	atomic_store_explicit(&pp->status, P_SYSCALL, memory_order_release);
}

/* On g0: the G found no P on its way out of a system call (Go's exitsyscall0). */
static void exitsyscall0(struct g *gp)
{
	struct m *mp = gp->m;
	switched_to_g0(gp);
	casgstatus(gp, G_SYSCALL, G_RUNNABLE);
	dropg();
	lock(&sched.lock);
	if (atomic_load(&sched.stopping)) {
		/* dropped, as runnable Gs are at shutdown; stopm lets the M exit */
		unlock(&sched.lock);
		stopm();
	}
	struct p *pp = pidleget();
	if (!pp)
		globrunqput(gp);
	unlock(&sched.lock);
	if (pp) {
		acquirep(pp);
		execute(gp, false);
	}
	if (mp->lockedg == gp) {
		/* wait on this M for whoever dequeues gp to hand us a P */
		stoplockedm();
		execute(gp, false);
	}
	stopm();
	schedule();
}

/* exitsyscall: see runtime.h. */
void exitsyscall(void)
{
	struct g *gp = getg();
	struct m *mp = gp->m;
	struct p *oldp = mp->oldp;
	mp->oldp = NULL;
	/* a run slice starts (or ends at once in exitsyscall0); fresh: every P
	 * may have been idle meanwhile, sysmon asleep */
	gp->waitsince = gclock_fresh();
	uint32_t want = P_SYSCALL;
	if (likely(oldp && atomic_compare_exchange_strong_explicit(&oldp->status, &want, P_RUNNING,
								   memory_order_acq_rel, memory_order_relaxed))) {
		/* fast path: the old P is still ours */
		mp->p = oldp;
		oldp->m = mp;
		atomic_store_explicit(&oldp->syscalltick,
				      atomic_load_explicit(&oldp->syscalltick, memory_order_relaxed) + 1,
				      memory_order_relaxed);
		casgstatus(gp, G_SYSCALL, G_RUNNING);
		if (traceEnabled())
			traceGoStart(gp);
		return;
	}
	sysmon_count(&sysmon_counters.syscall_exits_slow);
	if (atomic_load(&sched.npidle) > 0 && !atomic_load(&sched.stopping)) {
		lock(&sched.lock);
		struct p *pp = pidleget();
		unlock(&sched.lock);
		if (pp) {
			acquirep(pp);
			casgstatus(gp, G_SYSCALL, G_RUNNING);
			if (traceEnabled())
				traceGoStart(gp);
			return;
		}
	}
	fiber_switch(gp, mp->g0, false);
	mcall(exitsyscall0);
	fiber_switched(gp);
}

/* gort_syscall_enter: the calling goroutine is about to block its thread; its P
 * may go to another M meanwhile. A no-op off a goroutine or inside a section.
 * Yields first if sysmon asked it to (cheaper than losing the P later). */
GORT_EXPORT void gort_syscall_enter(void)
{
	struct g *gp = getg();
	if (!gp || gp == gp->m->g0 || !gp->m->p || readgstatus(gp) != G_RUNNING)
		return;
	preemptcheck();
	entersyscall();
}

/* gort_syscall_exit: the call is over; returns once the goroutine has a P again
 * (maybe after waiting for one). A no-op off a goroutine or outside a section. */
GORT_EXPORT void gort_syscall_exit(void)
{
	struct g *gp = getg();
	if (!gp || gp == gp->m->g0 || readgstatus(gp) != G_SYSCALL)
		return;
	exitsyscall();
	preemptcheck();
}
