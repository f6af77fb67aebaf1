/* bench/httpd.c: gort benchmark: keep-alive HTTP/1.1 "Hello, World!" server on 127.0.0.1:PORT, one goroutine per connection. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "benchlib.h" /* memmem: _GNU_SOURCE comes from the Makefile's CFLAGS */

static const char response[] = "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!";

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

/* answers one response per request head ("\r\n\r\n"-terminated) until the peer closes */
static void serve(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[4096];
	size_t len = 0;

	for (;;) {
		ssize_t n = gort_read(fd, buf + len, sizeof(buf) - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;

		char *start = buf, *end;
		int requests = 0;
		while ((end = memmem(start, (size_t)(buf + len - start), "\r\n\r\n", 4))) {
			requests++;
			start = end + 4;
		}
		len -= (size_t)(start - buf);
		memmove(buf, start, len);
		if (len == sizeof(buf))
			break; /* a request head larger than the buffer */
		for (int i = 0; i < requests; i++)
			if (write_all(fd, response, sizeof(response) - 1) < 0)
				goto out;
	}
out:
	gort_close(fd);
}

static int bench_main(int argc, char **argv)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int one = 1, port = argc > 1 ? atoi(argv[1]) : 0;

	if (port <= 0 || port > 65535) {
		fprintf(stderr, "usage: bench-httpd PORT\n");
		return 2;
	}
	addr.sin_port = htons((uint16_t)port);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(lfd, 4096) < 0) {
		perror("bench-httpd: listen");
		return 1;
	}
	fprintf(stderr, "bench-httpd: listening on 127.0.0.1:%d\n", port);

	for (;;) {
		int fd = gort_accept(lfd, NULL, NULL);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE) {
				gort_sleep(10000000);
				continue;
			}
			perror("bench-httpd: accept");
			return 1;
		}
		/* Go's net package sets TCP_NODELAY on every connection; do the same */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (gort_go(serve, (void *)(intptr_t)fd) < 0) {
			perror("bench-httpd: gort_go");
			gort_close(fd);
		}
	}
}

int main(int argc, char **argv)
{
	return bench_run(bench_main, argc, argv, NULL);
}
