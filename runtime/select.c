/* runtime/select.c: gort_select, Go's select statement: wait on many channel operations at once, pick uniformly among the ready ones. */
#include "chan.h"

/*
 * As Go's selectgo, in three passes over the cases with all their channels
 * locked (in address order, each distinct channel once, so that two selects
 * over the same channels can't deadlock):
 *   1. in a random order (pollorder), the first case that can proceed at once
 *      wins: uniform among the ready cases;
 *   2. none: unless block is false (Go's default), queue one sudog per case on
 *      its channel and park; selparkcommit releases the locks on g0;
 *   3. woken: whoever completed one of our sudogs won g->selectdone and set
 *      g->param to it; lock again and take the other sudogs off their queues.
 * Cases with a NULL channel are never ready (Go's nil channel case).
 */

#define SELECT_STACK_CASES 8
#define SELECT_MAX_CASES 65536

static inline struct hchan *casechan(const gort_select_case *cs)
{
	return (struct hchan *)cs->chan;
}

/* Sorts lockorder[0..n) by channel address: insertion sort for the usual few
 * cases, heapsort (no allocation, n log n) beyond. */
static void sortlockorder(const gort_select_case *cases, uint16_t *order, int n)
{
#define ADDR(k) ((uintptr_t)cases[order[k]].chan)
	if (n <= 16) {
		for (int i = 1; i < n; i++) {
			uint16_t v = order[i];
			uintptr_t a = (uintptr_t)cases[v].chan;
			int j = i;
			for (; j > 0 && ADDR(j - 1) > a; j--)
				order[j] = order[j - 1];
			order[j] = v;
		}
		return;
	}
	/* heapsort: build a max-heap, then move the max to the end repeatedly */
	for (int start = n / 2 - 1; start >= 0; start--) {
		int root = start;
		for (;;) {
			int child = 2 * root + 1;
			if (child >= n)
				break;
			if (child + 1 < n && ADDR(child + 1) > ADDR(child))
				child++;
			if (ADDR(root) >= ADDR(child))
				break;
			uint16_t t = order[root];
			order[root] = order[child];
			order[child] = t;
			root = child;
		}
	}
	for (int end = n - 1; end > 0; end--) {
		uint16_t t = order[0];
		order[0] = order[end];
		order[end] = t;
		int root = 0;
		for (;;) {
			int child = 2 * root + 1;
			if (child >= end)
				break;
			if (child + 1 < end && ADDR(child + 1) > ADDR(child))
				child++;
			if (ADDR(root) >= ADDR(child))
				break;
			uint16_t u = order[root];
			order[root] = order[child];
			order[child] = u;
			root = child;
		}
	}
#undef ADDR
}

static void sellock(const gort_select_case *cases, const uint16_t *lockorder, int n)
{
	struct hchan *last = NULL;
	for (int k = 0; k < n; k++) {
		struct hchan *c = casechan(&cases[lockorder[k]]);
		if (c != last)
			chanlock(c);
		last = c;
	}
}

static void selunlock(const gort_select_case *cases, const uint16_t *lockorder, int n)
{
	for (int k = n - 1; k >= 0; k--) {
		struct hchan *c = casechan(&cases[lockorder[k]]);
		if (k > 0 && c == casechan(&cases[lockorder[k - 1]]))
			continue;
		chanunlock(c);
	}
}

/* gopark's unlock function, on g0: releases every channel lock, walking the
 * sudogs (in lock order) on gp's stack. Once the first lock is released gp may
 * be readied and run, but it must lock every channel again before it touches
 * its sudogs, and the last one is still ours. */
static bool selparkcommit(struct g *gp, void *arg)
{
	(void)arg;
	struct hchan *last = NULL;
	for (struct sudog *sg = gp->waiting; sg; sg = sg->waitlink) {
		if (sg->c != last && last)
			chanunlock(last);
		last = sg->c;
	}
	if (last)
		chanunlock(last);
	return true;
}

GORT_EXPORT int gort_select(gort_select_case *cases, int n, bool block)
{
	if (unlikely(n < 0 || n > SELECT_MAX_CASES || (n > 0 && !cases)))
		gort_panic("select: bad case list (%d cases at %p)", n, (void *)cases);
	for (int i = 0; i < n; i++) {
		gort_select_case *cs = &cases[i];
		if (unlikely(cs->dir != GORT_SEND && cs->dir != GORT_RECV))
			gort_panic("select: case %d: bad direction %d", i, (int)cs->dir);
		if (unlikely(cs->dir == GORT_SEND && cs->chan && !cs->elem && casechan(cs)->elemsize))
			gort_panic("select: case %d: NULL element pointer for a send", i);
		cs->ok = false;
	}

	uint16_t orderbuf[2 * SELECT_STACK_CASES];
	struct sudog sgbuf[SELECT_STACK_CASES];
	uint16_t *pollorder = orderbuf;
	struct sudog *sgs = sgbuf;
	void *heap = NULL;
	if (n > SELECT_STACK_CASES) {
		heap = malloc((size_t)n * (sizeof(struct sudog) + 2 * sizeof(uint16_t)));
		if (!heap)
			gort_panic("select: out of memory for %d cases", n);
		sgs = heap;
		pollorder = (uint16_t *)(sgs + n);
	}
	uint16_t *lockorder = pollorder + n;

	/* pollorder: a uniformly random permutation of the cases that have a
	 * channel (inside-out Fisher-Yates) */
	int norder = 0;
	struct g *me = getg();
	struct m *mp = me ? acquirem() : NULL; /* the M's generator: stay on it */
	for (int i = 0; i < n; i++) {
		if (!cases[i].chan)
			continue;
		uint32_t j = fastrandn((uint32_t)norder + 1);
		pollorder[norder] = pollorder[j];
		pollorder[j] = (uint16_t)i;
		norder++;
	}
	if (mp)
		releasem(mp);
	if (norder == 0) {
		free(heap);
		if (!block)
			return -1;
		struct g *gp = getg();
		if (!gp || gp == gp->m->g0)
			gort_panic("select: blocking select outside a goroutine");
		block_forever(WAIT_SELECT_NO_CASES);
	}
	memcpy(lockorder, pollorder, (size_t)norder * sizeof(uint16_t));
	sortlockorder(cases, lockorder, norder);

	int casi = -1;
	struct g *readied = NULL;
	sellock(cases, lockorder, norder);

	/* pass 1: the first ready case in poll order */
	for (int k = 0; k < norder; k++) {
		int i = pollorder[k];
		gort_select_case *cs = &cases[i];
		struct hchan *c = casechan(cs);
		if (cs->dir == GORT_RECV) {
			struct sudog *sg = waitq_dequeue(&c->sendq);
			if (sg) {
				readied = chan_recv_from(c, sg, cs->elem);
				cs->ok = true;
			} else if (atomic_load_explicit(&c->qcount, memory_order_relaxed) > 0) {
				chan_bufrecv(c, cs->elem);
				cs->ok = true;
			} else if (atomic_load_explicit(&c->closed, memory_order_relaxed)) {
				elemclear(cs->elem, c->elemsize);
				cs->ok = false;
			} else {
				continue;
			}
		} else {
			if (atomic_load_explicit(&c->closed, memory_order_relaxed)) {
				selunlock(cases, lockorder, norder);
				free(heap);
				gort_panic("send on closed channel");
			}
			struct sudog *sg = waitq_dequeue(&c->recvq);
			if (sg)
				readied = chan_send_to(c, sg, cs->elem);
			else if (atomic_load_explicit(&c->qcount, memory_order_relaxed) < c->dataqsiz)
				chan_bufsend(c, cs->elem);
			else
				continue;
			cs->ok = true;
		}
		casi = i;
		break;
	}
	if (casi >= 0 || !block) {
		selunlock(cases, lockorder, norder);
		if (readied)
			goready(readied);
		free(heap);
		return casi;
	}

	/* pass 2: queue on every channel and park */
	struct g *gp = getg();
	if (unlikely(!gp || gp == gp->m->g0)) {
		selunlock(cases, lockorder, norder);
		free(heap);
		gort_panic("select: blocking select outside a goroutine");
	}
	atomic_store_explicit(&gp->selectdone, 0, memory_order_relaxed);
	gp->param = NULL;
	struct sudog **link = &gp->waiting;
	for (int k = 0; k < norder; k++) {
		gort_select_case *cs = &cases[lockorder[k]];
		struct sudog *sg = &sgs[k];
		*sg = (struct sudog){ .g = gp, .elem = cs->elem, .c = casechan(cs), .isselect = true };
		*link = sg;
		link = &sg->waitlink;
		waitq_enqueue(cs->dir == GORT_SEND ? &sg->c->sendq : &sg->c->recvq, sg);
	}
	*link = NULL;
	gopark(selparkcommit, NULL, WAIT_SELECT);

	/* pass 3: the winner is g->param; dequeue the rest */
	sellock(cases, lockorder, norder);
	struct sudog *won = gp->param;
	gp->param = NULL;
	gp->waiting = NULL;
	for (int k = 0; k < norder; k++) {
		struct sudog *sg = &sgs[k];
		gort_select_case *cs = &cases[lockorder[k]];
		if (sg == won) {
			casi = lockorder[k];
			continue;
		}
		waitq_remove(cs->dir == GORT_SEND ? &sg->c->sendq : &sg->c->recvq, sg);
	}
	selunlock(cases, lockorder, norder);
	if (unlikely(casi < 0))
		throw("select: woken without a winning case");
	bool success = won->success;
	free(heap);
	if (cases[casi].dir == GORT_SEND && !success)
		gort_panic("send on closed channel");
	cases[casi].ok = success;
	return casi;
}
