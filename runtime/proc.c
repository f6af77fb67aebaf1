/* runtime/proc.c: the scheduler: G, M, P and g0; newproc, schedule, findrunnable, execute, goexit. */

/*
 * Goroutine scheduler
 * ===================
 *
 * gort runs Go's scheduler for C. The vocabulary is Go's, so a reader of
 * runtime/proc.go finds the same names in the same roles:
 *
 *   G  - a goroutine: a saved context (gobuf), a stack, a status, its task.
 *   M  - an OS thread (a pthread). Every M has a g0: a goroutine whose stack is
 *        the thread's own. The scheduler (schedule, findrunnable, park_m,
 *        goexit0, ...) only ever runs on g0, never on a user goroutine's stack.
 *   P  - the right to run user code: gomaxprocs of them. A P owns a local run
 *        queue, a runnext slot, a cache of dead Gs, its timers and its io ring.
 *        An M must hold a P to run goroutines; an M in a long system call gives
 *        its P away (sysmon's retake), so procs Ps keep running however many Ms
 *        are blocked.
 *   sched - global state: the global run queue, idle Ms, idle Ps, the spinning
 *        count, the global cache of dead Gs.
 *
 * Switching. Two primitives in arch/: gogo(gp) switches to gp's stack and
 * resumes it; mcall(fn) saves the current goroutine's context on its own stack,
 * switches to g0's stack (always from its top: g0 keeps no frames across
 * switches) and calls fn(gp) there. A goroutine's context is the callee-saved
 * registers, the FP control words and the resume pc, pushed on its own stack;
 * gobuf holds only the stack pointer. gogo jumps; mcall only switches stacks and
 * calls, because it is itself runtime code called by the goroutine (the seed).
 *
 * Life of a goroutine, as the seed describes runtime.main and goexit:
 * newproc takes a dead G from the P's free list (gfget) or allocates one, and
 * lays out its stack so that the entry function appears to have been called
 * from goexit: gogo "returns" into goentry, which jumps to fn with the return
 * address goexit+1. schedule -> execute -> gogo runs it. When fn returns it lands
 * on goexit's `call goexit1`; goexit1 does mcall(goexit0), and goexit0, on g0,
 * marks the G dead, clears it, dropg()s it, puts it on the P's free list
 * (gfput) and calls schedule() again. A G that exits while locked to its
 * thread takes the thread with it (mexit) instead of handing it back.
 *
 * Dead Gs keep their stacks (committed pages included) in a per-P list of at
 * most GFREE_MAX; past it, the older half goes to the global list as one
 * batch, and a P whose list is empty takes one batch back: the global list
 * is a list of batches, so a transfer touches one G, not 32 (after a million
 * parked goroutines end, walking their cold Gs one by one under gflock was
 * a sixth of the next million's creation). gfget prefetches the Gs and the
 * stack tops newproc takes next: with that many pooled, each is a cache and
 * TLB miss that would otherwise stall the next locked instruction.
 *
 * Prefetching (bench-park: a million goroutines created, each checking in on
 * a wait group and parking on one channel; with 2 Ps the run is the creating
 * goroutine's loop, and the Gs the other P steals were written by the
 * creator's CPU moments before, each line a ~100 ns transfer on this VM):
 *   - runqget prefetches the G 8 places behind the one it takes and the
 *     stack lines around the saved sp of the one 4 behind; runqsteal asks for
 *     the first 8 stolen Gs' lines at once. Before, gogo's first touch of the
 *     stack was 13% of a 2-P run's samples, one serialized miss chain a G
 *     (prefetching only the next G, tried before, came too late to help).
 *   - Gs come from slabs of 64-byte-aligned slots (galloc): three lines a G,
 *     where calloc's 16-byte alignment spread most over four, sharing two
 *     with their neighbours (alone: no measurable change).
 *   - Prefetches are for writing (PREFETCHW where the CPU has it): the
 *     lines are written next.
 *   - goready asks for the two lines at the readied G's saved sp, which its
 *     switch restores from: in a hand-off it runs next, after the rest of
 *     the readier's send and park. A ring of 1,000 goroutines touches each
 *     stack once a lap, and in this host's slow phases (its working set out
 *     of L2) that line was one of the hop's serial misses: ring 144.5 ->
 *     125.3 ns a hop (11 interleaved rounds, lower in 9; 126 -> 113, 6 of 9,
 *     in another batch); ping-pong (lower in 5 of 9, twice), park and spawn
 *     unchanged. It also asks for the sudog of the partner the readied G
 *     handed off to last (chan.c's lastpeer): what its next hand-off reads
 *     first, on a page of its own; that helps where the ring's pages do not
 *     fit the TLB.
 * Interleaved against the build before (medians): park creation with 2 Ps
 * 451 -> 392 ns (7 rounds, lower in 7), 364 -> 343 in another batch; with
 * 1 P 292 -> 234 (6 of 7), though a batch beside sanitizer runs gave 268 ->
 * 298; spawn 171 -> 125 (9 of 9), ping-pong 205 -> 177 (7 of 9), ring 113
 * -> 87 (11 rounds, in the host's modes). One bench.sh run: park 347 ns,
 * Go's twin 751. With bench/park.c's shared state on a line of its own (it
 * shares one with the creator's return addresses, which every parker's
 * wg_done takes from the creating CPU; the Go twin's WaitGroups are on the
 * heap) the build with the hints below gave 320 against 378 (7 rounds).
 * What stays of newproc's cost is the stack top's TLB miss (a million
 * stacks, a page each): 77-84% of its samples sit on its first prefetch,
 * which waits for the page walk. Tried and dropped: hints left in dead Gs
 * by gfput so that gfget's prefetches need no walk of the free list (333 vs
 * 343 without, within the noise), and the slab alone.
 *
 * Direct switch (gopark). A goroutine that parks while its P's runnext holds
 * a runnable G -- a channel hand-off: a sender readied the receiver, then blocks
 * itself -- does not pass through g0's stack: mswitch saves its context and runs
 * park_direct_m as g0 but on the next G's stack, right below that G's saved
 * context (taken out of runnext, the G is ours, and so is its stack), which does
 * what park_m, schedule and execute would (statuses, the unlock function, run
 * slice accounting, netpoll_schedule) and resumes it. It is taken only when
 * schedule() would pick runnext anyway: not on a 61st tick, not with timers set
 * on the P, no locked thread on either side, the next G's task not ended, and
 * PARK_DIRECT_ROOM free on the next G's stack. The rule on the way: nothing
 * may publish the next G (a run queue, a wakeup) while we run on its stack,
 * or another M resumes it over our frames; so when the unlock function
 * refuses to let the parking G sleep, that G (saved, and we are off its
 * stack) goes to runnext and the next G runs first. Besides
 * schedule's work, it saves the return mispredictions: an mcall/gogo round trip
 * leaves g0's calls (fn, schedule, execute, gogo) on the CPU's return stack
 * buffer, so each return of the resumed goroutine's frames was mispredicted;
 * mswitch's only unbalanced call is the leaving G's own call from gopark, the
 * return address the resumed G pops when it parked the same way. The
 * sanitizers see it as one fiber switch, gp to next (fiber.c says why that
 * is sound with park_direct_m in between). (The same switch for goexit, to the
 * next G of the local queue, was measured and dropped: no gain on spawn.)
 *
 * Finding work (findrunnable): the P's runnext and local queue; the global
 * queue (first, every 61st schedtick, so that a pair of goroutines readying
 * each other through runnext cannot starve the global queue); expired timers;
 * io completions; then steal half of another P's queue (four passes over the Ps
 * in random order, taking runnext and timers only on the last). An M that finds
 * nothing gives its P back and sleeps on its note (stopm). One idle M instead
 * sleeps in netpoll until the earliest timer or an io completion, so timers and
 * io need no polling loop.
 *
 * Spinning Ms and the lost wakeup. An M with a P but no work "spins" looking
 * for work. At most half the busy Ps' worth of Ms spin (2*nmspinning < busy).
 * New work must never be left in a queue while every M sleeps, so:
 *   - whoever makes a G runnable publishes it (runqput) and then calls wakep(),
 *     which starts an M if there is an idle P and nobody spins. The publication
 *     and wakep's loads of npidle/nmspinning are ordered by a sequentially
 *     consistent operation in between (runqput's exchange on runnext, the
 *     sched.lock acquisition, or an explicit fence): see wakep. The one
 *     exception is a plain store into an empty biased runnext (below).
 *   - a spinning M that finds nothing first puts its P on the idle list and
 *     decrements nmspinning (both sequentially consistent), then runs
 *     membarrier (a full barrier on every running thread: it orders a
 *     producer's plain runnext store before its wakep loads, lock_futex.c's
 *     asymmetric fence), and only then looks at every P's run queue once
 *     more; if it sees work it takes an idle P back and spins again. The
 *     membarrier is skipped when every P is idle then (others_running,
 *     its sequentially consistent loads of the statuses after the
 *     decrement): an idle P's runnext is empty, its last owner's stores
 *     came before its release of the P, and whoever takes it later does so
 *     with acquirep's sequentially consistent exchange, after which its
 *     wakep's loads see our decrement. A P in a system call counts as
 *     running (exitsyscall takes it back by an acq_rel CAS). Under wrk
 *     against bench/httpd that took the barrier, an interrupt on the other
 *     CPU, from ~0.05-0.11 to ~0.02 per request.
 * Either the producer sees the consumer's decrement and wakes an M, or the
 * consumer's final check sees the producer's G. Ms sleep on futexes (notes),
 * never in a polling loop.
 *
 * Runnext. A hand-off puts the readied G into runnext and the readier, parking,
 * takes it back a few instructions later: with an exchange and a CAS that
 * was two locked instructions per hop, a fifth of a ring hop. So runnext is
 * biased to its P's owner, as Ms are the common side of lock_futex.c's locks:
 *   - put: only the owner ever stores a G into runnext, thieves only empty
 *     it; an empty runnext therefore stays empty until the owner fills it,
 *     and a plain release store does (a full one still exchanges, kicking
 *     its G to the ring).
 *   - take: the owner raises runnexttaking, loads runnextsteal, and if no
 *     thief holds it empties runnext with plain stores and lowers the flag.
 *   - steal: a thief takes runnextsteal (one thief per P), runs membarrier,
 *     waits until runnexttaking is down, then CASes runnext and lets go.
 *     Wherever the barrier falls in the owner's take, either the owner's
 *     flag is visible to the thief (which waits for the take to finish, then
 *     finds runnext empty or refilled) or the owner's later load sees
 *     runnextsteal (and takes by CAS, which fails if the thief won).
 * Without membarrier (GORT_LOCK_NO_MEMBARRIER=1, old kernels) the owner
 * exchanges and CASes as the thieves do.
 *
 * Hovering. Thieves steal runnext only on their last pass, and from a running
 * P only after a ~3 us wait (as Go: the owner is probably about to run it)
 * during which runnextgen (Gs put so far) did not move: a P that keeps
 * refilling runnext runs a chain of hand-offs, one runnable G at a time,
 * where a steal only splits the pair across Ps (and the same pointer is no
 * proof of a stranded G: a ping-pong pair puts the same two Gs in turn). The
 * thief then waits again ("hovers"), and also when runnext is empty but
 * runnextgen moves (between two hand-offs), or stood still for less than
 * HOVER_NS (the owner's thread descheduled mid-chain). Giving up instead
 * costs the owner at each hand-off after it: its wakep finds an idle P and
 * nobody spinning, and wakes us again (startm: a lock and a futex wake, a
 * few microseconds of the owner's time; we then run the final check's
 * membarrier, an interrupt on the owner's CPU); measured on ping-pong with
 * 2 Ps: ~12,000 of each per second. A hovering M stays counted as spinning,
 * so the owner's wakeps cost two loads; it sleeps between looks, and leaves
 * as soon as anything else wants it (thief_wanted: the global queue, another
 * P's queue, io, an expired timer of any other P, shutdown). Its looks cost
 * the chain nothing measurable: with a 1 ms sleep instead of 3 us (~700
 * wakeups a bench-ring run instead of ~10,000), 16 interleaved runs of each
 * gave ring 0.95x and ping-pong 1.00x the 3 us figures (each lower in 8 of
 * 16). One P instead of two: ring 1.03x (lower in 7 of 16), ping-pong 0.93x
 * (lower in 13 of 16: the second P costs ping-pong ~7%, but not through these
 * looks, and its chain's profile is the same). The runs' spread (ring 55-140
 * ns a hop) is the host's: one P pinned to one CPU runs whole seconds at ~60,
 * ~90 or ~140 ns a hop, while no other thread of the guest uses a CPU and ours
 * never wait for one (/proc/stat, schedstat; this VM has no hardware counters
 * for perf). A longer sleep would only save the hovering M's CPU time (~8% of
 * a CPU on ping-pong, perf's samples), at the price of noticing other work
 * later (up to the sleep: wakep sees it spinning and wakes nobody).
 *
 * Locked threads (gort_lock_os_thread). A locked G runs only on its M. When it
 * parks, its M gives its P away and sleeps (stoplockedm); whoever dequeues the
 * G hands its own P to the locked M and wakes it (startlockedm).
 *
 * Designs rejected:
 *   - One global run queue under a lock (as in many thread pools): the lock is
 *     the bottleneck at ~100 ns/op with two cores; per-P rings make the common
 *     path lock-free, as Go measured in 2012.
 *   - ucontext/swapcontext: saves the signal mask with a system call on every
 *     switch. Our switch saves six registers and two control words.
 *   - A thread per blocking call: I/O goes through io_uring instead, and the
 *     rest through entersyscall/exitsyscall with sysmon's retake.
 *   - One mmap per stack: vm.max_map_count (65530) caps that at ~30,000
 *     goroutines with guard pages. Stacks come from arenas (stack.c).
 */

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <valgrind/memcheck.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

#include "gort_plugin.h"
#include "runtime.h"
#include "sysmon.h"

struct schedt sched;
struct p **allp;
int32_t gomaxprocs;
size_t default_stacksize = 64 * 1024;
__thread struct g *g_tls __attribute__((tls_model("initial-exec"), visibility("hidden")));

static struct mutex allglock;
static struct g *allgs;      /* every G ever allocated, through alllink */
static int64_t allglen;
static _Atomic bool started;

static struct g *findrunnable(bool *ret_inherit);
static void startm(struct p *pp, bool spinning);
_Noreturn static void mexit(struct m *mp);

/* ---- errors ---- */

void throw(const char *msg)
{
	struct g *gp = getg();
	char buf[256];
	int n = snprintf(buf, sizeof buf, "fatal error: %s\n", msg);
	if (n > 0)
		(void)!write(2, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
	if (gp) {
		struct m *mp = gp->m;
		n = snprintf(buf, sizeof buf, "m%lld: curg=%lld p=%d locks=%d spinning=%d\n",
			     (long long)mp->id, mp->curg ? (long long)mp->curg->goid : -1LL,
			     mp->p ? mp->p->id : -1, mp->locks, mp->spinning);
		if (n > 0)
			(void)!write(2, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
	}
	abort();
}

void casgstatus(struct g *gp, uint32_t from, uint32_t to)
{
	/* Every transition has a single owner by protocol (the M running the G,
	 * or whoever dequeued its waiter under a lock), so a check and a release
	 * store suffice: no locked instruction on the switch path. A check that
	 * fails is a runtime bug. */
	uint32_t old = atomic_load_explicit(&gp->atomicstatus, memory_order_relaxed);
	if (unlikely(old != from)) {
		char buf[128];
		snprintf(buf, sizeof buf, "casgstatus: goroutine %lld: %u -> %u, but status is %u",
			 (long long)gp->goid, from, to, old);
		throw(buf);
	}
	atomic_store_explicit(&gp->atomicstatus, to, memory_order_release);
}

__attribute__((noipa)) void set_errno(int e)
{
	errno = e;
}

int64_t nanotime(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

uint32_t fastrand(void)
{
	/* wyrand-style xorshift on the M, as Go's fastrand */
	struct g *gp = getg();
	static _Atomic uint32_t seed = 0x9e3779b9;
	if (!gp)
		return atomic_fetch_add(&seed, 0x9e3779b9) * 0x85ebca6bU;
	uint32_t *s = gp->m->fastrand;
	uint32_t s1 = s[0], s0 = s[1];
	s1 ^= s1 << 17;
	s1 = s1 ^ s0 ^ s1 >> 7 ^ s0 >> 16;
	s[0] = s0;
	s[1] = s1;
	return s0 + s1;
}

const char *waitreason_string(enum waitreason r)
{
	static const char *const names[WAIT_COUNT] = {
		[WAIT_NONE] = "",
		[WAIT_CHAN_RECV] = "chan receive",
		[WAIT_CHAN_SEND] = "chan send",
		[WAIT_CHAN_RECV_NIL] = "chan receive (nil chan)",
		[WAIT_CHAN_SEND_NIL] = "chan send (nil chan)",
		[WAIT_SELECT] = "select",
		[WAIT_SELECT_NO_CASES] = "select (no cases)",
		[WAIT_SLEEP] = "sleep",
		[WAIT_MUTEX] = "mutex",
		[WAIT_WAITGROUP] = "waitgroup",
		[WAIT_ONCE] = "once",
		[WAIT_IO_READ] = "io read",
		[WAIT_IO_WRITE] = "io write",
		[WAIT_IO] = "io",
		[WAIT_POLL] = "poll",
		[WAIT_PANIC] = "panic wait",
		[WAIT_TASK_EXIT] = "task exit",
		[WAIT_LOCKED_THREAD] = "locked thread",
	};
	return (unsigned)r < WAIT_COUNT && names[r] ? names[r] : "unknown";
}

/* ---- the G free lists ---- */

static void stack_overflow(struct g *gp)
{
	char buf[192];
	int n = snprintf(buf, sizeof buf,
			 "fatal error: stack overflow\n\ngoroutine %lld: stack [%#lx, %#lx), sp=%#lx\n",
			 (long long)gp->goid, (unsigned long)gp->stacklo, (unsigned long)gp->stackhi,
			 (unsigned long)gp->sched.sp);
	(void)!write(2, buf, n > 0 ? (size_t)n : 0);
	abort();
}

/* Every switch away from a user G passes here, on g0. */
inline void switched_to_g0(struct g *gp)
{
	fiber_switched(gp->m->g0);
	/* errno is the thread's: it travels with the goroutine (execute puts it
	 * back on whichever thread runs the G next) */
	gp->goerrno = errno;
	/* the run slice ends: its length to the task's CPU time; ps's "since" of
	 * the status it goes to (waiting, runnable) starts now */
	int64_t now = gclock();
	if (gp->task) {
		task_count(gp->task, gp->m->p, cpu_ns, now - gp->waitsince);
		task_count(gp->task, gp->m->p, switches, 1);
	}
	gp->waitsince = now;
	gp->m->clock = now;
	if (unlikely(!stack_canary_ok(gp)))
		stack_overflow(gp);
}

/* Gs are carved from slabs of GSLAB_N cache-line-aligned slots (never freed
 * before runtime_stop): a G is then exactly three lines, where calloc's 16-byte
 * alignment spread most over four, two of them shared with its neighbours. */
#define GSLOT (((sizeof(struct g) + 63) / 64) * 64)
#define GSLAB_N 255
struct gslab { _Alignas(64) struct gslab *next; };
static struct gslab *gslabs;  /* under allglock */
static char *gslabcur;
static int32_t gslabfree;

static struct g *galloc(void)
{
	lock(&allglock);
	if (gslabfree == 0) {
		struct gslab *s = aligned_alloc(64, 64 + GSLOT * GSLAB_N);
		if (!s) {
			unlock(&allglock);
			return NULL;
		}
		s->next = gslabs;
		gslabs = s;
		gslabcur = (char *)s + 64;
		gslabfree = GSLAB_N;
		memset(gslabcur, 0, GSLOT * GSLAB_N);
	}
	struct g *gp = (struct g *)gslabcur;
	gslabcur += GSLOT;
	gslabfree--;
	unlock(&allglock);
	return gp;
}

static struct g *malg(size_t stacksize)
{
	struct stackalloc st = { 0 };
	if (stacksize && stackalloc(stacksize, &st) < 0)
		return NULL;
	struct g *gp = galloc();
	if (!gp) {
		if (stacksize)
			stackfree(st.lo, st.hi, st.guarded);
		return NULL;
	}
	if (stacksize) {
		gp->stacklo = st.lo;
		gp->stackhi = st.hi;
		gp->stackguarded = st.guarded;
	}
	fiber_create(gp);
	return gp;
}

static void allgadd(struct g *gp)
{
	lock(&allglock);
	gp->alllink = allgs;
	allgs = gp;
	allglen++;
	unlock(&allglock);
}

/* Pooled dead Gs past this many in the global list give their stack pages back
 * (gfree_scavenge, from sysmon: never on the goroutine creation path). */
#define GFREE_WATERMARK 4096

/* gfget's prefetching: the stack of the G this many places ahead of the one
 * it returns, and the G one place further; and how many cache lines at the
 * top of that stack (a new goroutine's first frames: newproc's, then its own
 * down to its first park, ~240 bytes for a channel receive) */
#define GFREE_PREFETCH_AHEAD 3
#define GFREE_PREFETCH_STACK_LINES 6

/* The global free list, under gflock: pushes a batch of GFREE_BATCH dead Gs
 * (head, chained through schedlink, NULL-terminated). Only head is written:
 * moving a batch costs one G's cache lines, not a walk over 32 cold ones. */
static void gfree_pushbatch(struct g *head)
{
	struct g *first = sched.gfree;
	if (first && sched.gfreen < GFREE_BATCH) {
		/* the partly taken batch stays first (only the first may be partial) */
		head->gfreebatch = first->gfreebatch;
		first->gfreebatch = head;
	} else {
		head->gfreebatch = first;
		__atomic_store_n(&sched.gfree, head, __ATOMIC_RELAXED); /* peeked without gflock */
		sched.gfreen = GFREE_BATCH;
	}
	sched.ngfree += GFREE_BATCH;
}

/* Under gflock: gp alone back at the head of the global free list, into the
 * first batch when that one is partial (only the first may be). */
static void gfree_pushone(struct g *gp)
{
	struct g *first = sched.gfree;
	if (first && sched.gfreen < GFREE_BATCH) {
		gp->schedlink = first;
		gp->gfreebatch = first->gfreebatch;
		first->gfreebatch = NULL;
		sched.gfreen++;
	} else {
		gp->schedlink = NULL;
		gp->gfreebatch = first;
		sched.gfreen = 1;
	}
	__atomic_store_n(&sched.gfree, gp, __ATOMIC_RELAXED); /* peeked without gflock */
	sched.ngfree++;
}

/* Under gflock: takes the first batch of the global free list; its head (NULL
 * if the list is empty), its size in *ret_n. */
static struct g *gfree_popbatch(int32_t *ret_n)
{
	struct g *head = sched.gfree;
	if (!head)
		return NULL;
	*ret_n = sched.gfreen;
	__atomic_store_n(&sched.gfree, head->gfreebatch, __ATOMIC_RELAXED); /* peeked without gflock */
	sched.gfreen = GFREE_BATCH;
	sched.ngfree -= *ret_n;
	head->gfreebatch = NULL;
	return head;
}

static inline uintptr_t stackcolor(uintptr_t stackhi);

#if defined(__x86_64__)
/* whether the CPU has PREFETCHW (CPUID 0x80000001 ECX bit 8, Linux's
 * 3dnowprefetch); set at runtime_start */
static bool have_prefetchw;
#endif

/* A prefetch for writing: the line comes exclusive, in one transfer where a
 * read prefetch then a store take two from another core's cache (GCC emits
 * PREFETCHW for __builtin_prefetch(p, 1) only with -mprfchw). */
static inline __attribute__((always_inline)) void prefetchw(const void *p)
{
#if defined(__x86_64__)
	if (likely(have_prefetchw)) {
		__asm__ volatile("prefetchw %0" : : "m"(*(const char *)p));
		return;
	}
#endif
	__builtin_prefetch(p, 1);
}

/* prefetchw_g: every line of gp, a slab slot (galloc: line-aligned, so its
 * lines start at gp) */
static inline __attribute__((always_inline)) void prefetchw_g(const struct g *gp)
{
	for (size_t off = 0; off < sizeof(struct g); off += 64)
		prefetchw((const char *)gp + off);
}

/* Prefetches, from next (the G the next newproc takes), the stack of the G
 * GFREE_PREFETCH_AHEAD - 1 places ahead and the G one place further (see
 * gfget): each call reads only Gs that earlier calls prefetched. Always
 * inlined: out of line, GCC finds it pure (a prefetch is no side effect)
 * and drops the call. */
static inline __attribute__((always_inline)) void gfree_prefetch(struct g *next)
{
	struct g *s = next;
	for (int i = 2; i < GFREE_PREFETCH_AHEAD && s->schedlink; i++)
		s = s->schedlink;
	struct g *after = s->schedlink;
	if (after)
		prefetchw_g(after);
	uintptr_t top = s->stackhi - stackcolor(s->stackhi);
	for (int i = 1; i <= GFREE_PREFETCH_STACK_LINES; i++)
		prefetchw((void *)(top - (uintptr_t)i * 64));
}

static void gfput(struct p *pp, struct g *gp)
{
	if (readgstatus(gp) != G_DEAD)
		throw("gfput: bad status (not G_DEAD)");
	gp->schedlink = pp->gfree;
	pp->gfree = gp;
	pp->gfreecnt++;
	if (pp->gfreecnt >= GFREE_MAX) {
		/* Keep the most recently freed (likely still in this core's
		 * cache) and spill the older ones as one batch. */
		struct g *last = pp->gfree;
		for (int32_t i = 1; i < GFREE_MAX - GFREE_BATCH; i++)
			last = last->schedlink;
		struct g *batch = last->schedlink;
		last->schedlink = NULL;
		pp->gfreecnt = GFREE_MAX - GFREE_BATCH;
		lock(&sched.gflock);
		gfree_pushbatch(batch);
		unlock(&sched.gflock);
	}
}

static struct g *gfget(struct p *pp)
{
	/* a racy peek: the list is only taken under gflock */
	if (!pp->gfree && __atomic_load_n(&sched.gfree, __ATOMIC_RELAXED)) {
		int32_t n = 0;
		lock(&sched.gflock);
		struct g *batch = gfree_popbatch(&n);
		unlock(&sched.gflock);
		if (batch) {
			pp->gfree = batch;
			pp->gfreecnt = n;
		}
	}
	struct g *gp = pp->gfree;
	if (gp) {
		struct g *next = gp->schedlink;
		pp->gfree = next;
		pp->gfreecnt--;
		gp->stackreleased = false;
		/* With many pooled Gs (a million parked goroutines gone), the Gs
		 * and their stacks are far out of cache and out of the TLB, and
		 * every store newproc and the new goroutine make to them stalls
		 * at the next locked instruction: load the coming ones while
		 * this one runs (measured on park creation: ~2x). */
		if (next)
			gfree_prefetch(next);
	}
	return gp;
}

/* gfree_scavenge: gives the kernel back the stack pages of dead Gs pooled in the
 * global list beyond the watermark, at most max of them per call (sysmon calls
 * it periodically). Returns how many stacks it released. */
int gfree_scavenge(int max)
{
	int released = 0;
	lock(&sched.gflock);
	int32_t i = 0;
	for (struct g *b = sched.gfree; b && released < max; b = b->gfreebatch) {
		for (struct g *gp = b; gp && released < max; gp = gp->schedlink, i++) {
			if (i < GFREE_WATERMARK || gp->stackreleased)
				continue;
			stack_release_pages(gp->stacklo, gp->stackhi);
			gp->stackreleased = true;
			released++;
		}
	}
	unlock(&sched.gflock);
	return released;
}

/* A dead G from pp's cache (or the global one without a P) whose stack fits
 * size, or a new one; NULL when out of memory. */
static struct g *gfget_sized(struct p *pp, size_t size)
{
	struct g *gp = NULL;
	if (pp) {
		gp = gfget(pp);
	} else {
		/* no P: a thread outside the scheduler (task_start, task_kill); rare,
		 * and the list may only be read under its lock */
		int32_t n = 0;
		lock(&sched.gflock);
		gp = gfree_popbatch(&n);
		if (gp && n > 1) {
			/* the rest of the batch goes back first */
			struct g *rest = gp->schedlink;
			rest->gfreebatch = sched.gfree;
			__atomic_store_n(&sched.gfree, rest, __ATOMIC_RELAXED); /* peeked without gflock */
			sched.gfreen = n - 1;
			sched.ngfree += n - 1;
		}
		unlock(&sched.gflock);
	}
	if (gp && gstacksize(gp) != size) {
		struct stackalloc st;
		if (stackalloc(size, &st) < 0) {
			/* it keeps its stack and goes back where it came from */
			if (pp) {
				gfput(pp, gp);
			} else {
				lock(&sched.gflock);
				gfree_pushone(gp);
				unlock(&sched.gflock);
			}
			return NULL;
		}
		stackfree(gp->stacklo, gp->stackhi, gp->stackguarded);
		gp->stacklo = st.lo;
		gp->stackhi = st.hi;
		gp->stackguarded = st.guarded;
	}
	if (!gp) {
		gp = malg(size);
		if (!gp)
			return NULL;
		casgstatus(gp, G_IDLE, G_DEAD);
		allgadd(gp);
	}
	return gp;
}

/* ---- run queues ---- */

/* runqempty: whether pp has no runnable G (ring and runnext). Any thread. */
inline bool runqempty(struct p *pp)
{
	/* runnext first: a G moving from runnext to the ring is never invisible */
	for (;;) {
		uint32_t head = atomic_load_explicit(&pp->runqhead, memory_order_acquire);
		uint32_t tail = atomic_load_explicit(&pp->runqtail, memory_order_acquire);
		struct g *next = atomic_load_explicit(&pp->runnext, memory_order_acquire);
		if (tail == atomic_load_explicit(&pp->runqtail, memory_order_acquire))
			return head == tail && next == NULL;
	}
}

static void globrunqputbatch(struct gqueue *q)
{
	/* caller holds sched.lock */
	if (!q->head)
		return;
	if (sched.runq.tail)
		sched.runq.tail->schedlink = q->head;
	else
		sched.runq.head = q->head;
	sched.runq.tail = q->tail;
	sched.runq.n += q->n;
	atomic_fetch_add(&sched.runqsize, q->n);
	*q = (struct gqueue){ 0 };
}

void globrunqput(struct g *gp)
{
	/* caller holds sched.lock */
	gqueue_push(&sched.runq, gp);
	atomic_fetch_add(&sched.runqsize, 1);
}

/* Moves half of pp's ring plus gp to the global queue: the ring is full. */
static bool runqputslow(struct p *pp, struct g *gp, uint32_t head, uint32_t tail)
{
	struct g *batch[RUNQ_SIZE / 2 + 1];
	uint32_t n = (tail - head) / 2;
	if (n != RUNQ_SIZE / 2)
		throw("runqputslow: queue is not full");
	for (uint32_t i = 0; i < n; i++)
		batch[i] = atomic_load_explicit(&pp->runq[(head + i) % RUNQ_SIZE], memory_order_relaxed);
	if (!atomic_compare_exchange_strong_explicit(&pp->runqhead, &head, head + n, memory_order_release,
						     memory_order_relaxed))
		return false;
	batch[n] = gp;
	struct gqueue q = { 0 };
	for (uint32_t i = 0; i <= n; i++)
		gqueue_push(&q, batch[i]);
	lock(&sched.lock);
	globrunqputbatch(&q);
	unlock(&sched.lock);
	return true;
}

/* runnext biased to its owner (the essay's "Runnext"): set at runtime_start
 * when membarrier is there, else the owner exchanges like the thieves. */
static bool runnext_biased;

/* runqput: queue gp on pp, owned by the caller; next: into runnext, kicking the
 * old runnext to the tail. Into an empty runnext with a plain store when it is
 * biased (thieves only ever empty it, so it stays empty until we fill it);
 * wakep's ordering after that store is the spinning M's membarrier (essay);
 * otherwise the exchange is sequentially consistent, which orders it. */
static void runqput(struct p *pp, struct g *gp, bool next)
{
	if (next) {
		atomic_store_explicit(&pp->runnextgen,
				      atomic_load_explicit(&pp->runnextgen, memory_order_relaxed) + 1,
				      memory_order_relaxed);
		if (likely(runnext_biased) && !atomic_load_explicit(&pp->runnext, memory_order_relaxed)) {
			atomic_store_explicit(&pp->runnext, gp, memory_order_release);
			/* the caller's wakep loads stay after the store in the code */
			atomic_signal_fence(memory_order_seq_cst);
			return;
		}
		gp = atomic_exchange_explicit(&pp->runnext, gp, memory_order_seq_cst);
		if (!gp)
			return;
	}
	for (;;) {
		uint32_t head = atomic_load_explicit(&pp->runqhead, memory_order_acquire);
		uint32_t tail = atomic_load_explicit(&pp->runqtail, memory_order_relaxed);
		if (tail - head < RUNQ_SIZE) {
			atomic_store_explicit(&pp->runq[tail % RUNQ_SIZE], gp, memory_order_relaxed);
			atomic_store_explicit(&pp->runqtail, tail + 1, memory_order_release);
			return;
		}
		if (runqputslow(pp, gp, head, tail))
			return;
	}
}

/* runnext_take: takes pp's runnext, pp owned by the caller; NULL if empty.
 * Biased: with plain stores, bracketed by runnexttaking, unless a thief holds
 * runnextsteal (the essay's "Runnext" says why no thief takes it meanwhile);
 * else an exchange, which fails only if a thief emptied it first. */
static inline struct g *runnext_take(struct p *pp)
{
	struct g *next = atomic_load_explicit(&pp->runnext, memory_order_relaxed);
	if (!next)
		return NULL;
	if (likely(runnext_biased)) {
		atomic_store_explicit(&pp->runnexttaking, 1, memory_order_relaxed);
		/* store, then load: ordered for us by a thief's membarrier */
		atomic_signal_fence(memory_order_seq_cst);
		if (likely(!atomic_load_explicit(&pp->runnextsteal, memory_order_acquire))) {
			/* again: a thief may have emptied it before we raised the flag */
			next = atomic_load_explicit(&pp->runnext, memory_order_relaxed);
			atomic_store_explicit(&pp->runnext, NULL, memory_order_relaxed);
			atomic_store_explicit(&pp->runnexttaking, 0, memory_order_release);
			return next;
		}
		atomic_store_explicit(&pp->runnexttaking, 0, memory_order_release);
	}
	if (!atomic_compare_exchange_strong_explicit(&pp->runnext, &next, NULL, memory_order_acq_rel,
						     memory_order_relaxed))
		return NULL; /* only the owner fills it: a thief emptied it */
	return next;
}

/* runqget's look-ahead (the essay's "Prefetching"): the G RUNQ_PF_G places
 * behind the one taken, and the stack lines around the saved sp of the one
 * RUNQ_PF_S places behind (its line prefetched by an earlier call). Hints
 * only: a G that a thief took meanwhile costs a useless prefetch at worst. No
 * prefetching under TSan: the sp is read without synchronisation. */
#define RUNQ_PF_G 8
#define RUNQ_PF_S 4

static inline __attribute__((always_inline)) void runq_prefetch(struct p *pp, uint32_t head, uint32_t tail)
{
#if !defined(__SANITIZE_THREAD__)
	if (tail - head > RUNQ_PF_G) {
		struct g *g2 = atomic_load_explicit(&pp->runq[(head + RUNQ_PF_G) % RUNQ_SIZE], memory_order_relaxed);
		prefetchw_g(g2);
	}
	if (tail - head > RUNQ_PF_S) {
		struct g *g1 = atomic_load_explicit(&pp->runq[(head + RUNQ_PF_S) % RUNQ_SIZE], memory_order_relaxed);
		uintptr_t sp = __atomic_load_n(&g1->sched.sp, __ATOMIC_RELAXED) & ~(uintptr_t)63;
		prefetchw((void *)(sp + 64));
		prefetchw((void *)sp);
		prefetchw((void *)(sp - 64));
		prefetchw((void *)(sp - 128));
	}
#else
	(void)pp, (void)head, (void)tail;
#endif
}

static struct g *runqget(struct p *pp, bool *ret_inherit)
{
	struct g *next = runnext_take(pp);
	if (next) {
		*ret_inherit = true;
		return next;
	}
	*ret_inherit = false;
	for (;;) {
		uint32_t head = atomic_load_explicit(&pp->runqhead, memory_order_acquire);
		uint32_t tail = atomic_load_explicit(&pp->runqtail, memory_order_relaxed);
		if (tail == head)
			return NULL;
		struct g *gp = atomic_load_explicit(&pp->runq[head % RUNQ_SIZE], memory_order_relaxed);
		if (atomic_compare_exchange_weak_explicit(&pp->runqhead, &head, head + 1, memory_order_release,
							  memory_order_relaxed)) {
			runq_prefetch(pp, head, tail);
			return gp;
		}
	}
}

/* thief_wanted: whether a spinning M waiting for victim's runnext has better
 * things to do: the global queue, another P's queue, io completions or io
 * waiters with nobody blocked in netpoll (it would be that M), an expired
 * timer of any P but the victim (whose M runs its own), or shutdown. */
static bool thief_wanted(struct p *victim)
{
	struct p *self = getg()->m->p;
	if (atomic_load_explicit(&sched.runqsize, memory_order_relaxed) != 0 ||
	    atomic_load_explicit(&sched.stopping, memory_order_relaxed) || netpoll_pending() ||
	    (atomic_load_explicit(&sched.lastpoll, memory_order_relaxed) != 0 && netpoll_waiters()))
		return true;
	int64_t now = 0; /* read once, and only if some P has a timer */
	for (int32_t i = 0; i < gomaxprocs; i++) {
		struct p *p2 = allp[i];
		if (p2 == victim)
			continue;
		int64_t when = atomic_load_explicit(&p2->timer0when, memory_order_relaxed);
		if (when != 0 && when <= (now ? now : (now = nanotime())))
			return true;
		if (p2 != self && !runqempty(p2))
			return true;
	}
	return false;
}

/* A thief hovering over a chain of hand-offs leaves once runnextgen has not
 * moved for this long (the owner computes, or its thread is descheduled). */
#define HOVER_NS (1000 * 1000)

/* runnext_moving: whether pp's owner is putting Gs into runnext now (a
 * hand-off takes well under a microsecond): watches runnextgen for 2 us. */
static bool runnext_moving(struct p *pp)
{
	uint32_t gen = atomic_load_explicit(&pp->runnextgen, memory_order_relaxed);
	int64_t until = nanotime() + 2000;
	do {
		procyield(10);
		if (atomic_load_explicit(&pp->runnextgen, memory_order_relaxed) != gen)
			return true;
	} while (nanotime() < until);
	return false;
}

/* Grabs half of pp's queue into batch[batchhead...]; returns how many. */
static uint32_t runqgrab(struct p *pp, struct g *_Atomic *batch, uint32_t batchhead, bool steal_runnext)
{
	/* hovering over pp's chain of hand-offs: its runnextgen, when it moved */
	bool hovering = false;
	uint32_t gen = 0;
	int64_t moved = 0;
	for (;;) {
		uint32_t head = atomic_load_explicit(&pp->runqhead, memory_order_acquire);
		uint32_t tail = atomic_load_explicit(&pp->runqtail, memory_order_acquire);
		uint32_t n = tail - head;
		n = n - n / 2;
		if (n == 0) {
			if (!steal_runnext)
				return 0;
			struct g *next = atomic_load_explicit(&pp->runnext, memory_order_acquire);
			if (atomic_load_explicit(&pp->status, memory_order_relaxed) == P_RUNNING) {
				/* pp's M is probably about to run next itself (a channel
				 * hand-off takes well under a microsecond); stealing it
				 * would bounce the pair between Ps. The essay's "Runnext"
				 * says when we wait (hover) instead, and for how long. */
				if (!hovering) {
					gen = atomic_load_explicit(&pp->runnextgen, memory_order_relaxed);
					if (!next && !runnext_moving(pp))
						return 0;
					hovering = true;
					moved = nanotime();
				}
				struct timespec ts = { 0, 3000 };
				nanosleep(&ts, NULL);
				uint32_t gen2 = atomic_load_explicit(&pp->runnextgen, memory_order_relaxed);
				int64_t now = nanotime();
				if (gen2 != gen) {
					/* a chain of hand-offs: the G there now is as likely
					 * the owner's next (the same pointer is no proof of
					 * the contrary: a ping-pong pair puts the same two Gs
					 * there in turn) */
					gen = gen2;
					moved = now;
					if (thief_wanted(pp))
						return 0;
					continue;
				}
				/* untouched through the wait: a G there is stranded */
				next = atomic_load_explicit(&pp->runnext, memory_order_acquire);
				if (!next) {
					/* the owner's M is likely descheduled mid-chain */
					if (now - moved < HOVER_NS && !thief_wanted(pp))
						continue;
					return 0;
				}
			} else if (!next) {
				return 0;
			}
			if (runnext_biased) {
				/* revoke the owner's bias (the essay's "Runnext"): one thief
				 * at a time; after the barrier no plain take can start, and
				 * we wait out one in progress */
				uint32_t zero = 0;
				if (!atomic_compare_exchange_strong_explicit(&pp->runnextsteal, &zero, 1,
									     memory_order_acq_rel,
									     memory_order_relaxed))
					continue; /* another thief is at it */
				if (membarrier_all() < 0) {
					/* the owner's take cannot be fenced: leave runnext to it */
					atomic_store_explicit(&pp->runnextsteal, 0, memory_order_release);
					return 0;
				}
				while (atomic_load_explicit(&pp->runnexttaking, memory_order_acquire))
					sched_yield(); /* a few instructions, unless its thread was preempted */
			}
			bool stolen = atomic_compare_exchange_strong_explicit(&pp->runnext, &next, NULL,
									      memory_order_acq_rel,
									      memory_order_relaxed);
			if (runnext_biased)
				atomic_store_explicit(&pp->runnextsteal, 0, memory_order_release);
			if (!stolen)
				continue;
			atomic_store_explicit(&batch[batchhead % RUNQ_SIZE], next, memory_order_relaxed);
			return 1;
		}
		if (n > RUNQ_SIZE / 2)
			continue; /* read head and tail at different times: retry */
		for (uint32_t i = 0; i < n; i++) {
			struct g *gp = atomic_load_explicit(&pp->runq[(head + i) % RUNQ_SIZE], memory_order_relaxed);
			atomic_store_explicit(&batch[(batchhead + i) % RUNQ_SIZE], gp, memory_order_relaxed);
		}
		if (atomic_compare_exchange_strong_explicit(&pp->runqhead, &head, head + n, memory_order_release,
							    memory_order_relaxed))
			return n;
	}
}

/* Steals half of p2's queue into pp's; returns one of the stolen Gs. */
static struct g *runqsteal(struct p *pp, struct p *p2, bool steal_runnext)
{
	uint32_t tail = atomic_load_explicit(&pp->runqtail, memory_order_relaxed);
	uint32_t n = runqgrab(p2, pp->runq, tail, steal_runnext);
	if (n == 0)
		return NULL;
	n--;
	struct g *gp = atomic_load_explicit(&pp->runq[(tail + n) % RUNQ_SIZE], memory_order_relaxed);
	if (n == 0)
		return gp;
#if !defined(__SANITIZE_THREAD__)
	/* the stolen Gs were written by p2's CPU: ask for the first ones' lines
	 * at once (runqget's look-ahead keeps going from there) */
	for (uint32_t i = 0; i < n && i < RUNQ_PF_G; i++) {
		struct g *sg = atomic_load_explicit(&pp->runq[(tail + i) % RUNQ_SIZE], memory_order_relaxed);
		prefetchw_g(sg);
	}
#endif
	uint32_t head = atomic_load_explicit(&pp->runqhead, memory_order_acquire);
	if (tail - head + n >= RUNQ_SIZE)
		throw("runqsteal: runq overflow");
	atomic_store_explicit(&pp->runqtail, tail + n, memory_order_release);
	return gp;
}

/* globrunqget: up to max (0: a fair share) Gs from the global queue; returns one
 * and puts the rest on pp. Caller holds sched.lock. */
static struct g *globrunqget(struct p *pp, int32_t max)
{
	int32_t size = atomic_load_explicit(&sched.runqsize, memory_order_relaxed);
	if (size == 0)
		return NULL;
	int32_t n = size / gomaxprocs + 1;
	if (n > size)
		n = size;
	if (max > 0 && n > max)
		n = max;
	if (n > RUNQ_SIZE / 2)
		n = RUNQ_SIZE / 2;
	atomic_fetch_sub(&sched.runqsize, n);
	struct g *gp = gqueue_pop(&sched.runq);
	while (--n > 0)
		runqput(pp, gqueue_pop(&sched.runq), false);
	return gp;
}

/* ---- Ps and Ms ---- */

static void pidleput(struct p *pp)
{
	/* caller holds sched.lock */
	if (!runqempty(pp))
		throw("pidleput: P has non-empty run queue");
	atomic_store_explicit(&pp->status, P_IDLE, memory_order_release);
	pp->link = sched.pidle;
	sched.pidle = pp;
	atomic_fetch_add(&sched.npidle, 1);
}

struct p *pidleget(void)
{
	/* caller holds sched.lock */
	struct p *pp = sched.pidle;
	if (pp) {
		sched.pidle = pp->link;
		atomic_fetch_sub(&sched.npidle, 1);
	}
	return pp;
}

static void mput(struct m *mp)
{
	/* caller holds sched.lock */
	mp->schedlink = sched.midle;
	sched.midle = mp;
	sched.nmidle++;
}

static struct m *mget(void)
{
	/* caller holds sched.lock */
	struct m *mp = sched.midle;
	if (mp) {
		sched.midle = mp->schedlink;
		sched.nmidle--;
	}
	return mp;
}

void acquirep(struct p *pp)
{
	struct m *mp = getg()->m;
	if (mp->p || pp->m)
		throw("acquirep: invalid p state");
	mp->p = pp;
	pp->m = mp;
	/* an exchange: others_running relies on its order before our wakeps */
	atomic_exchange_explicit(&pp->status, P_RUNNING, memory_order_seq_cst);
	if (traceEnabled())
		traceProcStart();
}

static struct p *releasep(void)
{
	struct m *mp = getg()->m;
	struct p *pp = mp->p;
	if (!pp || pp->m != mp)
		throw("releasep: invalid p state");
	if (traceEnabled())
		traceProcStop();
	pp->m = NULL;
	mp->p = NULL;
	atomic_store_explicit(&pp->status, P_IDLE, memory_order_release);
	return pp;
}

static void *mstart(void *arg);

/* newm: a new M (thread) that starts with pp, spinning or not. */
static void newm(struct p *pp, bool spinning)
{
	struct m *mp = calloc(1, sizeof(*mp));
	struct g *g0 = calloc(1, sizeof(*g0));
	if (!mp || !g0)
		throw("newm: out of memory");
	mp->g0 = g0;
	g0->m = mp;
	g0->goid = -1;
	atomic_store(&g0->atomicstatus, G_RUNNING);
	mp->nextp = pp;
	mp->spinning = spinning;
	mp->fastrand[0] = fastrand() | 1;
	mp->fastrand[1] = fastrand() | 1;
	lock(&sched.lock);
	mp->id = sched.mnext++;
	mp->alllink = sched.allm;
	sched.allm = mp;
	sched.nmlive++;
	unlock(&sched.lock);

	/* Ms run with every signal blocked but the synchronous ones and the
	 * preemption signal, so that the host program's signals go to its threads. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 1 << 20);
	pthread_t th;
	int r = pthread_create(&th, &attr, mstart, mp);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0)
		throw("newm: pthread_create failed");
	mp->thread = (uintptr_t)th;
}

static __attribute__((noinline)) void mstart1(struct m *mp)
{
	/* g0's frames start below this one on every mcall: schedule never returns.
	 * Just below: the first mcall must land above wherever the schedule()
	 * below left g0 (valgrind keeps only the 128 bytes under the last sp it saw
	 * on g0 addressable, and a stack switch does not move them). */
	uintptr_t sp;
#if defined(__x86_64__)
	__asm__ volatile("movq %%rsp, %0" : "=r"(sp));
#else
	__asm__ volatile("mov %0, sp" : "=r"(sp));
#endif
	mp->g0->sched.sp = (sp - 64) & ~(uintptr_t)15;
	if (mp->nextp) {
		struct p *pp = mp->nextp;
		mp->nextp = NULL;
		acquirep(pp);
	}
	schedule();
}

static void *mstart(void *arg)
{
	struct m *mp = arg;
	g_tls = mp->g0;
	mp->procid = (pid_t)syscall(SYS_gettid);
	pthread_attr_t attr;
	void *stackaddr;
	size_t stacksize;
	if (pthread_getattr_np(pthread_self(), &attr) == 0) {
		pthread_attr_getstack(&attr, &stackaddr, &stacksize);
		mp->g0->stacklo = (uintptr_t)stackaddr;
		mp->g0->stackhi = (uintptr_t)stackaddr + stacksize;
		pthread_attr_destroy(&attr);
	}
	fiber_init_g0(mp->g0);
	/* valgrind: g0 is one more stack the goroutines switch to and from */
	if (RUNNING_ON_VALGRIND && gstacksize(mp->g0))
		VALGRIND_STACK_REGISTER(mp->g0->stacklo, mp->g0->stackhi);
	minit(mp);
	if (__builtin_setjmp(mp->exitbuf) == 0)
		mstart1(mp);
	/* mexit jumped back here: the thread ends. */
	munit(mp);
	g_tls = NULL;
	return NULL;
}

/* mexit: this M leaves: hands its P on and ends its thread (returning from
 * mstart, on g0). Used at shutdown and when a locked G exits without
 * unlocking, as the seed's goexit0 sends the M back to mstart. */
static void mexit(struct m *mp)
{
	if (mp->p) {
		struct p *pp = releasep();
		if (atomic_load(&sched.stopping)) {
			lock(&sched.lock);
			pidleput(pp);
			unlock(&sched.lock);
		} else {
			handoffp(pp);
		}
	}
	lock(&sched.lock);
	mp->exiting = true;
	sched.nmlive--;
	bool last = sched.nmlive == 0;
	unlock(&sched.lock);
	if (last && atomic_load(&sched.stopping))
		notewakeup(&sched.mexitnote);
	fiber_exit_m(mp);
	__builtin_longjmp(mp->exitbuf, 1);
}

/* checkdead: called with sched.lock held as an M goes idle. If no M runs or
 * waits for anything that could ready a goroutine (no timer, no io, nobody in
 * a system call or the netpoller), no goroutine can ever run again: tell the
 * tasks (Go's "all goroutines are asleep - deadlock!"). */
static void checkdead(void)
{
	if (atomic_load(&sched.stopping))
		return;
	int32_t run = sched.nmlive - sched.nmidle - sched.nmidlelocked - atomic_load(&sched.nmsys);
	if (run > 0 || atomic_load(&sched.lastpoll) == 0 || netpoll_waiters())
		return;
	for (int32_t i = 0; i < gomaxprocs; i++)
		if (atomic_load(&allp[i]->timer0when) != 0 || !runqempty(allp[i]))
			return;
	if (atomic_load(&sched.runqsize) != 0)
		return;
	task_checkdead();
}

/* mpark: sleep on mp's note until whoever wakes it has handed it a P in
 * mp->nextp (startm, startlockedm), then take that P; woken without one, the
 * runtime is stopping and the M exits. */
static void mpark(struct m *mp)
{
	mp->clock = 0; /* stale once it has slept */
	notesleep(&mp->park);
	noteclear(&mp->park);
	if (!mp->nextp) {
		if (atomic_load(&sched.stopping))
			mexit(mp);
		throw("mpark: woken without a P");
	}
	struct p *pp = mp->nextp;
	mp->nextp = NULL;
	acquirep(pp);
}

/* stopm: park this M until startm hands it a P. */
void stopm(void)
{
	struct m *mp = getg()->m;
	if (mp->locks)
		throw("stopm holding locks");
	if (mp->p)
		throw("stopm holding p");
	if (mp->spinning)
		throw("stopm spinning");
	lock(&sched.lock);
	if (atomic_load(&sched.stopping)) {
		unlock(&sched.lock);
		mexit(mp);
	}
	mput(mp);
	checkdead();
	unlock(&sched.lock);
	mpark(mp);
}

/* startm: run pp (an idle one if NULL) on an idle or new M. spinning: the caller
 * incremented nmspinning for it. */
static void startm(struct p *pp, bool spinning)
{
	lock(&sched.lock);
	if (atomic_load(&sched.stopping)) {
		if (pp)
			pidleput(pp);
		unlock(&sched.lock);
		if (spinning)
			atomic_fetch_sub(&sched.nmspinning, 1);
		return;
	}
	if (!pp) {
		pp = pidleget();
		if (!pp) {
			unlock(&sched.lock);
			if (spinning && atomic_fetch_sub(&sched.nmspinning, 1) <= 0)
				throw("startm: negative nmspinning");
			return;
		}
	}
	struct m *nmp = mget();
	unlock(&sched.lock);
	if (!nmp) {
		newm(pp, spinning);
		return;
	}
	if (nmp->spinning || nmp->nextp)
		throw("startm: m is spinning or has a p");
	nmp->spinning = spinning;
	nmp->nextp = pp;
	notewakeup(&nmp->park);
}

/* handoffp: pp's M is going away (syscall, locked G, exit); give pp to whoever
 * can use it (true), or to the idle list (false). */
bool handoffp(struct p *pp)
{
	netpoll_flush(pp); /* its queued io requests must not wait for its next owner */
	if (!runqempty(pp) || atomic_load(&sched.runqsize) != 0) {
		startm(pp, false);
		return true;
	}
	int32_t zero = 0;
	if (atomic_load(&sched.nmspinning) + atomic_load(&sched.npidle) == 0 &&
	    atomic_compare_exchange_strong(&sched.nmspinning, &zero, 1)) {
		startm(pp, true);
		return true;
	}
	lock(&sched.lock);
	if (atomic_load(&sched.runqsize) != 0) {
		unlock(&sched.lock);
		startm(pp, false);
		return true;
	}
	/* the last running P with nobody waiting in netpoll: someone must watch timers */
	if (atomic_load(&sched.npidle) == gomaxprocs - 1 && atomic_load(&sched.lastpoll) != 0) {
		unlock(&sched.lock);
		startm(pp, false);
		return true;
	}
	int64_t when = atomic_load(&pp->timer0when);
	pidleput(pp);
	unlock(&sched.lock);
	if (when != 0)
		wakenetpoller(when);
	return false;
}

/* wakep: start a spinning M if there is an idle P and nobody is spinning. The
 * caller published its work with a sequentially consistent operation (see the
 * essay), so these loads cannot move before it. */
void wakep(void)
{
	if (atomic_load(&sched.npidle) == 0)
		return;
	int32_t zero = 0;
	if (atomic_load(&sched.nmspinning) != 0 ||
	    !atomic_compare_exchange_strong(&sched.nmspinning, &zero, 1))
		return;
	startm(NULL, true);
}

/* wakenetpoller: a timer at when was added where nobody may be watching. */
void wakenetpoller(int64_t when)
{
	if (atomic_load(&sched.lastpoll) == 0) {
		int64_t until = atomic_load(&sched.pollUntil);
		if (until == 0 || until > when)
			netpoll_break();
	} else {
		wakep();
	}
}

static void resetspinning(void)
{
	struct m *mp = getg()->m;
	mp->spinning = false;
	if (atomic_fetch_sub(&sched.nmspinning, 1) <= 0)
		throw("findrunnable: negative nmspinning");
	/* We found work: there may be more, so make sure somebody else spins. */
	wakep();
}

/* ---- locked threads ---- */

void stoplockedm(void)
{
	struct m *mp = getg()->m;
	if (!mp->lockedg || mp->lockedg->lockedm != mp)
		throw("stoplockedm: inconsistent locking");
	if (mp->p)
		handoffp(releasep());
	lock(&sched.lock);
	if (atomic_load(&sched.stopping)) {
		unlock(&sched.lock);
		mexit(mp);
	}
	/* startlockedm may already have handed us a P (its wakeup is kept by
	 * the note): only an M with none is idle. */
	if (!mp->nextp) {
		mp->idlelocked = true;
		sched.nmidlelocked++;
		checkdead();
	}
	unlock(&sched.lock);
	mpark(mp);
}

/* startlockedm: hand our P to gp's locked M, wake it, and park this M. */
static void startlockedm(struct g *gp)
{
	struct m *mp = gp->lockedm;
	if (mp == getg()->m)
		throw("startlockedm: locked to me");
	if (mp->nextp)
		throw("startlockedm: m has p");
	struct p *pp = releasep();
	lock(&sched.lock);
	if (atomic_load(&sched.stopping)) {
		/* runtime_stop wakes (or has woken) the locked M to exit */
		pidleput(pp);
		unlock(&sched.lock);
		stopm();
		return;
	}
	if (mp->idlelocked) {
		mp->idlelocked = false;
		sched.nmidlelocked--;
	}
	mp->nextp = pp;
	unlock(&sched.lock);
	notewakeup(&mp->park);
	stopm();
}

/* ---- scheduling ---- */

void dropg(void)
{
	struct m *mp = getg()->m;
	mp->curg->m = NULL;
	mp->curg = NULL;
}

static void gostartcall(struct g *gp, gort_fn fn, void *arg);

static void gdiscarded(void *arg)
{
	(void)arg;
}

/* A goroutine of a task that has ended never runs its code again (task.c's
 * essay): it restarts at an empty function that returns into goexit, so that
 * it leaves through goexit0 like any other; its old frames are abandoned. */
static void gdiscard(struct g *gp)
{
	if (gp->oncing)
		once_abandon(gp); /* reads its frames: before they are reused */
	if (gp->semwait)
		sema_abandon(gp); /* likewise */
#if defined(__SANITIZE_ADDRESS__)
	/* the abandoned frames' redzones must not outlive them */
	__asan_unpoison_memory_region((void *)gp->stacklo, gp->stackhi - gp->stacklo);
#endif
	gostartcall(gp, gdiscarded, NULL);
}

/* What execute does before it switches to gp, shared with gopark's direct
 * switch (park_direct_m): gp becomes mp's running goroutine. */
static inline void execute_prep(struct m *mp, struct g *gp, bool inherit)
{
	mp->curg = gp;
	gp->m = mp;
	casgstatus(gp, G_RUNNABLE, G_RUNNING);
	if (traceEnabled())
		traceGoStart(gp);
	atomic_store_explicit(&gp->preempt, false, memory_order_relaxed);
	gp->waitsince = mclock(mp); /* the run slice starts (switched_to_g0 ends it) */
	if (!inherit)
		mp->p->schedtick++;
	sysmon_note_execute(mp->p, gp);
}

_Noreturn void execute(struct g *gp, bool inherit)
{
	struct m *mp = getg()->m;
	struct task *t = gp->task;
	if (t && unlikely(atomic_load_explicit(&t->exited, memory_order_relaxed)))
		gdiscard(gp);
	execute_prep(mp, gp, inherit);
	fiber_switch(mp->g0, gp, true);
	errno = gp->goerrno;
	gogo(gp);
}

/* Looks at every P's queue once more after giving up the P (see the essay). */
static struct p *checkrunqs_nop(void)
{
	for (int32_t i = 0; i < gomaxprocs; i++) {
		if (!runqempty(allp[i])) {
			lock(&sched.lock);
			struct p *pp = pidleget();
			unlock(&sched.lock);
			return pp;
		}
	}
	return NULL;
}

/* others_running: whether any P is not idle, loaded after a spinning M's
 * nmspinning decrement. When none is, the final check needs no membarrier: an
 * idle P's runnext is empty, and whoever takes one later does so with
 * acquirep's sequentially consistent exchange, after which its wakep loads
 * see the decrement (the essay's "Spinning Ms and the lost wakeup"). */
static bool others_running(void)
{
	for (int32_t i = 0; i < gomaxprocs; i++)
		if (atomic_load(&allp[i]->status) != P_IDLE)
			return true;
	return false;
}

static int64_t timers_earliest_nop(void)
{
	int64_t next = 0;
	for (int32_t i = 0; i < gomaxprocs; i++) {
		int64_t w = atomic_load(&allp[i]->timer0when);
		if (w != 0 && (next == 0 || w < next))
			next = w;
	}
	return next;
}

static struct g *stealwork(int64_t now, int64_t *pollUntil)
{
	struct m *mp = getg()->m;
	struct p *pp = mp->p;
	bool inherit;
	for (int i = 0; i < 4; i++) {
		bool last = i == 3;
		uint32_t n = (uint32_t)gomaxprocs;
		uint32_t start = fastrandn(n);
		for (uint32_t k = 0; k < n; k++) {
			if (atomic_load(&sched.runqsize) != 0)
				return NULL; /* back to findrunnable: the global queue has work */
			struct p *p2 = allp[(start + k) % n];
			if (p2 == pp)
				continue;
			if (last && atomic_load(&p2->timer0when) != 0) {
				int64_t w = checktimers(p2, now);
				if (w != 0 && (*pollUntil == 0 || w < *pollUntil))
					*pollUntil = w;
				struct g *gp = runqget(pp, &inherit);
				if (gp)
					return gp;
			}
			if (atomic_load_explicit(&p2->status, memory_order_relaxed) != P_IDLE ||
			    !runqempty(p2)) {
				struct g *gp = runqsteal(pp, p2, last);
				if (gp)
					return gp;
			}
		}
	}
	return NULL;
}

/* findrunnable: a G to run, blocking until there is one. */
static struct g *findrunnable(bool *ret_inherit)
{
	struct m *mp = getg()->m;
	struct g *gp;
top:
	if (atomic_load(&sched.stopping))
		mexit(mp);
	struct p *pp = mp->p;
	netpoll_flush(pp); /* this round's io requests, in one batch */
	int64_t now = nanotime();
	int64_t pollUntil = atomic_load_explicit(&pp->timer0when, memory_order_relaxed) ? checktimers(pp, now) : 0;

	gp = runqget(pp, ret_inherit);
	if (gp)
		return gp;
	if (atomic_load_explicit(&sched.runqsize, memory_order_relaxed) != 0) {
		lock(&sched.lock);
		gp = globrunqget(pp, 0);
		unlock(&sched.lock);
		if (gp) {
			*ret_inherit = false;
			return gp;
		}
	}
	/* io completions, without blocking (reaping a ring takes no system call,
	 * so this runs even while an M is blocked in netpoll; with only the epoll
	 * fallback in use, netpoll_pending is false in that case, as in Go) */
	if (netpoll_pending()) {
		struct gqueue list = { 0 };
		netpoll(0, &list);
		gp = gqueue_pop(&list);
		if (gp) {
			injectglist(&list);
			if (traceEnabled())
				traceGoUnpark(gp);
			casgstatus(gp, G_WAITING, G_RUNNABLE);
			*ret_inherit = false;
			return gp;
		}
	}

	int32_t procs = gomaxprocs;
	if (mp->spinning || 2 * atomic_load(&sched.nmspinning) < procs - atomic_load(&sched.npidle)) {
		if (!mp->spinning) {
			mp->spinning = true;
			atomic_fetch_add(&sched.nmspinning, 1);
		}
		gp = stealwork(now, &pollUntil);
		if (gp) {
			*ret_inherit = false;
			return gp;
		}
	}

	/* Nothing: give up the P. */
	lock(&sched.lock);
	if (atomic_load(&sched.runqsize) != 0) {
		gp = globrunqget(pp, 0);
		unlock(&sched.lock);
		*ret_inherit = false;
		return gp;
	}
	if (releasep() != pp)
		throw("findrunnable: wrong p");
	pidleput(pp);
	unlock(&sched.lock);

	bool wasspinning = mp->spinning;
	if (mp->spinning) {
		mp->spinning = false;
		if (atomic_fetch_sub(&sched.nmspinning, 1) <= 0)
			throw("findrunnable: negative nmspinning");
		/* the final check of the essay's wakeup protocol; the barrier
		 * orders a biased runqput's plain store against it (if it fails,
		 * a G that check misses waits on its running P: never stranded) */
		atomic_fetch_add_explicit(&sched.nfinalchecks, 1, memory_order_relaxed);
		if (runnext_biased && others_running()) {
			atomic_fetch_add_explicit(&sched.nfinalfences, 1, memory_order_relaxed);
			(void)membarrier_all();
		}
		struct p *p2 = checkrunqs_nop();
		if (p2) {
			acquirep(p2);
			mp->spinning = true;
			atomic_fetch_add(&sched.nmspinning, 1);
			goto top;
		}
	}
	int64_t tw = timers_earliest_nop();
	if (tw != 0 && (pollUntil == 0 || tw < pollUntil))
		pollUntil = tw;

	/* Sleep in netpoll until the earliest timer or io, if nobody else is. */
	if ((pollUntil != 0 || netpoll_waiters()) && atomic_exchange(&sched.lastpoll, 0) != 0) {
		atomic_store(&sched.pollUntil, pollUntil);
		int64_t delay = -1;
		if (pollUntil != 0) {
			now = nanotime();
			delay = pollUntil > now ? pollUntil - now : 0;
		}
		struct gqueue list = { 0 };
		netpoll(delay, &list);
		atomic_store(&sched.pollUntil, 0);
		atomic_store(&sched.lastpoll, nanotime());
		lock(&sched.lock);
		struct p *p2 = atomic_load(&sched.stopping) ? NULL : pidleget();
		unlock(&sched.lock);
		if (!p2) {
			if (list.head)
				injectglist(&list);
		} else {
			acquirep(p2);
			gp = gqueue_pop(&list);
			if (gp) {
				injectglist(&list);
				if (traceEnabled())
					traceGoUnpark(gp);
				casgstatus(gp, G_WAITING, G_RUNNABLE);
				*ret_inherit = false;
				return gp;
			}
			if (wasspinning) {
				mp->spinning = true;
				atomic_fetch_add(&sched.nmspinning, 1);
			}
			goto top;
		}
	} else if (pollUntil != 0) {
		int64_t until = atomic_load(&sched.pollUntil);
		if (until == 0 || until > pollUntil)
			netpoll_break();
	}
	stopm();
	goto top;
}

_Noreturn void schedule(void)
{
	struct m *mp = getg()->m;
	if (mp->locks)
		throw("schedule: holding locks");
	if (mp->lockedg) {
		stoplockedm();
		execute(mp->lockedg, false);
	}
top:;
	struct p *pp = mp->p;
	struct g *gp = NULL;
	bool inherit = false;
	if (pp->schedtick % 61 == 0 && atomic_load_explicit(&sched.runqsize, memory_order_relaxed) > 0) {
		lock(&sched.lock);
		gp = globrunqget(pp, 1);
		unlock(&sched.lock);
	}
	/* Expired timers first, on every round (only a clock read when any are set):
	 * a P busy with runnable goroutines must still wake its sleepers. */
	if (atomic_load_explicit(&pp->timer0when, memory_order_relaxed) != 0)
		checktimers(pp, nanotime());
	/* io requests queued too long for their batch; completions every 61st tick */
	netpoll_schedule(pp);
	if (!gp)
		gp = runqget(pp, &inherit);
	if (!gp) {
		gp = findrunnable(&inherit);
		mp->clock = 0; /* it may have slept or spun */
	}
	if (mp->spinning)
		resetspinning();
	if (gp->lockedm) {
		startlockedm(gp);
		goto top;
	}
	execute(gp, inherit);
}

/* ---- parking ---- */

/* What every park does on g0 once gp's context is saved: gp waits and leaves
 * its M, then the unlock function runs. false: it refused to let gp sleep, and
 * gp is runnable again (the caller decides when it runs). */
static bool park_commit(struct g *gp)
{
	struct m *mp = gp->m;
	switched_to_g0(gp);
	casgstatus(gp, G_RUNNING, G_WAITING);
	dropg();
	if (!mp->waitunlockf)
		return true;
	bool ok = mp->waitunlockf(gp, mp->waitlock);
	mp->waitunlockf = NULL;
	mp->waitlock = NULL;
	if (!ok) {
		if (traceEnabled())
			traceGoUnpark(gp);
		casgstatus(gp, G_WAITING, G_RUNNABLE);
	}
	return ok;
}

static void park_m(struct g *gp)
{
	if (!park_commit(gp))
		execute(gp, true);
	schedule();
}

/* valgrind: memcheck keeps only the 128 bytes below a stack's last sp
 * addressable, and park_direct_m's frames go deeper below next's saved
 * context, where mswitch lands: make the 1 KiB below it addressable, as if
 * next's own code had gone that deep (it is dead stack: next is ours and not
 * running). */
static bool on_valgrind;
static inline void mswitch_landing(struct g *next)
{
	if (unlikely(on_valgrind))
		VALGRIND_MAKE_MEM_UNDEFINED(next->sched.sp - 1024, 1024 - 128);
}

/* gopark's direct switch: the G in mp's runnext if nothing else is due before
 * it would run (what schedule() checks first: the global queue's 61st tick,
 * timers, io completions on the 61st tick, locked threads), taken out of
 * runnext; NULL otherwise. */
static inline struct g *park_direct_next(struct m *mp)
{
	struct p *pp = mp->p;
	if (mp->lockedg || pp->schedtick % 61 == 0 ||
	    atomic_load_explicit(&pp->timer0when, memory_order_relaxed) != 0)
		return NULL;
	struct g *next = runnext_take(pp);
	if (!next)
		return NULL;
	/* ours now (a thief could have run it in between: look only now). A G
	 * whose task ended goes to execute, which discards it: that rewrites its
	 * stack, which park_direct_m would be running on. */
	struct task *t = next->task;
	if (unlikely(next->lockedm || next->sched.sp - next->stacklo < PARK_DIRECT_ROOM ||
		     (t && atomic_load_explicit(&t->exited, memory_order_relaxed)))) {
		runqput(pp, next, true);
		return NULL;
	}
	return next;
}

/* mswitch's fn for gopark: park_m and then execute(next, inherit) in one go,
 * on next's stack as g0; returns the G to resume: next, always. Nothing here
 * may publish next (runqput, a wakeup) while we run on its stack: another M
 * would resume it over our frames. So when unlockf refuses to let gp sleep,
 * gp (fully saved, and we are off its stack) becomes runnable in runnext and
 * next runs first, instead of park_m's resuming gp at once. */
static struct g *park_direct_m(struct g *gp, struct g *next)
{
	struct m *mp = gp->m;
	struct p *pp = mp->p;
	if (!park_commit(gp))
		runqput(pp, gp, true);
	if (mp->locks)
		throw("schedule: holding locks");
	netpoll_schedule(pp);
	execute_prep(mp, next, true);
	errno = next->goerrno;
	return next;
}

void gopark(bool (*unlockf)(struct g *gp, void *arg), void *arg, enum waitreason reason)
{
	struct g *gp = getg();
	struct m *mp = gp->m;
	/* Runtime locks may be held here only if unlockf releases them (on g0,
	 * same M); schedule() checks that none is left. */
	mp->waitunlockf = unlockf;
	mp->waitlock = arg;
	gp->waitreason = (uint8_t)reason;
	if (traceEnabled())
		traceGoStop(gp, GORT_STOP_PARKED);
	/* waitsince: switched_to_g0 (one coarse clock read per switch, which
	 * also ends the run slice) */
	struct g *next = park_direct_next(mp);
	if (next) {
		mswitch_landing(next);
		fiber_switch_direct(gp, next);
		mswitch(next, park_direct_m);
		fiber_switched(gp);
		return;
	}
	fiber_switch(gp, mp->g0, false);
	mcall(park_m);
	fiber_switched(gp);
}

void goready(struct g *gp)
{
	struct g *me = getg();
	struct p *pp = me ? me->m->p : NULL;
	if (!pp) {
		struct gqueue q = { 0 };
		gqueue_push(&q, gp);
		injectglist(&q);
		return;
	}
	if (traceEnabled())
		traceGoUnpark(gp);
	casgstatus(gp, G_WAITING, G_RUNNABLE);
	/* gp likely runs next, on this M (a hand-off): ask now for the lines its
	 * switch restores from, at its saved sp (the essay's "Prefetching") */
	uintptr_t sp = gp->sched.sp & ~(uintptr_t)63;
	prefetchw((void *)sp);
	prefetchw((void *)(sp + 64));
	/* and the sudog of the partner it handed off to last (chan.c's lastpeer),
	 * which it likely reads first once it runs */
	if (gp->lastpeer)
		__builtin_prefetch(gp->lastpeer);
	gp->waitsince = mclock(me->m); /* runnable since about now (ps) */
	runqput(pp, gp, true);
	wakep();
}

void injectglist(struct gqueue *q)
{
	if (!q->head)
		return;
	int32_t n = 0;
	int64_t now = gclock_fresh(); /* maybe from an M that slept in netpoll */
	for (struct g *gp = q->head; gp; gp = gp->schedlink) {
		if (traceEnabled())
			traceGoUnpark(gp);
		casgstatus(gp, G_WAITING, G_RUNNABLE);
		gp->waitsince = now;
		n++;
	}
	lock(&sched.lock);
	globrunqputbatch(q);
	unlock(&sched.lock);
	struct g *me = getg();
	if (!me || !me->m->p) {
		/* no P here: start Ms for the idle Ps */
		for (; n > 0 && atomic_load(&sched.npidle) > 0; n--)
			startm(NULL, false);
		return;
	}
	wakep();
}

static void gosched_m(struct g *gp)
{
	struct m *mp = gp->m;
	switched_to_g0(gp);
	if (traceEnabled())
		traceGoStop(gp, GORT_STOP_YIELD);
	casgstatus(gp, G_RUNNING, G_RUNNABLE);
	dropg();
	runqput(mp->p, gp, false);
	schedule();
}

void gosched(void)
{
	struct g *gp = getg();
	fiber_switch(gp, gp->m->g0, false);
	mcall(gosched_m);
	fiber_switched(gp);
}

/* ---- goroutine creation and exit ---- */

/* Stack colouring: stack slots are 64 KiB apart, so the tops of all stacks
 * fall in the same few L1/L2 cache sets, and a thousand goroutines taking turns
 * (a ring of channels, a wave of timers) evicted each other's hot frames at
 * every switch. Each stack starts a hashed multiple of 64 bytes (under 2 KiB,
 * so still in its first page) below its top. */
static inline uintptr_t stackcolor(uintptr_t stackhi)
{
	return (uintptr_t)(((uint32_t)(stackhi >> 12) * 0x9e3779b1u) >> 27) * 64;
}

static void gostartcall(struct g *gp, gort_fn fn, void *arg)
{
	uintptr_t top = gp->stackhi - stackcolor(gp->stackhi);
#if defined(__x86_64__)
	uintptr_t *w = (uintptr_t *)(top - sizeof(uintptr_t) * (CTX_WORDS + 1));
	memset(w, 0, sizeof(uintptr_t) * (CTX_WORDS + 1));
	w[0] = 0x1f80 | (0x037fULL << 32); /* default MXCSR and x87 control word */
	w[CTX_WORDS] = (uintptr_t)goexit + 1;  /* fn's return address: goexit's call */
#else
	uintptr_t *w = (uintptr_t *)(top - sizeof(uintptr_t) * CTX_WORDS);
	memset(w, 0, sizeof(uintptr_t) * CTX_WORDS);
#endif
	w[CTX_FN] = (uintptr_t)fn;
	w[CTX_ARG] = (uintptr_t)arg;
	w[CTX_PC] = (uintptr_t)goentry;
	gp->sched.sp = (uintptr_t)w;
}

#define GOID_BATCH 16

struct g *newproc(gort_fn fn, void *arg, struct task *t, size_t stacksize, int *ret_err)
{
	struct g *me = getg();
	struct m *mp = me ? acquirem() : NULL;
	struct p *pp = mp ? mp->p : NULL;
	size_t size = stacksize ? stack_round(stacksize) : default_stacksize;

	struct g *newg = gfget_sized(pp, size);
	if (!newg) {
		if (mp)
			releasem(mp);
		*ret_err = -ENOMEM;
		return NULL;
	}
	gostartcall(newg, fn, arg);
	newg->fn = fn;
	newg->arg = arg;
	newg->task = t;
	newg->parentgoid = me ? me->goid : 0;
	newg->waitreason = WAIT_NONE;
	newg->waitsince = mclock(mp);
	newg->goerrno = 0;
	if (pp) {
		if (pp->goidcache == pp->goidcacheend) {
			pp->goidcache = atomic_fetch_add(&sched.goidgen, GOID_BATCH) + 1;
			pp->goidcacheend = pp->goidcache + GOID_BATCH;
		}
		newg->goid = (int64_t)pp->goidcache++;
	} else {
		newg->goid = (int64_t)atomic_fetch_add(&sched.goidgen, 1) + 1;
	}
	if (t)
		task_gocreated(t, pp);
	if (traceEnabled())
		traceGoCreate(newg);
	casgstatus(newg, G_DEAD, G_RUNNABLE);
	if (pp) {
		runqput(pp, newg, true);
		wakep();
		releasem(mp);
	} else {
		lock(&sched.lock);
		globrunqput(newg);
		unlock(&sched.lock);
		if (atomic_load(&sched.npidle) > 0)
			startm(NULL, false);
	}
	return newg;
}

static void goexit0(struct g *gp)
{
	struct m *mp = gp->m;
	switched_to_g0(gp);
	casgstatus(gp, G_RUNNING, G_DEAD);
	if (traceEnabled())
		traceGoEnd(gp);
	struct task *t = gp->task;
	bool locked = gp->lockedm != NULL;
	gp->lockedm = NULL;
	mp->lockedg = NULL;
	mp->lockedext = 0;
	gp->m = NULL;
	gp->fn = NULL;
	gp->arg = NULL;
	gp->param = NULL;
	gp->lastpeer = NULL;
	gp->task = NULL;
	gp->waiting = NULL;
	gp->waitreason = WAIT_NONE;
	atomic_store_explicit(&gp->preempt, false, memory_order_relaxed);
	dropg();
	fiber_reset(gp);
	gfput(mp->p, gp);
	if (t)
		task_goexit(t, mp->p);
	if (locked) {
		/* The G may have left its thread in an unusual kernel state: kill
		 * the thread rather than returning it to the pool (the seed). */
		mexit(mp);
	}
	schedule();
}

/* arch/: mcall from g0 (a runtime bug: g0 has nowhere to switch to). */
__attribute__((noreturn, used)) void badmcall(void)
{
	throw("runtime: mcall called on m->g0 stack");
}

/* Called by goexit, on the goroutine's stack. */
__attribute__((noreturn, used)) void goexit1(void)
{
	struct g *gp = getg();
	fiber_switch(gp, gp->m->g0, true);
	mcall(goexit0);
	__builtin_unreachable();
}

/* ---- the runtime's lifetime ---- */

int getproccount(void)
{
	cpu_set_t set;
	int n = 0;
	if (sched_getaffinity(0, sizeof set, &set) == 0)
		n = CPU_COUNT(&set);
	if (n <= 0)
		n = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (n <= 0)
		n = 1;
	int lim = cgroup_cpu_limit();
	if (lim > 0 && lim < n)
		n = lim;
	return n;
}

bool runtime_started(void)
{
	return atomic_load(&started);
}

int runtime_start(int procs, size_t stacksize)
{
	if (atomic_load(&started))
		return -EBUSY;
	on_valgrind = RUNNING_ON_VALGRIND;
#if defined(__x86_64__)
	unsigned int eax, ebx, ecx = 0, edx;
	have_prefetchw = __get_cpuid(0x80000001, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 8));
#endif
	runnext_biased = membarrier_ok();
	if (procs <= 0) {
		const char *env = getenv("GORTMAXPROCS");
		if (env && *env) {
			char *end;
			long v = strtol(env, &end, 10);
			if (*end == '\0' && v > 0 && v <= 1024)
				procs = (int)v;
		}
	}
	if (procs <= 0)
		procs = getproccount();
	if (procs > 1024)
		procs = 1024;
	default_stacksize = stack_round(stacksize ? stacksize : 64 * 1024);

	memset(&sched, 0, sizeof sched);
	atomic_store(&sched.lastpoll, nanotime());
	gomaxprocs = procs;
	allp = calloc((size_t)procs, sizeof(*allp));
	if (!allp)
		return -ENOMEM;
	for (int i = 0; i < procs; i++) {
		struct p *pp = calloc(1, sizeof(*pp));
		if (!pp)
			return -ENOMEM;
		pp->id = i;
		timers_init_p(pp);
		allp[i] = pp;
	}
	netpoll_init();
	signals_init();
	lock(&sched.lock);
	for (int i = procs - 1; i >= 0; i--)
		pidleput(allp[i]);
	unlock(&sched.lock);
	atomic_store(&started, true);
	sysmon_start();
	return 0;
}

/* runtime_stop: stops every M (goroutines still running get to their next
 * scheduling point, which sysmon forces at once by preemption; the rest are
 * dropped) and frees the runtime. From a thread that is not an M. A goroutine
 * blocked in a system call section keeps its M until the call returns. */
void runtime_stop(void)
{
	if (!atomic_load(&started))
		return;
	lock(&sched.lock);
	atomic_store(&sched.stopping, true);
	noteclear(&sched.mexitnote);
	bool none = sched.nmlive == 0;
	for (struct m *mp = sched.midle; mp; mp = mp->schedlink)
		notewakeup(&mp->park);
	sched.midle = NULL;
	sched.nmidle = 0;
	/* Ms asleep with their locked G parked are not on midle. */
	for (struct m *mp = sched.allm; mp; mp = mp->alllink) {
		if (mp->idlelocked) {
			mp->idlelocked = false;
			sched.nmidlelocked--;
			notewakeup(&mp->park);
		}
	}
	unlock(&sched.lock);
	netpoll_break();
	if (!none)
		notesleep(&sched.mexitnote);
	/* Only now: until every M has left, sysmon preempts the goroutines still
	 * running (a loop without calls gets no scheduling point otherwise), and
	 * nothing it looks at may be freed under it. */
	sysmon_stop();
	/* Threads outside the runtime (stats.c's readers, trace.c's collector,
	 * which outlives it) walk allm and allp under sched.lock and allgs under
	 * allglock: each list leaves under its lock before it is freed. */
	lock(&sched.lock);
	struct m *allm = sched.allm;
	sched.allm = NULL;
	unlock(&sched.lock);
	for (struct m *mp = allm, *next; mp; mp = next) {
		next = mp->alllink;
		pthread_join((pthread_t)mp->thread, NULL);
#ifdef GORT_FIBER_HOOKS
		if (mp->g0->fiber != mp->tsan_fiber0)
			fiber_destroy(mp->g0);
#endif
		free(mp->g0);
		free(mp);
	}
	lock(&allglock);
	struct g *gs = allgs;
	allgs = NULL;
	allglen = 0;
	struct gslab *slabs = gslabs; /* the Gs' memory */
	gslabs = NULL;
	gslabfree = 0;
	unlock(&allglock);
	for (struct g *gp = gs, *next; gp; gp = next) {
		next = gp->alllink;
		fiber_destroy(gp);
	}
	for (struct gslab *s = slabs, *next; s; s = next) {
		next = s->next;
		free(s);
	}
	lock(&sched.lock);
	struct p **ps = allp;
	allp = NULL;
	unlock(&sched.lock);
	for (int i = 0; i < gomaxprocs; i++) {
		timers_destroy_p(ps[i]);
		free(ps[i]);
	}
	free(ps);
	signals_fini();
	netpoll_fini();
	sema_drop_ghosts();
	stack_shutdown();
	memset(&sched, 0, sizeof sched);
	atomic_store(&started, false);
}

/* ---- public goroutine API ---- */

GORT_EXPORT int64_t gort_go(gort_fn fn, void *arg)
{
	preemptcheck();
	struct g *gp = getg();
	if (!gp || gp == gp->m->g0 || !fn) {
		errno = !fn ? EINVAL : EPERM;
		return -1;
	}
	struct task *t = gp->task;
	int r = task_may_spawn(t);
	if (r < 0) {
		errno = -r;
		return -1;
	}
	struct g *newg = newproc(fn, arg, t, t ? t->stacksize : 0, &r);
	if (!newg) {
		task_spawn_failed(t);
		errno = -r;
		return -1;
	}
	int64_t goid = newg->goid;
	/* Backpressure: a goroutine that creates work faster than its P runs it
	 * would queue up cold Gs and stacks without bound (1M Gs, 4 GiB of stack
	 * pages); once the local queue is half full it lets the queue run while
	 * the new Gs' memory is still in cache. Goroutine order stays unspecified. */
	struct p *pp = gp->m->p;
	if (atomic_load_explicit(&pp->runqtail, memory_order_relaxed) -
		    atomic_load_explicit(&pp->runqhead, memory_order_relaxed) >= RUNQ_SIZE / 2)
		gosched();
	return goid;
}

GORT_EXPORT void gort_yield(void)
{
	struct g *gp = getg();
	if (!gp || gp == gp->m->g0) {
		sched_yield();
		return;
	}
	gosched();
}

GORT_EXPORT _Noreturn void gort_exit(void)
{
	struct g *gp = getg();
	if (!gp || gp == gp->m->g0)
		throw("gort_exit: not on a goroutine");
	if (unlikely(gp->oncing))
		once_abandon(gp);
	goexit1();
}

GORT_EXPORT int64_t gort_id(void)
{
	preemptcheck();
	struct g *gp = getg();
	return gp && gp != gp->m->g0 ? gp->goid : 0;
}

GORT_EXPORT int gort_procs(void)
{
	preemptcheck();
	return gomaxprocs;
}

GORT_EXPORT void gort_lock_os_thread(void)
{
	preemptcheck();
	struct g *gp = getg();
	if (!gp || gp == gp->m->g0)
		return;
	struct m *mp = gp->m;
	if (++mp->lockedext == 0)
		throw("gort_lock_os_thread nested too deeply");
	mp->lockedg = gp;
	gp->lockedm = mp;
}

GORT_EXPORT void gort_unlock_os_thread(void)
{
	preemptcheck();
	struct g *gp = getg();
	if (!gp || gp == gp->m->g0)
		return;
	struct m *mp = gp->m;
	if (mp->lockedext == 0)
		return;
	if (--mp->lockedext == 0) {
		mp->lockedg = NULL;
		gp->lockedm = NULL;
	}
}

GORT_EXPORT int64_t gort_now(void)
{
	preemptcheck();
	return nanotime();
}

/* How many Gs were ever allocated (live or pooled): tests check reuse with it. */
int64_t allg_count(void)
{
	lock(&allglock);
	int64_t n = allglen;
	unlock(&allglock);
	return n;
}

/* forEachG: calls fn(gp, arg) for every G ever allocated (live, dead or pooled),
 * under allglock, from any thread (stats.c's listings). fn must not create
 * goroutines or take allglock; the G's fields may change under it. */
void forEachG(void (*fn)(struct g *gp, void *arg), void *arg)
{
	lock(&allglock);
	for (struct g *gp = allgs; gp; gp = gp->alllink)
		fn(gp, arg);
	unlock(&allglock);
}
