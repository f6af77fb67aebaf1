/* runtime/chan.h: channels (Go's hchan), the sudog a waiting goroutine leaves in a channel's queue, and their shared helpers for select.c. */
#ifndef GORT_CHAN_H
#define GORT_CHAN_H

#include <string.h>

#include "runtime.h"

/*
 * sudog: a goroutine waiting in a channel's send or receive queue. It lives on
 * the waiting goroutine's own stack (a parked goroutine's stack stays put), so
 * blocking allocates nothing. Whoever dequeues it owns it until it readies the
 * goroutine: it copies the element through elem, sets success and g->param, and
 * must not touch it after goready.
 */
struct sudog {
	struct g *g;
	struct sudog *next, *prev;   /* the channel's waitq; protected by c->lock */
	void *elem;                  /* the value to send, or where to receive (NULL: discard) */
	struct hchan *c;
	struct sudog *waitlink;      /* g->waiting: the sudogs of one select, in lock order */
	bool isselect;               /* a select case: dequeue must win g->selectdone first */
	bool success;                /* woken by a communication (true) or by close (false) */
};

/* waitq: a FIFO of sudogs. */
struct waitq {
	struct sudog *first, *last;
};

/*
 * hchan: a channel. The ring buf holds dataqsiz elements of elemsize bytes,
 * qcount of them from recvx; sendq/recvq hold the goroutines blocked sending
 * and receiving (never both non-empty, and never a non-empty sendq with room in
 * the ring). Everything is under lock except the lock-free peeks of the
 * non-blocking fast paths (qcount, closed, queue heads), as in Go.
 */
struct hchan {
	/* what every operation touches first, in the first cache line (a
	 * channel is allocated on a line of its own) */
	struct mutex lock;            /* through chanlock/chanunlock only (chan.c) */
	_Atomic uint32_t closed;
	/* chanlock's bias (chan.c's essay): the P id + 1 whose goroutines take
	 * the lock with plain stores (into the P's chanheld), 0 none */
	_Atomic int32_t bias;
	uint32_t elemsize;            /* at most UINT32_MAX (gort_chan_make) */
	struct waitq recvq, sendq;
	_Atomic size_t qcount;
	size_t dataqsiz;
	/* the second line: the ring's indexes, and what only slow paths use */
	size_t sendx, recvx;
	int32_t lastp, nsame;        /* chanlock, under lock: who took it, how often in a row */
	struct task_obj obj;         /* on task->objs: freed with its task */
	struct task *task;           /* owner, NULL if made outside any task */
	_Alignas(16) char buf[];     /* the ring, dataqsiz * elemsize bytes */
};
_Static_assert(offsetof(struct hchan, dataqsiz) + sizeof(size_t) <= 64, "an unbuffered hand-off touches one line of its channel");

static inline void *chanbuf(struct hchan *c, size_t i)
{
	return c->buf + i * c->elemsize;
}

/* Copies one element; the sizes a channel usually carries inline. */
static inline void elemcopy(void *dst, const void *src, size_t n)
{
	switch (n) {
	case 0: return;
	case 1: memcpy(dst, src, 1); return;
	case 2: memcpy(dst, src, 2); return;
	case 4: memcpy(dst, src, 4); return;
	case 8: memcpy(dst, src, 8); return;
	case 16: memcpy(dst, src, 16); return;
	default: memcpy(dst, src, n); return;
	}
}

static inline void elemclear(void *dst, size_t n)
{
	if (dst && n)
		memset(dst, 0, n);
}

/* chan.c: takes c's lock the unbiased way (the mutex), revoking a bias to
 * another P; me is our P's id + 1, 0 without a P. */
void chanlock_slow(struct hchan *c, int32_t me);

/* chanlock: takes c's lock, biased to the P that uses it (chan.c's essay):
 * a plain store into a free slot of our P's chanheld, else chanlock_slow;
 * pins the calling goroutine to its M until chanunlock, as lock() does. Any
 * thread. chanunlock: releases it, on the M that took it (a slot of our P's
 * chanheld holding c says it was biased). Neither can fail. */
static inline __attribute__((always_inline)) void chanlock(struct hchan *c)
{
	struct g *gp = getg();
	struct m *mp = gp ? gp->m : NULL;
	struct p *pp = mp ? mp->p : NULL;
	int32_t me = pp ? pp->id + 1 : 0;
	if (likely(me != 0) && atomic_load_explicit(&c->bias, memory_order_relaxed) == me) {
		for (int i = 0; i < (int)ARRAY_SIZE(pp->chanheld); i++) {
			if (atomic_load_explicit(&pp->chanheld[i], memory_order_relaxed))
				continue;
			mp->locks++;
			atomic_store_explicit(&pp->chanheld[i], c, memory_order_relaxed);
			/* store, then load: ordered for us by a revoker's membarrier */
			atomic_signal_fence(memory_order_seq_cst);
			if (likely(atomic_load_explicit(&c->bias, memory_order_acquire) == me))
				return;
			/* revoked meanwhile: the revoker waits for this */
			atomic_store_explicit(&pp->chanheld[i], NULL, memory_order_release);
			mp->locks--;
			break;
		}
	}
	chanlock_slow(c, me);
}

static inline __attribute__((always_inline)) void chanunlock(struct hchan *c)
{
	struct g *gp = getg();
	struct m *mp = gp ? gp->m : NULL;
	struct p *pp = mp ? mp->p : NULL;
	if (likely(pp != NULL)) {
		for (int i = 0; i < (int)ARRAY_SIZE(pp->chanheld); i++) {
			if (atomic_load_explicit(&pp->chanheld[i], memory_order_relaxed) != c)
				continue;
			/* c may be freed once this is seen: nothing of it after */
			atomic_store_explicit(&pp->chanheld[i], NULL, memory_order_release);
			if (--mp->locks < 0)
				throw("runtime lock count underflow");
			return;
		}
	}
	unlock(&c->lock);
}

/* waitq operations (chan.c); the caller holds the channel's lock. dequeue skips
 * (and drops) select sudogs whose goroutine another case already won. */
void waitq_enqueue(struct waitq *q, struct sudog *sg);
struct sudog *waitq_dequeue(struct waitq *q);
/* Removes sg if it is still queued in q. */
void waitq_remove(struct waitq *q, struct sudog *sg);

/* A communication with a dequeued partner sg, c->lock held: copies the element
 * and marks sg done; returns sg's goroutine, for the caller to goready once it
 * has released the lock (not before: it may run, and its sudog go, at once). */
struct g *chan_send_to(struct hchan *c, struct sudog *sg, const void *ep);
struct g *chan_recv_from(struct hchan *c, struct sudog *sg, void *ep);
/* Ring buffer halves, c->lock held throughout. */
void chan_bufsend(struct hchan *c, const void *ep);
void chan_bufrecv(struct hchan *c, void *ep);

/* Parks the calling goroutine for good (a nil channel, an empty select). */
_Noreturn void block_forever(enum waitreason reason);

/* chan_cancel_task: takes every goroutine of task t out of the wait queues of
 * t's channels (a select's sudogs out of all its channels) and queues it, still
 * waiting, on ret for the ending task's reaper to ready; it never returns into
 * the channel operation (execute() discards it). A goroutine waiting only on
 * channels that t does not own is not found here. */
void chan_cancel_task(struct task *t, struct gqueue *ret);

#endif
