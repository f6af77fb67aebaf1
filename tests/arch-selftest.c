/* tests/arch-selftest.c: standalone test of arch/<arch>.S (gogo, mcall, goentry, goexit) and getg()'s TLS sequence, without the runtime. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fenv.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unwind.h>

#include "asm.h"

/* Build and run (no -lm or -pthread needed with glibc >= 2.34; add -DGORT_FIBER_HOOKS to
 * test goentry's fiber_started call):
 *   gcc -O2 -Wall -Wextra -Werror -Iarch tests/arch-selftest.c arch/x86_64.S -o st && ./st
 *   aarch64-linux-gnu-gcc -O2 -Wall -Wextra -Werror -Iarch tests/arch-selftest.c arch/aarch64.S \
 *       -o st-a64 -static && qemu-aarch64-static ./st-a64
 * (or dynamic: qemu-aarch64-static -L /usr/aarch64-linux-gnu ./st-a64)
 * Exits 0 if every PASS/FAIL line says PASS. */

/* ---- the parts of the runtime's G and M that arch/ knows about, at the same offsets ---- */
struct gobuf { uintptr_t sp; };
struct g {
	struct gobuf sched;
	struct m *m;
	int id;
	bool done;
	bool via_goexit;          /* its entry function returned through goexit -> goexit1 */
	int runs;                 /* times gogo'd */
	unsigned mmask;           /* the Ms it ran on */
	void (*fn)(void *);
	void *stack;
	struct g *link;
};
struct m {
	struct g *g0;
	struct g *home;           /* the thread's own C stack, resumed when the run queue drains */
	int id;
};
_Static_assert(offsetof(struct g, sched.sp) == G_SCHED_SP, "G_SCHED_SP");
_Static_assert(offsetof(struct g, m) == G_M, "G_M");
_Static_assert(offsetof(struct m, g0) == M_G0, "M_G0");
_Static_assert(CTX_WORDS * 8 % 16 == 0, "the context frame keeps the stack 16-byte aligned");

extern __thread struct g *g_tls __attribute__((tls_model("initial-exec")));
__thread struct g *g_tls __attribute__((tls_model("initial-exec")));
void goexit1(void);

/* getg() exactly as runtime/runtime.h has it */
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

/* The compiler's own view of the TLS variables, recomputed on every call. */
static __thread struct m *tl_m;
static __attribute__((noinline)) struct g *c_g_tls(void) { return g_tls; }
static __attribute__((noinline)) struct m *c_tl_m(void) { return tl_m; }

/* ---- reporting ---- */
static atomic_int failures;
#define CHECK(cond, ...) do { \
	if (!(cond)) { \
		if (atomic_fetch_add(&failures, 1) < 20) { \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__); \
			fputc('\n', stderr); \
		} \
	} \
} while (0)

static int section_failures;
static void section(const char *name)
{
	int n = atomic_load(&failures);
	printf("%s %s\n", n == section_failures ? "PASS" : "FAIL", name);
	fflush(stdout);
	section_failures = n;
}

/* ---- regcheck(seed, fn): fill every callee-saved register with a value derived from
 * seed, call fn(), and return a bit mask of the registers that did not survive
 * (x86_64: bit n = register number n, rbp = 5 checked against the frame it set up;
 * aarch64: bits 19..29 = x19..x29, bits 40..47 = d8..d15). ---- */
uint64_t regcheck(uint64_t seed, void (*fn)(void));
#if defined(__x86_64__)
__asm__(
	".text\n"
	".p2align 4\n"
	".type regcheck, @function\n"
	".macro rc_chk reg, add, bit\n"
	"	leaq \\add(%rdi), %rcx\n"
	"	cmpq %rcx, \\reg\n"
	"	setne %dl\n"
	"	movzbl %dl, %edx\n"
	"	shlq $\\bit, %rdx\n"
	"	orq %rdx, %rax\n"
	".endm\n"
	"regcheck:\n"
	"	pushq %rbp\n"
	"	movq %rsp, %rbp\n"
	"	pushq %rbx\n"
	"	pushq %r12\n"
	"	pushq %r13\n"
	"	pushq %r14\n"
	"	pushq %r15\n"
	"	pushq %rdi\n"
	"	leaq 3(%rdi), %rbx\n"
	"	leaq 12(%rdi), %r12\n"
	"	leaq 13(%rdi), %r13\n"
	"	leaq 14(%rdi), %r14\n"
	"	leaq 15(%rdi), %r15\n"
	"	call *%rsi\n"
	"	movq (%rsp), %rdi\n"
	"	xorl %eax, %eax\n"
	"	rc_chk %rbx, 3, 3\n"
	"	rc_chk %r12, 12, 12\n"
	"	rc_chk %r13, 13, 13\n"
	"	rc_chk %r14, 14, 14\n"
	"	rc_chk %r15, 15, 15\n"
	"	leaq 48(%rsp), %rcx\n"
	"	cmpq %rcx, %rbp\n"
	"	setne %dl\n"
	"	movzbl %dl, %edx\n"
	"	shlq $5, %rdx\n"
	"	orq %rdx, %rax\n"
	"	addq $8, %rsp\n"
	"	popq %r15\n"
	"	popq %r14\n"
	"	popq %r13\n"
	"	popq %r12\n"
	"	popq %rbx\n"
	"	popq %rbp\n"
	"	ret\n"
	".size regcheck, .-regcheck\n");
#elif defined(__aarch64__)
__asm__(
	".text\n"
	".p2align 2\n"
	".type regcheck, %function\n"
	".macro rc_chk reg, add, bit\n"
	"	add x10, x0, #\\add\n"
	"	cmp \\reg, x10\n"
	"	cset x11, ne\n"
	"	orr x9, x9, x11, lsl #\\bit\n"
	".endm\n"
	".macro rc_chkd reg, add, bit\n"
	"	fmov x12, \\reg\n"
	"	rc_chk x12, \\add, \\bit\n"
	".endm\n"
	"regcheck:\n"
	"	hint #34\n"
	"	stp x29, x30, [sp, #-176]!\n"
	"	mov x29, sp\n"
	"	stp x19, x20, [sp, #16]\n"
	"	stp x21, x22, [sp, #32]\n"
	"	stp x23, x24, [sp, #48]\n"
	"	stp x25, x26, [sp, #64]\n"
	"	stp x27, x28, [sp, #80]\n"
	"	stp d8, d9, [sp, #96]\n"
	"	stp d10, d11, [sp, #112]\n"
	"	stp d12, d13, [sp, #128]\n"
	"	stp d14, d15, [sp, #144]\n"
	"	str x0, [sp, #160]\n"
	"	add x19, x0, #19\n"
	"	add x20, x0, #20\n"
	"	add x21, x0, #21\n"
	"	add x22, x0, #22\n"
	"	add x23, x0, #23\n"
	"	add x24, x0, #24\n"
	"	add x25, x0, #25\n"
	"	add x26, x0, #26\n"
	"	add x27, x0, #27\n"
	"	add x28, x0, #28\n"
	"	.irp n, 8, 9, 10, 11, 12, 13, 14, 15\n"
	"	add x9, x0, #(0x100 + \\n)\n"
	"	fmov d\\n, x9\n"
	"	.endr\n"
	"	mov x16, x1\n"
	"	blr x16\n"
	"	ldr x0, [sp, #160]\n"
	"	mov x9, #0\n"
	"	rc_chk x19, 19, 19\n"
	"	rc_chk x20, 20, 20\n"
	"	rc_chk x21, 21, 21\n"
	"	rc_chk x22, 22, 22\n"
	"	rc_chk x23, 23, 23\n"
	"	rc_chk x24, 24, 24\n"
	"	rc_chk x25, 25, 25\n"
	"	rc_chk x26, 26, 26\n"
	"	rc_chk x27, 27, 27\n"
	"	rc_chk x28, 28, 28\n"
	"	mov x10, sp\n"
	"	cmp x29, x10\n"
	"	cset x11, ne\n"
	"	orr x9, x9, x11, lsl #29\n"
	"	.irp n, 8, 9, 10, 11, 12, 13, 14, 15\n"
	"	rc_chkd d\\n, (0x100 + \\n), (32 + \\n)\n"
	"	.endr\n"
	"	mov x0, x9\n"
	"	ldp x19, x20, [sp, #16]\n"
	"	ldp x21, x22, [sp, #32]\n"
	"	ldp x23, x24, [sp, #48]\n"
	"	ldp x25, x26, [sp, #64]\n"
	"	ldp x27, x28, [sp, #80]\n"
	"	ldp d8, d9, [sp, #96]\n"
	"	ldp d10, d11, [sp, #112]\n"
	"	ldp d12, d13, [sp, #128]\n"
	"	ldp d14, d15, [sp, #144]\n"
	"	ldp x29, x30, [sp], #176\n"
	"	ret\n"
	".size regcheck, .-regcheck\n");
#endif

/* ---- FP control: the raw register (x86_64: MXCSR and the x87 control word) ---- */
#if defined(__x86_64__)
static uint64_t fpctl(void)
{
	uint32_t mxcsr;
	uint16_t cw;
	__asm__ volatile("stmxcsr %0\n\tfnstcw %1" : "=m"(mxcsr), "=m"(cw));
	return (uint64_t)(mxcsr & 0xffc0) << 16 | cw; /* control bits only, not the flags */
}
static void fpctl_set_extra(void) /* flush-to-zero and denormals-are-zero */
{
	uint32_t mxcsr;
	__asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
	mxcsr |= 0x8040;
	__asm__ volatile("ldmxcsr %0" : : "m"(mxcsr));
}
#define FPCTL_DEFAULT ((uint64_t)0x1f80 << 16 | 0x037f)
/* fegetround/fesetround without libm: glibc's FE_* are the x87 RC bits (MXCSR's << 3) */
static int getround(void)
{
	uint16_t cw;
	uint32_t mxcsr;
	__asm__ volatile("fnstcw %0\n\tstmxcsr %1" : "=m"(cw), "=m"(mxcsr));
	return ((mxcsr >> 3) & 0xc00) == (cw & 0xc00u) ? (int)(cw & 0xc00u) : -1;
}
static void setround(int mode)
{
	uint16_t cw;
	uint32_t mxcsr;
	__asm__ volatile("fnstcw %0\n\tstmxcsr %1" : "=m"(cw), "=m"(mxcsr));
	cw = (uint16_t)((cw & ~0xc00u) | (unsigned)mode);
	mxcsr = (mxcsr & ~0x6000u) | (unsigned)mode << 3;
	__asm__ volatile("fldcw %0\n\tldmxcsr %1" : : "m"(cw), "m"(mxcsr));
}
#elif defined(__aarch64__)
static uint64_t fpctl(void)
{
	uint64_t v;
	__asm__ volatile("mrs %0, fpcr" : "=r"(v));
	return v;
}
static void fpctl_set_extra(void) /* FZ: flush-to-zero */
{
	uint64_t v = fpctl() | (1u << 24);
	__asm__ volatile("msr fpcr, %0" : : "r"(v));
}
#define FPCTL_DEFAULT ((uint64_t)0)
/* fegetround/fesetround without libm: glibc's FE_* are FPCR's RMode bits */
static int getround(void) { return (int)(fpctl() & 0xc00000); }
static void setround(int mode)
{
	uint64_t v = (fpctl() & ~(uint64_t)0xc00000) | (unsigned)mode;
	__asm__ volatile("msr fpcr, %0" : : "r"(v));
}
#endif

/* a third, evaluated at run time in the current rounding mode */
static double third(void)
{
	volatile double one = 1.0, three = 3.0;
	return one / three;
}

/* ---- a tiny scheduler: a run queue per M; a yielding goroutine goes to the next M's,
 * so with two Ms every switch moves it to the other thread ---- */
#define MAXM 2
static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;
static struct { struct g *head, *tail; } runq[MAXM];
static int nm = 1;                /* Ms taking part */
static atomic_int live;           /* goroutines not yet finished */

static void runqput(struct g *gp, int mid)
{
	pthread_mutex_lock(&qlock);
	gp->link = NULL;
	if (runq[mid].tail) runq[mid].tail->link = gp; else runq[mid].head = gp;
	runq[mid].tail = gp;
	pthread_mutex_unlock(&qlock);
}

static struct g *runqget(int mid)
{
	pthread_mutex_lock(&qlock);
	struct g *gp = runq[mid].head;
	if (gp) {
		runq[mid].head = gp->link;
		if (!runq[mid].head) runq[mid].tail = NULL;
	}
	pthread_mutex_unlock(&qlock);
	return gp;
}

static bool on_stack(struct g *gp, const void *p, size_t size)
{
	return (uintptr_t)p >= (uintptr_t)gp->stack && (uintptr_t)p < (uintptr_t)gp->stack + size;
}

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define G0_STACK (256 * 1024)
#define G_STACK  (128 * 1024)

/* On g0: run the next goroutine, or go back to the thread's own stack when all are done. */
static _Noreturn void schedule(void)
{
	struct g *g0 = getg();
	struct m *mp = g0->m;
	char here;
	CHECK(mp == c_tl_m() && g0 == mp->g0, "schedule not on this thread's g0");
	CHECK(on_stack(g0, &here, G0_STACK), "schedule not on g0's stack");
	for (;;) {
		struct g *gp = runqget(mp->id);
		if (gp) {
			gp->m = mp;
			gp->runs++;
			gp->mmask |= 1u << mp->id;
			gogo(gp);
		}
		if (atomic_load(&live) == 0) {
			mp->home->m = mp;
			gogo(mp->home);
		}
		sched_yield(); /* another M is running the rest */
	}
}

static inline __attribute__((always_inline)) void check_on_g0(struct g *gp)
{
	struct g *g0 = getg();
	CHECK(g0 == gp->m->g0, "mcall's fn not running as gp->m->g0");
	CHECK(g0 == c_g_tls(), "getg() %p != g_tls %p", (void *)g0, (void *)c_g_tls());
	CHECK(g0->m == c_tl_m(), "g0 of another thread");
#if defined(__aarch64__)
	/* mcall zeroes the frame pointer: a frame-pointer walk on g0 stops at mcall */
	void **fp = __builtin_frame_address(0);
	CHECK(fp[0] == NULL, "g0 frame chain does not end at mcall: %p", fp[0]);
#endif
}

static void park_yield(struct g *gp)
{
	check_on_g0(gp);
	runqput(gp, (gp->m->id + 1) % nm);
	schedule();
}

static void goexit0(struct g *gp)
{
	check_on_g0(gp);
	gp->done = true;
	atomic_fetch_sub(&live, 1);
	schedule();
}

#ifdef GORT_FIBER_HOOKS
/* -DGORT_FIBER_HOOKS: goentry first calls fiber_started(), which must not lose fn/arg */
static atomic_int nfiber_started;
void fiber_started(void);
void fiber_started(void)
{
	atomic_fetch_add(&nfiber_started, 1);
}
#endif

/* mcall jumps here if called on g0: never in this test */
void badmcall(void);
void badmcall(void)
{
	fprintf(stderr, "FAIL: mcall called on g0\n");
	abort();
}

/* called by goexit when a goroutine's entry function returns */
void goexit1(void)
{
	struct g *gp = getg();
	uintptr_t ra = (uintptr_t)__builtin_return_address(0);
	CHECK(ra > (uintptr_t)goexit && ra < (uintptr_t)goexit + 16,
	      "goexit1 not called from goexit (ra %#lx, goexit %p)", (unsigned long)ra, (void *)goexit);
	CHECK(gp == c_g_tls() && gp->m->home != gp, "goexit1 on the wrong g");
	gp->via_goexit = true;
	mcall(goexit0);
	CHECK(0, "mcall(goexit0) returned");
	abort();
}

static void start(struct g *home)
{
	check_on_g0(home);
	schedule();
}

static void yield(void) { mcall(park_yield); }

static void run_sched(void) { mcall(start); }

/* a new goroutine's stack and initial frame, as the runtime's newproc builds them */
static struct g *newg(int id, void (*fn)(void *))
{
	struct g *gp = calloc(1, sizeof *gp);
	if (!gp || !(gp->stack = malloc(G_STACK))) { perror("malloc"); exit(2); }
	gp->id = id;
	gp->fn = fn;
	uintptr_t top = ((uintptr_t)gp->stack + G_STACK) & ~(uintptr_t)15;
#if defined(__x86_64__)
	/* fn's return address, as if goexit had called it: fn is entered with rsp+8 aligned */
	top -= 8;
	*(uintptr_t *)top = (uintptr_t)goexit + 1;
#endif
	uintptr_t *frame = (uintptr_t *)top - CTX_WORDS;
	memset(frame, 0xa5, CTX_WORDS * sizeof(uintptr_t));
	frame[CTX_FN] = (uintptr_t)fn;
	frame[CTX_ARG] = (uintptr_t)gp;
	frame[CTX_PC] = (uintptr_t)goentry;
#if defined(__x86_64__)
	frame[0] = (uint64_t)0x037f << 32 | 0x1f80; /* MXCSR, then the x87 control word */
	frame[6] = 0; /* rbp: frame chains end here */
#elif defined(__aarch64__)
	frame[CTX_FP] = 0;
	frame[CTX_FPCR] = 0;
#endif
	gp->sched.sp = (uintptr_t)frame;
	atomic_fetch_add(&live, 1);
	runqput(gp, id % nm);
	return gp;
}

/* ---- goroutine bodies: each gets its own G as its argument ---- */
static int nyields = 50;

static void check_self(struct g *self)
{
	CHECK(getg() == self, "getg() %p, expected %p", (void *)getg(), (void *)self);
	CHECK(getg() == c_g_tls(), "getg() != g_tls");
	CHECK(self->m == c_tl_m(), "g->m is not this thread's M");
}

static inline __attribute__((always_inline)) void check_entry(struct g *self)
{
	_Alignas(16) volatile char buf[16];
	buf[0] = 0;
	CHECK(((uintptr_t)buf & 15) == 0, "stack misaligned at entry (%p)", (void *)buf);
	void **fp = __builtin_frame_address(0);
	CHECK(fp[0] == NULL, "frame chain does not end at the entry function");
	check_self(self);
	CHECK(fpctl() == FPCTL_DEFAULT, "new goroutine starts with FP control %#llx",
	      (unsigned long long)fpctl());
}

static __attribute__((noinline)) void g_regs(void *arg)
{
	struct g *self = arg;
	check_entry(self);
	for (int i = 0; i < nyields; i++) {
		uint64_t seed = (uint64_t)self->id << 48 ^ (uint64_t)i << 20 ^ 0x5a5a0000f00d0000ull;
		uint64_t bad = regcheck(seed, yield);
		CHECK(bad == 0, "g%d: callee-saved registers lost across a switch: mask %#llx",
		      self->id, (unsigned long long)bad);
		check_self(self);
	}
}

static const int modes[] = { FE_UPWARD, FE_DOWNWARD, FE_TOWARDZERO, FE_TONEAREST };

static __attribute__((noinline)) void g_fp(void *arg)
{
	struct g *self = arg;
	check_entry(self);
	CHECK(getround() == FE_TONEAREST, "new goroutine not round-to-nearest");
	int mode = modes[self->id % 4];
	setround(mode);
	if (self->id % 5 == 0)
		fpctl_set_extra();
	uint64_t ctl = fpctl();
	double x = third();
	for (int i = 0; i < nyields; i++) {
		yield();
		check_self(self);
		CHECK(getround() == mode, "g%d: rounding mode %#x, expected %#x",
		      self->id, getround(), mode);
		CHECK(fpctl() == ctl, "g%d: FP control %#llx, expected %#llx", self->id,
		      (unsigned long long)fpctl(), (unsigned long long)ctl);
		CHECK(third() == x, "g%d: 1/3 computed differently", self->id);
	}
	if (mode == FE_UPWARD || mode == FE_DOWNWARD) {
		setround(mode == FE_UPWARD ? FE_DOWNWARD : FE_UPWARD);
		double y = third();
		CHECK(mode == FE_UPWARD ? x > y : x < y, "g%d: rounding mode had no effect", self->id);
		setround(mode); /* and leave it set: the next goroutine must not see it */
	}
}

/* unwinding from a goroutine: ends at goexit, the outermost frame */
struct bt { int n; uintptr_t last; };
static _Unwind_Reason_Code bt_cb(struct _Unwind_Context *ctx, void *arg)
{
	struct bt *bt = arg;
	uintptr_t ip = _Unwind_GetIP(ctx);
	if (ip) /* libgcc's last call, at the end of the stack, has none */
		bt->last = ip;
	return ++bt->n > 64 ? _URC_NORMAL_STOP : _URC_NO_REASON;
}

static __attribute__((noinline)) void bt_check(const char *where, uintptr_t lo, uintptr_t hi)
{
	struct bt bt = { 0, 0 };
	_Unwind_Reason_Code rc = _Unwind_Backtrace(bt_cb, &bt);
	CHECK(rc == _URC_END_OF_STACK, "%s: _Unwind_Backtrace: %d after %d frames", where, rc, bt.n);
	CHECK(bt.n <= 8, "%s: %d frames", where, bt.n);
	CHECK(bt.last > lo && bt.last <= hi, "%s: last frame %#lx not in [%#lx, %#lx]",
	      where, (unsigned long)bt.last, (unsigned long)lo, (unsigned long)hi);
	__asm__ volatile("" ::: "memory"); /* not a tail call */
}

static int bt_g0_done;
static void park_bt(struct g *gp)
{
	check_on_g0(gp);
	if (!bt_g0_done++)
		bt_check("g0 after mcall", (uintptr_t)mcall, (uintptr_t)mcall + 256);
	runqput(gp, gp->m->id);
	schedule();
}

static __attribute__((noinline)) void g_unwind(void *arg)
{
	struct g *self = arg;
	check_entry(self);
	bt_check("goroutine", (uintptr_t)goexit, (uintptr_t)goexit + 16);
	mcall(park_bt);
	check_self(self);
	bt_check("resumed goroutine", (uintptr_t)goexit, (uintptr_t)goexit + 16);
	__asm__ volatile("" ::: "memory");
}

static __attribute__((noinline)) void g_varargs(void *arg)
{
	struct g *self = arg;
	check_entry(self);
	char buf[64], want[64];
	volatile double d = 1.5;
	volatile long double ld = 2.25;
	yield();
	snprintf(buf, sizeof buf, "%d %.3f %.3Lf", self->id, d, ld);
	snprintf(want, sizeof want, "%d 1.500 2.250", self->id);
	CHECK(strcmp(buf, want) == 0, "snprintf on a goroutine: %s", buf);
}

static __attribute__((noinline)) void g_empty(void *arg)
{
	(void)arg; /* returns at once: goexit must still run */
}

/* ---- Ms ---- */
struct mctx { struct m m; struct g g0, home; };

static void m_init(struct mctx *c, int id)
{
	memset(c, 0, sizeof *c);
	c->m.id = id;
	c->m.g0 = &c->g0;
	c->m.home = &c->home;
	c->g0.m = &c->m;
	c->g0.id = -1;
	if (!(c->g0.stack = malloc(G0_STACK))) { perror("malloc"); exit(2); }
	c->g0.sched.sp = ((uintptr_t)c->g0.stack + G0_STACK) & ~(uintptr_t)15;
	c->home.m = &c->m;
	c->home.id = -2;
	tl_m = &c->m;
	g_tls = &c->home;
}

/* runs the queue on this thread until every goroutine is done */
static void m_run(struct mctx *c, uint64_t seed)
{
	uint64_t bad = regcheck(seed, run_sched);
	CHECK(bad == 0, "M%d: callee-saved registers lost across mcall/gogo: mask %#llx",
	      c->m.id, (unsigned long long)bad);
	CHECK(getg() == &c->home && c_g_tls() == &c->home, "M%d: not back as its own g", c->m.id);
	CHECK(fpctl() == FPCTL_DEFAULT && getround() == FE_TONEAREST,
	      "M%d: FP control not restored: %#llx", c->m.id, (unsigned long long)fpctl());
}

static void *m_thread(void *arg)
{
	struct mctx *c = arg;
	m_init(c, c->m.id);
	m_run(c, 0x1234567800000000ull + (uint64_t)c->m.id);
	return NULL;
}

static void free_gs(struct g **gs, int n)
{
	for (int i = 0; i < n; i++) {
		free(gs[i]->stack);
		free(gs[i]);
	}
}

#define NG 12

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	struct mctx m0;
	m_init(&m0, 0);

	/* getg's TLS sequence agrees with the compiler's */
	CHECK(getg() == &m0.home && c_g_tls() == &m0.home, "getg() %p", (void *)getg());
	section("getg() TLS sequence (initial-exec)");

	/* one M: round robin through every kind of goroutine */
	void (*bodies[])(void *) = { g_regs, g_fp, g_unwind, g_varargs, g_empty };
	struct g *gs[NG];
	for (int i = 0; i < NG; i++)
		gs[i] = newg(i, bodies[i % ARRAY_LEN(bodies)]);
	m_run(&m0, 0xfeedface00000000ull);
	for (int i = 0; i < NG; i++) {
		CHECK(gs[i]->done && gs[i]->via_goexit, "g%d did not finish through goexit", i);
		CHECK(gs[i]->runs >= 1, "g%d never ran", i);
	}
	CHECK(bt_g0_done, "no backtrace from g0");
#ifdef GORT_FIBER_HOOKS
	CHECK(nfiber_started == NG, "fiber_started ran %d times for %d goroutines", nfiber_started, NG);
#endif
	free_gs(gs, NG);
	section("one M: switches, callee-saved registers, FP control, goexit, unwinding");

	/* two Ms sharing the queue: goroutines migrate between threads */
	nyields = 400;
	nm = 2;
	for (int i = 0; i < NG; i++)
		gs[i] = newg(i, i % 2 ? g_fp : g_regs);
	struct mctx m1 = { .m.id = 1 };
	pthread_t t;
	if (pthread_create(&t, NULL, m_thread, &m1) != 0) { perror("pthread_create"); return 2; }
	m0.m.id = 0;
	m_run(&m0, 0xabcdef0000000000ull);
	pthread_join(t, NULL);
	int migrated = 0;
	for (int i = 0; i < NG; i++) {
		CHECK(gs[i]->done && gs[i]->via_goexit, "g%d did not finish through goexit", i);
		migrated += gs[i]->mmask == 3;
	}
	free_gs(gs, NG);
	CHECK(migrated == NG, "only %d of %d goroutines ran on both Ms", migrated, NG);
	section("two Ms: goroutines moving between threads");

	int n = atomic_load(&failures);
	printf("%s: %d failure%s\n", n ? "FAIL" : "PASS", n, n == 1 ? "" : "s");
	return n ? 1 : 0;
}
