/* runtime/stack.c: goroutine stacks carved from large lazily committed arenas, with overflow detection. */
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <valgrind/valgrind.h>

#include "runtime.h"

/*
 * A goroutine stack cannot grow by copying in C, so it is a fixed-size slot:
 *
 *	slot = [ one page: guard or canary ][ usable stack: size bytes ]
 *	                                     ^stacklo                   ^stackhi
 *
 * Slots are carved from arenas of ARENA_BYTES reserved with MAP_NORESERVE, so the
 * kernel commits a stack page only when a goroutine first touches it, and one
 * arena is one mapping however many stacks it holds: a million goroutines need a
 * few hundred mappings, not a million (vm.max_map_count is 65530 by default).
 *
 * The page below a stack is a guard. Since Linux 6.13, MADV_GUARD_INSTALL puts a
 * guard marker in the page table without splitting the mapping, so every stack
 * gets one for free. On older kernels a guard is an mprotect(PROT_NONE), and each
 * splits the arena's mapping in two, so those are limited to a quarter of
 * vm.max_map_count. Beyond that the page stays mapped but is never written by
 * correct code, so it reads as zeros (the shared zero page: no memory used): a
 * canary. Every switch away from a goroutine checks its saved sp and a few words
 * at the top of that page, the first ones a contiguous overrun (a large local
 * array, memset past the end) writes; an overflow that skips them (a frame larger
 * than the page) is only caught by a guard.
 * Transparent huge pages are off for arenas: one touch would commit 2 MiB.
 */

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#define PAGE 4096UL
#define ARENA_BYTES (1UL << 30)
#define CANARY_WORDS 8

struct arena {
	struct arena *next;
	uintptr_t base, end, cursor;
};

struct sizeclass {
	size_t size;           /* usable bytes */
	uintptr_t *free;       /* free slots' stacklo, bit 0 = guarded */
	size_t nfree, capfree;
};

static struct {
	struct mutex lock;
	struct arena *arenas;
	struct sizeclass classes[8];
	size_t nclasses;
	long guards, guard_budget;
	uint64_t slots, inuse;
} stk;

/* Set before the first allocation; tests turn guards off to reach the canary path. */
long stack_guard_budget = -1;     /* mprotect guards; -1: a quarter of vm.max_map_count */
bool stack_guard_markers = true;  /* MADV_GUARD_INSTALL where the kernel has it */
static _Atomic int guard_markers_work = -1; /* -1 unknown, 0 no, 1 yes */

size_t stack_round(size_t size)
{
	if (size < 2 * PAGE)
		size = 2 * PAGE;
	return (size + PAGE - 1) & ~(PAGE - 1);
}

static long guard_budget(void)
{
	if (stack_guard_budget >= 0)
		return stack_guard_budget;
	long max = 65530;
	FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
	if (f) {
		if (fscanf(f, "%ld", &max) != 1)
			max = 65530;
		fclose(f);
	}
	return max / 4;
}

static struct sizeclass *sizeclass_get(size_t size)
{
	for (size_t i = 0; i < stk.nclasses; i++)
		if (stk.classes[i].size == size)
			return &stk.classes[i];
	if (stk.nclasses == ARRAY_SIZE(stk.classes))
		return NULL;
	struct sizeclass *c = &stk.classes[stk.nclasses++];
	*c = (struct sizeclass){ .size = size };
	return c;
}

/* True if reading the page at addr faults: write() from it into a pipe fails with EFAULT. */
static bool page_faults(uintptr_t addr)
{
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) < 0)
		return false;
	bool faults = write(fds[1], (const void *)addr, 1) < 0 && errno == EFAULT;
	close(fds[0]);
	close(fds[1]);
	return faults;
}

static int arena_carve(size_t slotsize, uintptr_t *ret_slot)
{
	struct arena *a = stk.arenas;
	if (!a || a->end - a->cursor < slotsize) {
		size_t bytes = slotsize > ARENA_BYTES / 16 ? slotsize * 16 : ARENA_BYTES;
		void *base = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (base == MAP_FAILED)
			return -errno;
		(void)madvise(base, bytes, MADV_NOHUGEPAGE);
		a = malloc(sizeof(*a));
		if (!a) {
			munmap(base, bytes);
			return -ENOMEM;
		}
		*a = (struct arena){ .next = stk.arenas, .base = (uintptr_t)base,
				     .end = (uintptr_t)base + bytes, .cursor = (uintptr_t)base };
		stk.arenas = a;
	}
	*ret_slot = a->cursor;
	a->cursor += slotsize;
	return 0;
}

/* stackalloc: a stack with size usable bytes (a multiple of the page size). Fails
 * with -ENOMEM when the address space or the process's mapping budget is out. */
int stackalloc(size_t size, struct stackalloc *ret)
{
	int r = 0;
	lock(&stk.lock);
	if (stk.guard_budget == 0 && stk.guards == 0)
		stk.guard_budget = guard_budget();
	struct sizeclass *c = sizeclass_get(size);
	if (c && c->nfree > 0) {
		uintptr_t v = c->free[--c->nfree];
		ret->lo = v & ~1UL;
		ret->guarded = v & 1;
	} else {
		uintptr_t slot = 0;
		r = arena_carve(size + PAGE, &slot);
		if (r < 0)
			goto out;
		ret->guarded = false;
		if (stack_guard_markers && atomic_load(&guard_markers_work) != 0) {
			bool ok = madvise((void *)slot, PAGE, MADV_GUARD_INSTALL) == 0;
			/* an emulator (qemu-user) may accept the advice and do nothing */
			if (ok && atomic_load(&guard_markers_work) < 0)
				ok = page_faults(slot);
			atomic_store(&guard_markers_work, ok);
			ret->guarded = ok;
		}
		if (!ret->guarded && stk.guards < stk.guard_budget &&
		    mprotect((void *)slot, PAGE, PROT_NONE) == 0) {
			stk.guards++;
			ret->guarded = true;
		}
		ret->lo = slot + PAGE;
		stk.slots++;
		/* valgrind tells stacks apart by registration, not by distance */
		if (RUNNING_ON_VALGRIND)
			VALGRIND_STACK_REGISTER(ret->lo, ret->lo + size);
	}
	ret->hi = ret->lo + size;
	stk.inuse++;
out:
	unlock(&stk.lock);
	return r;
}

/* stackfree: return a stack to its size class for reuse. This function can't fail
 * (a size class list that can't grow drops the slot: its address space leaks). */
void stackfree(uintptr_t lo, uintptr_t hi, bool guarded)
{
	lock(&stk.lock);
	stk.inuse--;
	struct sizeclass *c = sizeclass_get(hi - lo);
	if (c && c->nfree == c->capfree) {
		size_t ncap = c->capfree ? c->capfree * 2 : 256;
		uintptr_t *nf = realloc(c->free, ncap * sizeof(*nf));
		if (nf) {
			c->free = nf;
			c->capfree = ncap;
		}
	}
	if (c && c->nfree < c->capfree)
		c->free[c->nfree++] = lo | (guarded ? 1 : 0);
	unlock(&stk.lock);
}

/* Gives a pooled stack's pages back to the kernel; the next use faults in zeros. */
void stack_release_pages(uintptr_t lo, uintptr_t hi)
{
	(void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

static inline const uintptr_t *canary_word(struct g *gp, int i)
{
	/* the top of the page below stacklo, then a spread over that page */
	return (const uintptr_t *)(gp->stacklo - sizeof(uintptr_t) * (size_t)(i < 4 ? i + 1 : i * 64));
}

/* True unless gp overflowed its stack: its saved sp is below its stack, or the
 * canary page of an unguarded stack has been written. */
bool stack_canary_ok(struct g *gp)
{
	if (unlikely(gp->sched.sp < gp->stacklo || gp->sched.sp > gp->stackhi))
		return false;
	if (gp->stackguarded)
		return true;
	uintptr_t acc = 0;
	for (int i = 0; i < CANARY_WORDS; i++)
		acc |= *canary_word(gp, i);
	return acc == 0;
}

/* A canary page whose stack overflowed is dirty: clear it before the slot is reused. */
void stack_canary_init(struct g *gp)
{
	if (!gp->stackguarded)
		(void)madvise((void *)(gp->stacklo - PAGE), PAGE, MADV_DONTNEED);
}

void stack_stats(struct stack_stats *ret)
{
	lock(&stk.lock);
	uint64_t arenas = 0;
	for (struct arena *a = stk.arenas; a; a = a->next)
		arenas++;
	*ret = (struct stack_stats){ .arenas = arenas, .slots = stk.slots,
				     .guarded = (uint64_t)stk.guards, .inuse = stk.inuse };
	unlock(&stk.lock);
}

/* Unmaps every arena; only when no goroutine stack is in use (runtime_stop). */
void stack_shutdown(void)
{
	lock(&stk.lock);
	for (struct arena *a = stk.arenas, *next; a; a = next) {
		next = a->next;
		munmap((void *)a->base, a->end - a->base);
		free(a);
	}
	for (size_t i = 0; i < stk.nclasses; i++)
		free(stk.classes[i].free);
	stk.arenas = NULL;
	stk.nclasses = 0;
	stk.guards = 0;
	stk.guard_budget = 0;
	stk.slots = stk.inuse = 0;
	unlock(&stk.lock);
}
