/* bench/daemon/daemon-bench.c: gortd through its socket: stats round trips idle and with every P spinning, submit-to-first-instruction latency, tasks per second. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/gortclient.h"

/*
 * Usage: bench-daemon BUILD_DIR [SCALE]
 *
 * Starts BUILD_DIR/bin/gortd on a private socket (all CPUs as Ps) and drives it
 * with the client library, submitting BUILD_DIR/tests/fixtures/daemon_task.so.
 * Prints "METRIC <name> <value> <unit>" lines (scripts/bench.sh's format):
 *   stats_idle_p50/p99            stats round trip, nothing running (us)
 *   stats_busy_p50/p99            the same while more pure-loop goroutines than
 *                                 Ps spin (us)
 *   submit_first_instr_p50/p99    from the client's submit call to the task's
 *                                 first instruction in gort_main (us; both read
 *                                 CLOCK_MONOTONIC)
 *   tasks_per_s_serial            submit --wait of a trivial task, one at a time
 *   tasks_per_s_batch32           32 submits with wait in flight at once
 * There is no Go twin: Go has no daemon that hosts programs.
 */

static char sock[108], gortd[512], task[512];
static pid_t daemon_pid;

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what, struct gortclient *c)
{
	fprintf(stderr, "bench-daemon: %s: %s\n", what, c ? gortclient_error(c) : strerror(errno));
	if (daemon_pid > 0)
		kill(daemon_pid, SIGKILL);
	exit(1);
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static void metric(const char *name, double v, const char *unit)
{
	printf("METRIC %s %.2f %s\n", name, v, unit);
	fflush(stdout);
}

static void percentiles(const char *name, int64_t *v, int n)
{
	char buf[64];
	qsort(v, (size_t)n, sizeof v[0], cmp64);
	snprintf(buf, sizeof buf, "%s_p50", name);
	metric(buf, (double)v[n / 2] / 1000.0, "us");
	snprintf(buf, sizeof buf, "%s_p99", name);
	metric(buf, (double)v[(n * 99) / 100] / 1000.0, "us");
}

static struct gortclient *connect_daemon(void)
{
	struct gortclient *c;
	int64_t deadline = now_ns() + 30 * 1000000000LL;
	while (gortclient_connect(sock, &c) < 0) {
		if (now_ns() > deadline)
			die("gortd did not start", NULL);
		usleep(10000);
	}
	return c;
}

static int64_t stats_rtt(struct gortclient *c)
{
	Gort__V1__StatsRequest sr = GORT__V1__STATS_REQUEST__INIT;
	Gort__V1__Request req = GORT__V1__REQUEST__INIT;
	req.body_case = GORT__V1__REQUEST__BODY_STATS;
	req.stats = &sr;
	Gort__V1__Reply *reply;
	int64_t t0 = now_ns();
	if (gortclient_call(c, &req, NULL, 0, &reply) < 0)
		die("stats", c);
	int64_t t = now_ns() - t0;
	gort__v1__reply__free_unpacked(reply, NULL);
	return t;
}

static uint64_t submit(struct gortclient *c, int argc, char **argv, bool wait, int out_fd, int64_t *ret_req)
{
	struct gortclient_submit s = { .file = task, .fd = -1, .argc = argc, .argv = argv, .wait = wait };
	if (out_fd >= 0) {
		s.stdio = true;
		s.stdio_fds[0] = s.stdio_fds[2] = open("/dev/null", O_RDWR | O_CLOEXEC);
		s.stdio_fds[1] = out_fd;
	}
	uint64_t id;
	int64_t r = gortclient_submit(c, &s, &id);
	if (out_fd >= 0)
		close(s.stdio_fds[0]);
	if (r < 0)
		die("submit", c);
	if (ret_req)
		*ret_req = r;
	return id;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: bench-daemon BUILD_DIR [SCALE]\n");
		return 2;
	}
	int scale = argc > 2 ? atoi(argv[2]) : 1;
	if (scale < 1)
		scale = 1;
	snprintf(gortd, sizeof gortd, "%s/bin/gortd", argv[1]);
	snprintf(task, sizeof task, "%s/tests/fixtures/daemon_task.so", argv[1]);
	char dir[] = "/tmp/gort-bench-daemon-XXXXXX";
	if (!mkdtemp(dir))
		die("mkdtemp", NULL);
	snprintf(sock, sizeof sock, "%s/gortd.sock", dir);
	signal(SIGPIPE, SIG_IGN);

	daemon_pid = fork();
	if (daemon_pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 2);
		execl(gortd, gortd, "--foreground", "--socket", sock, (char *)NULL);
		_exit(127);
	}
	struct gortclient *c = connect_daemon();

	enum { RTT = 2000, SUBMITS = 200, TASKS = 400 };
	static int64_t v[RTT];
	int n = RTT / scale;
	for (int i = 0; i < 200; i++)
		stats_rtt(c);
	for (int i = 0; i < n; i++)
		v[i] = stats_rtt(c);
	percentiles("stats_idle", v, n);

	/* submit-to-first-instruction: the task's first act is printing gort_now() */
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		die("pipe", NULL);
	n = SUBMITS / scale;
	char *stamp_argv[] = { "stamp" };
	for (int i = 0; i < n + 20; i++) {
		int64_t t0 = now_ns(), req;
		submit(c, 1, stamp_argv, true, p[1], &req);
		char buf[64];
		size_t got = 0;
		while (got == 0 || buf[got - 1] != '\n') {
			ssize_t k = read(p[0], buf + got, sizeof buf - 1 - got);
			if (k <= 0)
				die("read stamp", NULL);
			got += (size_t)k;
		}
		buf[got] = '\0';
		int code;
		if (gortclient_wait_exit(c, (uint64_t)req, &code, NULL, 0) < 0)
			die("wait", c);
		if (i >= 20)
			v[i - 20] = atoll(buf) - t0;
	}
	close(p[0]);
	close(p[1]);
	percentiles("submit_first_instr", v, n);

	/* tasks per second: a trivial task, submitted and waited for */
	char *exit_argv[] = { "exit", "0" };
	n = TASKS / scale;
	int64_t t0 = now_ns();
	for (int i = 0; i < n; i++) {
		int64_t req;
		int code;
		submit(c, 2, exit_argv, true, -1, &req);
		if (gortclient_wait_exit(c, (uint64_t)req, &code, NULL, 0) < 0)
			die("wait", c);
	}
	metric("tasks_per_s_serial", n / ((double)(now_ns() - t0) / 1e9), "tasks/s");
	t0 = now_ns();
	int64_t reqs[32];
	for (int done = 0; done < n; done += 32) {
		for (int j = 0; j < 32; j++)
			submit(c, 2, exit_argv, true, -1, &reqs[j]);
		for (int j = 0; j < 32; j++) {
			int code;
			if (gortclient_wait_exit(c, (uint64_t)reqs[j], &code, NULL, 0) < 0)
				die("wait", c);
		}
	}
	metric("tasks_per_s_batch32", ((n + 31) / 32 * 32) / ((double)(now_ns() - t0) / 1e9), "tasks/s");

	/* stats while more pure loops than Ps spin */
	char *spin_argv[] = { "spin", "64" };
	submit(c, 2, spin_argv, false, -1, NULL);
	usleep(200000);
	n = RTT / scale;
	for (int i = 0; i < n; i++)
		v[i] = stats_rtt(c);
	percentiles("stats_busy", v, n);

	gortclient_free(c);
	kill(daemon_pid, SIGKILL); /* the spinners end with it: no preemption needed */
	waitpid(daemon_pid, NULL, 0);
	rmdir(dir);
	return 0;
}
