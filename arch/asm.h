/* arch/asm.h: struct offsets and frame layouts shared by the assembly and the C runtime. */
#ifndef GORT_ARCH_ASM_H
#define GORT_ARCH_ASM_H

/* offsetof(struct g, sched.sp), offsetof(struct g, m), offsetof(struct m, g0):
 * pinned by _Static_assert in runtime/runtime.h */
#define G_SCHED_SP 0
#define G_M        8
#define G_SIGPC    88 /* offsetof(struct g, sigpc), sigpstate right after */
#define G_SIGPSTATE 96
#define M_G0       0

#if defined(__x86_64__)
/* A switched-out goroutine's stack, from sched.sp up: MXCSR (4 bytes) and the x87
 * control word (2 bytes, padded to 8), r15, r14, r13, r12, rbx, rbp, return pc. */
#define CTX_WORDS  8
#define CTX_FN     4 /* r12: the entry function of a new goroutine */
#define CTX_ARG    3 /* r13: its argument */
#define CTX_PC     7
#elif defined(__aarch64__)
/* From sched.sp up: d8..d15, x19..x28, x29 (fp), x30 (lr = resume pc), fpcr, pad. */
#define CTX_WORDS  22
#define CTX_FN     8  /* x19 */
#define CTX_ARG    9  /* x20 */
#define CTX_FP     18 /* x29 */
#define CTX_PC     19 /* x30 */
#define CTX_FPCR   20
/* asyncPreempt's frame is a struct rt_sigframe (siginfo_t, then ucontext_t) in the
 * kernel's layout, for rt_sigreturn to restore from (runtime/preempt.c pins it). */
#define SF_SIZE     4688
#define SF_REGS     312 /* uc.uc_mcontext.regs[0]; regs[30], sp, pc, pstate follow */
#define SF_FPSIMD   592 /* uc.uc_mcontext.__reserved: the fpsimd_context record */
#define FPSIMD_SIZE 528
#else
#error "gort supports x86_64 and aarch64"
#endif

#ifndef __ASSEMBLER__
struct g;
/* Resume gp where it last switched out (or at its entry function); never returns. */
void gogo(struct g *gp) __attribute__((noreturn));
/* Save the current goroutine's context, switch to its M's g0 stack and call fn(gp)
 * there. fn must not return; the goroutine resumes when somebody gogo()s it. */
void mcall(void (*fn)(struct g *gp));
/* Save the current goroutine gp's context as mcall does, then call fn(gp, next) as
 * g0 but on the stack of next (runnable, owned by the caller), and resume the
 * goroutine fn returns as gogo does. */
void mswitch(struct g *next, struct g *(*fn)(struct g *gp, struct g *next));
/* The first code a new goroutine runs: moves the argument into place and jumps to
 * the entry function, whose return address is goexit's call to goexit1. */
void goentry(void);
void goexit(void);
/* Asynchronous preemption's trampoline: see arch/. Only ever entered through a
 * signal context the preemption handler rewrote. */
void asyncPreempt(void);
#endif
#endif
