/* arch/aarch64.S: goroutine context switch (gogo, mcall) and a goroutine's first frame (goentry, goexit). */
#include "asm.h"

/* AAPCS64: x19-x29, x30 (as the return address), the low 64 bits of v8-v15 (d8-d15)
 * and the control bits of FPCR are preserved across a call; everything else the C
 * caller of mcall already treats as clobbered. So a switch saves exactly those, on
 * the stack being left, as asm.h lays them out from sched.sp up:
 *     0  d8  d9  d10 d11 d12 d13 d14 d15
 *    64  x19 x20 x21 x22 x23 x24 x25 x26 x27 x28
 *   144  x29 x30 (the resume pc)
 *   160  fpcr, pad                                  176 bytes, 16-byte aligned
 * g_tls is reached as the C side's initial-exec getg() does: tpidr_el0 plus the
 * offset the GOT holds (the linker relaxes this to a constant in an executable).
 * Indirect branches to C go through x16 so that BTI "bti c" landing pads accept them;
 * the entry points start with "bti c" (hint #34, a nop without BTI). */

#define FRAME	176
#define OFF_D8	0
#define OFF_X19	64
#define OFF_X29	144
#define OFF_FPCR 160

#if CTX_WORDS * 8 != FRAME || CTX_FN * 8 != OFF_X19 || CTX_ARG * 8 != OFF_X19 + 8 || \
	CTX_FP * 8 != OFF_X29 || CTX_PC * 8 != OFF_X29 + 8 || CTX_FPCR * 8 != OFF_FPCR
#error "arch/asm.h's aarch64 frame layout does not match arch/aarch64.S"
#endif

/* reg = &g_tls for this thread; clobbers tmp */
.macro	tlsaddr reg, tmp
	mrs	\reg, tpidr_el0
	adrp	\tmp, :gottprel:g_tls
	ldr	\tmp, [\tmp, #:gottprel_lo12:g_tls]
	add	\reg, \reg, \tmp
.endm

	.text

/* The context a switch leaves on the stack it leaves (gogo restores it): a
 * FRAME-byte frame with d8-d15, x19-x28, x29/x30 and FPCR. */
.macro SAVE_CONTEXT
	stp	d8, d9, [sp, #-FRAME]!
	.cfi_adjust_cfa_offset FRAME
	.cfi_rel_offset d8, OFF_D8 + 0
	.cfi_rel_offset d9, OFF_D8 + 8
	stp	d10, d11, [sp, #OFF_D8 + 16]
	.cfi_rel_offset d10, OFF_D8 + 16
	.cfi_rel_offset d11, OFF_D8 + 24
	stp	d12, d13, [sp, #OFF_D8 + 32]
	.cfi_rel_offset d12, OFF_D8 + 32
	.cfi_rel_offset d13, OFF_D8 + 40
	stp	d14, d15, [sp, #OFF_D8 + 48]
	.cfi_rel_offset d14, OFF_D8 + 48
	.cfi_rel_offset d15, OFF_D8 + 56
	stp	x19, x20, [sp, #OFF_X19 + 0]
	.cfi_rel_offset x19, OFF_X19 + 0
	.cfi_rel_offset x20, OFF_X19 + 8
	stp	x21, x22, [sp, #OFF_X19 + 16]
	.cfi_rel_offset x21, OFF_X19 + 16
	.cfi_rel_offset x22, OFF_X19 + 24
	stp	x23, x24, [sp, #OFF_X19 + 32]
	.cfi_rel_offset x23, OFF_X19 + 32
	.cfi_rel_offset x24, OFF_X19 + 40
	stp	x25, x26, [sp, #OFF_X19 + 48]
	.cfi_rel_offset x25, OFF_X19 + 48
	.cfi_rel_offset x26, OFF_X19 + 56
	stp	x27, x28, [sp, #OFF_X19 + 64]
	.cfi_rel_offset x27, OFF_X19 + 64
	.cfi_rel_offset x28, OFF_X19 + 72
	stp	x29, x30, [sp, #OFF_X29]
	.cfi_rel_offset x29, OFF_X29
	.cfi_rel_offset x30, OFF_X29 + 8
	mrs	x9, fpcr
	str	x9, [sp, #OFF_FPCR]
.endm

/* Right after a switch to another stack, before any call: the frames below are
 * the outermost, for a CFI unwinder (gdb: no return address, CFA and the saved
 * registers no longer on the stack left) and for a frame-pointer walker (x29 0:
 * the saved context keeps the goroutine's x29), so neither follows into the
 * frames of the goroutine that switched out or of the one whose stack it is. */
.macro OUTERMOST
	.cfi_def_cfa sp, 0
	.cfi_undefined x30
	.cfi_restore x29
	.cfi_restore x19
	.cfi_restore x20
	.cfi_restore x21
	.cfi_restore x22
	.cfi_restore x23
	.cfi_restore x24
	.cfi_restore x25
	.cfi_restore x26
	.cfi_restore x27
	.cfi_restore x28
	.cfi_restore d8
	.cfi_restore d9
	.cfi_restore d10
	.cfi_restore d11
	.cfi_restore d12
	.cfi_restore d13
	.cfi_restore d14
	.cfi_restore d15
	mov	x29, #0
.endm

/* void gogo(struct g *gp) */
	.globl	gogo
	.hidden	gogo
	.type	gogo, %function
	.p2align 4
gogo:
	.cfi_startproc
	hint	#34				/* bti c */
	tlsaddr	x9, x10
	str	x0, [x9]
	ldr	x10, [x0, #G_SCHED_SP]
	mov	sp, x10
	.cfi_undefined x30
	ldr	x11, [sp, #OFF_FPCR]
	mrs	x12, fpcr
	cmp	x11, x12
	b.eq	1f				/* writing FPCR can be slow: only if it differs */
	msr	fpcr, x11
1:	ldp	d8, d9, [sp, #OFF_D8 + 0]
	ldp	d10, d11, [sp, #OFF_D8 + 16]
	ldp	d12, d13, [sp, #OFF_D8 + 32]
	ldp	d14, d15, [sp, #OFF_D8 + 48]
	ldp	x19, x20, [sp, #OFF_X19 + 0]
	ldp	x21, x22, [sp, #OFF_X19 + 16]
	ldp	x23, x24, [sp, #OFF_X19 + 32]
	ldp	x25, x26, [sp, #OFF_X19 + 48]
	ldp	x27, x28, [sp, #OFF_X19 + 64]
	ldp	x29, x30, [sp, #OFF_X29]
	add	sp, sp, #FRAME
	ret
	.cfi_endproc
	.size	gogo, .-gogo

/* void mcall(void (*fn)(struct g *gp)) */
	.globl	mcall
	.hidden	mcall
	.type	mcall, %function
	.p2align 4
mcall:
	.cfi_startproc
	hint	#34				/* bti c */
	SAVE_CONTEXT
	tlsaddr	x9, x10
	ldr	x1, [x9]			/* x1 = gp, the goroutine leaving */
	mov	x10, sp
	str	x10, [x1, #G_SCHED_SP]
	ldr	x2, [x1, #G_M]
	ldr	x2, [x2, #M_G0]			/* x2 = gp->m->g0 */
	cmp	x1, x2				/* mcall on g0 would lose g0's stack top */
	b.ne	1f
	b	badmcall
1:
	str	x2, [x9]
	ldr	x10, [x2, #G_SCHED_SP]
	mov	sp, x10				/* g0's stack, from its top again */
	OUTERMOST				/* g0's frames start here */
	mov	x16, x0
	mov	x0, x1
	blr	x16
	brk	#0				/* fn returned: a runtime bug */
	.cfi_endproc
	.size	mcall, .-mcall

/* struct g *mswitch(struct g *next, struct g *(*fn)(struct g *gp, struct g *next))
 * gopark's direct switch (runtime/proc.c): saves the current goroutine gp as mcall
 * does, then calls fn(gp, next) as g0 (g_tls) but on next's stack, below its saved
 * context (next is runnable and ours: nobody else touches its stack), and resumes
 * whichever goroutine fn returns, as gogo. No g0 frames are left unbalanced on the
 * return address stack, so the resumed goroutine's returns are predicted when it
 * had switched out through the same call. */
	.globl	mswitch
	.hidden	mswitch
	.type	mswitch, %function
	.p2align 4
mswitch:
	.cfi_startproc
	hint	#34				/* bti c */
	SAVE_CONTEXT
	tlsaddr	x9, x10
	ldr	x2, [x9]			/* x2 = gp, the goroutine leaving */
	mov	x10, sp
	str	x10, [x2, #G_SCHED_SP]
	ldr	x3, [x2, #G_M]
	ldr	x3, [x3, #M_G0]
	str	x3, [x9]			/* g0 while fn runs */
	ldr	x10, [x0, #G_SCHED_SP]		/* right below next's saved context */
	and	x10, x10, #~15
	mov	sp, x10
	OUTERMOST				/* fn's frames start here (gogo restores x29) */
	mov	x16, x1
	mov	x1, x0
	mov	x0, x2
	blr	x16
	b	gogo				/* x0: the goroutine fn chose */
	.cfi_endproc
	.size	mswitch, .-mswitch

/* A new goroutine's gogo "returns" here with x19 = fn, x20 = arg, x29 = 0 and sp at
 * the top of its stack; fn(arg) is entered with lr at goexit's call to goexit1. */
	.globl	goentry
	.hidden	goentry
	.type	goentry, %function
	.p2align 4
goentry:
	.cfi_startproc
	.cfi_undefined x30
	hint	#34				/* bti c (reached by ret, which BTI does not check) */
#ifdef GORT_FIBER_HOOKS
	bl	fiber_started			/* x19, x20 are callee-saved */
#endif
	mov	x0, x20
	adr	x30, .Lgoexit_call
	mov	x16, x19
	br	x16
	.cfi_endproc
	.size	goentry, .-goentry

/* The outermost frame of every goroutine (the seed's goexit): a goroutine's entry
 * function returns to goexit+4, the call to goexit1, which ends the goroutine with
 * mcall(goexit0). The leading nop keeps that return address inside goexit (unwinders
 * look up pc-1). */
	.globl	goexit
	.hidden	goexit
	.type	goexit, %function
	.p2align 4
goexit:
	.cfi_startproc
	.cfi_undefined x30
	nop
.Lgoexit_call:
	bl	goexit1
	brk	#0
	.cfi_endproc
	.size	goexit, .-goexit

/* asyncPreempt: asynchronous preemption (Go's asyncPreempt). The preemption
 * signal handler (runtime/preempt.c) found the goroutine at a safe point, put the
 * interrupted pc and PSTATE (NZCV among it) in g->sigpc and g->sigpstate and made
 * the thread resume here instead, every register as interrupted, sp and lr
 * included (unlike Go, which may clobber its reserved R27 and so pushes lr
 * instead). The way back is the problem: a branch
 * to an arbitrary pc needs its target in a register, and at an arbitrary pc no
 * register is free. So the state is saved as a kernel signal frame -- x0-x30, sp,
 * pc, PSTATE, and an fpsimd record with FPSR, FPCR and q0-q31 -- asyncPreempt2
 * gives the P away (mcall) and, once the goroutine runs again on some M, fills in
 * that M's signal mask and alternate stack, and rt_sigreturn restores all of it
 * at once, pc and sp included. */
	.globl	asyncPreempt
	.hidden	asyncPreempt
	.type	asyncPreempt, %function
	.p2align 4
asyncPreempt:
	.cfi_startproc
	.cfi_signal_frame			/* the return address is an exact pc */
	.cfi_def_cfa sp, 0			/* CFA: the interrupted sp */
	hint	#38				/* bti jc: entered with any PSTATE.BTYPE */
	sub	sp, sp, #(SF_SIZE & 0xfff)
	.cfi_adjust_cfa_offset (SF_SIZE & 0xfff)
	sub	sp, sp, #(SF_SIZE >> 12), lsl #12
	.cfi_adjust_cfa_offset (SF_SIZE & ~0xfff)
	stp	x0, x1, [sp, #SF_REGS]
	add	x0, sp, #SF_REGS
	stp	x2, x3, [x0, #16]
	stp	x4, x5, [x0, #32]
	stp	x6, x7, [x0, #48]
	stp	x8, x9, [x0, #64]
	stp	x10, x11, [x0, #80]
	stp	x12, x13, [x0, #96]
	stp	x14, x15, [x0, #112]
	stp	x16, x17, [x0, #128]
	stp	x18, x19, [x0, #144]
	stp	x20, x21, [x0, #160]
	stp	x22, x23, [x0, #176]
	stp	x24, x25, [x0, #192]
	stp	x26, x27, [x0, #208]
	stp	x28, x29, [x0, #224]
	.cfi_offset x29, SF_REGS + 232 - SF_SIZE
	/* sp, and the pc and PSTATE the handler left in the goroutine */
	tlsaddr	x1, x2
	ldr	x1, [x1]			/* g */
	ldp	x2, x3, [x1, #G_SIGPC]		/* x2 = pc, x3 = pstate */
	add	x1, sp, #(SF_SIZE & 0xfff)
	add	x1, x1, #(SF_SIZE >> 12), lsl #12 /* the interrupted sp */
	stp	x30, x1, [x0, #240]		/* regs[30], sp */
	stp	x2, x3, [x0, #256]		/* pc, pstate */
	.cfi_offset x30, SF_REGS + 256 - SF_SIZE /* the interrupted pc, for unwinders */
	/* the fpsimd record, then the empty record that ends the list */
	add	x0, sp, #SF_FPSIMD
	movz	w1, #0x8001
	movk	w1, #0x4650, lsl #16		/* FPSIMD_MAGIC */
	mov	w2, #FPSIMD_SIZE
	stp	w1, w2, [x0]
	mrs	x1, fpsr
	mrs	x2, fpcr
	stp	w1, w2, [x0, #8]
	add	x1, x0, #16
	stp	q0, q1, [x1, #0]
	stp	q2, q3, [x1, #32]
	stp	q4, q5, [x1, #64]
	stp	q6, q7, [x1, #96]
	stp	q8, q9, [x1, #128]
	stp	q10, q11, [x1, #160]
	stp	q12, q13, [x1, #192]
	stp	q14, q15, [x1, #224]
	stp	q16, q17, [x1, #256]
	stp	q18, q19, [x1, #288]
	stp	q20, q21, [x1, #320]
	stp	q22, q23, [x1, #352]
	stp	q24, q25, [x1, #384]
	stp	q26, q27, [x1, #416]
	stp	q28, q29, [x1, #448]
	stp	q30, q31, [x1, #480]
	str	xzr, [x0, #FPSIMD_SIZE]		/* magic 0, size 0 */
	mov	x0, sp
	bl	asyncPreempt2
	mov	x8, #139			/* __NR_rt_sigreturn: restores the frame at sp */
	svc	#0
	brk	#0				/* rt_sigreturn does not return here */
	.cfi_endproc
	.size	asyncPreempt, .-asyncPreempt

/* asyncPreempt2 is runtime/preempt.c's; weak so that arch/ also links without the
 * runtime (tests/arch-selftest.c), where nothing reaches asyncPreempt. */
	.weak	asyncPreempt2

#if defined(__ARM_FEATURE_BTI_DEFAULT) || defined(__ARM_FEATURE_PAC_DEFAULT)
/* Tell the linker this object is BTI/PAC-compatible, or it drops the marking for the
 * whole binary. GNU_PROPERTY_AARCH64_FEATURE_1_AND: bit 0 BTI, bit 1 PAC. */
	.pushsection .note.gnu.property, "a"
	.p2align 3
	.word	4
	.word	16
	.word	5				/* NT_GNU_PROPERTY_TYPE_0 */
	.asciz	"GNU"
	.word	0xc0000000			/* GNU_PROPERTY_AARCH64_FEATURE_1_AND */
	.word	4
#if defined(__ARM_FEATURE_BTI_DEFAULT) && defined(__ARM_FEATURE_PAC_DEFAULT)
	.word	3
#elif defined(__ARM_FEATURE_BTI_DEFAULT)
	.word	1
#else
	.word	2
#endif
	.word	0
	.popsection
#endif

	.section .note.GNU-stack, "", @progbits
