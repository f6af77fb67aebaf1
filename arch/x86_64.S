/* arch/x86_64.S: goroutine context switch (gogo, mcall) and a goroutine's first frame (goentry, goexit). */
#include "asm.h"

/* SysV ABI: rbx, rbp, r12-r15 are callee-saved, and so are the control bits of MXCSR
 * and the x87 control word; everything else the C caller of mcall already treats as
 * clobbered. So a switch saves exactly those, on the stack being left. */

	.text

/* The context a switch leaves on the stack it leaves (gogo restores it):
 * rbp, rbx, r12-r15, then 8 bytes holding MXCSR and the x87 control word. */
.macro SAVE_CONTEXT
	pushq	%rbp
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset rbp, 0
	pushq	%rbx
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset rbx, 0
	pushq	%r12
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset r12, 0
	pushq	%r13
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset r13, 0
	pushq	%r14
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset r14, 0
	pushq	%r15
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset r15, 0
	subq	$8, %rsp
	.cfi_adjust_cfa_offset 8
	stmxcsr	0(%rsp)
	fnstcw	4(%rsp)
.endm

/* Right after a switch to another stack, before any call: the frames below are
 * the outermost, for a CFI unwinder (gdb: no return address, CFA and the saved
 * registers no longer on the stack left) and for a frame-pointer walker (rbp 0:
 * the saved context keeps the goroutine's rbp), so neither follows into the
 * frames of the goroutine that switched out or of the one whose stack it is. */
.macro OUTERMOST
	.cfi_def_cfa rsp, 0
	.cfi_undefined rip
	.cfi_restore rbp
	.cfi_restore rbx
	.cfi_restore r12
	.cfi_restore r13
	.cfi_restore r14
	.cfi_restore r15
	xorl	%ebp, %ebp
.endm

/* void gogo(struct g *gp) */
	.globl	gogo
	.hidden	gogo
	.type	gogo, @function
	.p2align 4
gogo:
	.cfi_startproc
	movq	g_tls@gottpoff(%rip), %rax
	movq	%rdi, %fs:(%rax)
	movq	G_SCHED_SP(%rdi), %rsp
	.cfi_undefined rip
	/* Loading MXCSR and the x87 control word stalls the pipeline; they
	 * almost never differ between goroutines, so compare first (scratch
	 * space below the saved sp is free: the resumed code made a call). */
	stmxcsr	-8(%rsp)
	movl	-8(%rsp), %eax
	cmpl	0(%rsp), %eax
	je	1f
	ldmxcsr	0(%rsp)
1:	fnstcw	-8(%rsp)
	movzwl	-8(%rsp), %eax
	cmpw	4(%rsp), %ax
	je	2f
	fldcw	4(%rsp)
2:	addq	$8, %rsp
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	ret
	.cfi_endproc
	.size	gogo, .-gogo

/* void mcall(void (*fn)(struct g *gp)) */
	.globl	mcall
	.hidden	mcall
	.type	mcall, @function
	.p2align 4
mcall:
	.cfi_startproc
	SAVE_CONTEXT
	movq	g_tls@gottpoff(%rip), %rax
	movq	%fs:(%rax), %rsi		/* rsi = gp, the goroutine leaving */
	movq	%rsp, G_SCHED_SP(%rsi)
	movq	G_M(%rsi), %rdx
	movq	M_G0(%rdx), %rdx		/* rdx = gp->m->g0 */
	cmpq	%rdx, %rsi			/* mcall on g0 would lose g0's stack top */
	je	badmcall
	movq	%rdx, %fs:(%rax)
	movq	G_SCHED_SP(%rdx), %rsp		/* g0's stack, from its top again */
	OUTERMOST				/* g0's frames start here */
	movq	%rdi, %rax
	movq	%rsi, %rdi
	call	*%rax
	ud2					/* fn returned: a runtime bug */
	.cfi_endproc
	.size	mcall, .-mcall

/* struct g *mswitch(struct g *next, struct g *(*fn)(struct g *gp, struct g *next))
 * gopark's direct switch (runtime/proc.c): saves the current goroutine gp as mcall
 * does, then calls fn(gp, next) as g0 (g_tls) but on next's stack, below its saved
 * context (next is runnable and ours: nobody else touches its stack), and resumes
 * whichever goroutine fn returns, as gogo. No g0 frames are left unbalanced on the
 * return stack buffer, so the resumed goroutine's returns are predicted when it
 * had switched out through the same call. */
	.globl	mswitch
	.hidden	mswitch
	.type	mswitch, @function
	.p2align 4
mswitch:
	.cfi_startproc
	SAVE_CONTEXT
	movq	g_tls@gottpoff(%rip), %rax
	movq	%fs:(%rax), %rdx		/* rdx = gp, the goroutine leaving */
	movq	%rsp, G_SCHED_SP(%rdx)
	movq	G_M(%rdx), %rcx
	movq	M_G0(%rcx), %rcx
	movq	%rcx, %fs:(%rax)		/* g0 while fn runs */
	movq	G_SCHED_SP(%rdi), %rsp		/* right below next's saved context */
	andq	$-16, %rsp			/* (valgrind allows 128 bytes below it) */
	OUTERMOST				/* fn's frames start here (gogo restores rbp) */
	movq	%rsi, %rax
	movq	%rdi, %rsi
	movq	%rdx, %rdi
	call	*%rax
	movq	%rax, %rdi
	jmp	gogo
	.cfi_endproc
	.size	mswitch, .-mswitch

/* A new goroutine's gogo "returns" here with r12 = fn, r13 = arg and the stack
 * holding goexit's call site as the return address, so fn(arg) returns into goexit. */
	.globl	goentry
	.hidden	goentry
	.type	goentry, @function
	.p2align 4
goentry:
	.cfi_startproc
	.cfi_undefined rip
#ifdef GORT_FIBER_HOOKS
	subq	$8, %rsp
	call	fiber_started
	addq	$8, %rsp
#endif
	movq	%r13, %rdi
	jmp	*%r12
	.cfi_endproc
	.size	goentry, .-goentry

/* The outermost frame of every goroutine (the seed's goexit): a goroutine's entry
 * function returns to goexit+1, the call to goexit1, which ends the goroutine with
 * mcall(goexit0). The leading nop keeps that return address inside goexit. */
	.globl	goexit
	.hidden	goexit
	.type	goexit, @function
	.p2align 4
goexit:
	.cfi_startproc
	.cfi_undefined rip
	nop
	call	goexit1
	ud2
	.cfi_endproc
	.size	goexit, .-goexit

/* asyncPreempt: asynchronous preemption (Go's asyncPreempt). The preemption
 * signal handler (runtime/preempt.c) found the goroutine at a safe point, put the
 * interrupted pc in g->sigpc and made the thread resume here instead, every
 * register (rsp included) as interrupted. Unlike after a call, nothing may be
 * assumed dead, and the 128-byte red zone below rsp may hold the interrupted
 * code's data: the trampoline steps past it, stores the pc as a return address
 * (without touching rflags), then saves rflags, all 15 general registers and the
 * x87/SSE/AVX/AVX-512 state (xsave with the mask and area size preempt_init got
 * from cpuid; fxsave on CPUs without xsave) on the goroutine's stack.
 * asyncPreempt2 then gives the P away (mcall); when the goroutine is scheduled
 * again, on whichever M, it returns here, everything is restored, and
 * `ret $128` pops the pc and then the red-zone gap, so the interrupted code
 * continues with every register as it left it. */
.macro	SAVEREG r
	pushq	%\r
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset \r, 0
.endm
.macro	RESTOREREG r
	popq	%\r
	.cfi_adjust_cfa_offset -8
	.cfi_restore \r
.endm

	.globl	asyncPreempt
	.hidden	asyncPreempt
	.type	asyncPreempt, @function
	.p2align 4
asyncPreempt:
	.cfi_startproc
	.cfi_signal_frame			/* the return address is an exact pc */
	leaq	-136(%rsp), %rsp		/* the pc's slot, past the red zone */
	pushq	%rax
	movq	g_tls@gottpoff(%rip), %rax
	movq	%fs:(%rax), %rax
	movq	G_SIGPC(%rax), %rax
	movq	%rax, 8(%rsp)
	popq	%rax
	.cfi_val_offset rsp, 128		/* from here: CFA = rsp + 8, and the caller's
						   rsp is past the red zone */
	pushfq
	.cfi_adjust_cfa_offset 8
	SAVEREG	rax
	SAVEREG	rbx
	SAVEREG	rcx
	SAVEREG	rdx
	SAVEREG	rsi
	SAVEREG	rdi
	SAVEREG	rbp
	SAVEREG	r8
	SAVEREG	r9
	SAVEREG	r10
	SAVEREG	r11
	SAVEREG	r12
	SAVEREG	r13
	SAVEREG	r14
	SAVEREG	r15
	movq	%rsp, %rbp
	.cfi_def_cfa_register rbp
	cld					/* the C ABI wants DF clear */
	subq	preempt_xsave_size(%rip), %rsp
	andq	$-64, %rsp
	/* Zero the area: XSAVE writes only XSTATE_BV of the header at 512, and
	 * XRSTOR faults on a nonzero XCOMP_BV or reserved byte; nor does XSAVE write
	 * components in their initial state, whose stale bytes XRSTOR then reads
	 * (harmlessly, but valgrind's memcheck taints every restored register). */
	movq	%rsp, %rdi
	movq	preempt_xsave_size(%rip), %rcx
	shrq	$3, %rcx
	xorl	%eax, %eax
	rep stosq
	movq	preempt_xsave_mask(%rip), %rax
	testq	%rax, %rax
	jz	1f
	movq	%rax, %rdx
	shrq	$32, %rdx
	xsave64	(%rsp)
	testb	$4, %al				/* AVX state saved: no dirty upper halves in C */
	jz	2f
	vzeroupper
	jmp	2f
1:	fxsave64 (%rsp)
2:	fninit					/* the C ABI wants the x87 stack empty */
	movq	%rbp, %rdi			/* the saved registers (asyncPreempt2's frame) */
	call	asyncPreempt2
	movq	preempt_xsave_mask(%rip), %rax
	testq	%rax, %rax
	jz	3f
	movq	%rax, %rdx
	shrq	$32, %rdx
	xrstor64 (%rsp)
	jmp	4f
3:	fxrstor64 (%rsp)
4:	movq	%rbp, %rsp
	.cfi_def_cfa_register rsp
	RESTOREREG r15
	RESTOREREG r14
	RESTOREREG r13
	RESTOREREG r12
	RESTOREREG r11
	RESTOREREG r10
	RESTOREREG r9
	RESTOREREG r8
	RESTOREREG rbp
	RESTOREREG rdi
	RESTOREREG rsi
	RESTOREREG rdx
	RESTOREREG rcx
	RESTOREREG rbx
	RESTOREREG rax
	popfq
	.cfi_adjust_cfa_offset -8
	ret	$128
	.cfi_endproc
	.size	asyncPreempt, .-asyncPreempt

/* asyncPreempt2 is runtime/preempt.c's; weak so that arch/ also links without the
 * runtime (tests/arch-selftest.c), where nothing reaches asyncPreempt. */
	.weak	asyncPreempt2

/* How asyncPreempt saves the extended state, set once by preempt_init from
 * cpuid: the XSAVE requested-feature bitmap (0: no xsave, use fxsave) and the
 * bytes to reserve for the area (plus up to 63 for its alignment). */
	.data
	.p2align 3
	.globl	preempt_xsave_mask
	.hidden	preempt_xsave_mask
	.type	preempt_xsave_mask, @object
preempt_xsave_mask:
	.quad	0
	.size	preempt_xsave_mask, 8
	.globl	preempt_xsave_size
	.hidden	preempt_xsave_size
	.type	preempt_xsave_size, @object
preempt_xsave_size:
	.quad	512
	.size	preempt_xsave_size, 8

	.section .note.GNU-stack, "", @progbits
