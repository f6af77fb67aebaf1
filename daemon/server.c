/* daemon/server.c: gortd's socket server: an event loop on a thread outside the scheduler, connections, frames, waits, shutdown. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "gortd.h"
#include "log.h"
#include "proto/wire.h"
#include "task.h"
#include "util.h"

/*
 * Where the control plane runs
 * ============================
 *
 * Every connection is served by one event loop (epoll, non-blocking sockets)
 * on gortd's main thread, which is not an M and never holds a P. Rejected:
 * a goroutine per connection on the runtime's own io calls. That is how a
 * Go server is written, and the runtime can carry a thousand clients that
 * way, but the daemon's control requests would then compete for the same Ps
 * as the tasks they control. With every P busy in a pure loop, `gortctl
 * stats` would wait for sysmon's preemption at every step (accept, read,
 * write: 10-20 ms each); a task spinning inside libc cannot be preempted at
 * all (no safe point), and a wedged scheduler - exactly when an operator runs
 * `gortctl stats` and `gortctl kill` - would take the control plane down with
 * it. A thread outside the Ps answers in microseconds whatever the tasks do,
 * and the systemd watchdog (notify.c) still learns about a wedged scheduler
 * from a goroutine that must get scheduled to tick.
 *
 * Nothing in a handler blocks the loop for long: requests are answered from
 * snapshots, task_kill returns at once, and a wait becomes a waiter polled
 * here (task_wait with a zero timeout) with backoff from 100 us to 10 ms.
 * The one exception is task_start/plugin_load, which read the binary and
 * dlopen it on this thread: binaries must be regular files (no pipe that
 * never fills) and only authorized users may send them.
 *
 * No client can stall another. Frames are read incrementally per
 * connection, so a client that sends half a frame, or nothing, costs its
 * buffer and an fd; one that stops reading has its replies queued up to
 * CONN_OUT_HIGH, then its input is no longer read until it drains; one that
 * floods requests gets FRAMES_PER_EVENT frames per loop turn; a connection
 * told to close after an error has CLOSE_GRACE_NS to take the error reply.
 *
 * The transport is confined to conn_read (wire_reader_recv) and conn_flush;
 * server_conn_input feeds the same frame path from memory for the fuzzer.
 */

#define CONN_WAITS_MAX   64
#define CONN_OUT_HIGH    (8u << 20)
#define FRAMES_PER_EVENT 16
#define ACCEPTS_PER_EVENT 64
#define CLOSE_GRACE_NS   (5 * 1000000000LL)
#define SHUTDOWN_FLUSH_NS (2 * 1000000000LL)
#define SHUTDOWN_TASKS_NS (20 * 1000000000LL)
#define WAIT_POLL_MIN_NS (100 * 1000LL)
#define WAIT_POLL_MAX_NS (10 * 1000 * 1000LL)
#define TICK_NS          (1000 * 1000000LL)

enum source_kind { SRC_CONN, SRC_LISTEN, SRC_SIGNAL, SRC_WAITS, SRC_TICK, SRC_EVENTS };

struct source {
	enum source_kind kind;
};

struct waiter {
	struct waiter *prev, *next;
	struct conn *conn;
	uint64_t id;
	struct task *task;
	bool kill_on_hangup;
	int64_t next_check, interval;
};

struct conn {
	struct source src;           /* first: epoll data points here */
	struct conn *prev, *next;
	int fd;                      /* -1: detached (the fuzzer's) */
	struct peer peer;
	struct wire_reader rd;
	uint8_t *out;
	size_t out_len, out_off, out_cap;
	unsigned nwaits;
	bool closing;                /* flush what is queued, then close */
	bool dead;                   /* closed; freed at the end of the loop turn */
	int64_t close_by;            /* when closing: give up flushing then */
	uint32_t events;             /* the epoll mask registered */
};

struct server_stats server_stats;

static struct conn *conns, *dead_conns;
static struct waiter *waiters;
static int epfd = -1;
static int listen_fd = -1, signal_fd = -1, waits_fd = -1, tick_fd = -1;
static struct source src_listen = { SRC_LISTEN }, src_signal = { SRC_SIGNAL },
		     src_waits = { SRC_WAITS }, src_tick = { SRC_TICK }, src_events = { SRC_EVENTS };
static bool listen_paused;
static int64_t listen_resume_at;
static uint32_t max_conns = 1024; /* RLIMIT_NOFILE less a reserve (server_run) */
static bool warned_full;

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void list_remove(struct conn **head, struct conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		*head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

static void list_push(struct conn **head, struct conn *c)
{
	c->prev = NULL;
	c->next = *head;
	if (*head)
		(*head)->prev = c;
	*head = c;
}

const struct peer *conn_peer(const struct conn *c)
{
	return &c->peer;
}

/* ---- waits ---- */

/* Takes w off the list of waiters (and its connection's count). */
static void waiter_unlink(struct waiter *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		waiters = w->next;
	if (w->next)
		w->next->prev = w->prev;
	w->prev = w->next = NULL;
	w->conn->nwaits--;
}

static void waiter_free(struct waiter *w)
{
	task_unref(w->task);
	free(w);
}

static void timer_arm(int fd, int64_t when_abs)
{
	if (fd < 0)
		return;
	struct itimerspec its = { 0 };
	if (when_abs > 0) {
		its.it_value.tv_sec = when_abs / 1000000000;
		its.it_value.tv_nsec = when_abs % 1000000000;
	}
	if (timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
		log_error_errno(errno, "timerfd_settime: %m");
}

static void waits_rearm(void)
{
	int64_t first = 0;
	for (struct waiter *w = waiters; w; w = w->next)
		if (!first || w->next_check < first)
			first = w->next_check;
	timer_arm(waits_fd, first);
}

static void waiter_answer(struct waiter *w)
{
	struct task_info info;
	task_get_info(w->task, &info);
	Gort__V1__TaskExit ex = GORT__V1__TASK_EXIT__INIT;
	ex.task_id = (uint64_t)info.id;
	ex.code = info.exit_code;
	ex.status = (char *)task_status_string(info.status);
	Gort__V1__Reply reply = GORT__V1__REPLY__INIT;
	reply.id = w->id;
	reply.body_case = GORT__V1__REPLY__BODY_EXIT;
	reply.exit = &ex;
	conn_reply(w->conn, &reply);
}

/* Answers every waiter whose task is done; the others back off. The done
 * ones leave the list before any is answered: a reply that fails closes its
 * connection, which cancels that connection's waiters. */
static void waits_poll(bool all)
{
	int64_t now = now_ns();
	struct waiter *done = NULL;
	for (struct waiter *w = waiters, *next; w; w = next) {
		next = w->next;
		if (!all && w->next_check > now)
			continue;
		if (task_wait(w->task, 0, NULL) == 0) {
			waiter_unlink(w);
			w->next = done;
			done = w;
			continue;
		}
		w->interval = w->interval * 2 > WAIT_POLL_MAX_NS ? WAIT_POLL_MAX_NS : w->interval * 2;
		w->next_check = now + w->interval;
	}
	while (done) {
		struct waiter *w = done;
		done = w->next;
		waiter_answer(w);
		waiter_free(w);
	}
	waits_rearm();
}

int conn_wait_task(struct conn *c, uint64_t id, struct task *t, bool kill_on_hangup)
{
	if (c->nwaits >= CONN_WAITS_MAX)
		return -EAGAIN;
	struct waiter *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->conn = c;
	w->id = id;
	w->task = task_ref(t);
	w->kill_on_hangup = kill_on_hangup;
	/* Already over: answer now rather than at the first poll. */
	if (task_wait(t, 0, NULL) == 0) {
		waiter_answer(w);
		waiter_free(w);
		return 0;
	}
	w->interval = WAIT_POLL_MIN_NS;
	w->next_check = now_ns() + w->interval;
	w->next = waiters;
	if (waiters)
		waiters->prev = w;
	waiters = w;
	c->nwaits++;
	waits_rearm();
	return 0;
}

static void conn_cancel_waits(struct conn *c)
{
	for (struct waiter *w = waiters, *next; w && c->nwaits > 0; w = next) {
		next = w->next;
		if (w->conn != c)
			continue;
		waiter_unlink(w);
		if (w->kill_on_hangup && task_kill(w->task) == 0)
			log_info("task %lld: killed, its client (uid %u, pid %d) hung up",
				 (long long)task_id(w->task), (unsigned)c->peer.uid, (int)c->peer.pid);
		waiter_free(w);
	}
	waits_rearm();
}

/* ---- connections ---- */

static void conn_close(struct conn *c)
{
	if (c->dead)
		return;
	c->dead = true;
	conn_cancel_waits(c);
	events_conn_closed(c);
	if (c->fd >= 0) {
		epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
		c->fd = -1;
		server_stats.connections--;
		list_remove(&conns, c);
		list_push(&dead_conns, c);
	}
}

static void conn_free(struct conn *c)
{
	wire_reader_deinit(&c->rd);
	free(c->out);
	free(c);
}

static void conns_reap(void)
{
	while (dead_conns) {
		struct conn *c = dead_conns;
		list_remove(&dead_conns, c);
		conn_free(c);
	}
}

static size_t conn_pending(const struct conn *c)
{
	return c->out_len - c->out_off;
}

size_t conn_pending_bytes(const struct conn *c)
{
	return conn_pending(c);
}

/* Brings the epoll mask in line with the connection's state; closes it when
 * it was told to close and has nothing left to send. */
static void conn_update(struct conn *c)
{
	if (c->dead || c->fd < 0)
		return;
	if (c->closing && conn_pending(c) == 0) {
		conn_close(c);
		return;
	}
	uint32_t want = 0;
	if (!c->closing && conn_pending(c) < CONN_OUT_HIGH)
		want |= EPOLLIN | EPOLLRDHUP;
	if (conn_pending(c) > 0)
		want |= EPOLLOUT;
	if (want == c->events)
		return;
	struct epoll_event ev = { .events = want, .data.ptr = c };
	if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) {
		log_error_errno(errno, "epoll_ctl: %m");
		conn_close(c);
		return;
	}
	c->events = want;
}

static void conn_flush(struct conn *c)
{
	while (c->fd >= 0 && !c->dead && conn_pending(c) > 0) {
		ssize_t n = send(c->fd, c->out + c->out_off, conn_pending(c), MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			/* The client went away: nothing more to say to it. */
			log_debug("client uid %u pid %d: send: %m", (unsigned)c->peer.uid, (int)c->peer.pid);
			conn_close(c);
			return;
		}
		c->out_off += (size_t)n;
	}
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	conn_update(c);
}

static void conn_close_after_flush(struct conn *c)
{
	if (!c->closing) {
		c->closing = true;
		c->close_by = now_ns() + CLOSE_GRACE_NS;
	}
	conn_update(c);
}

static int conn_queue(struct conn *c, const uint8_t *frame, size_t len)
{
	/* Detached connections (the fuzzer) keep only the latest replies. */
	if (c->fd < 0 && c->out_len > (1u << 20))
		c->out_len = c->out_off = 0;
	if (c->out_len + len > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		while (cap < c->out_len + len)
			cap *= 2;
		uint8_t *b = realloc(c->out, cap);
		if (!b)
			return -ENOMEM;
		c->out = b;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, frame, len);
	c->out_len += len;
	return 0;
}

int conn_reply(struct conn *c, const Gort__V1__Reply *reply)
{
	if (c->dead)
		return 0;
	_cleanup_free_ uint8_t *frame = NULL;
	size_t len;
	int r = wire_frame_pack(&reply->base, WIRE_REPLY_MAX, &frame, &len);
	if (r == -EMSGSIZE) {
		return conn_reply_error(c, reply->id, EMSGSIZE, "reply larger than %u bytes",
					WIRE_REPLY_MAX);
	}
	if (r >= 0)
		r = conn_queue(c, frame, len);
	if (r < 0) {
		log_error_errno(r, "reply to uid %u: %m", (unsigned)c->peer.uid);
		conn_close(c);
		return r;
	}
	if (reply->error)
		server_stats.errors++;
	conn_flush(c);
	return 0;
}

int conn_reply_error(struct conn *c, uint64_t id, int err, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	Gort__V1__Reply reply = GORT__V1__REPLY__INIT;
	reply.id = id;
	reply.error = err < 0 ? -err : err;
	/* The message goes back as a proto3 string: keep it valid UTF-8 even
	 * when it quotes bytes a client sent (dlerror text, a file name). */
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p >= 0x80 || (unsigned char)*p < 0x20)
			*p = '?';
	reply.message = msg;
	return conn_reply(c, &reply);
}

/* One complete frame from c: decode, check, authorize, dispatch. Consumes
 * body and fds. */
static void conn_frame(struct conn *c, uint8_t *body, uint32_t len, int *fds, unsigned nfds)
{
	Gort__V1__Request *req = NULL;
	const char *why = "not a valid message";
	server_stats.requests++;
	int r = wire_request_unpack(body, len, &req, &why);
	free(body);
	if (r < 0) {
		log_warning("client uid %u pid %d: bad request (%u bytes): %s", (unsigned)c->peer.uid,
			    (int)c->peer.pid, len, why);
		conn_reply_error(c, 0, EBADMSG, "bad request: %s", why);
		conn_close_after_flush(c);
		goto out_close_fds;
	}
	if (req->body_case == GORT__V1__REQUEST__BODY__NOT_SET) {
		unsigned tag = req->base.n_unknown_fields ? req->base.unknown_fields[0].tag : 0;
		log_warning("client uid %u pid %d: unknown request type (field %u)", (unsigned)c->peer.uid,
			    (int)c->peer.pid, tag);
		conn_reply_error(c, req->id, EOPNOTSUPP,
				 "unknown request type (field %u): this gortd does not know it", tag);
		conn_close_after_flush(c);
		goto out_free;
	}
	if (req->nfds != nfds || !handlers_fds_ok(req, nfds)) {
		log_warning("client uid %u pid %d: %s request with %u file descriptors (it says %u)",
			    (unsigned)c->peer.uid, (int)c->peer.pid, wire_request_name(req), nfds, req->nfds);
		conn_reply_error(c, req->id, EBADF,
				 "%s: wrong file descriptors: %u sent, the request says %u", wire_request_name(req),
				 nfds, req->nfds);
		conn_close_after_flush(c);
		goto out_free;
	}
	if (handlers_needs_control(req) && !c->peer.control) {
		server_stats.refused++;
		log_warning("refused %s from uid %u (pid %d): not root, gortd's uid %u, or allowed",
			    wire_request_name(req), (unsigned)c->peer.uid, (int)c->peer.pid, (unsigned)geteuid());
		conn_reply_error(c, req->id, EPERM,
				 "permission denied: %s needs root, gortd's user (uid %u) or --allow-uid/--allow-group; "
				 "you are uid %u",
				 wire_request_name(req), (unsigned)geteuid(), (unsigned)c->peer.uid);
		goto out_free;
	}
	handlers_dispatch(c, req, fds, nfds);
out_free:
	gort__v1__request__free_unpacked(req, NULL);
out_close_fds:
	for (unsigned i = 0; i < nfds; i++)
		close(fds[i]);
}

static const char *wire_error_string(int r)
{
	switch (r) {
	case -EMSGSIZE:
		return "frame longer than the limit";
	case -EPROTO:
		return "truncated frame";
	case -ETOOMANYREFS:
		return "too many file descriptors";
	case -EBADMSG:
		return "unexpected ancillary data";
	default:
		return NULL;
	}
}

/* A wire-level error on c: say so if the client can still hear it, then close. */
static void conn_wire_error(struct conn *c, int r)
{
	const char *what = wire_error_string(r);
	if (!what) {
		log_debug("client uid %u pid %d: receive: %s", (unsigned)c->peer.uid, (int)c->peer.pid,
			  strerror(-r));
		conn_close(c);
		return;
	}
	log_warning("client uid %u pid %d: %s", (unsigned)c->peer.uid, (int)c->peer.pid, what);
	if (r == -EMSGSIZE)
		conn_reply_error(c, 0, EMSGSIZE, "frame longer than %u bytes", c->rd.max);
	else
		conn_reply_error(c, 0, -r, "%s", what);
	conn_close_after_flush(c);
}

static void conn_take_frame(struct conn *c)
{
	uint8_t *body;
	uint32_t len;
	int fds[WIRE_FDS_MAX];
	unsigned nfds;
	wire_reader_take(&c->rd, &body, &len, fds, &nfds);
	conn_frame(c, body, len, fds, nfds);
}

static void conn_read(struct conn *c)
{
	for (int i = 0; i < FRAMES_PER_EVENT && !c->dead && !c->closing; i++) {
		if (conn_pending(c) >= CONN_OUT_HIGH)
			break;
		int r = wire_reader_recv(&c->rd, c->fd);
		if (r == -EAGAIN)
			break;
		if (r == WIRE_MORE) {
			i--; /* partial frame: keep reading until EAGAIN */
			continue;
		}
		if (r == WIRE_EOF) {
			/* The client is done sending: a hangup for its waits (an
			 * attached task is killed), but replies already queued
			 * still go out. */
			conn_cancel_waits(c);
			conn_close_after_flush(c);
			return;
		}
		if (r < 0) {
			conn_wire_error(c, r);
			return;
		}
		conn_take_frame(c);
	}
	conn_update(c);
}

struct conn *server_conn_new_detached(const struct peer *p)
{
	struct conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->src.kind = SRC_CONN;
	c->fd = -1;
	c->peer = *p;
	wire_reader_init(&c->rd, WIRE_REQUEST_MAX);
	return c;
}

bool server_conn_input(struct conn *c, const uint8_t *data, size_t n)
{
	size_t off = 0;
	do {
		if (c->dead || c->closing)
			return false;
		size_t used;
		int r = wire_reader_feed(&c->rd, n ? data + off : NULL, n - off, &used);
		off += used;
		if (r == WIRE_EOF)
			return false;
		if (r < 0) {
			conn_wire_error(c, r);
			return false;
		}
		if (r == WIRE_FRAME)
			conn_take_frame(c);
	} while (off < n);
	return !c->dead && !c->closing;
}

void server_conn_output(const struct conn *c, const uint8_t **ret, size_t *ret_len)
{
	*ret = c->out ? c->out + c->out_off : NULL;
	*ret_len = c->out_len - c->out_off;
}

void server_conn_free(struct conn *c)
{
	if (!c)
		return;
	conn_cancel_waits(c);
	events_conn_closed(c);
	conn_free(c);
}

/* Stops accepting for 100 ms: a pending connection we cannot take would keep
 * the listener readable and the loop spinning. */
static void listen_pause(void)
{
	struct epoll_event ev = { .events = 0, .data.ptr = &src_listen };
	epoll_ctl(epfd, EPOLL_CTL_MOD, listen_fd, &ev);
	listen_paused = true;
	listen_resume_at = now_ns() + 100 * 1000000LL;
	timer_arm(tick_fd, listen_resume_at);
}

static void listen_accept(void)
{
	for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
		if (server_stats.connections >= max_conns) {
			/* Keep fds for the tasks (memfds, their files): the
			 * next clients wait in the listen backlog. */
			if (!warned_full)
				log_warning("%u clients connected, the most fds allow; not accepting for now",
					    server_stats.connections);
			warned_full = true;
			listen_pause();
			return;
		}
		warned_full = false;
		int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			if (errno == ECONNABORTED || errno == EPROTO)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				log_warning_errno(errno, "accept: %m; not accepting for 100 ms");
				listen_pause();
				return;
			}
			log_error_errno(errno, "accept: %m");
			return;
		}
		struct conn *c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->src.kind = SRC_CONN;
		c->fd = fd;
		wire_reader_init(&c->rd, WIRE_REQUEST_MAX);
		int r = auth_peer(fd, &c->peer);
		if (r < 0) {
			log_warning_errno(r, "peer credentials: %m; closing the connection");
			close(fd);
			free(c);
			continue;
		}
		c->events = EPOLLIN | EPOLLRDHUP;
		struct epoll_event ev = { .events = c->events, .data.ptr = c };
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			log_error_errno(errno, "epoll_ctl: %m");
			close(fd);
			free(c);
			continue;
		}
		list_push(&conns, c);
		server_stats.connections++;
		server_stats.connections_total++;
		log_debug("client uid %u pid %d connected%s", (unsigned)c->peer.uid, (int)c->peer.pid,
			  c->peer.control ? " (control)" : "");
	}
}

/* ---- the listening socket ---- */

int server_listen_systemd(int *ret_fd)
{
	int n = sd_listen_fds(1);
	if (n < 0)
		return log_error_errno(n, "sd_listen_fds: %m");
	if (n == 0)
		return 0;
	if (n > 1)
		return log_error_errno(EINVAL, "systemd passed %d sockets; gortd.socket should have one", n);
	int fd = SD_LISTEN_FDS_START;
	int r = sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0);
	if (r < 0)
		return log_error_errno(r, "socket from systemd: %m");
	if (r == 0)
		return log_error_errno(EINVAL, "the socket from systemd is not a listening Unix stream socket");
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 || fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
		return log_error_errno(errno, "socket from systemd: %m");
	*ret_fd = fd;
	return 1;
}

static int mkdir_parents(const char *path)
{
	char buf[sizeof(((struct sockaddr_un *)0)->sun_path)];
	snprintf(buf, sizeof buf, "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return 0;
}

int server_listen_path(const char *path, int *ret_fd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof sa.sun_path)
		return log_error_errno(ENAMETOOLONG, "socket path %s: %m", path);
	strcpy(sa.sun_path, path);
	int r = mkdir_parents(path);
	if (r < 0)
		return log_error_errno(r, "create the directory of %s: %m", path);

	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return log_error_errno(errno, "socket: %m");

	/* A socket file left by a gortd that died is replaced; one with a live
	 * daemon behind it is not. */
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return log_error_errno(EEXIST, "%s exists and is not a socket", path);
		_cleanup_close_ int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0)
			return log_error_errno(EADDRINUSE, "another gortd is listening on %s", path);
		if (unlink(path) < 0 && errno != ENOENT)
			return log_error_errno(errno, "remove stale socket %s: %m", path);
	}
	/* 0660: the owner and its group may connect. umask applies to bind. */
	mode_t old = umask(0117);
	r = bind(fd, (struct sockaddr *)&sa, sizeof sa);
	umask(old);
	if (r < 0)
		return log_error_errno(errno, "bind %s: %m", path);
	if (listen(fd, SOMAXCONN) < 0)
		return log_error_errno(errno, "listen %s: %m", path);
	*ret_fd = fd;
	fd = -1;
	return 0;
}

/* ---- the loop ---- */

static int setup_fds(void)
{
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		return log_error_errno(errno, "epoll_create1: %m");
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	signal_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (signal_fd < 0)
		return log_error_errno(errno, "signalfd: %m");
	waits_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	tick_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (waits_fd < 0 || tick_fd < 0)
		return log_error_errno(errno, "timerfd_create: %m");
	struct {
		int fd;
		struct source *src;
	} add[] = { { listen_fd, &src_listen }, { signal_fd, &src_signal }, { waits_fd, &src_waits },
		    { tick_fd, &src_tick } };
	for (size_t i = 0; i < ARRAY_SIZE(add); i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = add[i].src };
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, add[i].fd, &ev) < 0)
			return log_error_errno(errno, "epoll_ctl: %m");
	}
	/* lifecycle event streams (events.c): polled on their own timer */
	int efd = events_init();
	if (efd < 0)
		return efd;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &src_events };
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, efd, &ev) < 0)
		return log_error_errno(errno, "epoll_ctl: %m");
	return 0;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* The periodic work: STATUS=, the watchdog, connections past their grace,
 * resuming a paused listener. Returns the next time it is due. */
static int64_t tick(int64_t watchdog_ns, int64_t *next_watchdog, int64_t *next_status)
{
	int64_t now = now_ns();
	if (watchdog_ns > 0 && now >= *next_watchdog) {
		notify_watchdog();
		*next_watchdog = now + watchdog_ns;
	}
	if (now >= *next_status) {
		notify_status();
		*next_status = now + TICK_NS;
	}
	for (struct conn *c = conns, *next; c; c = next) {
		next = c->next;
		if (c->closing && now >= c->close_by) {
			log_debug("client uid %u pid %d: did not take its error reply; closing",
				  (unsigned)c->peer.uid, (int)c->peer.pid);
			conn_close(c);
		}
	}
	if (listen_paused && now >= listen_resume_at && listen_fd >= 0) {
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &src_listen };
		epoll_ctl(epfd, EPOLL_CTL_MOD, listen_fd, &ev);
		listen_paused = false;
	}
	int64_t next = *next_status;
	if (watchdog_ns > 0 && *next_watchdog < next)
		next = *next_watchdog;
	if (listen_paused && listen_resume_at < next)
		next = listen_resume_at;
	return next;
}

static int shutdown_efd = -1;

static void *shutdown_thread(void *arg)
{
	(void)arg;
	tasks_shutdown();
	uint64_t one = 1;
	(void)!write(shutdown_efd, &one, sizeof one);
	return NULL;
}

/* Ends every task (tasks_shutdown, on a thread of its own) and waits up to
 * SHUTDOWN_TASKS_NS for it; a second SIGTERM/SIGINT stops the wait. Returns
 * 0, -ETIMEDOUT or -EINTR (then the thread is left running). */
static int end_tasks(void)
{
	shutdown_efd = eventfd(0, EFD_CLOEXEC);
	if (shutdown_efd < 0)
		return log_error_errno(errno, "eventfd: %m");
	pthread_t th;
	int r = pthread_create(&th, NULL, shutdown_thread, NULL);
	if (r != 0)
		return log_error_errno(r, "pthread_create: %m");
	int64_t deadline = now_ns() + SHUTDOWN_TASKS_NS;
	for (;;) {
		int64_t left = deadline - now_ns();
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd p[2] = { { .fd = shutdown_efd, .events = POLLIN }, { .fd = signal_fd, .events = POLLIN } };
		int n = poll(p, 2, (int)(left / 1000000) + 1);
		if (n < 0 && errno != EINTR)
			return log_error_errno(errno, "poll: %m");
		if (p[0].revents & POLLIN) {
			pthread_join(th, NULL);
			close(shutdown_efd);
			return 0;
		}
		if (p[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(signal_fd, &si, sizeof si) == sizeof si && si.ssi_signo != SIGHUP)
				return -EINTR;
		}
	}
}

static void shutdown_flush(void)
{
	int64_t deadline = now_ns() + SHUTDOWN_FLUSH_NS;
	for (;;) {
		bool pending = false;
		for (struct conn *c = conns; c; c = c->next)
			if (conn_pending(c) > 0)
				pending = true;
		int64_t left = deadline - now_ns();
		if (!pending || left <= 0)
			return;
		struct epoll_event evs[64];
		int n = epoll_wait(epfd, evs, 64, (int)(left / 1000000) + 1);
		for (int i = 0; i < n; i++) {
			struct source *s = evs[i].data.ptr;
			if (s->kind != SRC_CONN)
				continue;
			struct conn *c = (struct conn *)s;
			if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
				conn_flush(c);
		}
		conns_reap();
	}
}

int server_run(int fd, const char *unlink_path, int ready_fd)
{
	listen_fd = fd;
	server_stats.start_ns = now_ns();
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		max_conns = rl.rlim_cur > 512 + 64 ? (uint32_t)(rl.rlim_cur - 512) : 64;
	int r = setup_fds();
	if (r < 0)
		goto out_close;

	int64_t watchdog_ns = notify_init();
	notify_ready();
	int64_t next_watchdog = now_ns() + watchdog_ns, next_status = now_ns() + TICK_NS;
	timer_arm(tick_fd, tick(watchdog_ns, &next_watchdog, &next_status));
	log_info("gortd %d: serving, %d procs", (int)getpid(), gort_procs());
	if (ready_fd >= 0) {
		(void)!write(ready_fd, "R", 1);
		close(ready_fd);
	}

	bool stop = false;
	while (!stop) {
		struct epoll_event evs[64];
		int n = epoll_wait(epfd, evs, 64, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = log_error_errno(errno, "epoll_wait: %m");
			break;
		}
		for (int i = 0; i < n; i++) {
			struct source *s = evs[i].data.ptr;
			uint32_t e = evs[i].events;
			switch (s->kind) {
			case SRC_CONN: {
				struct conn *c = (struct conn *)s;
				if (c->dead)
					break;
				if (e & EPOLLOUT)
					conn_flush(c);
				if (!c->dead && (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
					if (c->events & EPOLLIN)
						conn_read(c);
					else if (e & (EPOLLHUP | EPOLLERR))
						conn_close(c);
				}
				break;
			}
			case SRC_LISTEN:
				listen_accept();
				break;
			case SRC_SIGNAL: {
				struct signalfd_siginfo si;
				while (read(signal_fd, &si, sizeof si) == sizeof si) {
					if (si.ssi_signo == SIGHUP) {
						log_info("SIGHUP: nothing to reload");
						continue;
					}
					log_info("%s from pid %u: shutting down", strsignal((int)si.ssi_signo),
						 si.ssi_pid);
					stop = true;
				}
				break;
			}
			case SRC_WAITS: {
				uint64_t ticks;
				(void)!read(waits_fd, &ticks, sizeof ticks);
				waits_poll(false);
				break;
			}
			case SRC_TICK: {
				uint64_t ticks;
				(void)!read(tick_fd, &ticks, sizeof ticks);
				timer_arm(tick_fd, tick(watchdog_ns, &next_watchdog, &next_status));
				break;
			}
			case SRC_EVENTS:
				events_poll();
				break;
			}
		}
		conns_reap();
	}

	/* Orderly shutdown: stop accepting, end every task (their waiters get
	 * their TaskExit), give clients a moment to read, close. */
	notify_stopping();
	epoll_ctl(epfd, EPOLL_CTL_DEL, listen_fd, NULL);
	close_fd(&listen_fd);
	if (unlink_path)
		unlink(unlink_path);
	int ended = end_tasks();
	waits_poll(true);
	shutdown_flush();
	while (conns)
		conn_close(conns);
	conns_reap();
	if (ended < 0) {
		/* A goroutine that cannot be stopped holds its task: the runtime
		 * cannot be taken down in order either. Leave now rather than hang
		 * until systemd's TimeoutStopSec= kills us. */
		log_error("gortd %d: %s; exiting with tasks still running", (int)getpid(),
			  ended == -EINTR ? "a second signal came" : "tasks did not end within 20 s");
		_exit(EXIT_FAILURE);
	}
	log_info("gortd %d: stopped", (int)getpid());
	r = r < 0 ? r : 0;
out_close:
	close_fd(&listen_fd);
	close_fd(&signal_fd);
	close_fd(&waits_fd);
	close_fd(&tick_fd);
	events_fini();
	close_fd(&epfd);
	return r;
}
