/* runtime/preempt.c: preemption: the cooperative flag's slow path, the preemption signal, its safe-point rules, asyncPreempt2. */

/*
 * Preemption
 * ==========
 *
 * sysmon (sysmon.c) notices a goroutine that has run for forcePreemptNS (10 ms)
 * on one schedtick and asks it to stop, in two steps, as Go does:
 *
 * Cooperative. It sets g->preempt. Every public gort_* entry point starts with
 * preemptcheck(): a load and a branch; when the flag is set, gopreempt() gives
 * the P away (gopreempt_m: the G goes to the global run queue, runnable on any P,
 * as Go's gopreempt_m) unless the G may not stop there (it holds a runtime lock,
 * or is between gort_syscall_enter and gort_syscall_exit). execute() clears the
 * flag when the G starts its next slice.
 *
 * Asynchronous. A goroutine that ignores the flag for a while (a loop that never
 * calls the runtime) gets SIGPREEMPT (SIGURG) on its M's thread (tgkill). The
 * handler, doSigPreempt, runs on the M's signal stack and decides whether the
 * interrupted instruction is an asynchronous safe point:
 *   - the thread runs its M's current goroutine (not g0: the scheduler), which
 *     still has the flag set (else the request is stale: it yielded already);
 *   - the G is G_RUNNING with a P (not in a system call section) and its M holds
 *     no runtime lock (m->locks): runtime state may be half updated otherwise;
 *   - the pc is in program code: in the main program (when it is dynamically
 *     linked) or in a registered task module, and not in the runtime's own code.
 *     Not in libc or any other shared library: libc holds locks (malloc, stdio)
 *     and per-thread state that another goroutine on the same thread would
 *     trample, or that would deadlock a single P; and not in the runtime, whose
 *     code assumes it is not interrupted by itself;
 *   - there is stack for the saved state below the interrupted sp.
 * Anywhere else it counts a deferred preemption and returns; sysmon signals
 * again on a later round (the retry interval doubles while it fails). At a safe
 * point it makes the interrupted code "call" asyncPreempt (arch/): it stores
 * the interrupted pc in g->sigpc and rewrites the signal context so that the
 * thread returns from the handler into the trampoline, every register else as
 * interrupted; the trampoline makes room for itself on the goroutine's stack
 * (past the red zone on x86_64) and saves every register -- general,
 * flags, and the whole x87/SSE/AVX/AVX-512 state with xsave on x86_64; x0-x30,
 * NZCV, FPSR/FPCR and q0-q31 on aarch64 -- and calls asyncPreempt2 (here), which
 * switches to g0 (mcall) into gopreempt_m like the cooperative path. When the G
 * is scheduled again, on whichever M, asyncPreempt2 returns, the trampoline
 * restores everything and the interrupted code continues. The handler itself
 * only reads the M and G and writes the context and g->sigpc: all of it
 * async-signal-safe, and nothing below the interrupted sp (which valgrind could
 * not follow through the sigreturn).
 *
 * Telling runtime code from program code. When the runtime is libgort.so, its
 * code is that object's. But tests link the runtime's objects into the
 * executable, and libgort.a users do the same, so the Makefile moves the
 * runtime's code (runtime/ and arch/) from .text into its own section,
 * gort_text, right after compiling (objcopy --rename-section), and the linker
 * bounds it with __start_gort_text/__stop_gort_text wherever it ends up. A
 * section attribute on every function would do the same but needs every
 * runtime file to remember it; the rename cannot be forgotten.
 *
 * The program's code: at init, the executable segments of the main program,
 * if it is dynamically linked. A statically linked program carries libc inside
 * its own text, indistinguishable from the program's, so it is not registered:
 * such a program gets cooperative preemption only, unless it registers its own
 * code with preempt_code_add (tests do, so that they work either way). Task
 * modules are registered by whoever loads them (preempt_code_add_object).
 *
 * Caveats. A goroutine may resume on another thread after any instruction of
 * program code, not only after a runtime call: code that keeps the address of a
 * __thread variable (errno's, through a cached __errno_location) in a register
 * across long computations sees the old thread's copy -- the same caveat as for
 * gort_* calls, at a finer grain. AMX tile data is not saved (2 KiB of state
 * times every goroutine): a goroutine with tiles in use is never stopped
 * asynchronously. SVE state beyond the low 128 bits of each vector is not saved,
 * as a system call does not either.
 *
 * Under ThreadSanitizer SIGPREEMPT is SIGTRAP (runtime.h says why), and the
 * trampoline's C side keeps the sanitizers' fiber annotations as gosched does.
 */

#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "gort_plugin.h"
#include "sysmon.h"

#define NO_SANITIZE __attribute__((no_sanitize_address, no_sanitize_thread, no_sanitize_undefined))

/* the runtime's code, wherever the linker put it (see the essay) */
extern const char __start_gort_text[] __attribute__((visibility("hidden")));
extern const char __stop_gort_text[] __attribute__((visibility("hidden")));

/* asyncPreempt's C side, called by the trampoline on the goroutine's stack. */
void asyncPreempt2(void *frame);

/* Stack the preempted goroutine needs below the interrupted sp for the C calls
 * after the saved state: asyncPreempt2, the fiber hooks, mcall's frame. */
#ifdef GORT_FIBER_HOOKS
#define PREEMPT_CALL_STACK 8192
#else
#define PREEMPT_CALL_STACK 2048
#endif

#if defined(__x86_64__)
/* arch/x86_64.S: how asyncPreempt saves the extended state (set here once). */
extern uint64_t preempt_xsave_mask, preempt_xsave_size;
#define XFEATURE_AMX ((1ULL << 17) | (1ULL << 18)) /* XTILECFG, XTILEDATA */
#define FP_XSTATE_MAGIC1 0x46505853U
#elif defined(__aarch64__)
/* What asyncPreempt builds and rt_sigreturn restores from: the kernel's
 * struct rt_sigframe, whose ucontext glibc's ucontext_t mirrors exactly. */
struct rt_sigframe {
	siginfo_t info;
	ucontext_t uc;
};
_Static_assert(sizeof(struct rt_sigframe) == SF_SIZE, "known to arch/aarch64.S");
_Static_assert(offsetof(struct rt_sigframe, uc.uc_mcontext.regs) == SF_REGS, "known to arch/aarch64.S");
_Static_assert(offsetof(struct rt_sigframe, uc.uc_mcontext.sp) == SF_REGS + 248, "known to arch/aarch64.S");
_Static_assert(offsetof(struct rt_sigframe, uc.uc_mcontext.pc) == SF_REGS + 256, "known to arch/aarch64.S");
_Static_assert(offsetof(struct rt_sigframe, uc.uc_mcontext.pstate) == SF_REGS + 264, "known to arch/aarch64.S");
_Static_assert(offsetof(struct rt_sigframe, uc.uc_mcontext.__reserved) == SF_FPSIMD, "known to arch/aarch64.S");
_Static_assert(SF_SIZE % 16 == 0, "the frame keeps sp 16-byte aligned");
#endif

/* ---- code ranges ----
 *
 * The signal handler reads the table of program code ranges; module loads and
 * unloads change it. The table is an immutable array sorted by lo, published
 * through one pointer (RCU style): a writer (under codelock) builds the new
 * array, publishes it, then waits until no handler can still be reading the
 * old one and frees it. A handler announces itself in codereaders before it
 * loads the pointer and leaves after its last access to the array: all
 * sequentially consistent, so a writer that published and then sees no reader
 * knows every later reader loads the new array. A reader never waits, takes no
 * lock and calls nothing: async-signal-safe. The wait is short (a handler
 * reads for a few hundred ns) and only module loads and unloads pay it.
 *
 * Ranges may nest (a test's own section inside the program's text): maxhi[i]
 * is the largest hi of ranges 0..i, so a lookup finds the last range with
 * lo <= pc by bisection and walks back only while an earlier range can still
 * reach pc.
 */
struct coderange {
	uintptr_t lo, hi, maxhi;
};
struct codetab {
	size_t n;
	struct coderange r[];
};
static struct codetab *_Atomic codetab; /* NULL: empty */
static _Atomic long codereaders;
static pthread_mutex_t codelock = PTHREAD_MUTEX_INITIALIZER;

/* index of [lo, hi) in t, or -1 */
static ssize_t codetab_find(const struct codetab *t, uintptr_t lo, uintptr_t hi)
{
	for (size_t i = 0; t && i < t->n; i++)
		if (t->r[i].lo == lo && t->r[i].hi == hi)
			return (ssize_t)i;
	return -1;
}

/* Publishes t (owned by the table from now on) in place of the current one,
 * which it frees once no handler can be reading it. Under codelock. */
static void codetab_publish(struct codetab *t)
{
	uintptr_t maxhi = 0;
	for (size_t i = 0; t && i < t->n; i++) {
		if (t->r[i].hi > maxhi)
			maxhi = t->r[i].hi;
		t->r[i].maxhi = maxhi;
	}
	struct codetab *old = atomic_exchange(&codetab, t);
	/* A reader that may hold old announced itself before loading the pointer,
	 * which it loaded before our exchange: it is counted now, or gone. */
	for (unsigned spins = 0; atomic_load(&codereaders) != 0; spins++) {
		if (spins < 64)
			procyield(10);
		else
			sched_yield();
	}
	free(old);
}

int preempt_code_add(uintptr_t lo, uintptr_t hi)
{
	if (lo >= hi)
		return -EINVAL;
	pthread_mutex_lock(&codelock);
	struct codetab *cur = atomic_load(&codetab);
	int r = 0;
	if (codetab_find(cur, lo, hi) >= 0)
		goto out_unlock; /* already there */
	size_t n = cur ? cur->n : 0;
	struct codetab *t = malloc(sizeof *t + (n + 1) * sizeof t->r[0]);
	if (!t) {
		r = -ENOMEM;
		goto out_unlock;
	}
	size_t k = 0;
	while (k < n && (cur->r[k].lo < lo || (cur->r[k].lo == lo && cur->r[k].hi < hi)))
		k++;
	if (k)
		memcpy(t->r, cur->r, k * sizeof t->r[0]);
	t->r[k] = (struct coderange){ .lo = lo, .hi = hi };
	if (n > k)
		memcpy(t->r + k + 1, cur->r + k, (n - k) * sizeof t->r[0]);
	t->n = n + 1;
	codetab_publish(t);
out_unlock:
	pthread_mutex_unlock(&codelock);
	return r;
}

int preempt_code_remove(uintptr_t lo, uintptr_t hi)
{
	pthread_mutex_lock(&codelock);
	struct codetab *cur = atomic_load(&codetab);
	ssize_t k = codetab_find(cur, lo, hi);
	int r = 0;
	if (k < 0) {
		r = -ENOENT;
		goto out_unlock;
	}
	struct codetab *t = NULL;
	if (cur->n > 1) {
		/* smaller: a failed allocation here would leave a range that is
		 * no longer code registered, so retry rather than fail */
		while (!(t = malloc(sizeof *t + (cur->n - 1) * sizeof t->r[0])))
			sched_yield();
		memcpy(t->r, cur->r, (size_t)k * sizeof t->r[0]);
		memcpy(t->r + k, cur->r + k + 1, (cur->n - (size_t)k - 1) * sizeof t->r[0]);
		t->n = cur->n - 1;
	}
	codetab_publish(t);
out_unlock:
	pthread_mutex_unlock(&codelock);
	return r;
}

struct object_query {
	uintptr_t addr;           /* find the object containing addr... */
	bool main_only;           /* ...or take the first one, the main program */
	bool remove;
	bool found;
	bool dynamic;             /* it has a PT_INTERP: libc is not inside it */
	int r;
};

static int object_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct object_query *q = arg;
	(void)size;
	bool hit = q->main_only;
	for (int i = 0; i < info->dlpi_phnum && !hit; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
		hit = ph->p_type == PT_LOAD && q->addr >= lo && q->addr < lo + ph->p_memsz;
	}
	if (!hit)
		return 0;
	q->found = true;
	for (int i = 0; i < info->dlpi_phnum; i++)
		if (info->dlpi_phdr[i].p_type == PT_INTERP)
			q->dynamic = true;
	if (q->main_only && !q->dynamic)
		return 1;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
			continue;
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
		int r = q->remove ? preempt_code_remove(lo, lo + ph->p_memsz) : preempt_code_add(lo, lo + ph->p_memsz);
		if (r < 0 && q->r == 0)
			q->r = r;
	}
	return 1;
}

int preempt_code_add_object(const void *addr)
{
	struct object_query q = { .addr = (uintptr_t)addr };
	dl_iterate_phdr(object_cb, &q);
	return q.found ? q.r : -ENOENT;
}

int preempt_code_remove_object(const void *addr)
{
	struct object_query q = { .addr = (uintptr_t)addr, .remove = true };
	dl_iterate_phdr(object_cb, &q);
	return q.found ? q.r : -ENOENT;
}

/* Whether pc is in a registered range and not the runtime's own code. Any
 * thread, any context (the signal handler): no lock, no call, no wait. */
NO_SANITIZE static bool pc_is_program_code(uintptr_t pc)
{
	if (pc >= (uintptr_t)__start_gort_text && pc < (uintptr_t)__stop_gort_text)
		return false;
	bool found = false;
	atomic_fetch_add(&codereaders, 1);
	const struct codetab *t = atomic_load(&codetab);
	if (t && t->n && t->r[0].lo <= pc) {
		/* the last range with lo <= pc */
		size_t a = 0, b = t->n;
		while (b - a > 1) {
			size_t mid = a + (b - a) / 2;
			if (t->r[mid].lo <= pc)
				a = mid;
			else
				b = mid;
		}
		for (size_t i = a + 1; i-- > 0 && t->r[i].maxhi > pc;)
			if (pc < t->r[i].hi) {
				found = true;
				break;
			}
	}
	atomic_fetch_sub(&codereaders, 1);
	return found;
}

bool preempt_code_contains(uintptr_t pc)
{
	return pc_is_program_code(pc);
}

/* ---- the signal ---- */

/* The pcs of the last asynchronous preemptions, for diagnostics and tests. */
#define NRECENT 64
static _Atomic uintptr_t recentpcs[NRECENT];
static _Atomic uint64_t recentseq;

/* preempt_recent_pcs: copies into out (up to max) the pcs at which goroutines
 * were stopped asynchronously since sequence number since (0: as far back as
 * kept, the last 64), oldest first; *ret_seq (if not NULL) receives the sequence
 * number to pass next time. Returns how many it copied. Any thread; can't fail. */
int preempt_recent_pcs(uint64_t since, uintptr_t *out, int max, uint64_t *ret_seq)
{
	uint64_t end = atomic_load(&recentseq);
	uint64_t from = end > NRECENT && since < end - NRECENT ? end - NRECENT : since;
	int n = 0;
	for (uint64_t i = from; i < end && n < max; i++)
		out[n++] = atomic_load_explicit(&recentpcs[i % NRECENT], memory_order_relaxed);
	if (ret_seq)
		*ret_seq = end;
	return n;
}

static struct sigaction old_action;
static bool installed;
static pid_t mypid;

/* A SIGPREEMPT that is not sysmon's (a process-directed SIGURG, out-of-band
 * socket data): whatever handled it before the runtime started does. */
NO_SANITIZE static void sigpreempt_forward(int sig, siginfo_t *info, void *uctx)
{
	if (old_action.sa_flags & SA_SIGINFO) {
		if (old_action.sa_sigaction)
			old_action.sa_sigaction(sig, info, uctx);
	} else if (old_action.sa_handler != SIG_DFL && old_action.sa_handler != SIG_IGN) {
		old_action.sa_handler(sig);
	}
	/* SIG_DFL, SIG_IGN: SIGURG's default is to ignore it. */
}

#if defined(__x86_64__)
#define REDZONE 128
#else
#define REDZONE 0
#endif

/* Bytes asyncPreempt and what it calls need below the interrupted sp. */
NO_SANITIZE static inline uintptr_t preempt_frame_size(void)
{
#if defined(__x86_64__)
	/* red zone, pc, flags and 15 registers, the xsave area and its alignment */
	return REDZONE + 8 + 16 * 8 + preempt_xsave_size + 64 + PREEMPT_CALL_STACK;
#elif defined(__aarch64__)
	/* the signal frame */
	return SF_SIZE + PREEMPT_CALL_STACK;
#endif
}

/* Whether the goroutine cur, interrupted at pc with stack pointer sp, may be
 * stopped here (the essay's rules). */
NO_SANITIZE static bool isAsyncSafePoint(struct m *mp, struct g *cur, uintptr_t pc, uintptr_t sp, ucontext_t *uc)
{
	if (mp->locks != 0 || mp->p == NULL)
		return false;
	if (atomic_load_explicit(&cur->atomicstatus, memory_order_relaxed) != G_RUNNING)
		return false;
	if (!pc_is_program_code(pc))
		return false;
	uintptr_t need = preempt_frame_size();
#if defined(__x86_64__)
	/* state the trampoline's xsave mask leaves out (AMX tiles) must be unused */
	const uint8_t *fp = (const uint8_t *)uc->uc_mcontext.fpregs;
	if (preempt_xsave_mask && fp) {
		/* the kernel's frame: fxsave area, sw_reserved.magic1 at 464, then the
		 * xsave header's XSTATE_BV at 512 (both aligned) */
		if (*(const uint32_t *)(fp + 464) == FP_XSTATE_MAGIC1 &&
		    (*(const uint64_t *)(fp + 512) & ~preempt_xsave_mask))
			return false;
	}
#elif defined(__aarch64__)
	(void)uc;
	if (sp & 15)
		return false;
#endif
	if (gstacksize(cur) == 0 || sp > cur->stackhi || sp < cur->stacklo + need)
		return false; /* not on its own stack (a handler on another?), or no room */
	return true;
}

/* doSigPreempt: the SIGPREEMPT handler (Go's doSigPreempt and pushCall). */
NO_SANITIZE static void doSigPreempt(int sig, siginfo_t *info, void *uctx)
{
	if (info->si_code != SI_TKILL || info->si_pid != mypid) {
		sigpreempt_forward(sig, info, uctx);
		return;
	}
	struct g *gp = getg();
	if (!gp)
		return; /* not an M: nobody of ours asked */
	struct m *mp = gp->m;
	/* a full barrier here, and p_fence's acknowledgement */
	atomic_fetch_add_explicit(&mp->fenceack, 1, memory_order_seq_cst);
	struct g *cur = mp->curg;
	if (!cur || gp != cur || !atomic_load_explicit(&cur->preempt, memory_order_relaxed))
		return; /* in the scheduler, or the G already yielded: stale */
	ucontext_t *uc = uctx;
#if defined(__x86_64__)
	uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
	uintptr_t sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
	uintptr_t pc = (uintptr_t)uc->uc_mcontext.pc;
	uintptr_t sp = (uintptr_t)uc->uc_mcontext.sp;
#endif
	if (!isAsyncSafePoint(mp, cur, pc, sp, uc)) {
		/* not sysmon_count: nothing the sanitizers instrument may run here */
		atomic_fetch_add_explicit(&sysmon_counters.preempt_deferred, 1, memory_order_relaxed);
		return;
	}
	/* Taken: a second signal before the G is off the P finds it stale. */
	atomic_store_explicit(&cur->preempt, false, memory_order_relaxed);
	uint64_t seq = atomic_fetch_add_explicit(&recentseq, 1, memory_order_relaxed);
	atomic_store_explicit(&recentpcs[seq % NRECENT], pc, memory_order_relaxed);
	/* "Call" the trampoline: it finds the pc (and PSTATE) in the G and makes its
	 * own room on the stack; sp stays as interrupted, nothing is written below
	 * it here (valgrind could not follow that through the sigreturn). */
	cur->sigpc = pc;
#if defined(__x86_64__)
	uc->uc_mcontext.gregs[REG_RIP] = (greg_t)(uintptr_t)asyncPreempt;
#elif defined(__aarch64__)
	cur->sigpstate = uc->uc_mcontext.pstate;
	uc->uc_mcontext.pc = (uintptr_t)asyncPreempt;
#endif
}

/* Reads a field another thread writes without synchronisation, as sysmon's
 * peeks at a running M do (Go's preemptone does the same): the value may be
 * stale, never torn (aligned word), and every use tolerates staleness. */
NO_SANITIZE static pid_t peek_procid(struct m *mp)
{
	return *(volatile pid_t *)&mp->procid;
}

/* The M holding pp now, read as peek_procid reads: possibly stale. */
NO_SANITIZE static struct m *peek_p_m(struct p *pp)
{
	return *(struct m *volatile *)&pp->m;
}

int p_fence(struct p *pp)
{
	struct m *mp = peek_p_m(pp);
	if (!mp)
		return 0; /* idle: a thread that takes it later does so with a locked instruction */
	if (!installed)
		return -ENOSYS;
	/* our stores before theirs after the interrupt point; theirs before it
	 * visible to us once we see the acknowledgement */
	uint32_t ack = atomic_fetch_add_explicit(&mp->fenceack, 0, memory_order_seq_cst);
	while (atomic_load_explicit(&mp->fenceack, memory_order_acquire) == ack) {
		pid_t tid = peek_procid(mp);
		if (tid <= 0 || (syscall(SYS_tgkill, mypid, tid, SIGPREEMPT) < 0 && errno == ESRCH))
			return 0; /* no thread: nothing of ours runs there */
		for (int i = 0; i < 1000 && atomic_load_explicit(&mp->fenceack, memory_order_acquire) == ack; i++)
			sched_yield();
	}
	return 0;
}

/* preemptM: sends SIGPREEMPT to mp's thread (Go's preemptM); the handler
 * decides. Any thread; mp may have moved on, which makes the signal stale. */
void preemptM(struct m *mp)
{
	pid_t tid = peek_procid(mp);
	if (tid > 0 && syscall(SYS_tgkill, mypid, tid, SIGPREEMPT) == 0)
		sysmon_count(&sysmon_counters.preempt_signals);
}

#if defined(__x86_64__)
/* xsave's requested-feature bitmap and area size for this CPU and kernel:
 * everything XCR0 enables but AMX tiles; no xsave at all: fxsave's 512 bytes. */
static void xsave_setup(void)
{
	unsigned a, b, c, d;
	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_XSAVE) || !(c & bit_OSXSAVE)) {
		preempt_xsave_mask = 0;
		preempt_xsave_size = 512;
		return;
	}
	uint32_t lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	uint64_t mask = ((uint64_t)hi << 32 | lo) & ~XFEATURE_AMX;
	uint64_t size = 512 + 64; /* legacy area and header */
	for (unsigned i = 2; i < 63; i++) {
		if (!(mask & (1ULL << i)))
			continue;
		__cpuid_count(0xd, i, a, b, c, d);
		if (b + a > size)
			size = b + a; /* standard format: component i at offset b, a bytes */
	}
	preempt_xsave_mask = mask;
	preempt_xsave_size = (size + 63) & ~(uint64_t)63;
}
#endif

/* preempt_init: installs the preemption handler, registers the main program's
 * code if it is dynamically linked, sizes the x86 extended state. Called by
 * signals_init at runtime start; can't fail (without the handler the runtime
 * still preempts cooperatively). */
void preempt_init(void)
{
	mypid = getpid();
#if defined(__x86_64__)
	xsave_setup();
#endif
	static bool mainadded;
	if (!mainadded) {
		struct object_query q = { .main_only = true };
		dl_iterate_phdr(object_cb, &q);
		mainadded = true;
	}
	if (installed)
		return;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = doSigPreempt;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	sigfillset(&sa.sa_mask);
	if (sigaction(SIGPREEMPT, &sa, &old_action) == 0)
		installed = true;
}

/* preempt_fini: puts back the handler that was there before preempt_init
 * (runtime_stop, once no M is left to signal). */
void preempt_fini(void)
{
	if (!installed)
		return;
	sigaction(SIGPREEMPT, &old_action, NULL);
	installed = false;
}

/* ---- stopping the goroutine ---- */

/* On g0: the preempted gp goes to the global run queue, runnable on any P (Go's
 * gopreempt_m), and this M schedules something else. While the runtime stops,
 * gp is dropped instead: nothing runs again, runtime_stop frees it (and its M,
 * if gp was locked to it, is free to exit rather than wait for gp). */
static void gopreempt_m(struct g *gp)
{
	struct m *mp = gp->m;
	switched_to_g0(gp);
	if (traceEnabled())
		traceGoStop(gp, GORT_STOP_PREEMPTED);
	casgstatus(gp, G_RUNNING, G_PREEMPTED);
	dropg();
	if (atomic_load(&sched.stopping)) {
		if (mp->lockedg == gp) {
			mp->lockedg = NULL;
			mp->lockedext = 0;
			gp->lockedm = NULL;
		}
		schedule();
	}
	casgstatus(gp, G_PREEMPTED, G_RUNNABLE);
	lock(&sched.lock);
	globrunqput(gp);
	unlock(&sched.lock);
	wakep();
	schedule();
}

/* gopreempt: the cooperative preemption (runtime.h's preemptcheck calls it when
 * the flag is set): on a goroutine that may stop here, gives its P away and
 * returns once it is scheduled again, on any P. Can't fail; a no-op where it may
 * not stop. */
void gopreempt(void)
{
	struct g *gp = getg();
	struct m *mp = gp->m;
	if (gp == mp->g0 || mp->locks != 0 || mp->p == NULL || readgstatus(gp) != G_RUNNING)
		return; /* not here: the flag stays, the next entry point or the signal takes it */
	atomic_store_explicit(&gp->preempt, false, memory_order_relaxed);
	sysmon_count(&sysmon_counters.preempt_cooperative);
	fiber_switch(gp, mp->g0, false);
	mcall(gopreempt_m);
	fiber_switched(gp);
}

#if defined(__aarch64__)
/* The goroutine runs again, maybe on another M: rt_sigreturn will install the
 * frame's signal mask and alternate signal stack, so they must be this thread's.
 * Out of line: it must not reuse anything computed before the switch. */
static __attribute__((noinline)) void sigframe_finish(struct rt_sigframe *sf)
{
	sf->uc.uc_flags = 0;
	sf->uc.uc_link = NULL;
	if (sigaltstack(NULL, &sf->uc.uc_stack) < 0)
		sf->uc.uc_stack = (stack_t){ .ss_flags = SS_DISABLE };
	memset(&sf->uc.uc_sigmask, 0, sizeof sf->uc.uc_sigmask);
	syscall(SYS_rt_sigprocmask, SIG_BLOCK, NULL, &sf->uc.uc_sigmask, 8);
}
#endif

/* asyncPreempt2: the trampoline's C side, on the preempted goroutine's stack
 * below its saved registers (frame: aarch64's signal frame; x86_64's saved
 * general registers, unused): gives the P away and returns once the goroutine is
 * scheduled again. */
void asyncPreempt2(void *frame)
{
	struct g *gp = getg();
	sysmon_count(&sysmon_counters.preempt_async);
	fiber_switch(gp, gp->m->g0, false);
	mcall(gopreempt_m);
	fiber_switched(gp);
#if defined(__aarch64__)
	sigframe_finish(frame);
#else
	(void)frame;
#endif
}
