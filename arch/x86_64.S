/* arch/x86_64.S: goroutine context switch (gogo, mcall) and a goroutine's first frame (goentry, goexit). */
#include "asm.h"

/* SysV ABI: rbx, rbp, r12-r15 are callee-saved, and so are the control bits of MXCSR
 * and the x87 control word; everything else the C caller of mcall already treats as
 * clobbered. So a switch saves exactly those, on the stack being left. */

	.text

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
	movq	g_tls@gottpoff(%rip), %rax
	movq	%fs:(%rax), %rsi		/* rsi = gp, the goroutine leaving */
	movq	%rsp, G_SCHED_SP(%rsi)
	movq	G_M(%rsi), %rdx
	movq	M_G0(%rdx), %rdx		/* rdx = gp->m->g0 */
	movq	%rdx, %fs:(%rax)
	movq	G_SCHED_SP(%rdx), %rsp		/* g0's stack, from its top again */
	.cfi_undefined rip			/* g0's frames start here for an unwinder */
	movq	%rdi, %rax
	movq	%rsi, %rdi
	call	*%rax
	ud2					/* fn returned: a runtime bug */
	.cfi_endproc
	.size	mcall, .-mcall

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

	.section .note.GNU-stack, "", @progbits
