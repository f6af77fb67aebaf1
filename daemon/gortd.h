/* daemon/gortd.h: what gortd's files share: command-line state, peers, connections, handlers, sd_notify. */
#ifndef GORTD_H
#define GORTD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto/gort.pb-c.h"

struct task;

/* ---- command-line state (main.c) ---- */
extern const char *arg_socket;   /* --socket, or NULL: systemd's socket, else the default */
extern int arg_procs;            /* --procs; 0: the runtime's default */
extern uid_t *arg_allow_uids;    /* --allow-uid (repeatable) */
extern size_t arg_n_allow_uids;
extern gid_t *arg_allow_gids;    /* --allow-group (repeatable) */
extern size_t arg_n_allow_gids;
extern bool arg_foreground;

/* ---- peers and authorization (auth.c) ---- */
#define PEER_GROUPS_MAX 64
struct peer {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	gid_t groups[PEER_GROUPS_MAX]; /* supplementary groups (SO_PEERGROUPS) */
	int ngroups;
	bool control;                  /* may submit, kill, load and unload plugins */
};

/* auth_peer: who is on the other end of the connected socket fd (SO_PEERCRED,
 * SO_PEERGROUPS), with ->control decided by auth_may_control. Returns 0 or
 * -errno (the peer is unknown: refuse the connection). */
int auth_peer(int fd, struct peer *ret);
/* auth_may_control: root, the daemon's own uid, an --allow-uid, or a member
 * (primary or supplementary) of an --allow-group. This function can't fail. */
bool auth_may_control(const struct peer *p);

/* ---- connections (server.c) ---- */
struct conn;

/* Counters for gortctl stats (server thread only, except where atomic). */
struct server_stats {
	int64_t start_ns;               /* nanotime() at start */
	uint32_t connections;
	uint64_t connections_total;
	uint64_t requests;
	uint64_t errors;
	uint64_t refused;
	uint64_t tasks_total;
};
extern struct server_stats server_stats;

const struct peer *conn_peer(const struct conn *c);
/* Queues a reply frame for the client (it is packed at once: the caller keeps
 * reply). A reply too large for a frame becomes an error reply. Returns 0 or
 * -ENOMEM (then the connection is closed). */
int conn_reply(struct conn *c, const Gort__V1__Reply *reply);
/* Queues an error reply: errno err (positive or negative), message from fmt. */
int conn_reply_error(struct conn *c, uint64_t id, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* conn_wait_task: answers request id on c with a TaskExit once t has ended and
 * is gone (takes a new reference to t). With kill_on_hangup the task is killed
 * if c closes first (submit --wait: the task's output goes to that client).
 * Returns 0, or -EAGAIN when c has too many waits outstanding, or -ENOMEM. */
int conn_wait_task(struct conn *c, uint64_t id, struct task *t, bool kill_on_hangup);
/* Bytes queued for c and not yet sent (a stream's back pressure). */
size_t conn_pending_bytes(const struct conn *c);

/* server_conn_new_detached: a connection with no socket, for the fuzzer:
 * replies pile up in memory. server_conn_input feeds it bytes as if read from a
 * socket (n == 0: end of stream) and returns false once the connection would
 * be closed. server_conn_free releases it (and cancels its waits). */
struct conn *server_conn_new_detached(const struct peer *p);
bool server_conn_input(struct conn *c, const uint8_t *data, size_t n);
/* The replies queued on a detached connection (the latest MiB or so). */
void server_conn_output(const struct conn *c, const uint8_t **ret, size_t *ret_len);
void server_conn_free(struct conn *c);

/* The server (server.c): open the listening socket, run the loop until SIGTERM
 * or SIGINT, shut down in order. */
int server_listen_systemd(int *ret_fd);
int server_listen_path(const char *path, int *ret_fd);
/* server_run: serves on listen_fd (consumed) until SIGTERM/SIGINT, then stops
 * accepting, ends every task and answers their waiters, closes every client.
 * unlink_path (may be NULL): the socket file to remove at the end. ready_fd
 * (may be -1): written to and closed once serving (gortd without --foreground).
 * Returns 0 after an orderly shutdown, -errno if the loop could not start. */
int server_run(int listen_fd, const char *unlink_path, int ready_fd);

/* ---- request handlers (handlers.c) ---- */

/* handlers_dispatch: runs req (already validated: known type, right fd count,
 * authorized) for c. It replies (or arranges a later reply) itself; fds are
 * the frame's and stay the caller's. This function can't fail. */
void handlers_dispatch(struct conn *c, const Gort__V1__Request *req, const int *fds, unsigned nfds);
/* Whether the request type needs the control right. */
bool handlers_needs_control(const Gort__V1__Request *req);
/* Whether nfds is what the request must carry (submit: the binary, plus the
 * three stdio fds with stdio; plugin load: the binary; others: none). The
 * server refuses the frame otherwise. */
bool handlers_fds_ok(const Gort__V1__Request *req, unsigned nfds);

/* ---- lifecycle event streams (events.c) ---- */

/* events_init: turns the runtime's history ring on (the daemon keeps the
 * latest events for gortctl events) and returns the timer fd the server polls
 * (events_poll when readable), or -errno. events_fini: closes every stream,
 * turns the ring off. */
int events_init(void);
void events_fini(void);
/* events_start: answers an EventsRequest on c: the retained events, and with
 * follow a stream until c closes or the duration ends; replies (or errors)
 * itself. This function can't fail. */
void events_start(struct conn *c, uint64_t id, const Gort__V1__EventsRequest *r);
/* events_poll: sends every stream what is new, ends the ones past their
 * duration. events_conn_closed: c is closing: its streams go. */
void events_poll(void);
void events_conn_closed(struct conn *c);
/* Streams open (stats). */
unsigned events_streams(void);

/* ---- systemd (notify.c) ---- */

/* notify_init: reads WATCHDOG_USEC and, if the watchdog is on, starts the
 * goroutine whose ticks prove the scheduler runs. Returns the interval in ns at
 * which notify_watchdog should be called (0: no watchdog). Needs the runtime. */
int64_t notify_init(void);
void notify_ready(void);
/* STATUS= with tasks, goroutines, procs and clients. */
void notify_status(void);
/* Pings WATCHDOG=1 if the scheduler made progress since the last call. */
void notify_watchdog(void);
void notify_stopping(void);
/* Pings sent so far (stats). */
uint64_t notify_watchdog_pings(void);

#endif
