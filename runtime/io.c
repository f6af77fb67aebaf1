/* runtime/io.c: the gort_* io calls: an io_uring request that parks the goroutine, or the readiness/handoff fallback; POSIX return convention. */

/*
 * Each call takes the POSIX call's arguments and returns what it would: the
 * result, or -1 with errno exactly as the kernel sets it for the POSIX call
 * (io_uring completions carry the same negative errno: errno = -res). Inside,
 * results are negative errno (STYLE.md); posix() converts at the boundary.
 *
 * A task's fds 0, 1 and 2 are its own stdio, not the process's: every call maps
 * them through task_fd first (gort_close leaves them open; task.c closes them
 * when the task ends).
 *
 * Paths, in order:
 *   0. write and send on a socket: send(2) with MSG_DONTWAIT first, which never
 *      blocks; when all of it goes at once (the common case) that is the call's
 *      result for a blocking and a nonblocking socket alike, without a ring
 *      request, a park or the fcntl below. Otherwise the rest goes by 2.-4.
 *   1. Not on a goroutine (a plain thread, g0, the runtime not started, a G
 *      inside gort_syscall_enter): the plain system call, blocking the thread.
 *   2. read, write, recv, send, accept and connect on an O_NONBLOCK fd: the plain
 *      system call, which cannot block. io_uring would wait for readiness on such
 *      fds instead of failing with EAGAIN (and connect would not return
 *      EINPROGRESS), so one fcntl(F_GETFL) per call keeps POSIX semantics.
 *   3. A read or recv on an fd seen as a connected socket (sockhint), with
 *      io_uring on too: the socket fallback of 4. (recv with MSG_DONTWAIT, at
 *      EAGAIN park on epoll readiness), which under an HTTP load costs both
 *      the server and its peer less than a ring recv (the netpoll essay);
 *      again as a plain read or recv if the fd turns out to be no socket
 *      (ENOTSOCK: the hint was stale).
 *      Everything else on io_uring (netpoll.c): one request, the goroutine
 *      parks until it completes. write and send (without MSG_DONTWAIT) resubmit the rest after a short
 *      count, as a blocking write(2) on a socket or pipe only returns when all
 *      is written (or an error comes after some was: then the count).
 *   4. The fallback, when the ring is off or the kernel lacks the op:
 *      - sockets: the call with MSG_DONTWAIT, and at EAGAIN the goroutine parks
 *        on epoll readiness (netpoll_epoll.c) and tries again;
 *      - pipes, FIFOs, terminals and other pollable non-sockets: poll(2) for
 *        readiness with a zero timeout, park on epoll until ready, then the call
 *        (writes in PIPE_BUF pieces, which a ready pipe always takes whole). The
 *        fd is the caller's and may be blocking, and we must not change its file
 *        flags (another process may share them), so a reader on the same pipe
 *        that drains it between our poll and our read makes the read block: it
 *        runs inside gort_syscall_enter/exit, so sysmon hands the P to another M
 *        meanwhile;
 *      - regular files, block devices, directories, openat, close, fsync, pread,
 *        pwrite, connect and accept on blocking sockets once ready: the call
 *        inside gort_syscall_enter/exit (the syscall handoff).
 *
 * Behaviour worth knowing:
 *   - gort_accept returns fds with FD_CLOEXEC set (every fd in gort is, as Go's
 *     accept does); fcntl it off to pass one to exec.
 *   - gort_poll with io_uring: IORING_OP_POLL_ADD plus a linked timeout at an
 *     absolute deadline. A bad fd gives POLLNVAL, as poll(2) does for it; a
 *     negative fd is ignored (0 after the timeout), as poll(2) does.
 *   - Cancellation (io_cancel_g) makes the call return -1 with errno ECANCELED,
 *     unless it completed first (then its result: an accepted fd is never lost).
 *     ECANCELED rather than EINTR, so that loops retrying on EINTR stop.
 *   - SIGPIPE is raised by writes to a broken pipe or socket as POSIX says (the
 *     kernel does it for io_uring too); the daemon ignores it.
 *   - pread and pwrite check that the fd can seek (lseek) before they go to the
 *     ring, which ignores offsets on pipes instead of failing with ESPIPE.
 *   - Closing an fd does not wake io_uring requests in flight on it (Linux's own
 *     semantics for threads blocked in read); readiness waiters of the fallback
 *     are woken and see EBADF.
 *   - A listening socket's read fails at once with ENOTCONN, although it polls
 *     readable when a connection comes: the socket path of 3. tries the recv
 *     before it waits, so even a stale hint (an fd closed with close(2) behind
 *     the runtime's back and reused for a listening socket) gets ENOTCONN at
 *     once. (The ring's IORING_RECVSEND_POLL_FIRST, used here before, waited
 *     for the first connection in that case.)
 */

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "netpoll.h"
#include "task.h"

/* Linux's cap on one read or write (INT_MAX & PAGE_MASK); io_uring's len is 32 bits. */
#define MAX_RW_COUNT 0x7ffff000u

/* Whether the caller is a goroutine (else: the plain POSIX call); counts the
 * call among its task's io requests (stats) if so. */
static inline bool on_goroutine(void)
{
	struct g *gp = getg();
	if (!gp || gp == gp->m->g0 || !gp->m->p)
		return false;
	if (gp->task)
		task_count(gp->task, gp->m->p, ioreqs, 1);
	return true;
}

static inline ssize_t posix(ssize_t r)
{
	if (r < 0) {
		set_errno((int)-r); /* the G may be on another thread than at entry */
		return -1;
	}
	return r;
}

static inline uint32_t rwlen(size_t n)
{
	return n > MAX_RW_COUNT ? MAX_RW_COUNT : (uint32_t)n;
}

/* A task's fds 0, 1 and 2 are its own stdio (task.c), not the process's. */
static inline int stdio_fd(int fd)
{
	return (unsigned)fd <= 2 ? task_fd(fd) : fd;
}

/* errno of the thread running now: a goroutine may have parked earlier in the
 * same function and resumed on another thread, while the compiler keeps the
 * errno address it computed before (see set_errno in runtime.h). */
static __attribute__((noipa)) int cur_errno(void)
{
	return errno;
}

/* 1: O_NONBLOCK, 0: blocking, or -errno (-EBADF). */
static int fd_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 ? -cur_errno() : !!(fl & O_NONBLOCK);
}

/* The syscall handoff: the call runs on this M; sysmon gives the P to another M
 * if it lasts. Evaluates to the result or -errno. */
#define handoff(call)                                                   \
	({                                                              \
		gort_syscall_enter();                                   \
		long _r = (long)(call);                                 \
		long _ret = _r < 0 ? -cur_errno() : _r;                 \
		gort_syscall_exit();                                    \
		_ret;                                                   \
	})

/* ---- which fds are sockets ---- */

/* One bit per fd below SOCKHINT_FDS: "was a connected socket when last seen"
 * (accept's and connect's results, a send that went out). Only a hint: a
 * gort_read on a hinted fd goes to the ring as a recv, which fails with
 * ENOTSOCK, touching nothing, when the fd is no socket any more (closed with
 * close(2) and reused); the read then goes again as a read. */
#define SOCKHINT_FDS 65536
static _Atomic uint64_t sockhint[SOCKHINT_FDS / 64];

static inline bool sockhint_get(int fd)
{
	if ((unsigned)fd >= SOCKHINT_FDS)
		return false;
	return atomic_load_explicit(&sockhint[fd / 64], memory_order_relaxed) >> (fd % 64) & 1;
}

/* Sets or clears fd's bit; writes only on a change (the words are shared). */
static inline void sockhint_put(int fd, bool sock)
{
	if ((unsigned)fd >= SOCKHINT_FDS || sockhint_get(fd) == sock)
		return;
	uint64_t bit = UINT64_C(1) << (fd % 64);
	if (sock)
		atomic_fetch_or_explicit(&sockhint[fd / 64], bit, memory_order_relaxed);
	else
		atomic_fetch_and_explicit(&sockhint[fd / 64], ~bit, memory_order_relaxed);
}

/* What a send's result says of fd: a connected socket if it sent, no socket
 * at ENOTSOCK; nothing otherwise. */
static inline void sockhint_now(int fd, ssize_t sent)
{
	if (sent >= 0)
		sockhint_put(fd, true);
	else if (sent == -ENOTSOCK)
		sockhint_put(fd, false);
}

/* Whether a read or recv on fd goes by the readiness path although the ring is
 * there (the netpoll essay says why): on an fd seen as a connected socket, for
 * flags whose data makes the socket poll readable: not MSG_OOB or
 * MSG_ERRQUEUE (and MSG_DONTWAIT, which must not wait, goes to the ring). A
 * listening socket is never hinted: its recv fails at once (ENOTCONN). */
static inline bool recv_readiness(int fd, int flags)
{
	return (flags & ~(MSG_PEEK | MSG_WAITALL)) == 0 && sockhint_get(fd);
}

/* ---- io_uring ---- */

/* A write or send on the ring, resubmitted after short counts until all of buf
 * went (blocking semantics) unless once is set (MSG_DONTWAIT). */
static ssize_t ring_write(enum ioop op, int fd, const void *buf, size_t n, uint64_t off, int flags, bool once)
{
	size_t done = 0;
	for (;;) {
		struct ioreq req = {
			.op = (uint8_t)op,
			.fd = fd,
			.buf = (char *)buf + done,
			.len = rwlen(n - done),
			.off = off,
			.flags = flags,
		};
		int32_t r = netpoll_uring_do(&req, WAIT_IO_WRITE);
		if (r < 0)
			return done ? (ssize_t)done : r;
		done += (size_t)r;
		if (once || r == 0 || done >= n || done >= MAX_RW_COUNT)
			return (ssize_t)done;
	}
}

/* ---- the fallback ---- */

/* Regular files and the like, which epoll cannot watch and which are always
 * "ready": their calls go straight to the handoff. */
static bool fd_is_file(int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return false;
	return S_ISREG(st.st_mode) || S_ISBLK(st.st_mode) || S_ISDIR(st.st_mode);
}

/* Parks until fd is ready for events (per poll(2) with a zero timeout first).
 * Returns 1 when ready, 0 when epoll cannot watch fd (the caller's call runs in
 * the handoff), or -errno (-EBADF for POLLNVAL, -ECANCELED). */
static int fb_ready(int fd, short events, enum waitreason why)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = events };
		int k = poll(&p, 1, 0);
		if (k < 0) {
			if (cur_errno() == EINTR)
				continue;
			return -cur_errno();
		}
		if (k > 0)
			return p.revents & POLLNVAL ? -EBADF : 1;
		int w = netpoll_fd_wait(fd, (uint32_t)events, 0, why);
		if (w == -EPERM || w == -ERANGE)
			return 0;
		if (w < 0)
			return w;
	}
}

/* recv with MSG_DONTWAIT, parking on EPOLLIN at EAGAIN; MSG_WAITALL accumulates.
 * -ENOTSOCK for non-sockets (the caller takes another path). */
static ssize_t fb_recv(int fd, void *buf, size_t n, int flags)
{
	size_t done = 0;
	bool waitall = (flags & MSG_WAITALL) && !(flags & (MSG_PEEK | MSG_DONTWAIT));
	for (;;) {
		ssize_t r = recv(fd, (char *)buf + done, n - done, flags | MSG_DONTWAIT);
		if (r > 0 && waitall && done + (size_t)r < n) {
			done += (size_t)r;
			continue;
		}
		if (r >= 0)
			return (ssize_t)done + r;
		int e = cur_errno();
		if (e == EINTR)
			continue;
		if ((e != EAGAIN && e != EWOULDBLOCK) || (flags & MSG_DONTWAIT))
			return done ? (ssize_t)done : -e;
		int w = netpoll_fd_wait(fd, EPOLLIN, 0, WAIT_IO_READ);
		if (w == -EPERM || w == -ERANGE) {
			ssize_t h = handoff(recv(fd, (char *)buf + done, n - done, flags));
			return h < 0 ? (done ? (ssize_t)done : h) : (ssize_t)done + h;
		}
		if (w < 0)
			return done ? (ssize_t)done : w;
	}
}

/* send with MSG_DONTWAIT until all of buf went (unless the caller's MSG_DONTWAIT),
 * parking on EPOLLOUT at EAGAIN. -ENOTSOCK for non-sockets. */
static ssize_t fb_send(int fd, const void *buf, size_t n, int flags)
{
	size_t done = 0;
	for (;;) {
		ssize_t r = send(fd, (const char *)buf + done, n - done, flags | MSG_DONTWAIT);
		if (r >= 0) {
			done += (size_t)r;
			if (done >= n || (flags & MSG_DONTWAIT))
				return (ssize_t)done;
			continue;
		}
		int e = cur_errno();
		if (e == EINTR)
			continue;
		if ((e != EAGAIN && e != EWOULDBLOCK) || (flags & MSG_DONTWAIT))
			return done ? (ssize_t)done : -e;
		int w = netpoll_fd_wait(fd, EPOLLOUT, 0, WAIT_IO_WRITE);
		if (w == -EPERM || w == -ERANGE) {
			ssize_t h = handoff(send(fd, (const char *)buf + done, n - done, flags));
			return h < 0 ? (done ? (ssize_t)done : h) : (ssize_t)done + h;
		}
		if (w < 0)
			return done ? (ssize_t)done : w;
	}
}

static ssize_t fb_read(int fd, void *buf, size_t n)
{
	ssize_t r = fb_recv(fd, buf, n, 0);
	if (r != -ENOTSOCK)
		return r;
	if (fd_is_file(fd))
		return handoff(read(fd, buf, n));
	int k = fb_ready(fd, POLLIN, WAIT_IO_READ);
	if (k < 0)
		return k;
	return handoff(read(fd, buf, n));
}

static ssize_t fb_write(int fd, const void *buf, size_t n)
{
	ssize_t r = fb_send(fd, buf, n, 0);
	if (r != -ENOTSOCK)
		return r;
	if (fd_is_file(fd))
		return handoff(write(fd, buf, n));
	/* A pipe that polls writable has room for PIPE_BUF bytes: pieces of that
	 * size never block, and a write of at most PIPE_BUF stays atomic. */
	size_t done = 0;
	do {
		int k = fb_ready(fd, POLLOUT, WAIT_IO_WRITE);
		if (k < 0)
			return done ? (ssize_t)done : k;
		size_t chunk = k == 0 ? n - done : (n - done > PIPE_BUF ? PIPE_BUF : n - done);
		ssize_t w = handoff(write(fd, (const char *)buf + done, chunk));
		if (w < 0)
			return done ? (ssize_t)done : w;
		done += (size_t)w;
	} while (done < n);
	return (ssize_t)done;
}

/* ---- sockets: the write that goes out at once ---- */

/* The first try of a write or send: send(2) with MSG_DONTWAIT, which cannot
 * block whatever the fd's O_NONBLOCK says. A socket write that goes out whole at
 * once is exactly what a blocking or a nonblocking write would have done, and it
 * needs no fcntl, no ring request and no park (Go writes first, too). Returns
 * the count sent, -ENOTSOCK for anything but a socket (the caller takes the
 * usual path), -EAGAIN if nothing could go yet, or the call's final error. */
static ssize_t send_now(int fd, const void *buf, size_t n, int flags)
{
	ssize_t r = send(fd, buf, n, flags | MSG_DONTWAIT);
	return r < 0 ? -cur_errno() : r;
}

/* After send_now on a socket returned now: the rest of buf as the call's
 * semantics say: nothing more for the caller's MSG_DONTWAIT or an O_NONBLOCK
 * socket (the count, or EAGAIN), else wait until all of it went (the ring, or
 * the readiness fallback), as a blocking write(2) does. The total sent, or
 * negative errno if nothing was. */
static ssize_t send_rest(enum ioop op, int fd, const void *buf, size_t n, int flags, ssize_t now)
{
	if (now == (ssize_t)n || (now < 0 && now != -EAGAIN) || (flags & MSG_DONTWAIT))
		return now;
	size_t done = now > 0 ? (size_t)now : 0;
	int nb = fd_nonblock(fd);
	if (nb != 0)
		return done ? (ssize_t)done : (nb < 0 ? nb : -EAGAIN);
	ssize_t r;
	if (netpoll_uring_has(op)) {
		r = ring_write(op, fd, (const char *)buf + done, n - done, op == IOOP_WRITE ? (uint64_t)-1 : 0, flags,
			       false);
	} else {
		netpoll_count_fallback();
		r = fb_send(fd, (const char *)buf + done, n - done, flags);
	}
	if (r < 0)
		return done ? (ssize_t)done : r;
	return (ssize_t)done + r;
}

/* ---- the calls ---- */

GORT_EXPORT ssize_t gort_read(int fd, void *buf, size_t n)
{
	fd = stdio_fd(fd);
	if (!on_goroutine())
		return read(fd, buf, n);
	int nb = fd_nonblock(fd);
	if (nb < 0)
		return posix(nb);
	if (nb)
		return read(fd, buf, n);
	if (netpoll_uring_has(IOOP_READ)) {
		if (n > 0 && recv_readiness(fd, 0)) {
			/* a connected socket: recv(2) at once, and at EAGAIN wait for
			 * readiness in the epoll set (the netpoll essay says why not
			 * on the ring) */
			ssize_t r = fb_recv(fd, buf, n, 0);
			if (r != -ENOTSOCK)
				return posix(r);
			sockhint_put(fd, false);
		}
		struct ioreq req = { .op = IOOP_READ, .fd = fd, .buf = buf, .len = rwlen(n), .off = (uint64_t)-1 };
		return posix(netpoll_uring_do(&req, WAIT_IO_READ));
	}
	netpoll_count_fallback();
	return posix(fb_read(fd, buf, n));
}

GORT_EXPORT ssize_t gort_write(int fd, const void *buf, size_t n)
{
	fd = stdio_fd(fd);
	if (!on_goroutine())
		return write(fd, buf, n);
	ssize_t now = send_now(fd, buf, n, 0);
	sockhint_now(fd, now);
	if (now != -ENOTSOCK)
		return posix(send_rest(IOOP_WRITE, fd, buf, n, 0, now));
	int nb = fd_nonblock(fd);
	if (nb < 0)
		return posix(nb);
	if (nb)
		return write(fd, buf, n);
	if (netpoll_uring_has(IOOP_WRITE))
		return posix(ring_write(IOOP_WRITE, fd, buf, n, (uint64_t)-1, 0, false));
	netpoll_count_fallback();
	return posix(fb_write(fd, buf, n));
}

GORT_EXPORT ssize_t gort_pread(int fd, void *buf, size_t n, off_t off)
{
	fd = stdio_fd(fd);
	if (!on_goroutine())
		return pread(fd, buf, n, off);
	if (off < 0) {
		/* EINVAL, before the fd is even looked at, as pread(2) does; on the
		 * ring -1 would mean "the file position" */
		set_errno(EINVAL);
		return -1;
	}
	if (netpoll_uring_has(IOOP_PREAD)) {
		/* io_uring ignores the offset of a stream (a pipe: it would read);
		 * pread(2) fails there with ESPIPE */
		if (lseek(fd, 0, SEEK_CUR) < 0)
			return -1;
		struct ioreq req = { .op = IOOP_PREAD, .fd = fd, .buf = buf, .len = rwlen(n), .off = (uint64_t)off };
		return posix(netpoll_uring_do(&req, WAIT_IO_READ));
	}
	netpoll_count_fallback();
	return posix(handoff(pread(fd, buf, n, off)));
}

GORT_EXPORT ssize_t gort_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	fd = stdio_fd(fd);
	if (!on_goroutine())
		return pwrite(fd, buf, n, off);
	if (off < 0) {
		set_errno(EINVAL);
		return -1;
	}
	if (netpoll_uring_has(IOOP_PWRITE)) {
		if (lseek(fd, 0, SEEK_CUR) < 0)
			return -1;
		struct ioreq req = { .op = IOOP_PWRITE, .fd = fd, .buf = (void *)buf, .len = rwlen(n), .off = (uint64_t)off };
		return posix(netpoll_uring_do(&req, WAIT_IO_WRITE));
	}
	netpoll_count_fallback();
	return posix(handoff(pwrite(fd, buf, n, off)));
}

GORT_EXPORT ssize_t gort_recv(int fd, void *buf, size_t n, int flags)
{
	fd = stdio_fd(fd);
	if (!on_goroutine())
		return recv(fd, buf, n, flags);
	int nb = fd_nonblock(fd);
	if (nb < 0)
		return posix(nb);
	if (nb)
		return recv(fd, buf, n, flags);
	if (netpoll_uring_has(IOOP_RECV)) {
		if (recv_readiness(fd, flags)) {
			ssize_t r = fb_recv(fd, buf, n, flags);
			if (r == -ENOTSOCK)
				sockhint_put(fd, false);
			return posix(r);
		}
		struct ioreq req = { .op = IOOP_RECV, .fd = fd, .buf = buf, .len = rwlen(n), .flags = flags };
		int32_t r = netpoll_uring_do(&req, WAIT_IO_READ);
		if (r >= 0)
			sockhint_put(fd, true);
		return posix(r);
	}
	netpoll_count_fallback();
	return posix(fb_recv(fd, buf, n, flags));
}

GORT_EXPORT ssize_t gort_send(int fd, const void *buf, size_t n, int flags)
{
	fd = stdio_fd(fd);
	if (!on_goroutine())
		return send(fd, buf, n, flags);
	/* ENOTSOCK stays the answer for anything but a socket */
	ssize_t now = send_now(fd, buf, n, flags);
	sockhint_now(fd, now);
	return posix(send_rest(IOOP_SEND, fd, buf, n, flags, now));
}

GORT_EXPORT int gort_accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	fd = stdio_fd(fd);
	sockhint_put(fd, false); /* listening: its recv must never wait */
	if (!on_goroutine())
		return accept4(fd, addr, len, SOCK_CLOEXEC);
	int nb = fd_nonblock(fd);
	if (nb < 0)
		return (int)posix(nb);
	if (nb)
		return accept4(fd, addr, len, SOCK_CLOEXEC);
	if (netpoll_uring_has(IOOP_ACCEPT)) {
		struct ioreq req = {
			.op = IOOP_ACCEPT, .fd = fd, .buf = addr, .off = (uint64_t)(uintptr_t)len, .flags = SOCK_CLOEXEC,
		};
		int32_t r = netpoll_uring_do(&req, WAIT_IO_READ);
		if (r >= 0)
			sockhint_put(r, true);
		return (int)posix(r);
	}
	netpoll_count_fallback();
	/* Not a listening socket: accept4 fails at once (ENOTSOCK, EINVAL), and
	 * readiness would never come. */
	int listening = 0;
	socklen_t sl = sizeof listening;
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &sl) < 0 || !listening)
		return accept4(fd, addr, len, SOCK_CLOEXEC);
	int k = fb_ready(fd, POLLIN, WAIT_IO_READ);
	if (k < 0)
		return (int)posix(k);
	return (int)posix(handoff(accept4(fd, addr, len, SOCK_CLOEXEC)));
}

/* A connect whose handshake may already be under way (resubmitted after a
 * cancellation nobody asked for): wait until writable, then its outcome. */
static int connect_finish(int fd)
{
	struct ioreq req = { .op = IOOP_POLL, .fd = fd, .flags = POLLOUT };
	int32_t r = netpoll_uring_do(&req, WAIT_IO);
	if (r < 0)
		return r;
	int err = 0;
	socklen_t sl = sizeof err;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0)
		return -cur_errno();
	return -err;
}

GORT_EXPORT int gort_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	fd = stdio_fd(fd);
	if (!on_goroutine())
		return connect(fd, addr, len);
	int nb = fd_nonblock(fd);
	if (nb < 0)
		return (int)posix(nb);
	if (nb)
		return connect(fd, addr, len);
	if (netpoll_uring_has(IOOP_CONNECT)) {
		struct ioreq req = { .op = IOOP_CONNECT, .fd = fd, .buf = (void *)addr, .off = len };
		int32_t r = netpoll_uring_do(&req, WAIT_IO);
		if (req.resubmitted && r == -EISCONN)
			r = 0;
		else if (req.resubmitted && r == -EALREADY && netpoll_uring_has(IOOP_POLL))
			r = connect_finish(fd);
		if (r == 0)
			sockhint_put(fd, true);
		return (int)posix(r);
	}
	netpoll_count_fallback();
	return (int)posix(handoff(connect(fd, addr, len)));
}

/* openat(2) itself: glibc declares path nonnull, and a NULL path must fail with
 * EFAULT as the kernel says, not be undefined behaviour. */
static int sys_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	return (int)syscall(SYS_openat, dirfd, path, flags, mode);
}

GORT_EXPORT int gort_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	if (!on_goroutine())
		return sys_openat(dirfd, path, flags, mode);
	if (netpoll_uring_has(IOOP_OPENAT)) {
		struct ioreq req = { .op = IOOP_OPENAT, .fd = dirfd, .buf = (void *)path, .flags = flags, .off = mode };
		return (int)posix(netpoll_uring_do(&req, WAIT_IO));
	}
	netpoll_count_fallback();
	return (int)posix(handoff(sys_openat(dirfd, path, flags, mode)));
}

GORT_EXPORT int gort_close(int fd)
{
	/* a task's 0, 1 and 2 are task.c's to close when the task ends: the
	 * process's own must not go, nor the task's copy under task.c's feet */
	if ((unsigned)fd <= 2 && task_current_id() != 0)
		return 0;
	if (!on_goroutine())
		return close(fd);
	/* close(2) itself, not IORING_OP_CLOSE: the ring posts the completion
	 * before the file's last reference is dropped (task work of the submitting
	 * thread), so a goroutine resumed on another M could still find the file
	 * alive (a peer's write not yet failing with EPIPE); close(2) drops it
	 * before it returns. A close may block (SO_LINGER, network filesystems):
	 * a system call section. */
	int r = (int)handoff(close(fd));
	if (r == 0 || r == -EINTR) {
		netpoll_fd_closed(fd); /* the fd is gone either way on Linux */
		sockhint_put(fd, false);
	}
	return (int)posix(r);
}

GORT_EXPORT int gort_fsync(int fd)
{
	fd = stdio_fd(fd);
	if (!on_goroutine())
		return fsync(fd);
	if (netpoll_uring_has(IOOP_FSYNC)) {
		struct ioreq req = { .op = IOOP_FSYNC, .fd = fd };
		return (int)posix(netpoll_uring_do(&req, WAIT_IO));
	}
	netpoll_count_fallback();
	return (int)posix(handoff(fsync(fd)));
}

GORT_EXPORT int gort_poll(int fd, short events, int64_t timeout_ns)
{
	fd = stdio_fd(fd);
	struct pollfd p = { .fd = fd, .events = events };
	if (!on_goroutine()) {
		struct timespec ts = { timeout_ns / 1000000000, timeout_ns % 1000000000 };
		int k = ppoll(&p, 1, timeout_ns < 0 ? NULL : &ts, NULL);
		return k > 0 ? p.revents : k;
	}
	int64_t now = nanotime();
	int64_t deadline = timeout_ns <= 0 ? 0 : (timeout_ns > INT64_MAX - now ? 0 : now + timeout_ns);
	if (fd < 0) {
		/* poll(2) ignores negative fds: only the timeout */
		if (timeout_ns < 0 || (timeout_ns > 0 && deadline == 0))
			for (;;)
				gort_sleep(INT64_C(1) << 60);
		gort_sleep(timeout_ns);
		return 0;
	}
	if (timeout_ns == 0) {
		int k = poll(&p, 1, 0);
		return k > 0 ? p.revents : (k == 0 ? 0 : -1);
	}
	if (netpoll_uring_has(IOOP_POLL)) {
		struct ioreq req = { .op = IOOP_POLL, .fd = fd, .flags = (uint16_t)events, .deadline = deadline };
		int32_t r = netpoll_uring_do(&req, WAIT_POLL);
		if (r == -EBADF)
			return POLLNVAL;
		return (int)posix(r);
	}
	netpoll_count_fallback();
	for (;;) {
		int k = poll(&p, 1, 0);
		if (k < 0 && cur_errno() != EINTR)
			return -1;
		if (k > 0)
			return p.revents;
		if (deadline && nanotime() >= deadline)
			return 0;
		int w = netpoll_fd_wait(fd, (uint16_t)events, deadline, WAIT_POLL);
		if (w == 0)
			return 0;
		if (w == -EPERM || w == -ERANGE) {
			/* epoll cannot watch it: poll(2) in the handoff */
			int64_t left = deadline ? deadline - nanotime() : -1;
			if (deadline && left <= 0)
				return 0;
			struct timespec ts = { left / 1000000000, left % 1000000000 };
			k = (int)handoff(ppoll(&p, 1, left < 0 ? NULL : &ts, NULL));
			return k > 0 ? p.revents : (int)posix(k);
		}
		if (w < 0)
			return (int)posix(w);
		/* woken: poll(2) again, which also absorbs spurious wakeups */
	}
}
