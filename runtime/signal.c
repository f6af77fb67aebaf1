/* runtime/signal.c: per-M signal stacks and the fault handler that reports goroutine stack overflows. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "runtime.h"

/*
 * Faults are handled on a per-M alternate signal stack: a goroutine that ran
 * into its guard page has no stack left to run a handler on. A fault inside a
 * goroutine's guard page is reported as a stack overflow of that goroutine;
 * anything else is passed to the handler that was installed before the runtime
 * started (or the default action), as if the runtime were not there.
 */

#define SIGSTACK_SIZE (64 * 1024)

static const int fault_signals[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL };
static struct sigaction old_actions[ARRAY_SIZE(fault_signals)];

static int fault_index(int sig)
{
	for (size_t i = 0; i < ARRAY_SIZE(fault_signals); i++)
		if (fault_signals[i] == sig)
			return (int)i;
	return -1;
}

static void fault_handler(int sig, siginfo_t *si, void *uctx)
{
	/* A fault in a task goroutine's code is a panic of its task (task.c). */
	if (task_fault(sig, si, uctx))
		return;
	struct g *gp = getg();
	struct g *cur = gp && gp->m ? gp->m->curg : NULL;
	uintptr_t addr = (uintptr_t)si->si_addr;
	if (cur && gstacksize(cur) && addr < cur->stacklo && addr >= cur->stacklo - 4096) {
		char buf[192];
		int n = snprintf(buf, sizeof buf,
				 "fatal error: stack overflow\n\ngoroutine %lld: stack [%#lx, %#lx), fault at %#lx\n",
				 (long long)cur->goid, (unsigned long)cur->stacklo, (unsigned long)cur->stackhi,
				 (unsigned long)addr);
		(void)!write(2, buf, n > 0 ? (size_t)n : 0);
		signal(SIGABRT, SIG_DFL);
		abort();
	}
	/* Not ours: whatever was there before decides. */
	int i = fault_index(sig);
	struct sigaction *old = &old_actions[i];
	if (old->sa_flags & SA_SIGINFO) {
		if (old->sa_sigaction) {
			old->sa_sigaction(sig, si, uctx);
			return;
		}
	} else if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
		old->sa_handler(sig);
		return;
	}
	/* default action: reinstall it and return; the faulting instruction refaults */
	signal(sig, SIG_DFL);
}

void signals_init(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = fault_handler;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	sigfillset(&sa.sa_mask);
	for (size_t i = 0; i < ARRAY_SIZE(fault_signals); i++)
		sigaction(fault_signals[i], &sa, &old_actions[i]);
	preempt_init();
}

void signals_fini(void)
{
	preempt_fini();
	for (size_t i = 0; i < ARRAY_SIZE(fault_signals); i++)
		sigaction(fault_signals[i], &old_actions[i], NULL);
}

/* minit: per-M set-up on the new thread: its signal stack and signal mask. */
void minit(struct m *mp)
{
	(void)mp;
	stack_t ss = { 0 };
	ss.ss_sp = mmap(NULL, SIGSTACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ss.ss_sp == MAP_FAILED)
		throw("minit: cannot allocate signal stack");
	ss.ss_size = SIGSTACK_SIZE;
	if (sigaltstack(&ss, NULL) < 0)
		throw("minit: sigaltstack failed");
	sigset_t set;
	sigemptyset(&set);
	for (size_t i = 0; i < ARRAY_SIZE(fault_signals); i++)
		sigaddset(&set, fault_signals[i]);
	sigaddset(&set, SIGFPE);
	sigaddset(&set, SIGILL);
	sigaddset(&set, SIGABRT);
	sigaddset(&set, SIGPREEMPT);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

void munit(struct m *mp)
{
	(void)mp;
	stack_t ss = { .ss_flags = SS_DISABLE }, old;
	if (sigaltstack(&ss, &old) == 0 && old.ss_sp)
		munmap(old.ss_sp, old.ss_size);
}
