/* runtime/netpoll_epoll.c: the central epoll wait set (rings, wakeup eventfd) and the readiness fallback for sockets and pipes. */

/*
 * One epoll set serves two purposes.
 *
 * The idle M's wait (netpoll.c's essay): every P's io_uring fd is in it, tagged
 * with the ring's index, plus an eventfd that netpoll_break writes. The M blocked
 * in netpoll sleeps in epoll_pwait2 until the earliest timer.
 *
 * The readiness fallback, when io_uring is refused or lacks an op: a goroutine
 * that would block on a socket or a pipe parks here until epoll reports the fd
 * ready, then retries its nonblocking call (io.c). We do not own the fds (they are
 * the task's plain ints), so nothing is registered for an fd's lifetime as Go
 * does for its net.Conn: each wait arms the fd with EPOLLONESHOT for the union of
 * its waiters' events, EPOLL_CTL_MOD if we registered it before, else ADD; an fd
 * closed behind our back simply makes MOD fail with ENOENT and we ADD again (epoll
 * looks items up by the fd's current file). Stale registrations (a closed fd's
 * file kept alive by a dup) can only cause spurious wakeups, which callers absorb
 * by retrying. Per-fd state (struct pd: a lock and the waiters) lives in a
 * two-level table indexed by fd, never freed while the runtime runs, so a timer
 * or the poller can look an fd up without any goroutine's memory.
 *
 * Timeouts (gort_poll without io_uring) are per-P timers whose argument is the fd
 * and the waiter's sequence number, not a pointer: the timer finds the waiter
 * under the fd's lock if it still waits, and does nothing if it was woken already.
 */

#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#include "netpoll.h"
#include "timer.h"

/* epoll_event.data.u64 tags */
#define TAG_MASK  (3ULL << 62)
#define TAG_FD    (0ULL << 62)      /* | fd */
#define TAG_RING  (1ULL << 62)      /* | ring index */
#define TAG_BREAK (2ULL << 62)

#define PD_L2_BITS 10
#define PD_L2 (1 << PD_L2_BITS)
#define PD_L1 4096                  /* fds below 4M */

struct pd {
	struct mutex lock;
	struct fdwait *head;        /* waiters, in arrival order */
	uint32_t seq;               /* last waiter's sequence number */
	bool added;                 /* we registered this fd number */
};

static struct pd *_Atomic pdtab[PD_L1];
static int epfd = -1, breakfd = -1;
static _Atomic uint32_t breakpending;
static _Atomic int64_t nwaiters;

static struct pd *pd_get(int fd, bool create)
{
	if (fd < 0 || fd >= PD_L1 * PD_L2)
		return NULL;
	struct pd *_Atomic *slot = &pdtab[fd >> PD_L2_BITS];
	struct pd *chunk = atomic_load_explicit(slot, memory_order_acquire);
	if (!chunk) {
		if (!create)
			return NULL;
		chunk = calloc(PD_L2, sizeof(*chunk));
		if (!chunk)
			return NULL;
		struct pd *expect = NULL;
		if (!atomic_compare_exchange_strong_explicit(slot, &expect, chunk, memory_order_acq_rel,
							     memory_order_acquire)) {
			free(chunk);
			chunk = expect;
		}
	}
	return &chunk[fd & (PD_L2 - 1)];
}

int netpoll_epoll_init(void)
{
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		return -errno;
	breakfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (breakfd < 0) {
		int r = -errno;
		close(epfd);
		epfd = -1;
		return r;
	}
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = TAG_BREAK };
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, breakfd, &ev) < 0) {
		int r = -errno;
		netpoll_epoll_fini();
		return r;
	}
	atomic_store(&breakpending, 0);
	atomic_store(&nwaiters, 0);
	return 0;
}

void netpoll_epoll_fini(void)
{
	if (breakfd >= 0)
		close(breakfd);
	if (epfd >= 0)
		close(epfd);
	breakfd = epfd = -1;
	for (int i = 0; i < PD_L1; i++) {
		free(atomic_load(&pdtab[i]));
		atomic_store(&pdtab[i], NULL);
	}
}

int netpoll_epoll_add_ring(int ringfd, uint32_t idx)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = TAG_RING | idx };
	return epoll_ctl(epfd, EPOLL_CTL_ADD, ringfd, &ev) < 0 ? -errno : 0;
}

int64_t netpoll_epoll_waiters(void)
{
	return atomic_load_explicit(&nwaiters, memory_order_relaxed);
}

void netpoll_epoll_break(void)
{
	/* one write until the poller drains it (Go's netpollWakeSig) */
	if (atomic_exchange(&breakpending, 1) == 0) {
		uint64_t one = 1;
		while (write(breakfd, &one, sizeof one) < 0 && errno == EINTR)
			;
	}
}

/* Arms fd for mask, one shot. Caller holds pd->lock. */
static int pd_arm(struct pd *pd, int fd, uint32_t mask)
{
	struct epoll_event ev = { .events = mask | EPOLLONESHOT, .data.u64 = TAG_FD | (uint32_t)fd };
	int r;
	if (pd->added) {
		r = epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
		if (r < 0 && errno == ENOENT)
			r = epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
	} else {
		r = epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
		if (r < 0 && errno == EEXIST)
			r = epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
	}
	if (r < 0)
		return -errno;
	pd->added = true;
	return 0;
}

/* Unlinks w from pd's list. Caller holds pd->lock. */
static bool pd_unlink(struct pd *pd, struct fdwait *w)
{
	for (struct fdwait **pp = &pd->head; *pp; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			w->next = NULL;
			atomic_fetch_sub_explicit(&nwaiters, 1, memory_order_relaxed);
			return true;
		}
	}
	return false;
}

/* Readies a list of waiters taken off their pd (lock released). */
static void wake_list(struct fdwait *w, struct gqueue *ret)
{
	while (w) {
		struct fdwait *next = w->next;
		netpoll_ready(w->w.g, ret);
		w = next;
	}
}

/* epoll reported events on fd: wake the waiters they satisfy, re-arm for the rest. */
static void pd_ready(int fd, uint32_t events, struct gqueue *ret)
{
	struct pd *pd = pd_get(fd, false);
	if (!pd)
		return;
	struct fdwait *woke = NULL, **tail = &woke;
	uint32_t rest = 0;
	lock(&pd->lock);
	for (struct fdwait **pp = &pd->head; *pp;) {
		struct fdwait *w = *pp;
		if ((w->events | EPOLLERR | EPOLLHUP) & events) {
			*pp = w->next;
			w->next = NULL;
			w->revents = events;
			*tail = w;
			tail = &w->next;
			atomic_fetch_sub_explicit(&nwaiters, 1, memory_order_relaxed);
		} else {
			rest |= w->events;
			pp = &w->next;
		}
	}
	if (rest && pd_arm(pd, fd, rest) < 0) {
		/* cannot re-arm (the fd is gone): they retry and see why */
		*tail = pd->head;
		for (struct fdwait *w = pd->head; w; w = w->next) {
			w->revents = EPOLLERR;
			atomic_fetch_sub_explicit(&nwaiters, 1, memory_order_relaxed);
		}
		pd->head = NULL;
	}
	unlock(&pd->lock);
	wake_list(woke, ret);
}

bool netpoll_epoll_wait(int64_t delay, struct gqueue *ret)
{
	struct epoll_event evs[128];
	int n;
	if (delay <= 0) {
		n = epoll_wait(epfd, evs, ARRAY_SIZE(evs), delay < 0 ? -1 : 0);
	} else {
		/* before 5.11 (and under valgrind, which warns at every call): no
		 * epoll_pwait2; asked once, then millisecond timeouts, rounded up */
		static _Atomic bool no_pwait2;
		struct timespec ts = { delay / 1000000000, delay % 1000000000 };
		n = -1;
		errno = ENOSYS;
		if (!atomic_load_explicit(&no_pwait2, memory_order_relaxed))
			n = epoll_pwait2(epfd, evs, ARRAY_SIZE(evs), &ts, NULL);
		if (n < 0 && errno == ENOSYS) {
			atomic_store_explicit(&no_pwait2, true, memory_order_relaxed);
			n = epoll_wait(epfd, evs, ARRAY_SIZE(evs),
				       delay > (int64_t)INT32_MAX * 1000000 ? INT32_MAX : (int)((delay + 999999) / 1000000));
		}
	}
	if (n < 0) {
		/* EINTR: a signal, or io_uring running task work on this thread */
		if (errno != EINTR)
			throw("netpoll: epoll_wait failed");
		return true;
	}
	for (int i = 0; i < n; i++) {
		uint64_t tag = evs[i].data.u64;
		switch (tag & TAG_MASK) {
		case TAG_BREAK: {
			uint64_t v;
			(void)!read(breakfd, &v, sizeof v);
			/* after the read: a break in between is not lost, this M
			 * is awake and re-examines timers anyway */
			atomic_store(&breakpending, 0);
			break;
		}
		case TAG_RING:
			netpoll_ring_ready((uint32_t)(tag & ~TAG_MASK), ret);
			break;
		default:
			pd_ready((int)(uint32_t)tag, evs[i].events, ret);
			break;
		}
	}
	return n > 0;
}

/* ---- goroutines waiting for readiness ---- */

struct fdpark {
	struct pd *pd;
	struct fdwait *w;
	struct timer *t;
	int64_t deadline;
};

static void fd_timeout(void *arg)
{
	uintptr_t key = (uintptr_t)arg;
	int fd = (int)(key >> 32);
	uint32_t seq = (uint32_t)key;
	struct pd *pd = pd_get(fd, false);
	if (!pd)
		return;
	struct fdwait *found = NULL;
	lock(&pd->lock);
	for (struct fdwait *w = pd->head; w; w = w->next) {
		if (w->seq == seq) {
			pd_unlink(pd, w);
			w->revents = 0;
			found = w;
			break;
		}
	}
	unlock(&pd->lock);
	if (found) {
		struct gqueue q = { 0 };
		netpoll_ready(found->w.g, &q);
		injectglist(&q);
	}
}

/* gopark's unlock function for a readiness wait: on g0, the G parked. */
static bool fd_park(struct g *gp, void *arg)
{
	struct fdpark *a = arg;
	struct pd *pd = a->pd;
	struct fdwait *w = a->w;
	lock(&pd->lock);
	uint32_t mask = w->events;
	for (struct fdwait *o = pd->head; o; o = o->next)
		mask |= o->events;
	int r = pd_arm(pd, w->fd, mask);
	if (r < 0) {
		unlock(&pd->lock);
		w->err = r;
		return false;
	}
	w->seq = ++pd->seq;
	struct fdwait **pp = &pd->head;
	while (*pp)
		pp = &(*pp)->next;
	*pp = w;
	atomic_fetch_add_explicit(&nwaiters, 1, memory_order_relaxed);
	iowait_set(gp, &w->w);
	if (a->deadline) {
		a->t->when = a->deadline;
		a->t->f = fd_timeout;
		a->t->arg = (void *)(((uintptr_t)(uint32_t)w->fd << 32) | w->seq);
		if (addtimer(a->t) < 0) {
			/* no memory for the timer: wake at once, as timer.c's sleep does */
			pd_unlink(pd, w);
			unlock(&pd->lock);
			struct gqueue q = { 0 };
			netpoll_ready(gp, &q); /* clears iowait, waiting out a pin */
			w->err = -ENOMEM;
			return false;
		}
	}
	unlock(&pd->lock);
	return true;
}

int netpoll_fd_wait(int fd, uint32_t events, int64_t deadline, enum waitreason why)
{
	if (fd < 0)
		return -EBADF;
	struct pd *pd = pd_get(fd, true);
	if (!pd)
		return fd >= PD_L1 * PD_L2 ? -ERANGE : -ENOMEM;
	struct fdwait w = {
		.w = { .kind = IOWAIT_FD, .g = getg(), .goid = getg()->goid },
		.fd = fd,
		.events = events,
	};
	struct timer t = { 0 };
	struct fdpark a = { .pd = pd, .w = &w, .t = &t, .deadline = deadline };
	netpoll_count_fdwait();
	gopark(fd_park, &a, why);
	if (deadline)
		deltimer(&t); /* if it is firing right now, it finds no waiter */
	if (w.err)
		return w.err;
	return (int)w.revents;
}

int netpoll_fd_cancel(struct fdwait *w)
{
	struct pd *pd = pd_get(w->fd, false);
	if (!pd)
		return -ENOENT;
	lock(&pd->lock);
	bool found = pd_unlink(pd, w);
	if (found) {
		w->err = -ECANCELED;
		w->revents = 0;
	}
	unlock(&pd->lock);
	return found ? 0 : -ENOENT;
}

void netpoll_fd_closed(int fd)
{
	struct pd *pd = pd_get(fd, false);
	if (!pd)
		return;
	lock(&pd->lock);
	struct fdwait *woke = pd->head;
	for (struct fdwait *w = woke; w; w = w->next) {
		w->revents = EPOLLHUP | EPOLLERR;
		atomic_fetch_sub_explicit(&nwaiters, 1, memory_order_relaxed);
	}
	pd->head = NULL;
	pd->added = false;
	unlock(&pd->lock);
	struct gqueue q = { 0 };
	wake_list(woke, &q);
	if (q.head)
		injectglist(&q);
}
