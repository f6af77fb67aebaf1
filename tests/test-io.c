/* tests/test-io.c: the io calls (runtime/io.c, netpoll.c, netpoll_epoll.c) on io_uring; test-io-nouring.c runs it all again on the epoll fallback. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "netpoll.h"
#include "runtime.h"
#include "testlib.h"

/* test-io-nouring.c defines it as 1: the same tests with GORT_NO_URING=1 */
#ifndef IO_TEST_NOURING
#define IO_TEST_NOURING 0
#endif

/* The mode the runtime must pick: io_uring unless forced off or refused here. */
static int want_mode;
static bool under_valgrind;

#define expect_errno(expr, e)                                                                      \
	do {                                                                                       \
		test_set_errno(0);                                                                 \
		long _r = (long)(expr);                                                            \
		int _e = test_errno();                                                             \
		ck_assert_msg(_r == -1 && _e == (e), "%s: got %ld, test_errno() %d (%s); want -1, %s", #expr, \
			      _r, _e, strerror(_e), strerror(e));                                  \
	} while (0)

/* pattern byte at offset off of stream id */
static inline uint8_t pat(uint32_t id, uint64_t off)
{
	uint64_t x = (off + 1) * 0x9e3779b97f4a7c15ULL ^ ((uint64_t)id << 32 | id);
	x ^= x >> 29;
	return (uint8_t)(x * 0xbf58476d1ce4e5b9ULL >> 56);
}

static int read_full(int fd, void *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = gort_read(fd, (char *)buf + got, n - got);
		if (r <= 0)
			return r == 0 ? -EPIPE : -test_errno();
		got += (size_t)r;
	}
	return 0;
}

static int write_full(int fd, const void *buf, size_t n)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = gort_write(fd, (const char *)buf + done, n - done);
		if (r < 0)
			return -test_errno();
		done += (size_t)r;
	}
	return 0;
}

static struct netpoll_stats stats(void)
{
	struct netpoll_stats st;
	netpoll_stats_read(&st);
	return st;
}

/* waits (yielding the goroutine) until gp is parked in an io call */
static void wait_parked_in_io(struct g *_Atomic *slot)
{
	int64_t deadline = gort_now() + 30 * 1000000000LL;
	struct g *gp;
	while (!(gp = atomic_load(slot)) || atomic_load(&gp->iowait) == 0) {
		ck_assert_msg(gort_now() < deadline, "goroutine never parked in io");
		gort_sleep(1000000);
	}
}

/* ---- mode and stats ---- */

static int mode_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	struct netpoll_stats st = stats();
	ck_assert_msg(st.mode == want_mode, "mode %s, want %s", netpoll_mode_string(st.mode),
		      netpoll_mode_string(want_mode));
	int p[2];
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(gort_write(p[1], "x", 1), 1);
	char c;
	ck_assert_int_eq(gort_read(p[0], &c, 1), 1);
	ck_assert_int_eq(gort_close(p[0]), 0);
	ck_assert_int_eq(gort_close(p[1]), 0);
	st = stats();
	/* the write and the read; closes are close(2) in a syscall section */
	if (want_mode == NETPOLL_URING) {
		ck_assert_uint_ge(st.submitted, 2);
		ck_assert_uint_ge(st.completions, 2);
		ck_assert_uint_ge(st.enters, 1);
		ck_assert_uint_eq(st.fallbacks, 0);
	} else {
		ck_assert_uint_eq(st.submitted, 0);
		ck_assert_uint_ge(st.fallbacks, 2);
	}
	ck_assert_int_eq(st.inflight, 0);
	return 0;
}

START_TEST(test_mode_and_stats)
{
	struct netpoll_stats st;
	netpoll_stats_read(&st);
	ck_assert_int_eq(st.mode, NETPOLL_OFF);
	run_gort(mode_main, 2, 0);
	ck_assert_str_eq(netpoll_mode_string(NETPOLL_URING), "io_uring");
	ck_assert_str_eq(netpoll_mode_string(NETPOLL_EPOLL), "epoll");
}
END_TEST

/* ---- pipes and socketpairs, both directions ---- */

struct stream {
	int rfd, wfd;           /* this side reads rfd, writes wfd */
	uint32_t id;            /* pattern written */
	uint32_t peerid;        /* pattern expected */
	size_t total;
	bool use_sendrecv;
	int err;
	gort_wg *wg;
};

static void stream_writer(void *arg)
{
	struct stream *s = arg;
	uint8_t buf[7000];
	size_t off = 0;
	uint32_t step = 1;
	while (off < s->total) {
		size_t n = 1 + (step * 2654435761u) % sizeof buf;
		step++;
		if (n > s->total - off)
			n = s->total - off;
		for (size_t i = 0; i < n; i++)
			buf[i] = pat(s->id, off + i);
		size_t done = 0;
		while (done < n) {
			ssize_t r = s->use_sendrecv ? gort_send(s->wfd, buf + done, n - done, 0)
						    : gort_write(s->wfd, buf + done, n - done);
			if (r <= 0) {
				s->err = test_errno();
				gort_wg_done(s->wg);
				return;
			}
			done += (size_t)r;
		}
		off += n;
	}
	gort_wg_done(s->wg);
}

static void stream_reader(void *arg)
{
	struct stream *s = arg;
	uint8_t buf[5000];
	size_t off = 0;
	uint32_t step = 7;
	while (off < s->total) {
		size_t want = 1 + (step * 40503u) % sizeof buf;
		step++;
		ssize_t r = s->use_sendrecv ? gort_recv(s->rfd, buf, want, 0) : gort_read(s->rfd, buf, want);
		if (r <= 0) {
			s->err = r == 0 ? EPIPE : test_errno();
			break;
		}
		for (ssize_t i = 0; i < r; i++) {
			if (buf[i] != pat(s->peerid, off + (size_t)i)) {
				s->err = EILSEQ;
				gort_wg_done(s->wg);
				return;
			}
		}
		off += (size_t)r;
	}
	gort_wg_done(s->wg);
}

/* a writes to b and b to a at the same time, with ragged chunk sizes */
static void duplex(int a_r, int a_w, int b_r, int b_w, bool sendrecv, size_t total)
{
	gort_wg wg = GORT_WG_INIT;
	struct stream a = { .rfd = a_r, .wfd = a_w, .id = 1, .peerid = 2, .total = total, .use_sendrecv = sendrecv, .wg = &wg };
	struct stream b = { .rfd = b_r, .wfd = b_w, .id = 2, .peerid = 1, .total = total, .use_sendrecv = sendrecv, .wg = &wg };
	gort_wg_add(&wg, 4);
	ck_assert_int_gt(gort_go(stream_writer, &a), 0);
	ck_assert_int_gt(gort_go(stream_reader, &a), 0);
	ck_assert_int_gt(gort_go(stream_writer, &b), 0);
	ck_assert_int_gt(gort_go(stream_reader, &b), 0);
	gort_wg_wait(&wg);
	ck_assert_msg(a.err == 0 && b.err == 0, "stream errors: %s / %s", strerror(a.err), strerror(b.err));
}

static int pipes_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	int ab[2], ba[2];
	ck_assert_int_eq(pipe2(ab, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(ba, O_CLOEXEC), 0);
	/* a: reads ba[0], writes ab[1]; b: reads ab[0], writes ba[1] */
	duplex(ba[0], ab[1], ab[0], ba[1], false, (size_t)scaled(4 << 20));
	/* EOF once the writer is gone */
	ck_assert_int_eq(gort_close(ab[1]), 0);
	char c;
	ck_assert_int_eq(gort_read(ab[0], &c, 1), 0);
	gort_close(ab[0]);
	gort_close(ba[0]);
	gort_close(ba[1]);
	return 0;
}

START_TEST(test_pipes_both_directions)
{
	run_gort(pipes_main, 2, 0);
}
END_TEST

static int socketpair_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	for (int mode = 0; mode < 2; mode++) {
		int sv[2];
		ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		/* one socket, both directions at once; read/write, then send/recv */
		duplex(sv[0], sv[0], sv[1], sv[1], mode == 1, (size_t)scaled(4 << 20));
		ck_assert_int_eq(shutdown(sv[1], SHUT_WR), 0);
		char c;
		ck_assert_int_eq(gort_recv(sv[0], &c, 1, 0), 0);
		ck_assert_int_eq(gort_close(sv[0]), 0);
		ck_assert_int_eq(gort_close(sv[1]), 0);
	}
	return 0;
}

START_TEST(test_socketpairs_both_directions)
{
	run_gort(socketpair_main, 2, 0);
}
END_TEST

/* one big write must come back whole (blocking semantics through short counts) */
static struct {
	int fd;
	size_t n;
	uint64_t sum;
	gort_wg wg;
} bigw;

static void big_reader(void *arg)
{
	(void)arg;
	uint8_t *buf = malloc(65536);
	size_t got = 0;
	size_t bad = SIZE_MAX;
	while (got < bigw.n) {
		ssize_t r = gort_read(bigw.fd, buf, 65536);
		ck_assert_int_gt(r, 0);
		for (ssize_t i = 0; i < r; i++)
			if (buf[i] != pat(9, got + (size_t)i) && bad == SIZE_MAX)
				bad = got + (size_t)i;
		got += (size_t)r;
	}
	ck_assert_msg(bad == SIZE_MAX, "byte %zu differs", bad);
	free(buf);
	gort_wg_done(&bigw.wg);
}

static int bigwrite_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	int kinds[2][2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, kinds[0]), 0);
	ck_assert_int_eq(pipe2(kinds[1], O_CLOEXEC), 0);
	bigw.n = (size_t)scaled(8 << 20);
	uint8_t *buf = malloc(bigw.n);
	for (size_t i = 0; i < bigw.n; i++)
		buf[i] = pat(9, i);
	for (int k = 0; k < 2; k++) {
		int rfd = k ? kinds[1][0] : kinds[0][1], wfd = k ? kinds[1][1] : kinds[0][0];
		bigw.fd = rfd;
		gort_wg_add(&bigw.wg, 1);
		ck_assert_int_gt(gort_go(big_reader, NULL), 0);
		ssize_t w = k ? gort_write(wfd, buf, bigw.n) : gort_send(wfd, buf, bigw.n, 0);
		ck_assert_int_eq(w, (ssize_t)bigw.n);
		gort_wg_wait(&bigw.wg);
	}
	free(buf);
	for (int k = 0; k < 2; k++)
		gort_close(kinds[k][0]), gort_close(kinds[k][1]);
	return 0;
}

START_TEST(test_big_write_is_whole)
{
	run_gort(bigwrite_main, 2, 0);
}
END_TEST

/* ---- TCP on loopback: 1,000 concurrent echo clients ---- */

static int listen_loopback(uint16_t *ret_port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	ck_assert_int_eq(listen(fd, 4096), 0);
	socklen_t len = sizeof a;
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*ret_port = ntohs(a.sin_port);
	return fd;
}

static struct {
	int lfd;
	uint16_t port;
	long nclients;
	size_t bytes;
	gort_wg clients;
	_Atomic long failures;
	_Atomic long served;
	_Atomic uint64_t sum;
	char why[160];
} tcp;

static void tcp_fail(const char *what, long id, int e)
{
	if (atomic_fetch_add(&tcp.failures, 1) == 0)
		snprintf(tcp.why, sizeof tcp.why, "client %ld: %s: %s", id, what, strerror(e));
}

static void echo_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[3000];
	for (;;) {
		ssize_t n = gort_read(fd, buf, sizeof buf);
		if (n <= 0)
			break;
		if (write_full(fd, buf, (size_t)n) < 0)
			break;
	}
	gort_close(fd);
	atomic_fetch_add(&tcp.served, 1);
}

static void echo_server(void *arg)
{
	(void)arg;
	for (;;) {
		int fd = gort_accept(tcp.lfd, NULL, NULL);
		if (fd < 0) {
			if (test_errno() == ECANCELED || test_errno() == EBADF || test_errno() == EINVAL)
				return;
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		ck_assert_int_gt(gort_go(echo_conn, (void *)(intptr_t)fd), 0);
	}
}

static void echo_client(void *arg)
{
	long id = (long)(intptr_t)arg;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(tcp.port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (fd < 0 || gort_connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
		tcp_fail("connect", id, test_errno());
		goto out;
	}
	uint8_t out[1500], in[1500];
	uint64_t sum = 0;
	for (size_t off = 0; off < tcp.bytes;) {
		size_t n = 1 + (size_t)((uint64_t)(off + (size_t)id) * 2654435761u % sizeof out);
		if (n > tcp.bytes - off)
			n = tcp.bytes - off;
		for (size_t i = 0; i < n; i++)
			out[i] = pat((uint32_t)id, off + i);
		if (write_full(fd, out, n) < 0) {
			tcp_fail("write", id, test_errno());
			goto out;
		}
		int r = read_full(fd, in, n);
		if (r < 0) {
			tcp_fail("read", id, -r);
			goto out;
		}
		/* nothing lost, nothing reordered, nothing from another connection */
		if (memcmp(in, out, n) != 0) {
			tcp_fail("echo differs", id, EILSEQ);
			goto out;
		}
		for (size_t i = 0; i < n; i++)
			sum += in[i];
		off += n;
	}
	atomic_fetch_add(&tcp.sum, sum);
out:
	if (fd >= 0)
		gort_close(fd);
	gort_wg_done(&tcp.clients);
}

static int tcp_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	tcp.lfd = listen_loopback(&tcp.port);
	ck_assert_int_gt(gort_go(echo_server, NULL), 0);
	gort_wg_add(&tcp.clients, tcp.nclients);
	for (long i = 0; i < tcp.nclients; i++)
		ck_assert_int_gt(gort_go(echo_client, (void *)(intptr_t)i), 0);
	gort_wg_wait(&tcp.clients);
	ck_assert_msg(atomic_load(&tcp.failures) == 0, "%ld failures, first: %s", atomic_load(&tcp.failures), tcp.why);
	uint64_t want = 0;
	for (long id = 0; id < tcp.nclients; id++)
		for (size_t off = 0; off < tcp.bytes; off++)
			want += pat((uint32_t)id, off);
	ck_assert_uint_eq(atomic_load(&tcp.sum), want);
	/* the server side saw every connection end */
	int64_t deadline = gort_now() + 30 * 1000000000LL;
	while (atomic_load(&tcp.served) < tcp.nclients && gort_now() < deadline)
		gort_sleep(1000000);
	ck_assert_int_eq(atomic_load(&tcp.served), tcp.nclients);
	return 0;
}

START_TEST(test_tcp_1000_echo_clients)
{
	tcp.nclients = scaled(1000);
	tcp.bytes = (size_t)scaled(32 * 1024);
	if (tcp.bytes < 4096)
		tcp.bytes = 4096;
	run_gort(tcp_main, 2, 0);
}
END_TEST

/* ---- accept and connect ---- */

static int accept_connect_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	uint16_t port;
	int lfd = listen_loopback(&port);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(gort_connect(c, (struct sockaddr *)&a, sizeof a), 0);
	struct sockaddr_in peer;
	socklen_t plen = sizeof peer;
	memset(&peer, 0, sizeof peer);
	int s = gort_accept(lfd, (struct sockaddr *)&peer, &plen);
	ck_assert_int_ge(s, 0);
	ck_assert_int_eq(plen, sizeof peer);
	ck_assert_int_eq(peer.sin_family, AF_INET);
	struct sockaddr_in local;
	socklen_t llen = sizeof local;
	ck_assert_int_eq(getsockname(c, (struct sockaddr *)&local, &llen), 0);
	ck_assert_int_eq(peer.sin_port, local.sin_port);
	ck_assert_int_eq(fcntl(s, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	ck_assert_int_eq(gort_send(c, "ping", 4, 0), 4);
	char buf[8];
	ck_assert_int_eq(gort_recv(s, buf, 4, MSG_WAITALL), 4);
	ck_assert_mem_eq(buf, "ping", 4);
	/* connecting twice: EISCONN */
	expect_errno(gort_connect(c, (struct sockaddr *)&a, sizeof a), EISCONN);
	/* accept without an address */
	int c2 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(gort_connect(c2, (struct sockaddr *)&a, sizeof a), 0);
	int s2 = gort_accept(lfd, NULL, NULL);
	ck_assert_int_ge(s2, 0);
	gort_close(c2);
	gort_close(s2);
	gort_close(c);
	gort_close(s);

	/* ECONNREFUSED: a port nobody listens on */
	uint16_t dead;
	int tmp = listen_loopback(&dead);
	close(tmp);
	struct sockaddr_in d = a;
	d.sin_port = htons(dead);
	int c3 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	expect_errno(gort_connect(c3, (struct sockaddr *)&d, sizeof d), ECONNREFUSED);
	gort_close(c3);

	/* rejections */
	int p[2];
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	expect_errno(gort_accept(-1, NULL, NULL), EBADF);
	expect_errno(gort_accept(p[0], NULL, NULL), ENOTSOCK);
	int unl = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	expect_errno(gort_accept(unl, NULL, NULL), EINVAL);
	expect_errno(gort_connect(-1, (struct sockaddr *)&a, sizeof a), EBADF);
	expect_errno(gort_connect(p[0], (struct sockaddr *)&a, sizeof a), ENOTSOCK);
	expect_errno(gort_connect(unl, (struct sockaddr *)&a, 3), EINVAL);
	expect_errno(gort_recv(p[0], buf, 1, 0), ENOTSOCK);
	expect_errno(gort_send(p[1], "x", 1, 0), ENOTSOCK);
	expect_errno(gort_recv(-1, buf, 1, 0), EBADF);
	expect_errno(gort_send(12345, buf, 1, 0), EBADF);
	gort_close(unl);
	gort_close(p[0]);
	gort_close(p[1]);
	gort_close(lfd);
	return 0;
}

START_TEST(test_accept_connect)
{
	run_gort(accept_connect_main, 2, 0);
}
END_TEST

/* ---- files ---- */

static int files_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	char dir[] = "/tmp/gort-test-io.XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	int dfd = gort_openat(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	ck_assert_int_ge(dfd, 0);

	int fd = gort_openat(dfd, "f", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	expect_errno(gort_openat(dfd, "f", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600), EEXIST);
	expect_errno(gort_openat(dfd, "missing", O_RDONLY | O_CLOEXEC, 0), ENOENT);
	expect_errno(gort_openat(-1, "f", O_RDONLY | O_CLOEXEC, 0), EBADF);
	if (!under_valgrind) /* it reports the deliberate bad pointer as an error */
		expect_errno(gort_openat(dfd, NULL, O_RDONLY | O_CLOEXEC, 0), EFAULT);
	struct stat st;
	ck_assert_int_eq(fstat(fd, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);

	/* pwrite at offsets, including a hole */
	char block[4096];
	for (size_t i = 0; i < sizeof block; i++)
		block[i] = (char)pat(3, i);
	ck_assert_int_eq(gort_pwrite(fd, block, sizeof block, 0), (ssize_t)sizeof block);
	ck_assert_int_eq(gort_pwrite(fd, "tail", 4, 10000), 4);
	ck_assert_int_eq(gort_fsync(fd), 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	ck_assert_int_eq(st.st_size, 10004);

	char back[4096];
	ck_assert_int_eq(gort_pread(fd, back, sizeof back, 0), (ssize_t)sizeof back);
	ck_assert_mem_eq(back, block, sizeof block);
	/* the hole reads as zeros */
	ck_assert_int_eq(gort_pread(fd, back, 16, 5000), 16);
	for (int i = 0; i < 16; i++)
		ck_assert_int_eq(back[i], 0);
	/* short read at the end, then EOF */
	ck_assert_int_eq(gort_pread(fd, back, sizeof back, 9998), 6);
	ck_assert_mem_eq(back + 2, "tail", 4);
	ck_assert_int_eq(gort_pread(fd, back, sizeof back, 10004), 0);
	ck_assert_int_eq(gort_pread(fd, back, sizeof back, 1 << 30), 0);

	/* read and write move the file position */
	ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
	ck_assert_int_eq(gort_read(fd, back, 100), 100);
	ck_assert_int_eq(gort_read(fd, back + 100, 100), 100);
	ck_assert_mem_eq(back, block, 200);
	ck_assert_int_eq(lseek(fd, 0, SEEK_CUR), 200);
	ck_assert_int_eq(gort_write(fd, "XY", 2), 2);
	ck_assert_int_eq(lseek(fd, 0, SEEK_CUR), 202);
	ck_assert_int_eq(gort_pread(fd, back, 4, 199), 4);
	char want4[4] = { block[199], 'X', 'Y', block[202] };
	ck_assert_mem_eq(back, want4, 4);
	ck_assert_int_eq(lseek(fd, 0, SEEK_END), 10004);
	ck_assert_int_eq(gort_read(fd, back, 10), 0);
	ck_assert_int_eq(gort_read(fd, back, 0), 0);

	/* rejections, errno as POSIX */
	expect_errno(gort_pread(fd, back, 10, -1), EINVAL);
	expect_errno(gort_pwrite(fd, back, 10, -5), EINVAL);
	ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
	if (!under_valgrind)
		expect_errno(gort_read(fd, NULL, 10), EFAULT);
	int ro = gort_openat(dfd, "f", O_RDONLY | O_CLOEXEC, 0);
	ck_assert_int_ge(ro, 0);
	expect_errno(gort_write(ro, "x", 1), EBADF);
	expect_errno(gort_pwrite(ro, "x", 1, 0), EBADF);
	expect_errno(gort_read(dfd, back, 10), EISDIR);
	int p[2];
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	expect_errno(gort_pread(p[0], back, 1, 0), ESPIPE);
	expect_errno(gort_pwrite(p[1], back, 1, 0), ESPIPE);
	expect_errno(gort_fsync(p[1]), EINVAL);
	gort_close(p[0]);
	gort_close(p[1]);

	ck_assert_int_eq(gort_close(ro), 0);
	ck_assert_int_eq(gort_close(fd), 0);
	/* EBADF on the closed fd, for every call */
	expect_errno(gort_close(fd), EBADF);
	expect_errno(gort_read(fd, back, 1), EBADF);
	expect_errno(gort_write(fd, back, 1), EBADF);
	expect_errno(gort_pread(fd, back, 1, 0), EBADF);
	expect_errno(gort_pwrite(fd, back, 1, 0), EBADF);
	expect_errno(gort_fsync(fd), EBADF);
	expect_errno(gort_close(-1), EBADF);
	expect_errno(gort_read(-1, back, 1), EBADF);

	ck_assert_int_eq(unlinkat(dfd, "f", 0), 0);
	ck_assert_int_eq(gort_close(dfd), 0);
	ck_assert_int_eq(rmdir(dir), 0);
	return 0;
}

START_TEST(test_files)
{
	run_gort(files_main, 2, 0);
}
END_TEST

/* ---- O_NONBLOCK fds keep their POSIX meaning; MSG_DONTWAIT ---- */

static int nonblock_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	int p[2];
	ck_assert_int_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	char buf[16];
	expect_errno(gort_read(p[0], buf, sizeof buf), EAGAIN);
	ck_assert_int_eq(gort_write(p[1], "ab", 2), 2);
	ck_assert_int_eq(gort_read(p[0], buf, sizeof buf), 2);

	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
	expect_errno(gort_recv(sv[0], buf, sizeof buf, 0), EAGAIN);
	expect_errno(gort_read(sv[0], buf, sizeof buf), EAGAIN);

	int bs[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, bs), 0);
	expect_errno(gort_recv(bs[0], buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
	ck_assert_int_eq(gort_send(bs[1], "hello", 5, 0), 5);
	ck_assert_int_eq(gort_recv(bs[0], buf, sizeof buf, MSG_PEEK), 5);
	ck_assert_int_eq(gort_recv(bs[0], buf, sizeof buf, 0), 5);
	ck_assert_mem_eq(buf, "hello", 5);
	/* a full socket: MSG_DONTWAIT sends what fits, then EAGAIN */
	char *big = calloc(1, 1 << 20);
	ssize_t sent = 0, r;
	while ((r = gort_send(bs[1], big, 1 << 20, MSG_DONTWAIT)) > 0)
		sent += r;
	ck_assert_int_gt(sent, 0);
	ck_assert_int_eq(r, -1);
	ck_assert_int_eq(test_errno(), EAGAIN);
	free(big);

	uint16_t port;
	int lfd = listen_loopback(&port);
	ck_assert_int_eq(fcntl(lfd, F_SETFL, O_NONBLOCK), 0);
	expect_errno(gort_accept(lfd, NULL, NULL), EAGAIN);
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	expect_errno(gort_connect(c, (struct sockaddr *)&a, sizeof a), EINPROGRESS);
	ck_assert_int_eq(gort_poll(c, POLLOUT, 10 * 1000000000LL) & POLLOUT, POLLOUT);
	int s = -1;
	int64_t deadline = gort_now() + 10 * 1000000000LL;
	while ((s = gort_accept(lfd, NULL, NULL)) < 0 && test_errno() == EAGAIN && gort_now() < deadline)
		gort_sleep(1000000);
	ck_assert_int_ge(s, 0);
	gort_close(s);
	gort_close(c);
	gort_close(lfd);
	gort_close(p[0]);
	gort_close(p[1]);
	gort_close(sv[0]);
	gort_close(sv[1]);
	gort_close(bs[0]);
	gort_close(bs[1]);
	return 0;
}

START_TEST(test_nonblocking_fds)
{
	run_gort(nonblock_main, 2, 0);
}
END_TEST

/* ---- O_NONBLOCK flipped between calls; reads on sockets ---- */

static _Atomic int sends_done;

/* writes one byte to fd after 20 ms (the reader is parked by then, mostly) */
static void delayed_send(void *arg)
{
	gort_sleep(20 * 1000000LL);
	ck_assert_int_eq(gort_write((int)(intptr_t)arg, "k", 1), 1);
	atomic_fetch_add(&sends_done, 1);
}

/* a read of one byte that must park until delayed_send's byte comes */
static void read_parks(int rfd, int wfd)
{
	int before = atomic_load(&sends_done);
	ck_assert_int_gt(gort_go(delayed_send, (void *)(intptr_t)wfd), 0);
	char c = 0;
	ck_assert_int_eq(gort_read(rfd, &c, 1), 1);
	ck_assert_int_eq(c, 'k');
	int64_t deadline = gort_now() + 30 * 1000000000LL;
	while (atomic_load(&sends_done) == before && gort_now() < deadline)
		gort_sleep(1000000);
	ck_assert_int_gt(atomic_load(&sends_done), before);
}

/* rfd is O_NONBLOCK and empty: EAGAIN at once, nothing submitted or waited on */
static void read_eagain_now(int rfd, bool sock)
{
	struct netpoll_stats st0 = stats();
	char buf[8];
	expect_errno(gort_read(rfd, buf, sizeof buf), EAGAIN);
	if (sock)
		expect_errno(gort_recv(rfd, buf, sizeof buf, 0), EAGAIN);
	struct netpoll_stats st1 = stats();
	ck_assert_uint_eq(st1.submitted, st0.submitted);
	ck_assert_uint_eq(st1.fdwaits, st0.fdwaits);
}

static int flip_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	/* a TCP connection made by gort_connect and gort_accept */
	uint16_t port;
	int lfd = listen_loopback(&port);
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	ck_assert_int_eq(gort_connect(c, (struct sockaddr *)&a, sizeof a), 0);
	int s = gort_accept(lfd, NULL, NULL);
	ck_assert_int_ge(s, 0);
	int p[2];
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	for (int round = 0; round < 3; round++) {
		/* blocking: the read parks and completes; after an O_NONBLOCK
		 * set between two calls, EAGAIN at once; cleared again, it parks */
		read_parks(s, c);
		read_parks(p[0], p[1]);
		ck_assert_int_eq(fcntl(s, F_SETFL, O_NONBLOCK), 0);
		ck_assert_int_eq(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
		read_eagain_now(s, true);
		read_eagain_now(p[0], false);
		ck_assert_int_eq(fcntl(s, F_SETFL, 0), 0);
		ck_assert_int_eq(fcntl(p[0], F_SETFL, 0), 0);
	}
	/* recv flags that must not wait for readiness first: MSG_OOB with no
	 * urgent data fails at once, MSG_DONTWAIT returns EAGAIN at once */
	char buf[8];
	expect_errno(gort_recv(s, buf, sizeof buf, MSG_OOB), EINVAL);
	expect_errno(gort_recv(s, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
	/* MSG_PEEK waits, and leaves the data */
	ck_assert_int_gt(gort_go(delayed_send, (void *)(intptr_t)c), 0);
	ck_assert_int_eq(gort_recv(s, buf, sizeof buf, MSG_PEEK), 1);
	ck_assert_int_eq(gort_read(s, buf, sizeof buf), 1);
	ck_assert_int_eq(buf[0], 'k');

	/* The fd number of a socket closed with close(2) (the runtime does not
	 * see it) and reused by a pipe: reads and parks as a pipe's. */
	int num = s;
	ck_assert_int_eq(close(s), 0);
	ck_assert_int_eq(dup2(p[0], num), num);
	ck_assert_int_eq(gort_write(p[1], "xy", 2), 2);
	ck_assert_int_eq(gort_read(num, buf, sizeof buf), 2);
	ck_assert_mem_eq(buf, "xy", 2);
	read_parks(num, p[1]);
	ck_assert_int_eq(gort_close(num), 0);
	/* ... and by a listening socket that gort_accept has seen: a read fails at
	 * once with ENOTCONN, as read(2) does (it must not wait for a connection) */
	ck_assert_int_eq(gort_write(c, "z", 1), 1); /* the hint: c is a socket */
	num = c;
	ck_assert_int_eq(close(c), 0);
	ck_assert_int_eq(dup2(lfd, num), num);
	ck_assert_int_eq(fcntl(num, F_SETFL, O_NONBLOCK), 0);
	expect_errno(gort_accept(num, NULL, NULL), EAGAIN);
	ck_assert_int_eq(fcntl(num, F_SETFL, 0), 0);
	expect_errno(gort_read(num, buf, sizeof buf), ENOTCONN);
	expect_errno(gort_recv(num, buf, sizeof buf, 0), ENOTCONN);
	gort_close(num);
	gort_close(lfd);
	gort_close(p[0]);
	gort_close(p[1]);
	return 0;
}

START_TEST(test_nonblock_flips)
{
	run_gort(flip_main, 2, 0);
}
END_TEST

/* ---- gort_poll ---- */

static struct {
	int wfd;
	int64_t delay;
} late;

static void late_writer(void *arg)
{
	(void)arg;
	gort_sleep(late.delay);
	ck_assert_int_eq(gort_write(late.wfd, "z", 1), 1);
}

static struct {
	_Atomic int zeros, done;
	int rfd;
} many;

static void poll_timeout_worker(void *arg)
{
	int64_t t = (int64_t)(intptr_t)arg;
	int64_t t0 = gort_now();
	int r = gort_poll(many.rfd, POLLIN, t);
	if (r == 0 && gort_now() - t0 >= t)
		atomic_fetch_add(&many.zeros, 1);
	atomic_fetch_add(&many.done, 1);
}

static int poll_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	int p[2];
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);

	/* timeout: 0 after at least the timeout */
	int64_t t0 = gort_now();
	ck_assert_int_eq(gort_poll(p[0], POLLIN, 50 * 1000000LL), 0);
	ck_assert_int_ge(gort_now() - t0, 50 * 1000000LL);
	ck_assert_int_eq(gort_poll(p[0], POLLIN, 0), 0);
	/* readiness, arriving while it waits */
	late.wfd = p[1];
	late.delay = 20 * 1000000LL;
	ck_assert_int_gt(gort_go(late_writer, NULL), 0);
	ck_assert_int_eq(gort_poll(p[0], POLLIN, -1), POLLIN);
	ck_assert_int_eq(gort_poll(p[0], POLLIN, 1000000000LL), POLLIN);
	char c;
	ck_assert_int_eq(gort_read(p[0], &c, 1), 1);
	ck_assert_int_eq(gort_poll(p[1], POLLOUT, 1000000000LL), POLLOUT);
	ck_assert_int_eq(gort_poll(p[1], POLLOUT, -1), POLLOUT);
	/* many timeouts at once, all honoured */
	many.rfd = p[0];
	int n = (int)scaled(200);
	for (int i = 0; i < n; i++)
		ck_assert_int_gt(gort_go(poll_timeout_worker, (void *)(intptr_t)((1 + i % 20) * 1000000LL)), 0);
	int64_t deadline = gort_now() + 30 * 1000000000LL;
	while (atomic_load(&many.done) < n && gort_now() < deadline)
		gort_sleep(1000000);
	ck_assert_int_eq(atomic_load(&many.zeros), n);
	/* hangup: the writer closed */
	ck_assert_int_eq(gort_close(p[1]), 0);
	ck_assert_int_eq(gort_poll(p[0], POLLIN, 1000000000LL) & POLLHUP, POLLHUP);
	ck_assert_int_eq(gort_close(p[0]), 0);
	/* a socket */
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(gort_poll(sv[0], POLLOUT | POLLIN, -1), POLLOUT);
	ck_assert_int_eq(gort_send(sv[1], "q", 1, 0), 1);
	ck_assert_int_eq(gort_poll(sv[0], POLLIN, -1), POLLIN);
	gort_close(sv[1]);
	ck_assert_int_ne(gort_poll(sv[0], POLLRDHUP, -1) & POLLRDHUP, 0);
	gort_close(sv[0]);
	/* as poll(2): a bad fd is POLLNVAL, a negative fd is ignored */
	ck_assert_int_eq(gort_poll(sv[0], POLLIN, 1000000000LL), POLLNVAL);
	ck_assert_int_eq(gort_poll(sv[0], POLLIN, 0), POLLNVAL);
	t0 = gort_now();
	ck_assert_int_eq(gort_poll(-1, POLLIN, 10 * 1000000LL), 0);
	ck_assert_int_ge(gort_now() - t0, 10 * 1000000LL);
	return 0;
}

START_TEST(test_poll)
{
	run_gort(poll_main, 2, 0);
}
END_TEST

/* ---- cancellation ---- */

static struct {
	struct g *_Atomic gp;
	int fd;
	_Atomic int result, err;
	gort_wg wg;
} victim;

static void accept_victim(void *arg)
{
	(void)arg;
	atomic_store(&victim.gp, getg());
	int r = gort_accept(victim.fd, NULL, NULL);
	atomic_store(&victim.err, test_errno());
	atomic_store(&victim.result, r);
	gort_wg_done(&victim.wg);
}

static void read_victim(void *arg)
{
	char *buf = arg;
	atomic_store(&victim.gp, getg());
	int r = (int)gort_read(victim.fd, buf, 8);
	atomic_store(&victim.err, test_errno());
	atomic_store(&victim.result, r);
	gort_wg_done(&victim.wg);
}

static void poll_victim(void *arg)
{
	(void)arg;
	atomic_store(&victim.gp, getg());
	int r = gort_poll(victim.fd, POLLIN, 3600 * 1000000000LL);
	atomic_store(&victim.err, test_errno());
	atomic_store(&victim.result, r);
	gort_wg_done(&victim.wg);
}

static void sleeper(void *arg)
{
	(void)arg;
	atomic_store(&victim.gp, getg());
	gort_sleep(200 * 1000000LL);
	gort_wg_done(&victim.wg);
}

/* starts fn as the victim, cancels it once parked in io, checks ECANCELED */
static void cancel_one(gort_fn fn, void *arg)
{
	atomic_store(&victim.gp, NULL);
	atomic_store(&victim.result, 12345);
	gort_wg_add(&victim.wg, 1);
	ck_assert_int_gt(gort_go(fn, arg), 0);
	wait_parked_in_io(&victim.gp);
	struct g *gp = atomic_load(&victim.gp);
	ck_assert_int_eq(io_cancel_g(gp, gp->goid), 0);
	gort_wg_wait(&victim.wg);
	ck_assert_int_eq(atomic_load(&victim.result), -1);
	ck_assert_int_eq(atomic_load(&victim.err), ECANCELED);
}

static int cancel_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	uint64_t before = stats().cancels;
	/* a task being killed while blocked in gort_accept */
	uint16_t port;
	victim.fd = listen_loopback(&port);
	cancel_one(accept_victim, NULL);
	/* the listener still works, nothing was half-accepted */
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	ck_assert_int_eq(gort_connect(c, (struct sockaddr *)&a, sizeof a), 0);
	int s = gort_accept(victim.fd, NULL, NULL);
	ck_assert_int_ge(s, 0);
	gort_close(s);
	gort_close(c);
	gort_close(victim.fd);

	/* a read: cancelled, it consumed nothing */
	int p[2];
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	victim.fd = p[0];
	char *buf = calloc(1, 8);
	cancel_one(read_victim, buf);
	ck_assert_int_eq(gort_write(p[1], "after", 5), 5);
	char back[8];
	ck_assert_int_eq(gort_read(p[0], back, sizeof back), 5);
	ck_assert_mem_eq(back, "after", 5);
	ck_assert_mem_eq(buf, "\0\0\0\0\0", 5);
	free(buf);
	/* another goroutine's goid (the G reused since the caller looked): the
	 * read is left alone and completes */
	buf = calloc(1, 8);
	atomic_store(&victim.gp, NULL);
	atomic_store(&victim.result, 12345);
	gort_wg_add(&victim.wg, 1);
	ck_assert_int_gt(gort_go(read_victim, buf), 0);
	wait_parked_in_io(&victim.gp);
	struct g *rgp = atomic_load(&victim.gp);
	ck_assert_int_eq(io_cancel_g(rgp, rgp->goid + 1), -ENOENT);
	ck_assert_int_eq(io_cancel_g(rgp, rgp->goid - 1), -ENOENT);
	uintptr_t iow = atomic_load(&rgp->iowait);
	ck_assert_msg(iow != 0 && !(iow & 1), "iowait %#lx: not parked, or left pinned", (unsigned long)iow);
	ck_assert_int_eq(gort_write(p[1], "kept", 4), 4);
	gort_wg_wait(&victim.wg);
	ck_assert_int_eq(atomic_load(&victim.result), 4);
	ck_assert_mem_eq(buf, "kept", 4);
	free(buf);
	/* a poll with a long timeout */
	cancel_one(poll_victim, NULL);
	gort_close(p[0]);
	gort_close(p[1]);
	ck_assert_uint_ge(stats().cancels, before + 3);

	/* not in io: nothing to cancel */
	atomic_store(&victim.gp, NULL);
	gort_wg_add(&victim.wg, 1);
	ck_assert_int_gt(gort_go(sleeper, NULL), 0);
	while (!atomic_load(&victim.gp))
		gort_yield();
	gort_sleep(10 * 1000000LL);
	struct g *gp = atomic_load(&victim.gp);
	ck_assert_int_eq(io_cancel_g(gp, gp->goid), -ENOENT);
	ck_assert_int_eq(io_cancel_g(getg(), getg()->goid), -ENOENT);
	gort_wg_wait(&victim.wg);
	return 0;
}

START_TEST(test_cancel)
{
	run_gort(cancel_main, 2, 0);
}
END_TEST

/* The io completes while the cancel is on its way: the result wins, nothing is
 * lost (an accepted fd comes back), and nothing is readied twice. */
static struct {
	int lfd;
	uint16_t port;
	struct g *_Atomic gps[64];
	_Atomic int ok, canceled;
	gort_wg wg;
} race;

static void race_acceptor(void *arg)
{
	long i = (long)(intptr_t)arg;
	atomic_store(&race.gps[i], getg());
	int fd = gort_accept(race.lfd, NULL, NULL);
	if (fd >= 0) {
		atomic_fetch_add(&race.ok, 1);
		gort_close(fd);
	} else {
		ck_assert_int_eq(test_errno(), ECANCELED);
		atomic_fetch_add(&race.canceled, 1);
	}
	gort_wg_done(&race.wg);
}

static void race_connector(void *arg)
{
	(void)arg;
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(race.port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	ck_assert_int_eq(gort_connect(c, (struct sockaddr *)&a, sizeof a), 0);
	gort_close(c);
	gort_wg_done(&race.wg);
}

static int cancel_race_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	race.lfd = listen_loopback(&race.port);
	int rounds = (int)scaled(20);
	for (int r = 0; r < rounds; r++) {
		int n = 32;
		atomic_store(&race.ok, 0);
		atomic_store(&race.canceled, 0);
		gort_wg_add(&race.wg, 2 * n);
		for (long i = 0; i < n; i++) {
			atomic_store(&race.gps[i], NULL);
			ck_assert_int_gt(gort_go(race_acceptor, (void *)(intptr_t)i), 0);
		}
		for (long i = 0; i < n; i++)
			wait_parked_in_io(&race.gps[i]);
		for (long i = 0; i < n; i++)
			ck_assert_int_gt(gort_go(race_connector, NULL), 0);
		for (long i = 0; i < n; i++)
			io_cancel_g(atomic_load(&race.gps[i]), atomic_load(&race.gps[i])->goid);
		gort_wg_wait(&race.wg);
		ck_assert_int_eq(atomic_load(&race.ok) + atomic_load(&race.canceled), n);
		/* connections nobody accepted wait in the backlog: drain them */
		int left = n - atomic_load(&race.ok);
		ck_assert_int_eq(fcntl(race.lfd, F_SETFL, O_NONBLOCK), 0);
		for (int k = 0; k < left; k++) {
			int fd = gort_accept(race.lfd, NULL, NULL);
			ck_assert_int_ge(fd, 0);
			gort_close(fd);
		}
		expect_errno(gort_accept(race.lfd, NULL, NULL), EAGAIN);
		ck_assert_int_eq(fcntl(race.lfd, F_SETFL, 0), 0);
	}
	gort_close(race.lfd);
	return 0;
}

START_TEST(test_cancel_races_completion)
{
	run_gort(cancel_race_main, 2, 0);
}
END_TEST

/* ---- one P: a thousand goroutines blocked in io while another computes ---- */

static struct {
	int (*pipes)[2];
	long n;
	_Atomic long done;
	_Atomic bool computing;
	_Atomic int maxthreads;
} onep;

static void onep_reader(void *arg)
{
	long i = (long)(intptr_t)arg;
	char c = 0;
	ck_assert_int_eq(gort_read(onep.pipes[i][0], &c, 1), 1);
	ck_assert_int_eq(c, (char)('a' + i % 26));
	atomic_fetch_add(&onep.done, 1);
}

static void *onep_feeder(void *arg)
{
	(void)arg;
	/* a thread outside the runtime: waits until the computation runs, then
	 * makes every reader's fd ready */
	while (!atomic_load(&onep.computing))
		usleep(1000);
	for (long i = 0; i < onep.n; i++) {
		char c = (char)('a' + i % 26);
		ck_assert_int_eq(write(onep.pipes[i][1], &c, 1), 1);
	}
	return NULL;
}

static int onep_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	ck_assert_int_eq(gort_procs(), 1);
	onep.n = scaled(1000);
	onep.pipes = calloc((size_t)onep.n, sizeof(*onep.pipes));
	for (long i = 0; i < onep.n; i++) {
		ck_assert_int_eq(pipe2(onep.pipes[i], O_CLOEXEC), 0);
		ck_assert_int_gt(gort_go(onep_reader, (void *)(intptr_t)i), 0);
	}
	/* let them all park */
	for (int i = 0; i < 10; i++)
		gort_yield();
	int threads0 = test_thread_count();
	ck_assert(netpoll_waiters());
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, onep_feeder, NULL), 0);
	/* compute on the only P, yielding now and then; the readers' completions
	 * must still be reaped and run */
	volatile uint64_t x = 1;
	int64_t deadline = gort_now() + 60 * 1000000000LL;
	atomic_store(&onep.computing, true);
	uint64_t rounds = 0;
	while (atomic_load(&onep.done) < onep.n) {
		for (int k = 0; k < 10000; k++)
			x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		rounds++;
		int t = test_thread_count();
		if (t > atomic_load(&onep.maxthreads))
			atomic_store(&onep.maxthreads, t);
		ck_assert_msg(gort_now() < deadline, "%ld of %ld readers done", atomic_load(&onep.done), onep.n);
		gort_yield();
	}
	ck_assert_int_gt(rounds, 0);
	pthread_join(th, NULL);
	/* blocked io took no threads */
	ck_assert_int_le(atomic_load(&onep.maxthreads), threads0 + 2);
	ck_assert_int_le(threads0, 8);
	for (long i = 0; i < onep.n; i++) {
		close(onep.pipes[i][0]);
		close(onep.pipes[i][1]);
	}
	free(onep.pipes);
	return 0;
}

START_TEST(test_one_p_thousand_blocked_one_computes)
{
	run_gort(onep_main, 1, 0);
}
END_TEST

/* ---- the idle M's wait: completions, timers and netpoll_break at once ---- */

static struct {
	int p[2];
	_Atomic int readers_done;
	int64_t slept;
} idle;

static void idle_reader(void *arg)
{
	(void)arg;
	char c;
	ck_assert_int_eq(gort_read(idle.p[0], &c, 1), 1);
	atomic_fetch_add(&idle.readers_done, 1);
}

static int idle_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	atomic_store(&idle.readers_done, 0);
	ck_assert_int_eq(pipe2(idle.p, O_CLOEXEC), 0);
	for (int i = 0; i < 100; i++)
		ck_assert_int_gt(gort_go(idle_reader, NULL), 0);
	/* everyone parks: an M sleeps in netpoll with no timer; a sleep must
	 * still end on time (the new timer breaks the wait) */
	for (int round = 0; round < 5; round++) {
		int64_t t0 = gort_now();
		gort_sleep(20 * 1000000LL);
		int64_t d = gort_now() - t0;
		ck_assert_int_ge(d, 20 * 1000000LL);
		ck_assert_msg(d < 5 * 1000000000LL, "sleep took %lld ns", (long long)d);
	}
	/* completions wake the sleeping M */
	for (int i = 0; i < 100; i++) {
		ck_assert_int_eq(gort_write(idle.p[1], "r", 1), 1);
		if (i % 10 == 0)
			gort_sleep(1000000);
	}
	int64_t deadline = gort_now() + 30 * 1000000000LL;
	while (atomic_load(&idle.readers_done) < 100 && gort_now() < deadline)
		gort_sleep(1000000);
	ck_assert_int_eq(atomic_load(&idle.readers_done), 100);
	ck_assert(!netpoll_waiters());
	gort_close(idle.p[0]);
	gort_close(idle.p[1]);
	return 0;
}

START_TEST(test_idle_wait_wakes)
{
	run_gort(idle_main, 2, 0);
	run_gort(idle_main, 1, 0);
}
END_TEST

/* ---- reads on connected sockets wait for readiness, not on the ring ---- */

static struct {
	int fd;
	char buf[8];
	_Atomic ssize_t got;
} sockread;

static void sockread_reader(void *arg)
{
	(void)arg;
	atomic_store(&sockread.got, gort_read(sockread.fd, sockread.buf, sizeof sockread.buf));
}

static int sockread_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	uint16_t port;
	int lfd = listen_loopback(&port);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(gort_connect(c, (struct sockaddr *)&a, sizeof a), 0);
	int s = gort_accept(lfd, NULL, NULL);
	ck_assert_int_ge(s, 0);
	sockread.fd = s;
	atomic_store(&sockread.got, -2);
	struct netpoll_stats st0 = stats();
	ck_assert_int_gt(gort_go(sockread_reader, NULL), 0);
	/* the reader parks (nothing to read yet), then the data wakes it */
	int64_t deadline = gort_now() + 30 * 1000000000LL;
	while (stats().fdwaits == st0.fdwaits && gort_now() < deadline)
		gort_sleep(1000000);
	ck_assert_uint_eq(stats().fdwaits, st0.fdwaits + 1);
	ck_assert_int_eq(gort_write(c, "hello", 5), 5);
	while (atomic_load(&sockread.got) == -2 && gort_now() < deadline)
		gort_sleep(1000000);
	ck_assert_int_eq(atomic_load(&sockread.got), 5);
	ck_assert_int_eq(memcmp(sockread.buf, "hello", 5), 0);
	/* no ring request for it (nor for the write, which went out at once) */
	struct netpoll_stats st1 = stats();
	ck_assert_uint_eq(st1.submitted, st0.submitted);
	ck_assert_int_eq(st1.inflight, 0);
	/* the peer's close: EOF, at once */
	ck_assert_int_eq(gort_close(c), 0);
	ck_assert_int_eq(gort_read(s, sockread.buf, sizeof sockread.buf), 0);
	ck_assert_int_eq(gort_close(s), 0);
	ck_assert_int_eq(gort_close(lfd), 0);
	return 0;
}

START_TEST(test_socket_reads_wait_for_readiness)
{
	run_gort(sockread_main, 2, 0);
}
END_TEST

/* ---- a spinning M's final check before it sleeps: the barrier only while
 * another P runs (proc.c's others_running; an idle server paid it on every
 * request's wakeup) ---- */

static _Atomic int fence_running, fence_stop;
static gort_wg fence_wg;

static void fence_spinner(void *arg)
{
	(void)arg;
	atomic_store(&fence_running, 1);
	while (!atomic_load_explicit(&fence_stop, memory_order_relaxed))
		procyield(10);
	gort_wg_done(&fence_wg);
}

static int fence_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	/* alone: whenever this G sleeps, its M spins, finds nothing and sleeps
	 * with every P idle */
	uint64_t c0 = atomic_load(&sched.nfinalchecks), f0 = atomic_load(&sched.nfinalfences);
	for (int i = 0; i < 50; i++)
		gort_sleep(1000000);
	uint64_t checks = atomic_load(&sched.nfinalchecks) - c0, fences = atomic_load(&sched.nfinalfences) - f0;
	ck_assert_uint_gt(checks, 0);
	if (membarrier_ok())
		ck_assert_msg(fences < checks, "%llu fences in %llu final checks with every P idle",
			      (unsigned long long)fences, (unsigned long long)checks);
	else
		ck_assert_uint_eq(fences, 0);

	/* a G computing on the other P: every final check fences, as that P's
	 * owner may have put a G into its runnext with a plain store */
	atomic_store(&fence_running, 0);
	atomic_store(&fence_stop, 0);
	gort_wg_add(&fence_wg, 1);
	ck_assert_int_gt(gort_go(fence_spinner, NULL), 0);
	int64_t deadline = gort_now() + 30 * 1000000000LL;
	while (!atomic_load(&fence_running) && gort_now() < deadline)
		gort_sleep(1000000);
	ck_assert(atomic_load(&fence_running));
	c0 = atomic_load(&sched.nfinalchecks);
	f0 = atomic_load(&sched.nfinalfences);
	for (int i = 0; i < 50; i++)
		gort_sleep(1000000);
	checks = atomic_load(&sched.nfinalchecks) - c0;
	fences = atomic_load(&sched.nfinalfences) - f0;
	atomic_store(&fence_stop, 1);
	gort_wg_wait(&fence_wg);
	ck_assert_uint_gt(checks, 0);
	uint64_t want = membarrier_ok() ? checks : 0;
	ck_assert_uint_eq(fences, want);
	return 0;
}

START_TEST(test_final_check_fences_only_with_a_running_p)
{
	run_gort(fence_main, 2, 0);
}
END_TEST

/* ---- an M exiting with requests it submitted still in flight ---- */

static struct {
	int p[2];
	char got;
	gort_wg wg;
} mexit;

static void mexit_reader(void *arg)
{
	(void)arg;
	ck_assert_int_eq(gort_read(mexit.p[0], &mexit.got, 1), 1);
	gort_wg_done(&mexit.wg);
}

static void exits_locked(void *arg)
{
	/* ends while locked to its thread: the thread exits (the seed's goexit0),
	 * after it submitted the reader's queued request on its way out */
	(void)arg;
	gort_lock_os_thread();
	gort_wg_done(&mexit.wg);
}

static int mexit_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	ck_assert_int_eq(pipe2(mexit.p, O_CLOEXEC), 0);
	gort_wg_add(&mexit.wg, 2);
	ck_assert_int_gt(gort_go(mexit_reader, NULL), 0);
	gort_yield(); /* the reader parks: its request is queued on this P */
	ck_assert_int_gt(gort_go(exits_locked, NULL), 0);
	gort_sleep(50 * 1000000LL);
	ck_assert_int_eq(gort_write(mexit.p[1], "m", 1), 1);
	gort_wg_wait(&mexit.wg);
	ck_assert_int_eq(mexit.got, 'm');
	if (want_mode == NETPOLL_URING)
		ck_assert_uint_ge(stats().resubmits, 1);
	gort_close(mexit.p[0]);
	gort_close(mexit.p[1]);
	return 0;
}

START_TEST(test_submitter_thread_exits)
{
	run_gort(mexit_main, 1, 0);
}
END_TEST

/* ---- sysmon's reap: the only P computes and never looks for io ---- */

static struct {
	int p[2];
	_Atomic bool done, stop;
} stale;

static void stale_reader(void *arg)
{
	(void)arg;
	char c;
	ck_assert_int_eq(gort_read(stale.p[0], &c, 1), 1);
	atomic_store(&stale.done, true);
}

static void *stale_sysmon(void *arg)
{
	/* a thread without a P, as sysmon: makes the fd ready, then polls for
	 * staleness the way sysmon's rounds do */
	(void)arg;
	usleep(20000);
	ck_assert_int_eq(write(stale.p[1], "s", 1), 1);
	while (!atomic_load(&stale.stop)) {
		netpoll_if_stale();
		usleep(1000);
	}
	return NULL;
}

static int stale_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	ck_assert_int_eq(pipe2(stale.p, O_CLOEXEC), 0);
	atomic_store(&stale.done, false);
	atomic_store(&stale.stop, false);
	ck_assert_int_gt(gort_go(stale_reader, NULL), 0);
	gort_sleep(2000000); /* the P runs dry: the reader's request is submitted */
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, stale_sysmon, NULL), 0);
	/* compute without a scheduling point until a stale reap happened */
	int64_t deadline = gort_now() + 60 * 1000000000LL;
	while (stats().stalereaps == 0)
		ck_assert_msg(gort_now() < deadline, "no stale reap");
	/* the reader was readied into the global queue: it runs once we yield */
	while (!atomic_load(&stale.done)) {
		ck_assert_msg(gort_now() < deadline, "reader not run");
		gort_yield();
	}
	atomic_store(&stale.stop, true);
	pthread_join(th, NULL);
	/* nothing pending: staleness checks find nothing to do */
	uint64_t n = stats().stalereaps;
	for (int i = 0; i < 20; i++)
		netpoll_if_stale();
	ck_assert_uint_eq(stats().stalereaps, n);
	gort_close(stale.p[0]);
	gort_close(stale.p[1]);
	return 0;
}

START_TEST(test_stale_reap)
{
	run_gort(stale_main, 1, 0);
}
END_TEST

/* ---- the submitter blocks in a system call with requests in flight ---- */

static struct {
	int p[2];
	_Atomic bool done;
	_Atomic uint64_t queued_at_enter;
} insys;

static void insys_reader(void *arg)
{
	(void)arg;
	char c;
	ck_assert_int_eq(gort_read(insys.p[0], &c, 1), 1);
	atomic_store(&insys.done, true);
}

static void *insys_writer(void *arg)
{
	(void)arg;
	usleep(50000);
	ck_assert_int_eq(write(insys.p[1], "w", 1), 1);
	return NULL;
}

static int insys_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	ck_assert_int_eq(pipe2(insys.p, O_CLOEXEC), 0);
	atomic_store(&insys.done, false);
	ck_assert_int_gt(gort_go(insys_reader, NULL), 0);
	gort_yield(); /* the reader parks: its request is queued on this M's ring */
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, insys_writer, NULL), 0);
	/* this M blocks: what it queued must reach the kernel now (not when
	 * sysmon hands the P off), and the completion must not wait for it.
	 * With 2 Ps the reader may have run and parked on the other P, whose
	 * own M submits its request: only our P's ring is ours to check. */
	struct p *pp = getg()->m->p;
	gort_syscall_enter();
	atomic_store(&insys.queued_at_enter, netpoll_queued(pp));
	int64_t deadline = gort_now() + 30 * 1000000000LL;
	while (!atomic_load(&insys.done) && gort_now() < deadline)
		usleep(1000);
	gort_syscall_exit();
	pthread_join(th, NULL);
	ck_assert_msg(atomic_load(&insys.done), "the reader never woke while its submitter was in a syscall");
	uint64_t queued_at_enter = atomic_load(&insys.queued_at_enter);
	ck_assert_uint_eq(queued_at_enter, 0);
	gort_close(insys.p[0]);
	gort_close(insys.p[1]);
	return 0;
}

START_TEST(test_submitter_in_syscall)
{
	run_gort(insys_main, 1, 0);
	run_gort(insys_main, 2, 0);
}
END_TEST

/* ---- outside goroutines, the calls are the plain ones ---- */

START_TEST(test_outside_goroutines)
{
	int p[2];
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(gort_write(p[1], "plain", 5), 5);
	ck_assert_int_eq(gort_poll(p[0], POLLIN, 1000000000LL), POLLIN);
	char buf[8];
	ck_assert_int_eq(gort_read(p[0], buf, sizeof buf), 5);
	ck_assert_int_eq(gort_poll(p[0], POLLIN, 1000000LL), 0);
	expect_errno(gort_pread(p[0], buf, 1, 0), ESPIPE);
	ck_assert_int_eq(gort_close(p[0]), 0);
	expect_errno(gort_close(p[0]), EBADF);
	ck_assert_int_eq(gort_close(p[1]), 0);
}
END_TEST

/* ---- EPIPE ---- */

static int epipe_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	gort_close(sv[1]);
	expect_errno(gort_write(sv[0], "x", 1), EPIPE);
	expect_errno(gort_send(sv[0], "x", 1, MSG_NOSIGNAL), EPIPE);
	gort_close(sv[0]);
	int p[2];
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	gort_close(p[0]);
	expect_errno(gort_write(p[1], "x", 1), EPIPE);
	gort_close(p[1]);
	return 0;
}

START_TEST(test_epipe)
{
	signal(SIGPIPE, SIG_IGN);
	run_gort(epipe_main, 2, 0);
}
END_TEST

static Suite *io_suite(void)
{
	Suite *s = suite_create(IO_TEST_NOURING ? "io (GORT_NO_URING=1)" : "io");
	TCase *tc = tcase_create("calls");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_mode_and_stats);
	tcase_add_test(tc, test_outside_goroutines);
	tcase_add_test(tc, test_files);
	tcase_add_test(tc, test_accept_connect);
	tcase_add_test(tc, test_nonblocking_fds);
	tcase_add_test(tc, test_nonblock_flips);
	tcase_add_test(tc, test_epipe);
	tcase_add_test(tc, test_poll);
	tcase_add_test(tc, test_cancel);
	suite_add_tcase(s, tc);

	tc = tcase_create("streams");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_pipes_both_directions);
	tcase_add_test(tc, test_socketpairs_both_directions);
	tcase_add_test(tc, test_big_write_is_whole);
	tcase_add_test(tc, test_tcp_1000_echo_clients);
	tcase_add_test(tc, test_cancel_races_completion);
	tcase_add_test(tc, test_one_p_thousand_blocked_one_computes);
	tcase_add_test(tc, test_idle_wait_wakes);
	tcase_add_test(tc, test_final_check_fences_only_with_a_running_p);
	tcase_add_test(tc, test_socket_reads_wait_for_readiness);
	tcase_add_test(tc, test_submitter_thread_exits);
	tcase_add_test(tc, test_stale_reap);
	tcase_add_test(tc, test_submitter_in_syscall);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	/* 1,000 connections need 2,000 fds and more */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	under_valgrind = getenv("GORT_VALGRIND") != NULL;
	if (IO_TEST_NOURING) {
		setenv("GORT_NO_URING", "1", 1);
		want_mode = NETPOLL_EPOLL;
	} else {
		unsetenv("GORT_NO_URING");
		struct io_uring ring;
		want_mode = io_uring_queue_init(4, &ring, 0) == 0 ? NETPOLL_URING : NETPOLL_EPOLL;
		if (want_mode == NETPOLL_URING)
			io_uring_queue_exit(&ring);
		else
			fprintf(stderr, "test-io: io_uring is refused here: expecting the epoll fallback\n");
	}
	return test_main(io_suite());
}
