/* client/gortclient.c: libgortclient: connect to gortd, send framed requests with fds, match replies by id. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "gortclient.h"
#include "proto/wire.h"

struct kept {
	struct kept *next;
	Gort__V1__Reply *reply;
};

struct gortclient {
	int fd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	uint64_t next_id;
	struct wire_reader rd;
	struct kept *kept, **kept_tail;
	char err[512];
};

static int set_error(struct gortclient *c, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int set_error(struct gortclient *c, int r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->err, sizeof c->err, fmt, ap);
	va_end(ap);
	return r;
}

int gortclient_connect(const char *path, struct gortclient **ret)
{
	char buf[sizeof(((struct sockaddr_un *)0)->sun_path)];
	if (!path) {
		int r = wire_default_socket(buf, sizeof buf);
		if (r < 0)
			return r;
		path = buf;
	}
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof sa.sun_path)
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	struct gortclient *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	strcpy(c->path, path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		int r = -errno;
		free(c);
		return r;
	}
	int r;
	do
		r = connect(c->fd, (struct sockaddr *)&sa, sizeof sa);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		r = -errno;
		close(c->fd);
		free(c);
		return r;
	}
	wire_reader_init(&c->rd, WIRE_REPLY_MAX);
	c->kept_tail = &c->kept;
	c->next_id = 1;
	*ret = c;
	return 0;
}

struct gortclient *gortclient_free(struct gortclient *c)
{
	if (!c)
		return NULL;
	while (c->kept) {
		struct kept *k = c->kept;
		c->kept = k->next;
		gort__v1__reply__free_unpacked(k->reply, NULL);
		free(k);
	}
	wire_reader_deinit(&c->rd);
	close(c->fd);
	free(c);
	return NULL;
}

int gortclient_fd(const struct gortclient *c)
{
	return c->fd;
}

const char *gortclient_path(const struct gortclient *c)
{
	return c->path;
}

const char *gortclient_error(const struct gortclient *c)
{
	return c->err;
}

int64_t gortclient_send(struct gortclient *c, Gort__V1__Request *req, const int *fds, unsigned nfds)
{
	if (req->id == 0)
		req->id = c->next_id++;
	req->nfds = nfds;
	uint8_t *frame;
	size_t len;
	int r = wire_frame_pack(&req->base, WIRE_REQUEST_MAX, &frame, &len);
	if (r < 0)
		return set_error(c, r, "request too large (%s)", strerror(-r));
	r = wire_send(c->fd, frame, len, fds, nfds);
	free(frame);
	if (r < 0)
		return set_error(c, r, "send to %s: %s", c->path, strerror(-r));
	return (int64_t)req->id;
}

/* The next reply from the socket (not from the kept ones). */
static int recv_frame(struct gortclient *c, Gort__V1__Reply **ret)
{
	int r;
	do
		r = wire_reader_recv(&c->rd, c->fd);
	while (r == WIRE_MORE);
	if (r == WIRE_EOF || r == -ECONNRESET)
		return set_error(c, -ECONNRESET, "gortd closed the connection");
	if (r < 0)
		return set_error(c, r, "receive from %s: %s", c->path, strerror(-r));
	uint8_t *body;
	uint32_t len;
	int fds[WIRE_FDS_MAX];
	unsigned nfds;
	wire_reader_take(&c->rd, &body, &len, fds, &nfds);
	for (unsigned i = 0; i < nfds; i++)
		close(fds[i]);
	const char *why = "";
	r = nfds ? -EBADMSG : wire_reply_unpack(body, len, ret, &why);
	free(body);
	if (r < 0)
		return set_error(c, r, "bad reply from gortd: %s", nfds ? "unexpected file descriptors" : why);
	return 0;
}

int gortclient_recv(struct gortclient *c, Gort__V1__Reply **ret)
{
	if (c->kept) {
		struct kept *k = c->kept;
		c->kept = k->next;
		if (!c->kept)
			c->kept_tail = &c->kept;
		*ret = k->reply;
		free(k);
		return 0;
	}
	return recv_frame(c, ret);
}

static int reply_result(struct gortclient *c, Gort__V1__Reply *reply, Gort__V1__Reply **ret)
{
	if (reply->error) {
		int r = -reply->error;
		set_error(c, r, "%s", reply->message && *reply->message ? reply->message : strerror(reply->error));
		gort__v1__reply__free_unpacked(reply, NULL);
		return r;
	}
	if (ret)
		*ret = reply;
	else
		gort__v1__reply__free_unpacked(reply, NULL);
	return 0;
}

int gortclient_recv_id(struct gortclient *c, uint64_t id, Gort__V1__Reply **ret)
{
	for (struct kept **p = &c->kept; *p; p = &(*p)->next) {
		struct kept *k = *p;
		if (k->reply->id != id)
			continue;
		*p = k->next;
		if (!c->kept)
			c->kept_tail = &c->kept;
		else if (c->kept_tail == &k->next)
			c->kept_tail = p;
		Gort__V1__Reply *reply = k->reply;
		free(k);
		return reply_result(c, reply, ret);
	}
	for (;;) {
		Gort__V1__Reply *reply;
		int r = recv_frame(c, &reply);
		if (r < 0)
			return r;
		/* id 0: the daemon could not decode a request of ours. */
		if (reply->id == id || (reply->id == 0 && reply->error))
			return reply_result(c, reply, ret);
		struct kept *k = malloc(sizeof(*k));
		if (!k) {
			gort__v1__reply__free_unpacked(reply, NULL);
			return set_error(c, -ENOMEM, "out of memory");
		}
		k->next = NULL;
		k->reply = reply;
		*c->kept_tail = k;
		c->kept_tail = &k->next;
	}
}

int gortclient_call(struct gortclient *c, Gort__V1__Request *req, const int *fds, unsigned nfds,
		    Gort__V1__Reply **ret)
{
	int64_t id = gortclient_send(c, req, fds, nfds);
	if (id < 0)
		return (int)id;
	return gortclient_recv_id(c, (uint64_t)id, ret);
}

int64_t gortclient_submit(struct gortclient *c, const struct gortclient_submit *s, uint64_t *ret_task_id)
{
	int fd = s->fd;
	if (fd < 0) {
		fd = open(s->file, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return set_error(c, -errno, "%s: %s", s->file, strerror(errno));
	}
	Gort__V1__SubmitRequest sr = GORT__V1__SUBMIT_REQUEST__INIT;
	sr.name = (char *)(s->name ? s->name : "");
	sr.stack_size = s->stack_size;
	sr.n_args = s->argc > 0 ? (size_t)s->argc : 0;
	sr.args = s->argv;
	sr.wait = s->wait;
	sr.stdio = s->stdio;
	sr.file = (char *)(s->file ? s->file : "");
	Gort__V1__Request req = GORT__V1__REQUEST__INIT;
	req.body_case = GORT__V1__REQUEST__BODY_SUBMIT;
	req.submit = &sr;
	int fds[4] = { fd, s->stdio_fds[0], s->stdio_fds[1], s->stdio_fds[2] };
	Gort__V1__Reply *reply = NULL;
	int r = gortclient_call(c, &req, fds, s->stdio ? 4 : 1, &reply);
	if (s->fd < 0)
		close(fd);
	if (r < 0)
		return r;
	if (reply->body_case != GORT__V1__REPLY__BODY_SUBMIT) {
		gort__v1__reply__free_unpacked(reply, NULL);
		return set_error(c, -EBADMSG, "gortd answered submit with something else");
	}
	*ret_task_id = reply->submit->task_id;
	gort__v1__reply__free_unpacked(reply, NULL);
	return (int64_t)req.id;
}

int gortclient_wait_exit(struct gortclient *c, uint64_t id, int *ret_code, char *status, size_t statuslen)
{
	Gort__V1__Reply *reply;
	int r = gortclient_recv_id(c, id, &reply);
	if (r < 0)
		return r;
	if (reply->body_case != GORT__V1__REPLY__BODY_EXIT) {
		gort__v1__reply__free_unpacked(reply, NULL);
		return set_error(c, -EBADMSG, "gortd answered wait with something else");
	}
	*ret_code = reply->exit->code;
	if (status && statuslen)
		snprintf(status, statuslen, "%s", reply->exit->status);
	gort__v1__reply__free_unpacked(reply, NULL);
	return 0;
}
