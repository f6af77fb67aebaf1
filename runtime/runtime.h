/* runtime/runtime.h: the runtime's internal types (G, M, P, sched) and the calls between its files. */
#ifndef GORT_RUNTIME_H
#define GORT_RUNTIME_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "asm.h"
#include "gort.h"

#define GORT_EXPORT __attribute__((visibility("default")))
#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- cleanup attributes (STYLE.md) ---- */
static inline void freep(void *p) { free(*(void **)p); }
static inline void closep(int *fd) { if (*fd >= 0) close(*fd); }
#define _cleanup_(f)     __attribute__((cleanup(f)))
#define _cleanup_free_   _cleanup_(freep)
#define _cleanup_close_  _cleanup_(closep)

/* procyield: n spin-wait hints to the CPU (Go's procyield). */
static inline void procyield(int n)
{
	while (n-- > 0) {
#if defined(__x86_64__)
		__builtin_ia32_pause();
#elif defined(__aarch64__)
		__asm__ volatile("yield");
#endif
	}
}

/* ---- low-level locks and notes (lock_futex.c) ----
 * mutex: a futex lock for runtime-internal state; holding one pins the goroutine to
 * its M (m->locks), so it may not park or be preempted while holding it.
 * note: a one-shot wakeup for one sleeping M, as Go's note. */
struct mutex { _Atomic uint32_t key; };
struct note { _Atomic uint32_t key; };
void lock(struct mutex *l);
void unlock(struct mutex *l);
void noteclear(struct note *n);
void notewakeup(struct note *n);
void notesleep(struct note *n);
/* Sleeps until woken or ns elapsed (ns < 0: forever); true if woken. */
bool notetsleep(struct note *n, int64_t ns);
int futexsleep(_Atomic uint32_t *addr, uint32_t val, int64_t ns);
void futexwakeup(_Atomic uint32_t *addr, int cnt);
/* The asymmetric fence (lock_futex.c's essay), for protocols whose common side
 * pairs a plain store with a later plain load. membarrier_ok: whether the
 * process registered for membarrier (fixed before main; false also with
 * GORT_LOCK_NO_MEMBARRIER=1): only then may a common side skip its fence.
 * membarrier_all: a full barrier on every running thread of the process,
 * errno kept; 0, or -errno (-ENOSYS when not registered): on failure the rare
 * side must act as if the common side's store were not visible. */
bool membarrier_ok(void);
int membarrier_all(void);

/* ---- goroutine statuses: each says what it guarantees ---- */
enum gstatus {
	/* idle: just allocated, not yet initialised; on no list */
	G_IDLE = 0,
	/* runnable: on a run queue, not executing; its stack is not owned by any M */
	G_RUNNABLE,
	/* running: executing user code on gp->m, which owns its stack; has a P */
	G_RUNNING,
	/* syscall: in a blocking call between entersyscall and exitsyscall; owns its
	 * stack, has an M, and its P may be retaken by sysmon */
	G_SYSCALL,
	/* waiting: parked (gopark); on some wait queue that will goready it, stack
	 * not in use by any M */
	G_WAITING,
	/* preempted: stopped at an asynchronous safe point, about to be queued */
	G_PREEMPTED,
	/* dead: finished (or never started); on a free list with its stack, or being
	 * initialised by newproc */
	G_DEAD,
};

/* Why a goroutine is waiting, as gortctl ps shows it. */
enum waitreason {
	WAIT_NONE = 0,
	WAIT_CHAN_RECV,
	WAIT_CHAN_SEND,
	WAIT_CHAN_RECV_NIL,
	WAIT_CHAN_SEND_NIL,
	WAIT_SELECT,
	WAIT_SELECT_NO_CASES,
	WAIT_SLEEP,
	WAIT_MUTEX,
	WAIT_WAITGROUP,
	WAIT_ONCE,
	WAIT_IO_READ,
	WAIT_IO_WRITE,
	WAIT_IO,
	WAIT_POLL,
	WAIT_PANIC,
	WAIT_TASK_EXIT,
	WAIT_LOCKED_THREAD,
	WAIT_COUNT
};
const char *waitreason_string(enum waitreason r);

struct task;
struct sudog;

/* gobuf: what gogo needs to resume a goroutine. Only sp: the rest of the context
 * (callee-saved registers, FP control, resume pc) is on the goroutine's own stack. */
struct gobuf { uintptr_t sp; };

struct g {
	/* The first line holds what a hand-off reads of the G it readies and
	 * resumes (goready, park_direct_next, execute_prep, errno's restore) and
	 * its own switch out (switched_to_g0): in a ring of a thousand
	 * goroutines each line of a G is one more cache miss a hop. (param is
	 * only stored by the readier, in the line the G writes as it resumes.) */
	struct gobuf sched;      /* known to arch/ (G_SCHED_SP) */
	struct m *m;             /* M running it, or NULL; known to arch/ (G_M) */
	uintptr_t stacklo;       /* usable stack [stacklo, stackhi); a guard or a zero canary below */
	/* chan.c's lastpeer: the sudog of the partner its last hand-off went
	 * to, on that goroutine's stack, which goready prefetches; maybe stale */
	void *lastpeer;
	struct task *task;
	/* gclock() since when it is in its current status (ps); while it runs,
	 * the start of its run slice (its task's CPU time) */
	int64_t waitsince;
	struct m *lockedm;       /* lockOSThread: the only M this G runs on */
	int goerrno;             /* errno while switched out (errno is per thread) */
	_Atomic uint8_t atomicstatus; /* enum gstatus */
	_Atomic bool preempt;    /* preemption requested (sysmon) */
	uint8_t waitreason;
	bool stackguarded;       /* guard page below stacklo (else: zero canary checked on switch) */
	/* the second line on */
	uintptr_t stackhi;
	void *param;             /* passed by whoever readies a parked G (chan: the sudog) */
	struct sudog *waiting;   /* sudogs this G is blocked on (select) */
	/* preempt.c: where asyncPreempt resumes the interrupted code, and (aarch64)
	 * its PSTATE; set by the preemption signal handler. Known to arch/ (G_SIGPC,
	 * G_SIGPSTATE) */
	uintptr_t sigpc, sigpstate;
	_Atomic uint32_t selectdone;
	bool stackreleased;      /* pooled dead G whose stack pages went back to the kernel */
	struct g *schedlink;     /* run queue, free list, wait list link */
	int64_t goid;
	gort_fn fn;              /* entry, for ps and traces */
	void *arg;
	int64_t parentgoid;
	struct g *alllink;       /* allgs list */
	/* the global free list (proc.c): in the first G of a batch of dead Gs,
	 * the first G of the next batch */
	struct g *gfreebatch;
#ifdef GORT_FIBER_HOOKS
	/* sanitizer builds only (fiber.c): elsewhere a G is 16 bytes smaller
	 * (a million parked goroutines: 16 MB of RSS) */
	void *fiber;             /* TSan fiber / ASan fake stack */
	void *asan_fake_stack;
#endif
	/* netpoll.c: the io request it is parked on (struct iowait *), 0 if none;
	 * bit 0: pinned by io_cancel_g */
	_Atomic uintptr_t iowait;
	/* sync.c: the gort_once_do calls whose function runs on this G, innermost
	 * first (records on its stack); once_abandon completes them */
	struct oncerec *oncing;
	/* sema.c: the semaphore waiter (on its stack) it is parked as, while in
	 * semacquire; sema_abandon completes it if the G is discarded */
	struct semwaiter *semwait;
};

struct m {
	struct g *g0;            /* scheduling stack; known to arch/ (M_G0) */
	struct g *curg;          /* current running goroutine */
	struct p *p;             /* attached P, or NULL */
	struct p *nextp;         /* P to acquire when woken */
	struct p *oldp;          /* P before entering a syscall */
	int64_t id;
	int32_t locks;           /* runtime locks held: no preemption, no parking */
	bool spinning;           /* out of work, looking for some */
	bool exiting;            /* runtime shutting down or locked G exited: leave */
	bool idlelocked;         /* asleep in stoplockedm (sched.lock) */
	struct note park;
	struct m *schedlink;     /* idle M list */
	struct m *alllink;
	struct g *lockedg;       /* lockOSThread: the G locked to this M */
	uint32_t lockedext;      /* gort_lock_os_thread nesting */
	uint32_t fastrand[2];
	pid_t procid;            /* gettid() */
	_Atomic uint32_t fenceack; /* SIGPREEMPTs its thread handled (p_fence) */
	/* gopark's unlock function, run on g0 once the G is off its stack */
	bool (*waitunlockf)(struct g *gp, void *arg);
	void *waitlock;
	void *exitbuf[5];        /* __builtin_setjmp buffer: mexit returns into mstart */
	void *tsan_fiber0;       /* TSan: the thread's own fiber (fiber.c) */
	uintptr_t thread;        /* pthread_t */
	int64_t ncgocall;
	/* gclock() at the last switch to g0 on this M; 0 once the M may have slept
	 * or spun since (mpark, findrunnable): then execute reads the clock */
	int64_t clock;
};

enum pstatus {
	/* idle: not running user code or the scheduler; on the idle P list */
	P_IDLE = 0,
	/* running: owned by an M that runs user code or the scheduler */
	P_RUNNING,
	/* syscall: its M is in a system call; sysmon may take it (retake) */
	P_SYSCALL,
	/* dead: runtime stopped */
	P_DEAD,
};

#define RUNQ_SIZE 256
#define GFREE_MAX 64
#define GFREE_BATCH (GFREE_MAX / 2) /* Gs moved at once between a P's cache and the global one */

struct p {
	int32_t id;
	_Atomic uint32_t status;
	struct p *link;              /* idle P list */
	uint32_t schedtick;          /* incremented on every scheduler call */
	_Atomic uint32_t sysmontick; /* schedtick as execute() last published it for sysmon */
	_Atomic uint32_t syscalltick;/* incremented on every system call */
	struct m *m;                 /* back-link to the M (NULL if idle) */
	uint64_t goidcache, goidcacheend;

	/* Local run queue: a lock-free ring. The owner puts at tail and gets at head;
	 * thieves take half from head with a CAS. */
	_Atomic uint32_t runqhead;
	_Atomic uint32_t runqtail;
	struct g *_Atomic runq[RUNQ_SIZE];
	/* runnext: a G readied by the running G, run next and inheriting the time
	 * slice (communication pairs stay on one P) */
	struct g *_Atomic runnext;
	/* Gs put in runnext so far (owner writes, thieves read): a thief that
	 * sees it move while it waits leaves runnext to its owner */
	_Atomic uint32_t runnextgen;
	/* runnext is biased to its owner, who puts into an empty one and takes
	 * with plain stores (proc.c, runnext_take): runnexttaking is up while the
	 * owner takes so; runnextsteal is the thieves' lock, which the owner
	 * checks before a plain take */
	_Atomic uint32_t runnexttaking;
	_Atomic uint32_t runnextsteal;
	/* chan.c: the channels (struct hchan *) whose lock, biased to this P,
	 * its running goroutine holds; written by the owner, read by revokers */
	void *_Atomic chanheld[4];

	/* dead Gs with stacks of the default size, for newproc to reuse */
	struct g *gfree;
	int32_t gfreecnt;

	struct ptimers *timers;      /* timer.c */
	void *io;                    /* io.c: this P's submission ring */
	_Atomic int64_t timer0when;  /* earliest timer, 0 if none (readable by others) */
};

/* An intrusive queue of Gs through g->schedlink. */
struct gqueue { struct g *head, *tail; int32_t n; };

struct schedt {
	_Atomic uint64_t goidgen;
	struct mutex lock;

	struct m *midle;             /* idle Ms waiting for work */
	int32_t nmidle;
	int32_t nmidlelocked;        /* Ms asleep with their locked G parked */
	int32_t mnext;               /* number of Ms created, next M id */
	_Atomic int32_t nmspinning;
	_Atomic int32_t nmsys;       /* Ms in syscalls (not counted as running) */

	struct p *pidle;             /* idle Ps */
	_Atomic int32_t npidle;

	struct gqueue runq;          /* global run queue */
	_Atomic int32_t runqsize;

	/* global cache of dead Gs: batches (chains through schedlink) linked
	 * through their first G's gfreebatch; every batch holds GFREE_BATCH Gs
	 * but the first, which holds gfreen */
	struct mutex gflock;
	struct g *gfree;
	int32_t gfreen;
	int32_t ngfree;

	_Atomic int64_t lastpoll;    /* 0: an M is blocked in netpoll */
	_Atomic int64_t pollUntil;   /* when that M wakes */

	_Atomic bool stopping;       /* runtime shutdown in progress */
	struct m *allm;
	int32_t nmlive;              /* Ms alive (excluding exited) */
	struct note mexitnote;       /* woken as Ms exit during shutdown */
	/* spinning Ms' final checks before sleeping, and how many of them ran
	 * membarrier (another P was not idle): proc.c's others_running */
	_Atomic uint64_t nfinalchecks, nfinalfences;
	/* revocations of a channel lock's bias (chan.c's chanlock_slow) */
	_Atomic uint64_t nchanrevokes;
};

extern struct schedt sched;
extern struct p **allp;
extern int32_t gomaxprocs;
extern size_t default_stacksize;

_Static_assert(offsetof(struct g, sched) + offsetof(struct gobuf, sp) == G_SCHED_SP, "known to arch/");
_Static_assert(offsetof(struct g, m) == G_M, "known to arch/");
_Static_assert(offsetof(struct g, stackhi) == 64, "a hand-off touches the first line of the Gs it readies");
#ifndef GORT_FIBER_HOOKS
_Static_assert(sizeof(struct g) <= 192, "a G is three lines (proc.c's galloc slots)");
#endif

/* A G's usable stack size: 0 for a g0 whose thread's stack is unknown. */
static inline size_t gstacksize(const struct g *gp)
{
	return gp->stackhi - gp->stacklo;
}
_Static_assert(offsetof(struct m, g0) == M_G0, "known to arch/");
_Static_assert(offsetof(struct g, sigpc) == G_SIGPC, "known to arch/");
_Static_assert(offsetof(struct g, sigpstate) == G_SIGPSTATE, "known to arch/");

/* ---- the current goroutine ----
 * g_tls is read through asm volatile so that the compiler never keeps a thread's
 * TLS address across a call that may have moved the goroutine to another thread. */
extern __thread struct g *g_tls __attribute__((tls_model("initial-exec")));
static inline __attribute__((always_inline)) struct g *getg(void)
{
	struct g *gp;
#if defined(__x86_64__)
	__asm__ volatile("movq g_tls@gottpoff(%%rip), %0\n\tmovq %%fs:(%0), %0" : "=r"(gp));
#elif defined(__aarch64__)
	__asm__ volatile("mrs %0, tpidr_el0\n\t"
			 "adrp x16, :gottprel:g_tls\n\t"
			 "ldr x16, [x16, #:gottprel_lo12:g_tls]\n\t"
			 "ldr %0, [%0, x16]"
			 : "=r"(gp) : : "x16");
#endif
	return gp;
}
static inline bool ing0(void) { struct g *gp = getg(); return gp == NULL || gp == gp->m->g0; }

static inline uint32_t readgstatus(struct g *gp)
{
	return atomic_load_explicit(&gp->atomicstatus, memory_order_acquire);
}
void casgstatus(struct g *gp, uint32_t from, uint32_t to);
/* set_errno: errno of the thread running the caller now. Out of line and opaque
 * to the optimiser, because the compiler treats __errno_location() as constant
 * within a function, while a goroutine that parked may resume on another thread:
 * the public calls that can park set errno through this. */
void set_errno(int e);

/* ---- proc.c ---- */
_Noreturn void throw(const char *msg);
int64_t nanotime(void);
uint32_t fastrand(void);
static inline uint32_t fastrandn(uint32_t n) { return (uint32_t)(((uint64_t)fastrand() * n) >> 32); }

/* newproc: a new runnable G in task t running fn(arg) on a stack of stacksize bytes
 * (0: default); queued on the current P. Returns the G, or NULL with -errno in *ret_err. */
struct g *newproc(gort_fn fn, void *arg, struct task *t, size_t stacksize, int *ret_err);

/* gopark: park the current G with reason; on g0, unlockf(gp, arg) runs and may
 * return false to resume the G at once. The G sleeps until goready. */
void gopark(bool (*unlockf)(struct g *gp, void *arg), void *arg, enum waitreason reason);
/* goready: make a waiting G runnable, next on the current P. Needs a P (any
 * goroutine or a scheduling M); use injectglist from threads without one. */
void goready(struct g *gp);
/* injectglist: make a queue of waiting Gs runnable from any thread; wakes Ms. */
void injectglist(struct gqueue *q);
void gosched(void);
/* once_abandon (sync.c): gp's code will never run again (gort_exit, its task
 * ended) while gort_once_do functions run on it: each such once counts as done
 * and its waiters return, as Go's deferred Store/Unlock do on Goexit. On gp or
 * on g0 with a P, before gp's stack is reused. Can't fail. */
void once_abandon(struct g *gp);
/* sema_abandon (sema.c): gp, woken from semacquire, is discarded before it
 * returned (its task ended): what it would have done with the release (take
 * the count, a mutex's woken-waiter part) is done for it. On g0 with a P,
 * before gp's stack is reused. Can't fail (without memory the release is
 * left behind, as before). */
void sema_abandon(struct g *gp);
/* sema_drop_ghosts (sema.c): forgets the waiters of ended tasks no release has
 * reached yet; runtime_stop, once no goroutine is left. Can't fail. */
void sema_drop_ghosts(void);
int gfree_scavenge(int max);
int64_t allg_count(void);
void wakep(void);
/* wakenetpoller: a timer at `when` may need an M watching it */
void wakenetpoller(int64_t when);
static inline struct m *acquirem(void) { struct m *mp = getg()->m; mp->locks++; return mp; }
static inline void releasem(struct m *mp) { mp->locks--; }

/* Scheduler internals that sysmon.c, preempt.c and syscall.c share with proc.c
 * (Go keeps them in one package); each is documented at its definition. */
_Noreturn void schedule(void);
_Noreturn void execute(struct g *gp, bool inherit);
void dropg(void);
void switched_to_g0(struct g *gp);
void globrunqput(struct g *gp);      /* caller holds sched.lock */
struct p *pidleget(void);            /* caller holds sched.lock */
void acquirep(struct p *pp);
bool runqempty(struct p *pp);
void stopm(void);
void stoplockedm(void);
/* handoffp: true if it gave pp to an M to run (work was waiting), false if pp
 * went to the idle list */
bool handoffp(struct p *pp);

/* ---- preemption (preempt.c) ----
 * The signal sysmon sends to the M of a G that ignored its preemption flag:
 * SIGURG, as Go (unused by programs in practice, ignored by default, and
 * harmless when it arrives late). Under ThreadSanitizer, SIGTRAP: TSan runs the
 * handler of a signal it deems asynchronous only later, at its next interceptor
 * and on a copy of the context, so it could neither stop a loop nor redirect the
 * thread; synchronous ones (SIGTRAP) reach the handler at once. */
#if defined(__SANITIZE_THREAD__)
#define SIGPREEMPT SIGTRAP
#else
#define SIGPREEMPT SIGURG
#endif
void preempt_init(void);
void preempt_fini(void);
/* preemptM: sends the preemption signal to mp's thread. Any thread. */
void preemptM(struct m *mp);
/* p_fence: a full memory barrier on the thread of the M holding pp (if one
 * does), wherever it is (running, blocked in a system call): SIGPREEMPT, then
 * waits until its handler has acknowledged it -- membarrier for one thread,
 * where membarrier fails. 0 (also when pp is idle or the thread gone: it runs
 * nothing of ours), or -ENOSYS when the handler is not installed. Any thread
 * but that M's; pins nothing. */
int p_fence(struct p *pp);
/* gopreempt: the calling G gives up its P at once if sysmon flagged it and it
 * may be preempted here (a G with a P, holding no runtime lock, not in a system
 * call section); it resumes later, on any P. */
void gopreempt(void);
/* preemptcheck: the cooperative preemption point of the public gort_* entry
 * points (and of any runtime entry that does not otherwise schedule): one load
 * and a branch unless sysmon asked the calling goroutine to yield. */
static inline void preemptcheck(void)
{
	struct g *gp = getg();
	if (unlikely(gp && atomic_load_explicit(&gp->preempt, memory_order_relaxed)))
		gopreempt();
}
/* The code asynchronous preemption may stop in besides the main program's (when
 * it is dynamically linked): task modules. preempt_code_add: [lo, hi) is such
 * code (any number of ranges); 0, -EINVAL (empty range), -ENOMEM.
 * preempt_code_remove: forgets the range added with exactly these bounds; 0 or
 * -ENOENT. preempt_code_add_object: adds the executable segments of the loaded
 * object (dlopen'ed module, or the main program) that contains addr; 0,
 * -ENOENT (no object there), -ENOMEM. preempt_code_remove_object undoes it.
 * preempt_code_contains: whether pc is such code (and not the runtime's), as
 * the signal handler decides. Any thread; add and remove may wait briefly for
 * signal handlers reading the table they replace. */
int preempt_code_add(uintptr_t lo, uintptr_t hi);
int preempt_code_remove(uintptr_t lo, uintptr_t hi);
int preempt_code_add_object(const void *addr);
int preempt_code_remove_object(const void *addr);
bool preempt_code_contains(uintptr_t pc);
int preempt_recent_pcs(uint64_t since, uintptr_t *out, int max, uint64_t *ret_seq);

/* ---- system calls (syscall.c): Go's entersyscall/exitsyscall ----
 * entersyscall: the calling G is about to block in the kernel: its P stays
 * attached but sysmon may hand it to another M (retake) while the call lasts.
 * exitsyscall: back; reacquires the old P if still free, else any idle P, else
 * queues the G on the global queue and parks the M. From a goroutine, in pairs,
 * calling nothing of the runtime in between. */
void entersyscall(void);
void exitsyscall(void);

static inline void gqueue_push(struct gqueue *q, struct g *gp)
{
	gp->schedlink = NULL;
	if (q->tail) q->tail->schedlink = gp; else q->head = gp;
	q->tail = gp;
	q->n++;
}
static inline struct g *gqueue_pop(struct gqueue *q)
{
	struct g *gp = q->head;
	if (gp) {
		q->head = gp->schedlink;
		if (!q->head) q->tail = NULL;
		q->n--;
		gp->schedlink = NULL;
	}
	return gp;
}

/* the runtime's lifetime (gort_run, and later gortd) */
int runtime_start(int procs, size_t stacksize);
void runtime_stop(void);
bool runtime_started(void);
int getproccount(void);
/* cgroup v2 CPU limit from a cpu.max text ("max 100000" / "50000 100000"):
 * CPUs rounded up, or 0 if unlimited or unparsable. */
int cgroup_cpu_limit_parse(const char *text);
int cgroup_cpu_limit(void);

/* ---- stack.c ---- */
struct stackalloc { uintptr_t lo, hi; bool guarded; };
int stackalloc(size_t size, struct stackalloc *ret);
void stackfree(uintptr_t lo, uintptr_t hi, bool guarded);
void stack_release_pages(uintptr_t lo, uintptr_t hi);
bool stack_canary_ok(struct g *gp);
void stack_canary_init(struct g *gp);
size_t stack_round(size_t size);
void stack_shutdown(void);
struct stack_stats { uint64_t arenas, slots, guarded, inuse; };
void stack_stats(struct stack_stats *ret);

/* ---- task.c: the goroutines' owner (one per gort_run, one per daemon task) ---- */

/* task_obj: a runtime object a task owns (a channel, ...), embedded in it and
 * linked on the task's objs list under task->lock; free_fn frees the object
 * that embeds it when the task ends without having freed it. */
struct task_obj {
	struct task_obj *next, *prev;
	void (*free_fn)(struct task_obj *o);
};

struct task {
	int64_t id;
	/* Goroutines created and ended, counted per P so that spawning takes no
	 * locked instruction; each P writes only its own slot, readers sum
	 * (task_ngoroutines: exact once the task's Ps are quiet). */
	struct task_pcount *pcount;  /* gomaxprocs + 1 slots; the last for threads without a P */
	int exit_code;
	/* exited: the task has ended and its reaper is stopping its goroutines:
	 * execute() discards each instead of running it (task.c's essay) */
	_Atomic bool exited;
	size_t stacksize;            /* its goroutines' stacks; 0: the default */
	int max_goroutines;          /* 0: no limit; else nlive counts the live ones */
	_Atomic int64_t nlive;
	struct mutex lock;           /* protects the lists below */
	struct task_obj *objs;       /* channels and other objects the task owns */
	int (*main_fn)(int, char **);
	int argc;
	char **argv;
	int stdin_fd, stdout_fd, stderr_fd; /* the task's own stdio (task_fd) */
	struct task_life *life;      /* task.c's own: its end, module, logs, references */
};

/* the task a goroutine belongs to: creation limits and exit (task.c) */
struct task_pcount {
	int64_t created, ended;
	/* run slices of its goroutines: their summed length (gclock ns, system
	 * call sections excluded) and how many ended; its gort_* io calls; panics */
	int64_t cpu_ns, switches, ioreqs, panics;
} __attribute__((aligned(64)));
int task_pcount_init(struct task *t);
void task_pcount_fini(struct task *t);
int64_t task_ngoroutines(const struct task *t);
int64_t task_ncreated(const struct task *t);
/* task_may_spawn: 0, or why t may not get another goroutine: -ECANCELED (it has
 * ended), -EAGAIN (its limit); a 0 reserves a place that newproc's task_gocreated
 * fills or task_spawn_failed gives back. */
int task_may_spawn(struct task *t);
void task_spawn_failed(struct task *t);
void task_gocreated(struct task *t, struct p *pp);
/* gclock: the scheduler's coarse clock, for ps's time stamps and run slices:
 * CLOCK_MONOTONIC_COARSE as last published (stats.c), by sysmon every round
 * (at most 10 ms apart while any P works) and by gclock_fresh. Reading it is
 * one load, where the clock itself costs ~6 ns, a sixth of a yield. A sum of
 * slice lengths read with it is right on average (a slice counts a whole
 * update interval as often as it straddles an update), not per slice.
 * gclock_fresh: reads the clock, publishes it (never backwards), returns it:
 * for an M back from sleep, and anyone else who may find gclock stale
 * (sysmon sleeps without updating it while every P is idle). Any thread. */
extern _Atomic int64_t gclock_now;
static inline int64_t gclock(void)
{
	return atomic_load_explicit(&gclock_now, memory_order_relaxed);
}
int64_t gclock_fresh(void);
/* mclock: mp's time of its last switch while still fresh, else the clock. */
static inline int64_t mclock(struct m *mp)
{
	int64_t c = mp ? mp->clock : 0;
	return likely(c) ? c : gclock_fresh();
}
/* task_count: adds n to a per-task counter (a field of struct task_pcount): in
 * the slot of pp, the caller's own P, with a plain store; in the shared slot
 * with an atomic add when there is no P (pp NULL). */
#define task_count(t, pp, field, n)                                                     \
	do {                                                                             \
		struct p *_pp = (pp);                                                    \
		if (likely(_pp)) {                                                       \
			int64_t *_c = &(t)->pcount[_pp->id].field;                      \
			__atomic_store_n(_c, __atomic_load_n(_c, __ATOMIC_RELAXED) + (n), \
					 __ATOMIC_RELAXED);                               \
		} else {                                                                 \
			__atomic_fetch_add(&(t)->pcount[gomaxprocs].field, (n),          \
					   __ATOMIC_RELAXED);                             \
		}                                                                        \
	} while (0)
void task_goexit(struct task *t, struct p *pp);
/* task_module_range: [*ret_lo, *ret_hi) spans the memory t's module is loaded
 * into (its PT_LOAD segments): objects there end with the task. Both 0 for
 * gort_run's task or a module already unloaded. Any thread, no runtime lock
 * held (it takes the dynamic loader's); can't fail. */
void task_module_range(struct task *t, uintptr_t *ret_lo, uintptr_t *ret_hi);
/* task_block_forever: parks the calling goroutine for good (a nil channel, an
 * empty select); only the end of its task readies it, to be discarded. */
_Noreturn void task_block_forever(enum waitreason reason);
/* task_fault: the fault handler's question (on the signal stack): a fault in a
 * task goroutine's code (not the runtime's) becomes a panic of its task, and
 * the context is rewritten to get there; true if so. */
bool task_fault(int sig, void *siginfo, void *uctx);
/* Plugins with an on_event hook (plugin.c): the collector feeds them (trace.c). */
extern _Atomic int32_t plugins_listening;
/* checkdead found every M idle with no timer or io pending (Go's checkdead). */
void task_checkdead(void);
void task_exit(struct task *t, int code);
/* task_own: t (may be NULL: nobody owns o) owns o until task_disown, or frees it
 * with free_fn when it ends. task_disown: o is no longer t's (NULL t: no-op).
 * task_free_objs: frees every object t still owns; once no goroutine of t runs.
 * None can fail. */
void task_own(struct task *t, struct task_obj *o, void (*free_fn)(struct task_obj *o));
void task_disown(struct task *t, struct task_obj *o);
void task_free_objs(struct task *t);

/* ---- signal.c: per-M signal stacks and fault handlers ----
 * signals_init also installs the preemption handler (preempt_init), minit
 * unblocks SIGPREEMPT on every M. */
void signals_init(void);
void signals_fini(void);
void minit(struct m *mp);
void munit(struct m *mp);

/* ---- netpoll.c: where an idle M waits for io, timers and new work ---- */
void netpoll_init(void);
void netpoll_fini(void);
/* Waits up to delay ns (<0: forever, 0: no wait) for io completions; readies
 * their Gs into ret. Only one M blocks here at a time. */
void netpoll(int64_t delay, struct gqueue *ret);
/* Wakes the M blocked in netpoll, if any. */
void netpoll_break(void);
/* netpoll_entersyscall: the calling goroutine is about to block its thread in a
 * system call: the requests its P's ring queued go to the kernel now, not
 * after the call. Can't fail. */
void netpoll_entersyscall(void);
/* Cheap checks for findrunnable: completions may be ready / Gs wait on io. */
bool netpoll_pending(void);
bool netpoll_waiters(void);
/* Submits pp's queued io requests: findrunnable before it looks for completions,
 * handoffp before pp goes idle (a queued request must never sit on an idle P). */
void netpoll_flush(struct p *pp);
/* Once per schedule(): submits pp's queued requests if the oldest has waited too
 * long for its batch (a P busy with runnable goroutines still starts its io). */
void netpoll_schedule(struct p *pp);
/* sysmon, every round: reaps completions that have waited 10 ms for anyone to
 * reap them (and epoll readiness nobody polled for 10 ms); the readied Gs go to
 * the global queue. Cheap when there is nothing to do: a few loads per P. Any
 * thread, typically sysmon's (concurrent calls: all but one return at once). */
void netpoll_if_stale(void);
/* io_cancel_g: cancels the io request gp is parked on (io_uring: ASYNC_CANCEL;
 * readiness poller: the wait ends); the call returns -1 with errno ECANCELED,
 * unless it completed first. gp stays parked until the request's completion has
 * arrived, so its buffers stay valid. 0: cancellation requested; -ENOENT: gp is
 * not parked in a cancellable io call (running, elsewhere, or in a blocking
 * syscall), or is no longer goroutine goid (the G was reused meanwhile). Any
 * thread; the G memory itself must stay allocated (Gs are never freed). */
int io_cancel_g(struct g *gp, int64_t goid);
/* Which io path is in use, and its counters (for stats). */
enum netpoll_mode {
	NETPOLL_OFF = 0,   /* runtime not started */
	NETPOLL_URING,     /* io_uring rings, one per P */
	NETPOLL_EPOLL,     /* no io_uring (refused, too old, GORT_NO_URING=1): epoll + syscall handoff */
};
struct netpoll_stats {
	int mode;                /* enum netpoll_mode */
	uint32_t fallback_ops;   /* NETPOLL_URING: bitmask of io ops (netpoll.h's enum ioop)
				    the kernel lacks, served by the fallback */
	uint64_t submitted;      /* requests handed to io_uring */
	uint64_t enters;         /* io_uring_enter calls that submitted them */
	uint64_t completions;    /* completions reaped */
	uint64_t fallbacks;      /* calls served by the readiness poller or the syscall handoff */
	uint64_t fdwaits;        /* parks on epoll readiness */
	uint64_t cancels;        /* io_cancel_g requests issued */
	uint64_t resubmits;      /* requests retried after a cancellation nobody asked for */
	uint64_t stalereaps;     /* sysmon's reaps (netpoll_if_stale) */
	int64_t inflight;        /* requests submitted and not yet completed */
};
/* Fills *ret (zeroed when the runtime is not started). Any thread; can't fail. */
void netpoll_stats_read(struct netpoll_stats *ret);
const char *netpoll_mode_string(int mode);

/* ---- trace.c: lifecycle events (the consumers' side is trace.h) ----
 * Each hook site reads `if (traceEnabled()) traceGoStart(gp);`: while nobody
 * listens that is one relaxed load and a branch predicted not taken; the hooks
 * are out of line. A hook writes one event into the caller's P's buffer (no
 * lock: the P's owner is its only writer) or, without a P, into a shared
 * lock-free one; a full buffer drops the event (counted). Goroutine events
 * are written for tasks' goroutines only. traceGoStop's reason is enum
 * gort_stop_reason (GORT_STOP_PARKED: gp->waitreason says on what);
 * traceGoUnpark: gp is made runnable by the caller's goroutine (or the
 * runtime). traceTask: TASK_START/TASK_EXIT with the task's name, its
 * task_status and exit code. */
extern _Atomic int32_t trace_on;
extern _Atomic int32_t trace_tasks_on; /* listeners of task events only */
#ifdef GORT_NO_TRACE /* the overhead benchmark's baseline: every hook compiled out */
#define traceEnabled() 0
#else
#define traceEnabled() unlikely(atomic_load_explicit(&trace_on, memory_order_relaxed) != 0)
#endif
#define traceTasksEnabled() \
	(traceEnabled() || atomic_load_explicit(&trace_tasks_on, memory_order_relaxed) != 0)
void traceGoCreate(struct g *newg);
void traceGoStart(struct g *gp);
void traceGoStop(struct g *gp, int reason);
void traceGoUnpark(struct g *gp);
void traceGoEnd(struct g *gp);
void traceProcStart(void);
void traceProcStop(void);
/* pp, taken from an M in a system call, stops (sysmon's retake, which owns pp
 * until handoffp: it writes pp's buffer) */
void traceProcRetaken(struct p *pp);
void traceTask(uint32_t kind, int64_t task, const char *name, int status, int code);

/* ---- timers (timer.c): run from schedule/findrunnable ---- */
/* Runs the expired timers of pp; returns the next timer's time (0: none). */
int64_t checktimers(struct p *pp, int64_t now);
void timers_init_p(struct p *pp);
void timers_destroy_p(struct p *pp);

/* The stack gopark's direct switch needs free below the next G's saved
 * context, where park_direct_m runs (unlockf, a futex wake, trace and
 * accounting hooks); park_direct_next checks it and otherwise parks through
 * g0. Sanitizer builds' frames are several times larger (redzones, and no
 * fake stack during the switch: fiber.c). */
#ifdef GORT_FIBER_HOOKS
#define PARK_DIRECT_ROOM (32 * 1024)
#else
#define PARK_DIRECT_ROOM 8192
#endif

/* ---- sanitizer fiber annotations (fiber.c): no-ops unless the Makefile's sanitizer
 * builds define GORT_FIBER_HOOKS (arch/ sees it too: goentry calls fiber_started) ---- */
#ifdef GORT_FIBER_HOOKS
void fiber_create(struct g *gp);
void fiber_destroy(struct g *gp);
void fiber_switch(struct g *from, struct g *to, bool from_dying);
void fiber_switch_direct(struct g *gp, struct g *next);
void fiber_switched(struct g *to);
void fiber_init_g0(struct g *g0);
void fiber_started(void);
void fiber_reset(struct g *gp);
void fiber_exit_m(struct m *mp);
#else
static inline void fiber_exit_m(struct m *mp) { (void)mp; }
static inline void fiber_reset(struct g *gp) { (void)gp; }
static inline void fiber_create(struct g *gp) { (void)gp; }
static inline void fiber_destroy(struct g *gp) { (void)gp; }
static inline void fiber_switch(struct g *f, struct g *t, bool d) { (void)f; (void)t; (void)d; }
static inline void fiber_switch_direct(struct g *gp, struct g *next) { (void)gp; (void)next; }
static inline void fiber_switched(struct g *to) { (void)to; }
static inline void fiber_init_g0(struct g *g0) { (void)g0; }
#endif

#endif
