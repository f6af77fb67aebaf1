/* examples/httpd.c: a keep-alive HTTP/1.1 responder on gort_run, one goroutine per connection (usage: httpd [PORT], default 8080). */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gort.h>

/*
 * Every connection gets a goroutine that reads request heads, answers each with
 * "Hello, World!" and keeps the connection open (HTTP/1.1 keep-alive) until the
 * client closes it, sends "Connection: close", or speaks HTTP/1.0 without
 * "Connection: keep-alive". Pipelined requests are answered in order, batched
 * into one write. Request bodies (Content-Length) are read and discarded.
 * gort_read and gort_write park the goroutine, never the thread: thousands of
 * idle connections cost a goroutine stack each, not a thread.
 */

#define BUF_SIZE 8192
#define MAX_BATCH 32

static const char body[] = "Hello, World!\n";

struct conn {
	int fd;
	char buf[BUF_SIZE];
	size_t len;         /* bytes in buf */
	size_t skip;        /* body bytes still to discard */
};

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = gort_write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* The value of header name in the head [p, end), or NULL; *ret_len its length. */
static const char *header(const char *p, const char *end, const char *name, size_t *ret_len)
{
	size_t nlen = strlen(name);
	const char *line = memchr(p, '\n', (size_t)(end - p));
	while (line && line + 1 < end) {
		line++;
		const char *eol = memchr(line, '\n', (size_t)(end - line));
		if (!eol)
			break;
		if ((size_t)(eol - line) > nlen && line[nlen] == ':' && strncasecmp(line, name, nlen) == 0) {
			const char *v = line + nlen + 1;
			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			const char *ve = eol;
			while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			*ret_len = (size_t)(ve - v);
			return v;
		}
		line = eol;
	}
	return NULL;
}

static bool value_is(const char *v, size_t len, const char *want)
{
	return v && len == strlen(want) && strncasecmp(v, want, len) == 0;
}

/* Appends one response to out; returns its length, or 0 if it does not fit. */
static size_t respond(char *out, size_t room, int status, bool keep)
{
	const char *reason = status == 200 ? "OK" : status == 400 ? "Bad Request" : "Request Header Fields Too Large";
	const char *b = status == 200 ? body : "";
	int n = snprintf(out, room,
			 "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n%s\r\n%s",
			 status, reason, strlen(b), keep ? "" : "Connection: close\r\n", b);
	return n > 0 && (size_t)n < room ? (size_t)n : 0;
}

/* Closes after an error response: unread request bytes would make the kernel
 * reset the connection, and the reset can overtake the response. So: no more
 * writes, then read what the client still sends (for at most a second). */
static void linger_close(int fd)
{
	char sink[4096];
	shutdown(fd, SHUT_WR);
	int64_t deadline = gort_now() + 1000000000LL;
	while (gort_now() < deadline && gort_poll(fd, POLLIN, deadline - gort_now()) > 0)
		if (gort_read(fd, sink, sizeof sink) <= 0)
			break;
	gort_close(fd);
}

static void serve(void *arg)
{
	struct conn *c = arg;
	char out[MAX_BATCH * 128];
	bool keep = true, failed = false;

	while (keep) {
		ssize_t n = gort_read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		c->len += (size_t)n;

		size_t outlen = 0, start = 0;
		int batch = 0;
		while (keep && batch < MAX_BATCH) {
			if (c->skip) {
				size_t k = c->len - start < c->skip ? c->len - start : c->skip;
				start += k;
				c->skip -= k;
				if (c->skip)
					break;
			}
			char *head = c->buf + start;
			char *end = memmem(head, c->len - start, "\r\n\r\n", 4);
			if (!end)
				break;
			end += 4;
			int status = 200;
			size_t vlen;
			const char *v;
			bool http10 = false;
			/* request line: METHOD SP TARGET SP HTTP/1.x */
			char *lend = memchr(head, '\n', (size_t)(end - head));
			if (lend > head && lend[-1] == '\r')
				lend--;
			if (!lend || lend - head < 14 || memcmp(lend - 9, " HTTP/1.", 8) != 0 ||
			    (lend[-1] != '0' && lend[-1] != '1')) {
				status = 400;
				keep = false;
				failed = true;
			} else {
				http10 = lend[-1] == '0';
			}
			if (status == 200) {
				v = header(head, end, "Connection", &vlen);
				if (value_is(v, vlen, "close"))
					keep = false;
				else if (http10 && !value_is(v, vlen, "keep-alive"))
					keep = false;
				v = header(head, end, "Content-Length", &vlen);
				if (v) {
					char num[24] = { 0 };
					memcpy(num, v, vlen < sizeof num - 1 ? vlen : sizeof num - 1);
					char *e;
					long long cl = strtoll(num, &e, 10);
					if (*e || cl < 0) {
						status = 400;
						keep = false;
						failed = true;
					} else {
						c->skip = (size_t)cl;
					}
				}
			}
			outlen += respond(out + outlen, sizeof out - outlen, status, keep);
			start = (size_t)(end - c->buf);
			batch++;
		}
		memmove(c->buf, c->buf + start, c->len - start);
		c->len -= start;
		if (c->len == sizeof c->buf && !c->skip) {
			/* a head larger than the buffer */
			outlen += respond(out + outlen, sizeof out - outlen, 431, false);
			keep = false;
			failed = true;
		}
		if (outlen && write_all(c->fd, out, outlen) < 0)
			break;
	}
	if (failed)
		linger_close(c->fd);
	else
		gort_close(c->fd);
	free(c);
}

static int httpd_main(int argc, char **argv)
{
	long port = argc > 1 ? strtol(argv[1], NULL, 10) : 8080;
	if (port <= 0 || port > 65535) {
		fprintf(stderr, "usage: httpd [PORT]\n");
		return 2;
	}
	int one = 1;
	/* IPv6 and IPv4 on one socket; IPv4 alone where IPv6 is off */
	struct sockaddr_in6 addr6 = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port), .sin6_addr = in6addr_any };
	struct sockaddr_in addr4 = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_ANY) };
	struct sockaddr *addr = (struct sockaddr *)&addr6;
	socklen_t addrlen = sizeof addr6;
	int lfd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0) {
		addr = (struct sockaddr *)&addr4;
		addrlen = sizeof addr4;
		lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	}
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    bind(lfd, addr, addrlen) < 0 || listen(lfd, 4096) < 0) {
		fprintf(stderr, "httpd: port %ld: %s\n", port, strerror(errno));
		return 1;
	}
	fprintf(stderr, "httpd: listening on port %ld (%d procs)\n", port, gort_procs());

	for (;;) {
		int fd = gort_accept(lfd, NULL, NULL);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE) {
				gort_sleep(10 * 1000000); /* out of fds: let connections end */
				continue;
			}
			fprintf(stderr, "httpd: accept: %s\n", strerror(errno));
			return 1;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		struct conn *c = malloc(sizeof *c);
		if (!c) {
			gort_close(fd);
			continue;
		}
		c->fd = fd;
		c->len = 0;
		c->skip = 0;
		if (gort_go(serve, c) < 0) {
			gort_close(fd);
			free(c);
		}
	}
}

int main(int argc, char **argv)
{
	int rc = gort_run(httpd_main, argc, argv, NULL);
	if (rc < 0) {
		perror("httpd: gort_run");
		return 1;
	}
	return rc;
}
