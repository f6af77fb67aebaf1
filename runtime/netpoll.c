/* runtime/netpoll.c: io_uring rings, one per P, and where an idle M waits for io completions, timers and new work. */

/*
 * Blocking io without blocking threads
 * ====================================
 *
 * Every gort_* io call (io.c) turns into one io_uring request, and the calling
 * goroutine parks until its completion arrives; the M goes on running other
 * goroutines. When the kernel refuses io_uring (seccomp, an old kernel, a
 * container policy, GORT_NO_URING=1) or lacks an operation, the same calls run
 * on the readiness fallback in netpoll_epoll.c. netpoll_stats_read tells which.
 *
 * Rings. Each P owns one ring (p->io), created at start with the P. A goroutine
 * prepares its request in its P's submission queue from gopark's unlock function,
 * on g0, once the G is off its stack: a completion can never find a G that is not
 * parked yet. Requests are not submitted one by one: the P collects them and hands
 * the batch to the kernel with one io_uring_enter
 *   - when it runs out of goroutines (findrunnable calls netpoll_flush first),
 *   - when 32 are queued (SUBMIT_BATCH),
 *   - when the oldest has waited 20 us (SUBMIT_DELAY_NS; schedule() looks at
 *     the clock every 8th round through netpoll_schedule, so a P busy with
 *     runnable goroutines still starts its io promptly),
 *   - before the P is handed off or goes idle (handoffp, findrunnable), and
 *     before its goroutine blocks the thread in a system call
 *     (netpoll_entersyscall): a queued request must never sit on a P that
 *     nobody runs, nor wait behind a call that may block.
 * Each ring's submission queue has a lock (pio.sqlock), but it is per P and
 * uncontended: only the P's own M takes it, except io_cancel_g and a handoff
 * from sysmon. There is no global lock on the submission path.
 *
 * Completions. A request's user_data is the address of its struct ioreq, on the
 * parked goroutine's stack; 0 marks the requests nobody waits for (cancellations,
 * linked timeouts), whose completions are dropped. Whoever reaps a completion
 * stores its result in the ioreq and readies the goroutine (netpoll_ready). Any
 * thread may reap any ring, one at a time per ring (pio.reaping, a try-lock: a
 * reaper never waits for another). Completions are reaped
 *   - by findrunnable, through netpoll(0), whenever netpoll_pending() sees one in
 *     any ring (two loads per ring, no system call);
 *   - by the one M blocked in netpoll(delay) (below);
 *   - by schedule() on every 61st tick from its own ring (netpoll_schedule), so a
 *     P that never runs dry still sees its completions (and, for the fallback,
 *     epoll's readiness when no M is blocked in netpoll);
 *   - by sysmon when completions have waited 10 ms for any of those
 *     (netpoll_if_stale).
 * The goroutine stays parked until its own completion arrives, whatever happens:
 * its buffers (on its stack or heap) stay valid for the kernel until then.
 *
 * The idle M's wait. Exactly as proc.c's findrunnable expects: at most one M
 * without a P blocks in netpoll(delay), until the earliest timer. It must wake
 * for a completion on any P's ring, for a readiness event of the fallback, and
 * for netpoll_break (an earlier timer, shutdown). All of those are one epoll set
 * (netpoll_epoll.c): each ring's fd is in it (an io_uring fd polls readable while
 * its completion queue is not empty), with an eventfd for netpoll_break and the
 * fds the readiness fallback waits on. epoll is level-triggered for the rings, so
 * a completion that lands between the M's last reap and its epoll_wait still
 * wakes it: no lost wakeup. New runnable goroutines do not need this M: they
 * wake an idle M through wakep, as everywhere else.
 *
 * Why not one shared completion ring: every P would contend on it. Why not an
 * eventfd per ring (io_uring_register_eventfd): the ring fd is pollable already,
 * and an eventfd costs a write per completion batch. Why not a wait ring with
 * IORING_OP_POLL_ADD on each P's ring fd: it is epoll with more steps, and the
 * fallback needs the epoll set anyway. Why not COOP_TASKRUN: it only drops the
 * interrupt (IPI) that makes a submitter running user code take its task work
 * at once; a submitter asleep in stopm or epoll_wait is still woken (checked
 * on 6.18: a completion for a thread asleep in a futex came as fast as
 * without it). Under wrk such IPIs were 0.014 per request (reschedule and
 * call-function interrupts counted by tracepoints), so there is little to
 * save, and with it a goroutine computing without system calls would hold
 * its M's completions until the next timer tick (4 ms at HZ=250).
 *
 * What this costs, measured (HTTP keep-alive under wrk, 2 CPUs): a socket
 * completion is posted by task work on the thread that submitted the request.
 * When that thread sleeps in stopm while another M is the one in epoll_wait,
 * one completion costs two wakeups (the submitter's, then the poller's),
 * where Go's epoll costs one. Spinning the idle M on the rings before it
 * sleeps was tried and lost (it burns the CPU the client needs).
 *
 * A ring per M, tried and measured (commit 2743989, reverted): each M owned
 * its ring, an idle M slept in io_uring_enter(GETEVENTS) on it (so the task
 * work of its own requests woke it directly) and was woken for new work
 * through an eventfd its ring polled; an M woken by its own completions took
 * an idle P itself; rings of Ms in a system call were armed in the epoll set.
 * All tests passed, but under the same wrk load it made more wakeups, not
 * fewer (0.27-0.43 voluntary switches per request against 0.17-0.25 for the
 * rings per P, Go 0.23-0.26) and more CPU per request (4.7-7.3 us against
 * 3.9-5.3 us): the connections' requests spread over both Ms' rings, so a
 * burst from the client woke both Ms where one poller served it, and every
 * completion for a running M cost it an IPI. Waiting for a batch
 * (io_uring_getevents_arg's min_wait) did worse still. DEFER_TASKRUN (with
 * SINGLE_ISSUER) on top would drop the IPIs but was not adopted: its
 * completions are posted only when the owner enters io_uring_enter, so every
 * request of an M blocked in a system call (gort_printf is one) would wait
 * for that call to end, and a cancellation would have to be sent to the owner
 * rather than submitted by the canceller. The rings stay per P.
 *
 * Where an HTTP request's time goes (session 11, wrk -c64 against bench/httpd.c,
 * perf stat and perf record on the server, 6.18, per request): 2.5 system calls
 * (send 1.0, fcntl 1.0, io_uring_enter 0.27, epoll_wait 0.12, futex 0.1; Go's
 * twin makes 3.3: read 2.0, write 1.0, epoll_pwait 0.3), 0.08 wakeups of the
 * server's Ms (most of them the poller woken by its own task work, which is the
 * cheap case; the double wakeup above is ~1 in 5 of those), about 0.01 IPIs.
 * Half the server's CPU is send(2) itself, most of it loopback delivery into
 * wrk's socket; then sleeping and waking (~15%), io_uring (~15%), the fcntl
 * (~3.5%); the runtime's own code a few percent. Measured and kept:
 *   - Reads on sockets waited for readiness before their first try
 *     (IORING_RECVSEND_POLL_FIRST): 99% of the reads a server submits find
 *     nothing yet, and the inline try io_uring makes at submission (a
 *     tcp_recvmsg that fails with EAGAIN) was pure cost: io_uring_enter's
 *     share of the server's CPU went from 7.7% to 5.2% (one perf record
 *     each; throughput differences stayed inside the noise). Replaced in
 *     session 12 by the readiness path (below), and with it the probe for
 *     the flag (a throwaway ring at every start).
 *   - The fcntl(F_GETFL) per read stays. On 6.18 io_uring still waits on
 *     O_NONBLOCK sockets and pipes (READ and RECV, checked), so only the flag
 *     tells EAGAIN from a wait, and no call returns the flag without a system
 *     call; a cache could not see another thread's or process's F_SETFL.
 *     Trying recv(MSG_DONTWAIT) first instead moves the fcntl behind the
 *     EAGAIN, which is what nearly every read of a server gets: three calls
 *     instead of two.
 * Under the other engineers' load (load average 4-13 on the 2 CPUs) gort's
 * requests per second fell to Go's or well below (medians of interleaved 2 s
 * runs: 50,500 against Go's 80,200 at load 11), with about the same server CPU
 * per request (6.1 us against 5.9 us): a matter of waiting for CPUs, not of
 * work. The epoll fallback fell as far (56,500), so io_uring's task work
 * (a completion needs its submitting M on a CPU) is not the whole cause;
 * how the scheduler's Ms sleep and wake under contention is the next
 * suspect, not measured yet. Removing the
 * double wakeup would need the Ms that sleep in stopm to wait where task work
 * wakes them up to user space (epoll_wait returns EINTR, a futex wait is
 * restarted inside the kernel), so that an M woken by its own completions runs
 * them; not done.
 *
 * The double wakeup's size, measured (session 12, perf stat on the server
 * for 3 s under wrk -c64, 70,000-100,000 requests a second at load average
 * 5-17): 0.03-0.07 futex waits per request ended in -ERESTARTSYS, an M
 * asleep in stopm woken by its own requests' task work and put back to sleep
 * (~40% of the server's futex sleeps, ~20% of its context switches); and half
 * of the poller's epoll_waits (~0.04 per request) returned EINTR, the cheap
 * case, where the poller is the submitter. An M that woke to user space and
 * ran its own completions would not spare the poller's wakeup: the CQE posted
 * on the P's ring wakes the epoll waiter on that ring's fd all the same. So
 * the most it can save is those ~0.05 wakeups per request (a few percent of
 * the server's CPU), for an eventfd or epoll set per M that startm's wakeups
 * would have to go through instead of the note's futex; not built.
 * What session 12 changed instead, each cutting wakeups or interrupts
 * without a throughput change that stood out of the noise (interleaved 5 s
 * runs against the unchanged build; medians swung 70,000-100,000 for both
 * with Go's twin at 73,000-103,000 in the same slots): a spinning M going to
 * sleep runs membarrier only when another P is not idle (proc.c's
 * others_running: 0.05-0.11 membarriers per request -> ~0.02), and a kick
 * from deep sleep no longer starts 50 rounds of 20 us (sysmon.c: its timed
 * waits under wrk ~1,200-1,400 a second -> ~250-340).
 * Reads on connected sockets left the ring (session 12): io.c sends them by
 * the readiness path (recv with MSG_DONTWAIT, at EAGAIN a park on this epoll
 * set with EPOLLONESHOT, then the recv again) even with io_uring on. More
 * system calls per read (fcntl, recv, epoll_ctl, recv, against fcntl and a
 * share of io_uring_enter), yet cheaper for both sides: a recv armed on the
 * ring is completed by task work queued on its submitter from the peer's
 * send (io_poll_wake, task_work_add and a wakeup or an interrupt of the
 * submitting M, all on the sender's CPU time), where epoll's callback only
 * adds the fd to the ready list and wakes an epoll waiter if one sleeps.
 * Measured with perf record on wrk: sock_def_readable (the wakeup on its
 * send) 8.9% of wrk's samples against the ring, 4.6% against Go's twin.
 * Interleaved A/B (wrk -c64, 4 s runs, load average ~13, ring recv build
 * against this one): 9 pairs, server CPU 8.43 -> 6.35 us per request
 * (lower in 9 of 9), wrk's 6.82 -> 6.06 us, requests per second 89,500 ->
 * 98,700 (higher in 6 of 9); earlier batches against the ring build and
 * Go's twin, medians of 5 and 6 runs: 90,700 / 102,200 / Go 89,200 and
 * 90,900 / 87,400 / Go 88,300 (server CPU 7.75 -> 5.86 and 7.82 -> 6.79 us
 * per request, Go's 6.69 and 6.88); GORT_NO_URING=1, the same path for
 * the reads, had measured 120,000 against the ring's 99,100 and Go's 96,000.
 * Writes were already plain sends (below); files, pipes and everything else
 * stay on the ring. The server's system calls per request after the three
 * session 12 changes (perf stat, 3 s under wrk, 84,000 requests a second):
 * recv 2.0 (every first try finds nothing: reordering the fcntl after it
 * would save nothing), fcntl 1.0, epoll_ctl 1.0 (EPOLLONESHOT re-armed per
 * wait), send 1.0, epoll_wait 0.32, futex 0.03, membarrier 0.012,
 * io_uring_enter 0, context switches 0.11; before, measured by the lead:
 * fcntl 0.97, io_uring_enter 0.44, futex 0.2, membarrier 0.115, context
 * switches 0.27.
 * What bounds the target (1.5x Go) on this machine: wrk -t1 is one thread,
 * and its CPU per request is higher against gort than against Go's twin
 * (medians of the same interleaved runs: 6.7-7.6 us against 5.4-5.9 us), so
 * with a CPU of its own wrk could drive gort at ~130,000-150,000 requests a
 * second at most, while 1.5x the Go twin's rate in the same slots was
 * 110,000-155,000; and wrk shares the 2 CPUs with the server (and here with
 * the other engineers' work). Reaching it needs, besides the server's own
 * CPU, wrk's cost per request against gort down to Go's: the ring's recv
 * was the measured part of that difference, and with reads on the readiness
 * path wrk's cost is Go's (7.58 against 7.84 us per request, medians of 5
 * interleaved runs: gort 98,800, the unchanged build 83,200, Go 81,500
 * requests a second, 1.21x Go).
 *
 * Kept instead: socket writes go out with one send(MSG_DONTWAIT) and no ring
 * request when the socket takes them whole (io.c): per HTTP request that is
 * one system call instead of an fcntl(F_GETFL) plus a share of an
 * io_uring_enter, and no park; on the loaded 2-CPU machine the throughput
 * change stayed within the noise (gort ~1.17x Go, interleaved runs). And
 * gort_close is close(2): the ring posted a close's completion before the
 * file's last reference went, so a goroutine resumed on another M could still
 * see the peer open.
 *
 * The kernel's side, and three consequences:
 *   - A socket or pipe request that has to wait is armed on the file's wait
 *     queue and completed later through task_work on the thread that submitted
 *     it. If that thread exits meanwhile (an M whose locked goroutine ended), the
 *     kernel cancels the request (-ECANCELED) although nobody asked. Such a
 *     request never ran, so netpoll_uring_do simply submits it again. The same
 *     for -EINTR, which only io_uring's own workers ever see.
 *   - io_uring waits on O_NONBLOCK files instead of failing with EAGAIN; io.c
 *     checks the flag first so that the calls keep POSIX semantics. (preadv2's
 *     RWF_NOWAIT, which sockets and pipes honour, does not help: it fails
 *     whatever the flag says.)
 *   - In-flight requests hold a reference to their file: closing an fd does not
 *     wake them (as with threads blocked in read(2) on Linux).
 *
 * Cancellation (io_cancel_g). A goroutine parked in io publishes its request in
 * gp->iowait. io_cancel_g pins it (bit 0, a CAS), so that it cannot be readied
 * and its stack reused meanwhile, and queues IORING_OP_ASYNC_CANCEL for that
 * user_data on the request's own ring (a cancel only reaches requests of its
 * ring), submitted at once. The canceled request completes with -ECANCELED (or
 * its result, if it won the race); only that completion readies the goroutine,
 * and the cancel's own completion is dropped, in whatever order they come.
 * gort_poll's timeout is the same mechanism inside the kernel: a linked
 * IORING_OP_LINK_TIMEOUT at an absolute CLOCK_MONOTONIC deadline, so no user
 * space timer has to find a request that may just have completed.
 *
 * gort_sleep stays on timer.c's per-P heaps: a timer there is a heap insertion
 * under the P's own lock, and the idle M already sleeps until the earliest one;
 * an io_uring timeout would add a request, a completion and a reap per sleep.
 */

#include <liburing.h>
#include <sched.h>
#include <string.h>
#include <valgrind/memcheck.h>

#include "netpoll.h"

#define RING_SQ_ENTRIES 256
#define RING_CQ_ENTRIES 4096
#define SUBMIT_BATCH 32
#define SUBMIT_DELAY_NS 20000
#define STALE_NS 10000000
/* A request that could not be queued (ring full and the kernel refusing more):
 * not an errno, never returned to callers. */
#define RES_NOSQE (-0x10000)

/* One P's ring. Written by the P's M, by reapers (the completion side) and by
 * io_cancel_g (under sqlock). */
struct pio {
	struct io_uring ring;
	bool ringok;                 /* ring set up (NETPOLL_URING) */
	int32_t idx;
	/* submission side, under sqlock */
	struct mutex sqlock;
	_Atomic uint32_t nqueued;    /* prepared, not yet consumed by the kernel */
	_Atomic int64_t firstqueued; /* nanotime() when the oldest of them was queued */
	_Atomic uint32_t qrounds;    /* schedule() rounds since then (the P's M only) */
	/* completion side */
	_Atomic uint32_t reaping;    /* a reaper is in this ring's completion queue */
	_Atomic int64_t inflight;    /* prepared, completion not yet reaped */
	/* counters (netpoll_stats) */
	_Atomic uint64_t submitted, enters, completions, fallbacks, fdwaits, cancels, resubmits;
	/* netpoll_if_stale's view (sysmon's thread only) */
	unsigned stalehead;
	int64_t stalesince;
} __attribute__((aligned(64)));

static struct {
	int mode;                    /* enum netpoll_mode */
	struct pio **rings;          /* one per P, by P id; netpoll's own copy of allp[i]->io */
	int32_t nrings;
	bool has[IOOP_COUNT];        /* the ring serves this op */
	bool has_linktimeout;
	uint32_t fallback_ops;
	_Atomic bool closing;        /* netpoll_fini: cancellations are final */
	_Atomic uint64_t epollwaits; /* epoll_wait calls (staleness of the fallback) */
	_Atomic uint32_t staleguard; /* one netpoll_if_stale at a time */
	uint64_t stalepolls;
	int64_t stalepollsince;
	_Atomic uint64_t stalereaps, nopfallbacks, nopfdwaits, nopcancels;
} np;

static inline void counter_add(_Atomic uint64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static struct pio *curpio(void)
{
	struct g *gp = getg();
	struct p *pp = gp ? gp->m->p : NULL;
	return pp ? pp->io : NULL;
}

/* ---- completions ---- */

/* Entries waiting in the completion queue, read with atomics only (liburing's
 * io_uring_cq_ready reads khead plainly, which another reaper writes). */
static inline bool cq_nonempty(struct pio *io)
{
	struct io_uring_cq *cq = &io->ring.cq;
	unsigned tail = __atomic_load_n(cq->ktail, __ATOMIC_ACQUIRE);
	unsigned head = __atomic_load_n(cq->khead, __ATOMIC_RELAXED);
	return tail != head ||
	       (__atomic_load_n(io->ring.sq.kflags, __ATOMIC_RELAXED) & IORING_SQ_CQ_OVERFLOW);
}

void netpoll_ready(struct g *gp, struct gqueue *ret)
{
	for (int spins = 0;; spins++) {
		uintptr_t v = atomic_load_explicit(&gp->iowait, memory_order_acquire);
		/* pinned: io_cancel_g is submitting a cancel for it; a few microseconds */
		if (!(v & 1) && atomic_compare_exchange_weak_explicit(&gp->iowait, &v, 0, memory_order_acq_rel,
								      memory_order_relaxed))
			break;
		if (spins > 64)
			sched_yield();
	}
	gqueue_push(ret, gp);
}

static void cqe_handle(struct pio *io, const struct io_uring_cqe *cqe, struct gqueue *ret)
{
	uint64_t ud = cqe->user_data;
	if (ud == 0)
		return; /* a cancellation's or a linked timeout's own completion */
	struct ioreq *req = (struct ioreq *)(uintptr_t)ud;
	(void)atomic_load_explicit(&req->published, memory_order_acquire);
	req->res = cqe->res;
	atomic_fetch_sub_explicit(&io->inflight, 1, memory_order_relaxed);
	netpoll_ready(req->w.g, ret);
}

/* Reaps io's completion queue into ret unless someone else is at it. */
static int ring_reap(struct pio *io, struct gqueue *ret)
{
	if (!io->ringok || !cq_nonempty(io))
		return 0;
	if (atomic_exchange_explicit(&io->reaping, 1, memory_order_acquire))
		return 0;
	int n = 0;
	for (int round = 0; round < 8; round++) {
		unsigned head, cnt = 0;
		struct io_uring_cqe *cqe;
		io_uring_for_each_cqe(&io->ring, head, cqe) {
			cqe_handle(io, cqe, ret);
			cnt++;
		}
		io_uring_cq_advance(&io->ring, cnt);
		n += (int)cnt;
		if (!(__atomic_load_n(io->ring.sq.kflags, __ATOMIC_RELAXED) & IORING_SQ_CQ_OVERFLOW))
			break;
		/* more completions than the queue holds: the kernel kept the rest
		 * (IORING_FEAT_NODROP) and moves them in on the next enter */
		io_uring_get_events(&io->ring);
	}
	atomic_store_explicit(&io->reaping, 0, memory_order_release);
	counter_add(&io->completions, (uint64_t)n);
	return n;
}

static void reap_all(struct gqueue *ret)
{
	for (int32_t i = 0; i < np.nrings; i++)
		ring_reap(np.rings[i], ret);
}

void netpoll_ring_ready(uint32_t idx, struct gqueue *ret)
{
	if (idx < (uint32_t)np.nrings)
		ring_reap(np.rings[idx], ret);
}

/* Makes a queue of Gs readied by netpoll_ready runnable, from any thread. */
static void ready_queue(struct gqueue *q)
{
	if (q->head)
		injectglist(q);
}

/* ---- submissions ---- */

/* Hands io's queued requests to the kernel. Caller holds io->sqlock. Returns 0,
 * or the negative errno of io_uring_enter (-EAGAIN, -EBUSY: the kernel is short
 * of memory or the completion queue overflows; the requests stay queued). */
static int ring_submit_locked(struct pio *io)
{
	if (atomic_load_explicit(&io->nqueued, memory_order_relaxed) == 0)
		return 0;
	/* counted before the enter: a request may complete, and its goroutine
	 * read the stats on another M, before io_uring_submit returns here */
	uint64_t want = io_uring_sq_ready(&io->ring);
	counter_add(&io->submitted, want);
	counter_add(&io->enters, 1);
	int r = io_uring_submit(&io->ring);
	if ((uint64_t)(r < 0 ? 0 : r) < want)
		counter_add(&io->submitted, (uint64_t)(r < 0 ? 0 : r) - want); /* wraps: subtracts */
	atomic_store_explicit(&io->nqueued, io_uring_sq_ready(&io->ring), memory_order_relaxed);
	return r < 0 ? r : 0;
}

static void queued_one(struct pio *io)
{
	if (atomic_fetch_add_explicit(&io->nqueued, 1, memory_order_relaxed) == 0) {
		atomic_store_explicit(&io->firstqueued, nanotime(), memory_order_relaxed);
		atomic_store_explicit(&io->qrounds, 0, memory_order_relaxed);
	}
}

void netpoll_flush(struct p *pp)
{
	struct pio *io = pp->io;
	if (!io || atomic_load_explicit(&io->nqueued, memory_order_relaxed) == 0)
		return;
	lock(&io->sqlock);
	for (int i = 0; ring_submit_locked(io) < 0; i++) {
		/* Out of kernel memory or an overflowing completion queue: make room
		 * and retry; giving up would strand the queued goroutines. */
		unlock(&io->sqlock);
		struct gqueue q = { 0 };
		ring_reap(io, &q);
		ready_queue(&q);
		if (i > 100000)
			throw("netpoll_flush: io_uring_enter keeps failing");
		sched_yield();
		lock(&io->sqlock);
	}
	unlock(&io->sqlock);
}

void netpoll_entersyscall(void)
{
	struct g *gp = getg();
	if (gp && gp->m->p)
		netpoll_flush(gp->m->p);
}

uint64_t netpoll_queued(struct p *pp)
{
	uint64_t n = 0;
	for (int32_t i = 0; i < np.nrings; i++)
		if (!pp || np.rings[i] == pp->io)
			n += atomic_load_explicit(&np.rings[i]->nqueued, memory_order_relaxed);
	return n;
}

void netpoll_schedule(struct p *pp)
{
	struct pio *io = pp->io;
	if (!io)
		return;
	if (atomic_load_explicit(&io->nqueued, memory_order_relaxed) != 0) {
		/* the clock only every 8th round: a queued batch costs one read */
		uint32_t r = atomic_load_explicit(&io->qrounds, memory_order_relaxed) + 1;
		atomic_store_explicit(&io->qrounds, r, memory_order_relaxed);
		if ((r & 7) == 0 &&
		    nanotime() - atomic_load_explicit(&io->firstqueued, memory_order_relaxed) >= SUBMIT_DELAY_NS)
			netpoll_flush(pp);
	}
	if (pp->schedtick % 61 != 0)
		return;
	/* a P that never runs out of goroutines still sees its completions, and
	 * readiness when no M is blocked in netpoll (one epoll_wait per 61 ticks,
	 * only while goroutines wait on it) */
	struct gqueue q = { 0 };
	ring_reap(io, &q);
	if (netpoll_epoll_waiters() > 0 && atomic_load(&sched.lastpoll) != 0) {
		atomic_fetch_add_explicit(&np.epollwaits, 1, memory_order_relaxed);
		netpoll_epoll_wait(0, &q);
	}
	ready_queue(&q);
}

static void prep(struct io_uring_sqe *sqe, struct ioreq *req)
{
	switch (req->op) {
	case IOOP_READ:
	case IOOP_PREAD:
		io_uring_prep_read(sqe, req->fd, req->buf, req->len, req->off);
		break;
	case IOOP_WRITE:
	case IOOP_PWRITE:
		io_uring_prep_write(sqe, req->fd, req->buf, req->len, req->off);
		break;
	case IOOP_RECV:
		io_uring_prep_recv(sqe, req->fd, req->buf, req->len, req->flags);
		break;
	case IOOP_SEND:
		io_uring_prep_send(sqe, req->fd, req->buf, req->len, req->flags);
		break;
	case IOOP_ACCEPT:
		io_uring_prep_accept(sqe, req->fd, req->buf, (socklen_t *)(uintptr_t)req->off, req->flags);
		break;
	case IOOP_CONNECT:
		io_uring_prep_connect(sqe, req->fd, req->buf, (socklen_t)req->off);
		break;
	case IOOP_OPENAT:
		io_uring_prep_openat(sqe, req->fd, req->buf, req->flags, (mode_t)req->off);
		break;
	case IOOP_CLOSE:
		io_uring_prep_close(sqe, req->fd);
		break;
	case IOOP_FSYNC:
		io_uring_prep_fsync(sqe, req->fd, 0);
		break;
	case IOOP_POLL:
		io_uring_prep_poll_add(sqe, req->fd, (unsigned)req->flags);
		break;
	default:
		throw("netpoll: bad io op");
	}
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)req);
}

/* gopark's unlock function for a ring request: on g0, the G parked. */
static bool uring_park(struct g *gp, void *arg)
{
	struct ioreq *req = arg;
	struct pio *io = getg()->m->p->io;
	bool timeout = req->op == IOOP_POLL && req->deadline != 0;
	unsigned need = timeout ? 2 : 1;

	req->ring = io;
	lock(&io->sqlock);
	if (io_uring_sq_space_left(&io->ring) < need) {
		ring_submit_locked(io);
		if (io_uring_sq_space_left(&io->ring) < need) {
			unlock(&io->sqlock);
			req->res = RES_NOSQE;
			return false;
		}
	}
	/* published before the kernel can see the request: from here on a
	 * completion or io_cancel_g may come */
	iowait_set(gp, &req->w);
	struct io_uring_sqe *sqe = io_uring_get_sqe(&io->ring);
	prep(sqe, req);
	if (timeout) {
		/* the poll and its deadline travel together: the kernel cancels the
		 * poll when the timeout fires, and the timeout when the poll fires */
		io_uring_sqe_set_flags(sqe, IOSQE_IO_LINK);
		req->ts.tv_sec = req->deadline / 1000000000;
		req->ts.tv_nsec = req->deadline % 1000000000;
		struct io_uring_sqe *t = io_uring_get_sqe(&io->ring);
		io_uring_prep_link_timeout(t, &req->ts, IORING_TIMEOUT_ABS);
		io_uring_sqe_set_data64(t, 0);
		queued_one(io);
	}
	atomic_fetch_add_explicit(&io->inflight, 1, memory_order_relaxed);
	queued_one(io);
	atomic_store_explicit(&req->published, 1, memory_order_release);
	/* a linked timeout's timespec is read at submission, from this G's stack:
	 * valid, the G stays parked until the poll completes */
	if (atomic_load_explicit(&io->nqueued, memory_order_relaxed) >= SUBMIT_BATCH)
		ring_submit_locked(io);
	unlock(&io->sqlock);
	return true;
}

bool netpoll_uring_has(enum ioop op)
{
	return np.mode == NETPOLL_URING && np.has[op];
}

/* Under valgrind: the kernel wrote these bytes asynchronously, where memcheck
 * cannot see it (it sees system calls, not io_uring completions). */
static void valgrind_kernel_wrote(struct ioreq *req, int32_t res)
{
	switch (req->op) {
	case IOOP_READ:
	case IOOP_PREAD:
	case IOOP_RECV:
		VALGRIND_MAKE_MEM_DEFINED(req->buf, (size_t)res);
		break;
	case IOOP_ACCEPT: {
		socklen_t *len = (socklen_t *)(uintptr_t)req->off;
		if (len) {
			VALGRIND_MAKE_MEM_DEFINED(len, sizeof *len);
			if (req->buf)
				VALGRIND_MAKE_MEM_DEFINED(req->buf, *len);
		}
		break;
	}
	default:
		break;
	}
}

int32_t netpoll_uring_do(struct ioreq *req, enum waitreason why)
{
	struct g *gp = getg();
	req->w.kind = IOWAIT_RING;
	req->w.g = gp;
	req->w.goid = gp->goid;
	req->w.cancelled = false;
	for (int nosqe = 0;;) {
		req->res = 0;
		gopark(uring_park, req, why);
		int32_t res = req->res;
		if (res == RES_NOSQE) {
			/* the ring is full of requests the kernel will not take yet: let
			 * other goroutines run (and findrunnable reap) before retrying */
			if (++nosqe > 1000000)
				return -EAGAIN;
			gosched();
			continue;
		}
		if ((res == -ECANCELED || res == -EINTR) && !req->w.cancelled) {
			if (req->op == IOOP_POLL && req->deadline != 0 && nanotime() >= req->deadline)
				return 0; /* the linked timeout fired */
			if (atomic_load(&np.closing))
				return -ECANCELED;
			/* Nobody asked: the thread that submitted it exited, and the
			 * kernel dropped the request before running it. Again (a
			 * poll keeps its absolute deadline; a connect may have
			 * started its handshake, io.c turns EALREADY into a wait). */
			counter_add(&req->ring->resubmits, 1);
			req->resubmitted = true;
			continue;
		}
		if (req->w.cancelled && (res == -EINTR || res == -ECANCELED))
			return -ECANCELED;
		if (res > 0 && RUNNING_ON_VALGRIND)
			valgrind_kernel_wrote(req, res);
		return res;
	}
}

/* ---- the idle M's wait ---- */

void netpoll(int64_t delay, struct gqueue *ret)
{
	if (np.mode == NETPOLL_OFF)
		return;
	reap_all(ret);
	if (ret->head)
		delay = 0; /* found work: do not sleep */
	if (delay != 0 || netpoll_epoll_waiters() > 0) {
		atomic_fetch_add_explicit(&np.epollwaits, 1, memory_order_relaxed);
		netpoll_epoll_wait(delay, ret);
		/* Woken by task work on this thread (epoll_wait's EINTR): the kernel
		 * just completed requests this M submitted, before epoll saw them. */
		if (delay != 0 && !ret->head)
			reap_all(ret);
	}
}

void netpoll_break(void)
{
	if (np.mode != NETPOLL_OFF)
		netpoll_epoll_break();
}

bool netpoll_pending(void)
{
	for (int32_t i = 0; i < np.nrings; i++)
		if (np.rings[i]->ringok && cq_nonempty(np.rings[i]))
			return true;
	return netpoll_epoll_waiters() > 0 && atomic_load(&sched.lastpoll) != 0;
}

bool netpoll_waiters(void)
{
	for (int32_t i = 0; i < np.nrings; i++)
		if (atomic_load_explicit(&np.rings[i]->inflight, memory_order_relaxed) > 0)
			return true;
	return netpoll_epoll_waiters() > 0;
}

/* Stale means: a ring has had completions waiting, its head unmoved, for 10 ms;
 * or goroutines wait on epoll readiness, nobody called epoll_wait for 10 ms and
 * no M is blocked in it. The hot paths pay nothing for this: sysmon compares
 * what it saw on its previous rounds. */
void netpoll_if_stale(void)
{
	if (np.mode == NETPOLL_OFF || atomic_exchange(&np.staleguard, 1))
		return;
	int64_t now = nanotime();
	bool stale = false;
	for (int32_t i = 0; i < np.nrings; i++) {
		struct pio *io = np.rings[i];
		if (!io->ringok)
			continue;
		unsigned head = __atomic_load_n(io->ring.cq.khead, __ATOMIC_RELAXED);
		if (!cq_nonempty(io) || head != io->stalehead) {
			io->stalehead = head;
			io->stalesince = now;
		} else if (now - io->stalesince >= STALE_NS) {
			stale = true;
			io->stalesince = now;
		}
	}
	uint64_t polls = atomic_load_explicit(&np.epollwaits, memory_order_relaxed);
	if (netpoll_epoll_waiters() == 0 || polls != np.stalepolls || atomic_load(&sched.lastpoll) == 0) {
		np.stalepolls = polls;
		np.stalepollsince = now;
	} else if (now - np.stalepollsince >= STALE_NS) {
		stale = true;
		np.stalepollsince = now;
	}
	if (stale) {
		struct gqueue q = { 0 };
		netpoll(0, &q);
		counter_add(&np.stalereaps, 1);
		ready_queue(&q);
	}
	atomic_store(&np.staleguard, 0);
}

/* ---- cancellation ---- */

/* Queues and submits an ASYNC_CANCEL for req on its ring. */
static int ring_cancel(struct ioreq *req)
{
	struct pio *io = req->ring;
	lock(&io->sqlock);
	if (io_uring_sq_space_left(&io->ring) < 1)
		ring_submit_locked(io);
	struct io_uring_sqe *sqe = io_uring_get_sqe(&io->ring);
	if (!sqe) {
		unlock(&io->sqlock);
		return -EAGAIN;
	}
	io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)req, 0);
	io_uring_sqe_set_data64(sqe, 0);
	queued_one(io);
	/* now: the caller may be any thread, and nobody else may flush soon */
	int r = ring_submit_locked(io);
	counter_add(&io->cancels, 1);
	unlock(&io->sqlock);
	return r;
}

int io_cancel_g(struct g *gp, int64_t goid)
{
	uintptr_t v;
	for (int spins = 0;; spins++) {
		v = atomic_load_explicit(&gp->iowait, memory_order_acquire);
		if (v == 0)
			return -ENOENT;
		if (!(v & 1) && atomic_compare_exchange_weak_explicit(&gp->iowait, &v, v | 1, memory_order_acq_rel,
								      memory_order_relaxed))
			break;
		if (spins > 64)
			sched_yield();
	}
	/* Pinned: gp cannot be readied, so *w (on its stack) stays put. */
	struct iowait *w = (struct iowait *)(v & ~(uintptr_t)1);
	if (w->goid != goid) {
		/* gp was reused by another goroutine since the caller looked */
		atomic_store_explicit(&gp->iowait, v, memory_order_release);
		return -ENOENT;
	}
	uint8_t kind = w->kind;
	struct gqueue q = { 0 };
	int r;
	w->cancelled = true;
	if (kind == IOWAIT_RING) {
		r = ring_cancel((struct ioreq *)w);
	} else {
		r = netpoll_fd_cancel((struct fdwait *)w);
		struct pio *io = curpio();
		counter_add(io ? &io->cancels : &np.nopcancels, 1);
	}
	atomic_store_explicit(&gp->iowait, v, memory_order_release);
	/* w may be gone from here on, unless we took it off its list */
	if (kind == IOWAIT_FD && r == 0) {
		/* the waiter is off its list: nobody else will ready it */
		netpoll_ready(gp, &q);
		ready_queue(&q);
	}
	return r == -ENOENT ? 0 : r;
}

/* ---- setup ---- */

static const uint8_t ring_opcode[IOOP_COUNT] = {
	[IOOP_READ] = IORING_OP_READ,       [IOOP_WRITE] = IORING_OP_WRITE,
	[IOOP_PREAD] = IORING_OP_READ,      [IOOP_PWRITE] = IORING_OP_WRITE,
	[IOOP_RECV] = IORING_OP_RECV,       [IOOP_SEND] = IORING_OP_SEND,
	[IOOP_ACCEPT] = IORING_OP_ACCEPT,   [IOOP_CONNECT] = IORING_OP_CONNECT,
	[IOOP_OPENAT] = IORING_OP_OPENAT,   [IOOP_CLOSE] = IORING_OP_CLOSE,
	[IOOP_FSYNC] = IORING_OP_FSYNC,     [IOOP_POLL] = IORING_OP_POLL_ADD,
};

static int ring_setup(struct pio *io)
{
	struct io_uring_params p = { 0 };
	p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP | IORING_SETUP_SUBMIT_ALL;
	p.cq_entries = RING_CQ_ENTRIES;
	int r = io_uring_queue_init_params(RING_SQ_ENTRIES, &io->ring, &p);
	if (r == -EINVAL) {
		/* before 5.18: no SUBMIT_ALL (a failing request then stops the batch;
		 * the rest stay queued for the next enter) */
		memset(&p, 0, sizeof p);
		p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
		p.cq_entries = RING_CQ_ENTRIES;
		r = io_uring_queue_init_params(RING_SQ_ENTRIES, &io->ring, &p);
	}
	if (r < 0)
		return r;
	/* NODROP: completions beyond the queue are kept, not lost (5.5);
	 * RW_CUR_POS: offset -1 means the file position, as read(2) (5.6). */
	unsigned need = IORING_FEAT_NODROP | IORING_FEAT_RW_CUR_POS;
	if ((p.features & need) != need) {
		io_uring_queue_exit(&io->ring);
		return -EOPNOTSUPP;
	}
	io->ringok = true;
	return 0;
}

static void rings_teardown(void)
{
	for (int32_t i = 0; i < np.nrings; i++) {
		struct pio *io = np.rings[i];
		if (io->ringok)
			io_uring_queue_exit(&io->ring);
		io->ringok = false;
	}
}

/* Sets up every P's ring and probes the kernel's ops; 0, or -errno and no rings. */
static int rings_init(void)
{
	for (int32_t i = 0; i < np.nrings; i++) {
		int r = ring_setup(np.rings[i]);
		if (r < 0) {
			rings_teardown();
			return r;
		}
	}
	struct io_uring_probe *probe = io_uring_get_probe_ring(&np.rings[0]->ring);
	if (!probe) {
		rings_teardown(); /* before 5.6: too old for the ops we need */
		return -EOPNOTSUPP;
	}
	if (!io_uring_opcode_supported(probe, IORING_OP_ASYNC_CANCEL)) {
		io_uring_free_probe(probe);
		rings_teardown();
		return -EOPNOTSUPP;
	}
	np.has_linktimeout = io_uring_opcode_supported(probe, IORING_OP_LINK_TIMEOUT);
	for (int op = 0; op < IOOP_COUNT; op++) {
		np.has[op] = io_uring_opcode_supported(probe, ring_opcode[op]);
		if (op == IOOP_POLL && !np.has_linktimeout)
			np.has[op] = false; /* gort_poll's timeout needs the linked timeout */
		if (!np.has[op])
			np.fallback_ops |= 1u << op;
	}
	io_uring_free_probe(probe);
	for (int32_t i = 0; i < np.nrings; i++) {
		int r = netpoll_epoll_add_ring(np.rings[i]->ring.ring_fd, (uint32_t)i);
		if (r < 0) {
			rings_teardown();
			return r;
		}
	}
	return 0;
}

void netpoll_init(void)
{
	memset(&np, 0, sizeof np);
	int r = netpoll_epoll_init();
	if (r < 0)
		throw("netpoll_init: cannot create the epoll set");
	np.rings = calloc((size_t)gomaxprocs, sizeof(*np.rings));
	if (!np.rings)
		throw("netpoll_init: out of memory");
	for (int32_t i = 0; i < gomaxprocs; i++) {
		struct pio *io = aligned_alloc(64, sizeof(*io));
		if (!io)
			throw("netpoll_init: out of memory");
		memset(io, 0, sizeof(*io));
		io->idx = i;
		np.rings[i] = io;
		allp[i]->io = io;
	}
	np.nrings = gomaxprocs;
	np.mode = NETPOLL_EPOLL;
	const char *env = getenv("GORT_NO_URING");
	if (env && *env && strcmp(env, "0") != 0)
		return;
	if (rings_init() == 0)
		np.mode = NETPOLL_URING;
	else
		memset(np.has, 0, sizeof np.has);
}

void netpoll_fini(void)
{
	if (np.mode == NETPOLL_OFF)
		return;
	atomic_store(&np.closing, true);
	/* Every M is gone; goroutines still parked in io are abandoned. Cancel
	 * their requests and wait (boundedly) for the kernel to let go of their
	 * buffers before the stacks are unmapped. */
	for (int32_t i = 0; i < np.nrings; i++) {
		struct pio *io = np.rings[i];
		if (!io->ringok)
			continue;
		lock(&io->sqlock);
		struct io_uring_sqe *sqe = io_uring_get_sqe(&io->ring);
		if (!sqe) {
			ring_submit_locked(io);
			sqe = io_uring_get_sqe(&io->ring);
		}
		if (sqe) {
			io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
			io_uring_sqe_set_data64(sqe, 0);
			queued_one(io);
		}
		ring_submit_locked(io);
		unlock(&io->sqlock);
		int64_t deadline = nanotime() + 1000000000;
		while (atomic_load(&io->inflight) > 0 && nanotime() < deadline) {
			struct io_uring_cqe *cqe;
			struct __kernel_timespec ts = { 0, 50000000 };
			if (io_uring_wait_cqe_timeout(&io->ring, &cqe, &ts) < 0)
				continue;
			unsigned head, cnt = 0;
			io_uring_for_each_cqe(&io->ring, head, cqe) {
				if (cqe->user_data)
					atomic_fetch_sub(&io->inflight, 1);
				cnt++;
			}
			io_uring_cq_advance(&io->ring, cnt);
		}
	}
	rings_teardown();
	for (int32_t i = 0; i < np.nrings; i++)
		free(np.rings[i]);
	free(np.rings);
	netpoll_epoll_fini();
	memset(&np, 0, sizeof np);
}

/* ---- stats ---- */

void netpoll_count_fallback(void)
{
	struct pio *io = curpio();
	counter_add(io ? &io->fallbacks : &np.nopfallbacks, 1);
}

void netpoll_count_fdwait(void)
{
	struct pio *io = curpio();
	counter_add(io ? &io->fdwaits : &np.nopfdwaits, 1);
}

void netpoll_stats_read(struct netpoll_stats *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->mode = np.mode;
	if (np.mode == NETPOLL_OFF)
		return;
	ret->fallback_ops = np.mode == NETPOLL_URING ? np.fallback_ops : 0;
	for (int32_t i = 0; i < np.nrings; i++) {
		struct pio *io = np.rings[i];
		ret->submitted += atomic_load_explicit(&io->submitted, memory_order_relaxed);
		ret->enters += atomic_load_explicit(&io->enters, memory_order_relaxed);
		ret->completions += atomic_load_explicit(&io->completions, memory_order_relaxed);
		ret->fallbacks += atomic_load_explicit(&io->fallbacks, memory_order_relaxed);
		ret->fdwaits += atomic_load_explicit(&io->fdwaits, memory_order_relaxed);
		ret->cancels += atomic_load_explicit(&io->cancels, memory_order_relaxed);
		ret->resubmits += atomic_load_explicit(&io->resubmits, memory_order_relaxed);
		ret->inflight += atomic_load_explicit(&io->inflight, memory_order_relaxed);
	}
	ret->fallbacks += atomic_load_explicit(&np.nopfallbacks, memory_order_relaxed);
	ret->fdwaits += atomic_load_explicit(&np.nopfdwaits, memory_order_relaxed);
	ret->cancels += atomic_load_explicit(&np.nopcancels, memory_order_relaxed);
	ret->stalereaps = atomic_load_explicit(&np.stalereaps, memory_order_relaxed);
}

const char *netpoll_mode_string(int mode)
{
	switch (mode) {
	case NETPOLL_URING:
		return "io_uring";
	case NETPOLL_EPOLL:
		return "epoll";
	default:
		return "off";
	}
}
