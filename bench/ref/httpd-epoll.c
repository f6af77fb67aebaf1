/* bench/ref/httpd-epoll.c: not gort: bench/httpd.c's responder as one thread on level-triggered epoll, to measure what wrk can drive on this machine. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/*
 * The reference row of scripts/bench.sh's httpd workload (bench/ref/README.md).
 * wrk (-t1) is one thread, and each request costs it several microseconds of
 * CPU whatever the server, so on a small machine wrk, not the server, can be
 * what limits the requests per second. This server does about the least per
 * request a server can (one epoll_wait for many ready connections, then one
 * read and one write each; no other thread to wake), with bench/httpd.c's
 * parsing and response: a gort or Go figure near its figure is bound by the
 * client and the machine, not by the runtime.
 */

static const char response[] = "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!";

/* a connection's unparsed bytes, as serve()'s buf in bench/httpd.c */
struct conn {
	size_t len;
	char buf[4096];
};

static void drop(int ep, int fd, struct conn **conns)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
	close(fd);
	free(conns[fd]);
	conns[fd] = NULL;
}

/* reads what fd has, answers each complete request head; false: close it */
static int serve(int fd, struct conn *c)
{
	ssize_t n = read(fd, c->buf + c->len, sizeof(c->buf) - c->len);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR;
	if (n == 0)
		return 0;
	c->len += (size_t)n;

	char *start = c->buf, *end;
	int requests = 0;
	while ((end = memmem(start, (size_t)(c->buf + c->len - start), "\r\n\r\n", 4))) {
		requests++;
		start = end + 4;
	}
	c->len -= (size_t)(start - c->buf);
	memmove(c->buf, start, c->len);
	if (c->len == sizeof(c->buf))
		return 0;
	for (int i = 0; i < requests; i++) {
		/* a 51-byte response into an empty-enough socket buffer: whole, or the peer is gone */
		if (write(fd, response, sizeof(response) - 1) != (ssize_t)sizeof(response) - 1)
			return 0;
	}
	return 1;
}

int main(int argc, char **argv)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int one = 1, port = argc > 1 ? atoi(argv[1]) : 0;

	if (port <= 0 || port > 65535) {
		fprintf(stderr, "usage: ref-httpd-epoll PORT\n");
		return 2;
	}
	addr.sin_port = htons((uint16_t)port);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(lfd, 4096) < 0) {
		perror("ref-httpd-epoll: listen");
		return 1;
	}
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = lfd };
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) {
		perror("ref-httpd-epoll: epoll");
		return 1;
	}
	static struct conn *conns[65536];
	fprintf(stderr, "ref-httpd-epoll: listening on 127.0.0.1:%d\n", port);

	for (;;) {
		struct epoll_event evs[256];
		int n = epoll_wait(ep, evs, 256, -1);
		if (n < 0 && errno != EINTR) {
			perror("ref-httpd-epoll: epoll_wait");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (fd != lfd) {
				if (!serve(fd, conns[fd]))
					drop(ep, fd, conns);
				continue;
			}
			int c;
			while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
				struct epoll_event e = { .events = EPOLLIN, .data.fd = c };
				if (c >= (int)(sizeof(conns) / sizeof(conns[0])) ||
				    !(conns[c] = calloc(1, sizeof(struct conn)))) {
					close(c);
					continue;
				}
				setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
				if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &e) < 0)
					drop(ep, c, conns);
			}
		}
	}
}
