/* runtime/netpoll.h: the io layer's internal interface between io.c, netpoll.c (rings) and netpoll_epoll.c (readiness). */
#ifndef GORT_NETPOLL_H
#define GORT_NETPOLL_H

#include <linux/time_types.h>
#include <sys/socket.h>

#include "runtime.h"

/* The operations of gort.h's io calls, as the ring and the stats name them. */
enum ioop {
	IOOP_READ,
	IOOP_WRITE,
	IOOP_PREAD,
	IOOP_PWRITE,
	IOOP_RECV,
	IOOP_SEND,
	IOOP_ACCEPT,
	IOOP_CONNECT,
	IOOP_OPENAT,
	IOOP_CLOSE,
	IOOP_FSYNC,
	IOOP_POLL,
	IOOP_COUNT
};

/* What a goroutine parked in io waits on. gp->iowait points at it (low bit: pinned
 * by io_cancel_g) from the moment the G is parked until whoever readies it clears
 * the pointer; it lives on the parked G's stack. */
enum iowaitkind {
	IOWAIT_RING = 1, /* a struct ioreq submitted to a P's ring */
	IOWAIT_FD,       /* a struct fdwait on the readiness poller */
};
struct iowait {
	uint8_t kind;
	bool cancelled;  /* io_cancel_g asked: the call returns -ECANCELED unless it completed */
	struct g *g;
	int64_t goid;    /* g's goid when it parked: io_cancel_g's check that g is still that goroutine */
};

/* One io_uring request: the call's arguments and, once the G is readied, its
 * result. On the calling goroutine's stack. */
struct ioreq {
	struct iowait w;
	uint8_t op;            /* enum ioop */
	int fd;
	int flags;             /* recv/send flags, openat flags, poll events */
	uint32_t len;
	void *buf;             /* read/write buffer; openat path; connect/accept address */
	uint64_t off;          /* file offset, (uint64_t)-1: the current position;
				  accept: the socklen_t *; connect: the address length;
				  openat: the mode */
	int64_t deadline;      /* poll: absolute CLOCK_MONOTONIC ns, 0: none */
	struct __kernel_timespec ts;
	int32_t res;           /* the completion's res: >= 0, or negative errno */
	/* released by the submitter once the request is prepared, acquired by the
	 * reaper before it writes res: the kernel orders the two (submission before
	 * completion) but only this pair tells the compiler and ThreadSanitizer */
	_Atomic uint32_t published;
	bool resubmitted;      /* submitted again after a cancellation nobody asked for */
	struct pio *ring;      /* the ring it went to */
};

/* One goroutine waiting for readiness on the epoll poller. On its stack. */
struct fdwait {
	struct iowait w;
	int fd;
	uint32_t events;       /* EPOLLIN/EPOLLOUT/... wanted */
	uint32_t revents;      /* what woke it; 0: timeout */
	uint32_t seq;          /* names it to its timeout timer */
	int32_t err;           /* negative errno instead of an event (-ECANCELED) */
	struct fdwait *next;
};

/* ---- netpoll.c: the rings ---- */

/* netpoll_uring_has: whether op goes through io_uring (ring mode, and the kernel's
 * probe lists it). Cheap; can't fail. */
bool netpoll_uring_has(enum ioop op);
/* netpoll_uring_do: submits req on the calling goroutine's P's ring and parks until
 * its completion. Returns the completion's result (negative errno on failure,
 * -ECANCELED if io_cancel_g stopped it, -EAGAIN if the ring could not take it).
 * The caller's buffers must stay valid until it returns, which they do: the G is
 * parked until the completion has arrived. From a goroutine only. */
int32_t netpoll_uring_do(struct ioreq *req, enum waitreason why);
/* netpoll_queued: requests prepared in pp's ring (any ring: pp NULL) and not
 * yet handed to the kernel (tests). */
uint64_t netpoll_queued(struct p *pp);
/* netpoll_ring_ready: the epoll poller saw ring idx readable: reaps it into ret. */
void netpoll_ring_ready(uint32_t idx, struct gqueue *ret);
/* netpoll_ready: gp's io finished: clears gp->iowait (waiting out a pinning
 * io_cancel_g) and queues gp, still waiting, on ret for the caller to make runnable. */
void netpoll_ready(struct g *gp, struct gqueue *ret);
/* iowait_set: publishes w as what gp waits on (gp parked, on g0). */
static inline void iowait_set(struct g *gp, struct iowait *w)
{
	atomic_store_explicit(&gp->iowait, (uintptr_t)w, memory_order_release);
}
/* Count a call served without the ring (readiness poller or syscall handoff),
 * and a park on readiness. */
void netpoll_count_fallback(void);
void netpoll_count_fdwait(void);

/* ---- netpoll_epoll.c: the central wait set and the readiness fallback ---- */

/* netpoll_epoll_init: the epoll set and its wakeup eventfd. 0 or -errno. */
int netpoll_epoll_init(void);
void netpoll_epoll_fini(void);
/* netpoll_epoll_add_ring: ring idx's fd joins the wait set (readable: completions). */
int netpoll_epoll_add_ring(int ringfd, uint32_t idx);
/* netpoll_epoll_wait: waits up to delay ns (<0: forever, 0: not at all) for
 * readiness, ring completions or netpoll_epoll_break; readies what it finds into
 * ret. Returns whether anything woke it (false: timeout). */
bool netpoll_epoll_wait(int64_t delay, struct gqueue *ret);
void netpoll_epoll_break(void);
/* Goroutines parked on readiness right now. */
int64_t netpoll_epoll_waiters(void);
/* netpoll_fd_wait: parks the calling goroutine until fd reports one of events
 * (EPOLLIN, EPOLLOUT, ...; errors and hangups always wake it), until deadline
 * (absolute nanotime, 0: none), or until io_cancel_g. Returns the events seen
 * (> 0), 0 at the deadline, -ECANCELED, or the epoll_ctl error: -EPERM for files
 * epoll cannot watch (regular files, directories), -EBADF, -ERANGE for an fd
 * beyond the poller's table. Wakeups may be spurious: callers retry their
 * nonblocking call and wait again. From a goroutine only. */
int netpoll_fd_wait(int fd, uint32_t events, int64_t deadline, enum waitreason why);
/* netpoll_fd_cancel: io_cancel_g's half for a readiness waiter (w pinned): takes
 * it off its fd with -ECANCELED if still waiting, and the caller readies it.
 * 0, or -ENOENT if something woke it already. */
int netpoll_fd_cancel(struct fdwait *w);
/* netpoll_fd_closed: fd was closed: its waiters wake and retry (and see EBADF). */
void netpoll_fd_closed(int fd);

#endif
