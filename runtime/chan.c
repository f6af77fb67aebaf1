/* runtime/chan.c: channels with Go's semantics: direct hand-off between goroutines, buffered rings, close, per-task ownership. */
#include <sched.h>
#include <stdio.h>
#include <time.h>

#include "chan.h"

/*
 * As Go's chan.go. A channel is one allocation: the hchan and its ring. Every
 * operation takes c's lock (chanlock, below), which is never held across a
 * goroutine switch except into gopark, whose unlock function (run on g0 once the
 * goroutine is off its stack and marked waiting) releases it: whoever dequeues
 * the waiter's sudog can then goready it without a lost wakeup. The receiver
 * readied into runnext usually runs next through gopark's direct switch
 * (proc.c) when the sender blocks in turn.
 *
 * Unbuffered channels and full/empty rings with a waiting partner hand the
 * element over directly: a sender copies into the parked receiver's variable
 * (sudog.elem points into the receiver's stack) and a receiver copies out of a
 * parked sender's, so the element moves once. On a full ring with a parked
 * sender, a receiver takes the head and moves the sender's element to the tail,
 * which keeps the FIFO order of values.
 *
 * Waiters are FIFO (waitq). close wakes every receiver with a zero element and
 * ok=false and every blocked sender, which then panics, as in Go.
 *
 * The lock is biased to a P (chanlock). With the runnext hand-off made free
 * of locked instructions (proc.c's essay, "Runnext"), the channel lock's
 * exchange was what remained of them on a hop: two per hop (the sender's, and
 * the receiver's before it parks), the most expensive instructions of the
 * hop, since each waits for the store buffer to drain. But a channel whose
 * ends both run on one P (a hand-off pair, a ring, a pipeline whose stages
 * take turns on one P) is locked by one P at a time anyway. So, with
 * lock_futex.c's asymmetric fence: once one P has taken a channel's lock
 * CHANLOCK_REBIAS times in a row, the lock is biased to it (c->bias = its
 * id + 1): its goroutines take it by storing c in a free slot of their P's
 * chanheld, loading c->bias again and finding it still theirs; chanunlock
 * clears the slot. Two goroutines of one P never contend: the holder is
 * pinned to the P's M until it unlocks. Anyone else takes the mutex, then
 * revokes: bias = 0, membarrier (after which no biased take can start: its
 * second load sees 0), and waits until no slot of the old bias P holds c (a
 * biased take in progress finishes or backs out). The slots are the P's, not
 * the channel's: a taker that loaded an old bias and was descheduled before
 * its store must not overwrite what the holder of a newer bias stored (a
 * first version kept one held word in the channel, and the stress suite
 * failed with "unlock of unlocked lock"). chanunlock knows which way the
 * caller took it from its P's slots: only that P's running goroutine writes
 * them. All slots in use (a select over many channels): the mutex. A channel
 * used from two Ps in turn is never biased (no run of CHANLOCK_REBIAS), so it
 * never pays a revocation; one that moves between Ps pays one membarrier per
 * move, and so does a close from another P or a thread of its own (~1 us,
 * and an interrupt on the CPUs running the process). A free takes no lock
 * (gort_chan_free says why), so it never revokes. Without
 * membarrier no lock is ever biased; where it starts failing after a lock was
 * biased (a seccomp filter installed later), a revocation fences the biased
 * P's thread alone, through its signal handler (preempt.c's p_fence).
 *
 * Rejected: a sudog pool per P (Go's acquireSudog). Go needs it because its
 * stacks move; ours don't, so a sudog is a local of the blocked call.
 */

/* consecutive takes by one P before the lock is biased to it */
#define CHANLOCK_REBIAS 64

/* Takes c->lock the unbiased way (the mutex), revoking a bias to another P;
 * biases it to me (our P's id + 1, 0 without a P) after a run of takes. */
__attribute__((noinline)) void chanlock_slow(struct hchan *c, int32_t me)
{
	lock(&c->lock);
	int32_t b = atomic_load_explicit(&c->bias, memory_order_relaxed);
	if (b != 0 && b != me) {
		atomic_fetch_add_explicit(&sched.nchanrevokes, 1, memory_order_relaxed);
		atomic_store_explicit(&c->bias, 0, memory_order_seq_cst);
		/* (no runtime, or fewer Ps than when c was biased: nobody holds it so) */
		struct p **ps = allp;
		struct p *bp = ps && b <= gomaxprocs ? ps[b - 1] : NULL;
		/* a biased take that loads bias after this barrier backs out; one
		 * that loaded it before has its slot store visible after it. Where
		 * membarrier fails (a seccomp filter installed after start), the
		 * same barrier on the biased P's thread alone, through its signal
		 * handler (a thread that took bp after our store sees it: taking a
		 * P is a locked instruction) */
		while (membarrier_all() < 0) {
			if (!bp || p_fence(bp) == 0)
				break;
			struct timespec ts = { 0, 1000 * 1000 };
			nanosleep(&ts, NULL); /* neither: revoking needs the barrier */
		}
		for (int i = 0; bp && i < (int)ARRAY_SIZE(bp->chanheld); i++)
			while (atomic_load_explicit(&bp->chanheld[i], memory_order_acquire) == c)
				sched_yield(); /* a few instructions, unless its thread was preempted */
		b = 0;
	}
	if (me == 0 || me != c->lastp) {
		c->lastp = me;
		c->nsame = 1;
	} else if (++c->nsame >= CHANLOCK_REBIAS && b == 0 && membarrier_ok()) {
		atomic_store_explicit(&c->bias, me, memory_order_release);
	}
}

/* q->first is also read without the lock (chanfull/chanempty's peeks). */
static inline void setfirst(struct waitq *q, struct sudog *sg)
{
	__atomic_store_n(&q->first, sg, __ATOMIC_RELAXED);
}

void waitq_enqueue(struct waitq *q, struct sudog *sg)
{
	sg->next = NULL;
	struct sudog *x = q->last;
	if (!x) {
		sg->prev = NULL;
		q->last = sg;
		setfirst(q, sg);
		return;
	}
	sg->prev = x;
	x->next = sg;
	q->last = sg;
}

struct sudog *waitq_dequeue(struct waitq *q)
{
	for (;;) {
		struct sudog *sg = q->first;
		if (!sg)
			return NULL;
		struct sudog *y = sg->next;
		if (!y) {
			q->last = NULL;
			setfirst(q, NULL);
		} else {
			y->prev = NULL;
			setfirst(q, y);
			sg->next = NULL;
		}
		/* A select is queued on all its channels: the first to win
		 * selectdone owns it; the others drop its sudog and move on. */
		if (sg->isselect) {
			uint32_t zero = 0;
			if (!atomic_compare_exchange_strong_explicit(&sg->g->selectdone, &zero, 1,
								     memory_order_acq_rel, memory_order_relaxed))
				continue;
		}
		return sg;
	}
}

void waitq_remove(struct waitq *q, struct sudog *sg)
{
	struct sudog *x = sg->prev, *y = sg->next;
	if (x) {
		if (y) {
			x->next = y;
			y->prev = x;
		} else {
			x->next = NULL;
			q->last = x;
		}
	} else if (y) {
		y->prev = NULL;
		setfirst(q, y);
	} else if (q->first == sg) {
		q->last = NULL;
		setfirst(q, NULL);
	}
	/* else: already dequeued by someone else */
	sg->next = sg->prev = NULL;
}

static void chan_free_obj(struct task_obj *o)
{
	free((char *)o - offsetof(struct hchan, obj));
}

static inline struct hchan *hchan(gort_chan *c)
{
	return (struct hchan *)c;
}

/* Blocks the calling goroutine forever (a nil channel), as Go does; the end of
 * its task still finds it. */
_Noreturn void block_forever(enum waitreason reason)
{
	task_block_forever(reason);
}

/* Takes sg off whichever queue of c holds it, if any (c->lock held). */
static void waitq_unlink_any(struct hchan *c, struct sudog *sg)
{
	for (struct sudog *x = c->recvq.first; x; x = x->next)
		if (x == sg) {
			waitq_remove(&c->recvq, sg);
			return;
		}
	for (struct sudog *x = c->sendq.first; x; x = x->next)
		if (x == sg) {
			waitq_remove(&c->sendq, sg);
			return;
		}
}

void chan_cancel_task(struct task *t, struct gqueue *ret)
{
	struct gqueue sel = { 0 };
	lock(&t->lock);
	for (struct task_obj *o = t->objs; o; o = o->next) {
		if (o->free_fn != chan_free_obj)
			continue;
		struct hchan *c = (struct hchan *)((char *)o - offsetof(struct hchan, obj));
		chanlock(c);
		/* A sudog in a queue is a parked goroutine's: it queued itself under
		 * this lock and only gopark's unlock function released it. */
		for (int dir = 0; dir < 2; dir++) {
			struct waitq *q = dir ? &c->sendq : &c->recvq;
			for (struct sudog *sg = q->first, *next; sg; sg = next) {
				next = sg->next;
				struct g *gp = sg->g;
				if (gp->task != t)
					continue;
				if (sg->isselect) {
					/* ours only if no case completed it first (then its
					 * waker readies it); unlinked below with its others */
					uint32_t zero = 0;
					if (atomic_compare_exchange_strong(&gp->selectdone, &zero, 1))
						gqueue_push(&sel, gp);
					continue;
				}
				waitq_remove(q, sg);
				gqueue_push(ret, gp);
			}
		}
		chanunlock(c);
	}
	unlock(&t->lock);
	/* The selects we won: every sudog of theirs leaves its channel, as selectgo
	 * does itself when it wakes (its stack is about to be reused). */
	struct g *gp;
	while ((gp = gqueue_pop(&sel))) {
		for (struct sudog *sg = gp->waiting; sg; sg = sg->waitlink) {
			chanlock(sg->c);
			waitq_unlink_any(sg->c, sg);
			chanunlock(sg->c);
		}
		gqueue_push(ret, gp);
	}
}

static struct g *mustg(const char *op)
{
	struct g *gp = getg();
	if (unlikely(!gp || gp == gp->m->g0))
		gort_panic("%s: blocking channel operation outside a goroutine", op);
	return gp;
}

static bool chanparkcommit(struct g *gp, void *arg)
{
	(void)gp;
	chanunlock(arg);
	return true;
}

/* ---- the halves shared with select ---- */

/* Remembers the partner of a hand-off: the caller's G keeps sg, which
 * goready prefetches the next time the caller is readied. A goroutine in a
 * loop (a pipeline's stage, a ring's member, either side of a ping-pong)
 * hands off to the same partner, parked at the same depth, time after time,
 * and that sudog is the first thing of the partner's the next hand-off
 * reads: a line on the partner's stack, a page of its own. In a ring of
 * 1,000 goroutines, a lap touches about as many pages as the TLB holds;
 * with the prefetch issued a hop early, bench-ring with 2,100 members (its
 * pages well past the TLB) went from 157.6 to 128.8 ns a hop (20
 * interleaved pairs, lower in 17; 244 -> 188, 18 of 20, in another batch),
 * and with its 1,000 members 181 -> 176 ns (20 of 30) in the host's slow
 * mode, unchanged in its fast one (bench/README.md). A stale hint costs one
 * useless prefetch, which never faults; a read prefetch, so that a stale one
 * takes no line away from another CPU. */
static inline void lastpeer(struct sudog *sg)
{
	struct g *me = getg();
	if (likely(me != NULL))
		me->lastpeer = sg;
}

struct g *chan_send_to(struct hchan *c, struct sudog *sg, const void *ep)
{
	if (sg->elem)
		elemcopy(sg->elem, ep, c->elemsize);
	lastpeer(sg);
	struct g *gp = sg->g;
	sg->success = true;
	gp->param = sg;
	return gp;
}

struct g *chan_recv_from(struct hchan *c, struct sudog *sg, void *ep)
{
	if (c->dataqsiz == 0) {
		if (ep)
			elemcopy(ep, sg->elem, c->elemsize);
	} else {
		/* The ring is full (a sender waits): take its head, and put the
		 * sender's element at the tail, which is the same slot. */
		void *qp = chanbuf(c, c->recvx);
		if (ep)
			elemcopy(ep, qp, c->elemsize);
		elemcopy(qp, sg->elem, c->elemsize);
		if (++c->recvx == c->dataqsiz)
			c->recvx = 0;
		c->sendx = c->recvx;
	}
	lastpeer(sg);
	struct g *gp = sg->g;
	sg->success = true;
	gp->param = sg;
	return gp;
}

void chan_bufsend(struct hchan *c, const void *ep)
{
	elemcopy(chanbuf(c, c->sendx), ep, c->elemsize);
	if (++c->sendx == c->dataqsiz)
		c->sendx = 0;
	atomic_store_explicit(&c->qcount, atomic_load_explicit(&c->qcount, memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

void chan_bufrecv(struct hchan *c, void *ep)
{
	if (ep)
		elemcopy(ep, chanbuf(c, c->recvx), c->elemsize);
	if (++c->recvx == c->dataqsiz)
		c->recvx = 0;
	atomic_store_explicit(&c->qcount, atomic_load_explicit(&c->qcount, memory_order_relaxed) - 1,
			      memory_order_relaxed);
}

/* ---- send, receive, close ---- */

static inline bool chanfull(struct hchan *c)
{
	if (c->dataqsiz == 0)
		return __atomic_load_n(&c->recvq.first, __ATOMIC_RELAXED) == NULL;
	return atomic_load_explicit(&c->qcount, memory_order_relaxed) == c->dataqsiz;
}

static inline bool chanempty(struct hchan *c)
{
	if (c->dataqsiz == 0)
		return __atomic_load_n(&c->sendq.first, __ATOMIC_RELAXED) == NULL;
	return atomic_load_explicit(&c->qcount, memory_order_relaxed) == 0;
}

/* chansend: sends *ep on c; block=false: only if that needs no waiting.
 * Returns whether it sent. Panics the task on a closed channel. */
static bool chansend(struct hchan *c, const void *ep, bool block)
{
	if (unlikely(!c)) {
		if (!block)
			return false;
		mustg("chan send");
		block_forever(WAIT_CHAN_SEND_NIL);
	}
	if (unlikely(!ep && c->elemsize))
		gort_panic("chan send: NULL element pointer for a %u-byte element", c->elemsize);
	/* Non-blocking fast path without the lock, as Go: a not-closed channel
	 * observed full stays a correct "would block" answer for that instant. */
	if (!block && !atomic_load_explicit(&c->closed, memory_order_relaxed) && chanfull(c))
		return false;

	chanlock(c);
	if (unlikely(atomic_load_explicit(&c->closed, memory_order_relaxed))) {
		chanunlock(c);
		gort_panic("send on closed channel");
	}
	struct sudog *sg = waitq_dequeue(&c->recvq);
	if (sg) {
		struct g *gp = chan_send_to(c, sg, ep);
		chanunlock(c);
		goready(gp);
		return true;
	}
	if (atomic_load_explicit(&c->qcount, memory_order_relaxed) < c->dataqsiz) {
		chan_bufsend(c, ep);
		chanunlock(c);
		return true;
	}
	if (!block) {
		chanunlock(c);
		return false;
	}

	struct g *gp = getg();
	if (unlikely(!gp || gp == gp->m->g0)) {
		chanunlock(c);
		mustg("chan send");
	}
	struct sudog mysg = { .g = gp, .elem = (void *)ep, .c = c };
	gp->param = NULL;
	gp->waiting = &mysg;
	waitq_enqueue(&c->sendq, &mysg);
	gopark(chanparkcommit, c, WAIT_CHAN_SEND);
	gp->waiting = NULL;
	gp->param = NULL;
	if (!mysg.success)
		gort_panic("send on closed channel");
	return true;
}

/* chanrecv: receives from c into *ep (NULL: discard); block=false: only if that
 * needs no waiting. Returns whether it completed (selected); *received is false
 * when c is closed and drained (then *ep is zeroed). */
static bool chanrecv(struct hchan *c, void *ep, bool block, bool *received)
{
	if (unlikely(!c)) {
		if (!block)
			return false;
		mustg("chan receive");
		block_forever(WAIT_CHAN_RECV_NIL);
	}
	if (!block && chanempty(c)) {
		if (!atomic_load_explicit(&c->closed, memory_order_acquire))
			return false;
		/* Closed, and closed is final: empty now means drained for good. */
		if (chanempty(c)) {
			elemclear(ep, c->elemsize);
			*received = false;
			return true;
		}
	}

	chanlock(c);
	if (atomic_load_explicit(&c->closed, memory_order_relaxed) &&
	    atomic_load_explicit(&c->qcount, memory_order_relaxed) == 0) {
		chanunlock(c);
		elemclear(ep, c->elemsize);
		*received = false;
		return true;
	}
	struct sudog *sg = waitq_dequeue(&c->sendq);
	if (sg) {
		struct g *gp = chan_recv_from(c, sg, ep);
		chanunlock(c);
		goready(gp);
		*received = true;
		return true;
	}
	if (atomic_load_explicit(&c->qcount, memory_order_relaxed) > 0) {
		chan_bufrecv(c, ep);
		chanunlock(c);
		*received = true;
		return true;
	}
	if (!block) {
		chanunlock(c);
		return false;
	}

	struct g *gp = getg();
	if (unlikely(!gp || gp == gp->m->g0)) {
		chanunlock(c);
		mustg("chan receive");
	}
	struct sudog mysg = { .g = gp, .elem = ep, .c = c };
	gp->param = NULL;
	gp->waiting = &mysg;
	waitq_enqueue(&c->recvq, &mysg);
	gopark(chanparkcommit, c, WAIT_CHAN_RECV);
	gp->waiting = NULL;
	gp->param = NULL;
	*received = mysg.success;
	return true;
}

static void closechan(struct hchan *c)
{
	if (unlikely(!c))
		gort_panic("close of nil channel");
	chanlock(c);
	if (unlikely(atomic_load_explicit(&c->closed, memory_order_relaxed))) {
		chanunlock(c);
		gort_panic("close of closed channel");
	}
	atomic_store_explicit(&c->closed, 1, memory_order_release);

	/* Collect every waiter under the lock, ready them after it: a readied
	 * goroutine may run (and free its sudog with its frame) at once. */
	struct gqueue q = { 0 };
	struct sudog *sg;
	while ((sg = waitq_dequeue(&c->recvq))) {
		elemclear(sg->elem, c->elemsize);
		sg->success = false;
		sg->g->param = sg;
		gqueue_push(&q, sg->g);
	}
	while ((sg = waitq_dequeue(&c->sendq))) {
		sg->elem = NULL;
		sg->success = false;
		sg->g->param = sg;
		gqueue_push(&q, sg->g);
	}
	chanunlock(c);
	struct g *gp;
	while ((gp = gqueue_pop(&q)))
		goready(gp);
}

/* ---- the public API ---- */

GORT_EXPORT gort_chan *gort_chan_make(size_t elem_size, size_t cap)
{
	if (elem_size > UINT32_MAX || (elem_size && cap > (SIZE_MAX - sizeof(struct hchan) - 64) / elem_size)) {
		errno = EINVAL;
		return NULL;
	}
	/* a cache line of its own: channels used by different Ms don't share one */
	struct hchan *c = aligned_alloc(64, (sizeof(struct hchan) + elem_size * cap + 63) & ~(size_t)63);
	if (!c) {
		errno = ENOMEM;
		return NULL;
	}
	memset(c, 0, sizeof(*c));
	c->elemsize = (uint32_t)elem_size;
	c->dataqsiz = cap;
	struct g *gp = getg();
	c->task = gp && gp != gp->m->g0 ? gp->task : NULL;
	task_own(c->task, &c->obj, chan_free_obj);
	return (gort_chan *)c;
}

GORT_EXPORT void gort_chan_free(gort_chan *ch)
{
	struct hchan *c = hchan(ch);
	if (!c)
		return;
	/* No lock: nobody may be using c now (that is the caller's to ensure),
	 * and no operation on c touches it after its unlock (a waker readies
	 * after unlocking; a parker's unlock is its last access), so the lock
	 * would exclude nobody; taking it from another P than the one c is
	 * biased to cost a revocation, a membarrier, at every free (bench/ring's
	 * teardown: ~1,000 per round). The queues, for the diagnostic below:
	 * a goroutine parked on c enqueued itself before it parked, which the
	 * caller's knowledge that it parked (its status, a wait) came after. */
	bool busy = __atomic_load_n(&c->recvq.first, __ATOMIC_ACQUIRE) ||
		    __atomic_load_n(&c->sendq.first, __ATOMIC_ACQUIRE);
	if (unlikely(busy))
		gort_panic("free of a channel with goroutines blocked on it");
	task_disown(c->task, &c->obj);
	free(c);
}

GORT_EXPORT void gort_chan_send(gort_chan *c, const void *elem)
{
	chansend(hchan(c), elem, true);
}

GORT_EXPORT bool gort_chan_recv(gort_chan *c, void *elem)
{
	bool received = false;
	chanrecv(hchan(c), elem, true, &received);
	return received;
}

GORT_EXPORT bool gort_chan_trysend(gort_chan *c, const void *elem)
{
	return chansend(hchan(c), elem, false);
}

GORT_EXPORT int gort_chan_tryrecv(gort_chan *c, void *elem)
{
	bool received = false;
	if (!chanrecv(hchan(c), elem, false, &received))
		return 0;
	return received ? 1 : -1;
}

GORT_EXPORT void gort_chan_close(gort_chan *c)
{
	closechan(hchan(c));
}

GORT_EXPORT size_t gort_chan_len(gort_chan *c)
{
	return c ? atomic_load_explicit(&hchan(c)->qcount, memory_order_relaxed) : 0;
}

GORT_EXPORT size_t gort_chan_cap(gort_chan *c)
{
	return c ? hchan(c)->dataqsiz : 0;
}
