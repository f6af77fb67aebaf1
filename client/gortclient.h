/* client/gortclient.h: libgortclient, the small client library of gortd's socket protocol (gortctl and the tests use it). */
#ifndef GORTCLIENT_H
#define GORTCLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/gort.pb-c.h"

/* One connection to gortd. Calls are synchronous (blocking socket); replies to
 * different requests may arrive in any order, and gortclient_call keeps the
 * ones that are not its own for gortclient_recv. Not thread-safe. */
struct gortclient;

/* Connects to path (NULL: wire_default_socket). Returns 0 or -errno from
 * socket/connect (-ENOENT: no socket there; -ECONNREFUSED: nobody listening;
 * -EACCES: no permission). On success the caller owns *ret. */
int gortclient_connect(const char *path, struct gortclient **ret);
/* Closes the connection. Accepts NULL; returns NULL. */
struct gortclient *gortclient_free(struct gortclient *c);
/* The socket, e.g. to poll it alongside a signal pipe. */
int gortclient_fd(const struct gortclient *c);
/* The path connected to. */
const char *gortclient_path(const struct gortclient *c);
/* The message of the last error: the daemon's for an error reply, else a
 * description of the local failure. Never NULL. */
const char *gortclient_error(const struct gortclient *c);

/* Sends req with fds attached (they stay the caller's). Sets req->nfds, and
 * req->id when it is 0 (a new id per call). Returns the id (> 0) or -errno. */
int64_t gortclient_send(struct gortclient *c, Gort__V1__Request *req, const int *fds, unsigned nfds);
/* Receives the next reply, whatever request it answers: a kept one first.
 * *ret is the caller's (gort__v1__reply__free_unpacked). Returns 0, or -errno:
 * -ECONNRESET when the daemon closed, -EBADMSG for a reply that does not decode. */
int gortclient_recv(struct gortclient *c, Gort__V1__Reply **ret);
/* Receives the reply to request id, keeping others for gortclient_recv. An
 * error reply is returned as -error (its message in gortclient_error) and
 * freed. */
int gortclient_recv_id(struct gortclient *c, uint64_t id, Gort__V1__Reply **ret);
/* gortclient_send, then gortclient_recv_id. ret may be NULL. */
int gortclient_call(struct gortclient *c, Gort__V1__Request *req, const int *fds, unsigned nfds,
		    Gort__V1__Reply **ret);

/* What to submit. fd: the binary, opened by the caller (-1: open file). */
struct gortclient_submit {
	const char *file;
	int fd;
	const char *name;           /* NULL: the file's base name */
	uint64_t stack_size;        /* 0: the daemon's default */
	int argc;                   /* arguments after -- */
	char **argv;
	bool wait;                  /* a TaskExit reply follows when the task ends */
	bool stdio;                 /* the task gets stdio_fds as its 0, 1, 2 */
	int stdio_fds[3];
};
/* Submits a task: returns the request id (> 0, for the TaskExit of wait) and the
 * task id in *ret_task_id, or -errno (daemon's reason in gortclient_error). */
int64_t gortclient_submit(struct gortclient *c, const struct gortclient_submit *s, uint64_t *ret_task_id);
/* Waits for the TaskExit answering request id: the exit code goes to
 * *ret_code and the status ("exited", "killed", ...) to status (may be NULL).
 * Returns 0 or -errno. */
int gortclient_wait_exit(struct gortclient *c, uint64_t id, int *ret_code, char *status, size_t statuslen);

#endif
