/* tests/daemonlib.h: helpers of the daemon suites: start the real gortd on a private socket, run gortctl, stop it. */
#ifndef GORT_DAEMONLIB_H
#define GORT_DAEMONLIB_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#include "client/gortclient.h"
#define GORT_TEST_NO_RUNTIME /* the goroutines run in gortd */
#include "testlib.h"

#define GORTD        BUILD_DIR "/bin/gortd"
#define GORTCTL      BUILD_DIR "/bin/gortctl"
#define DTASK        BUILD_DIR "/tests/fixtures/daemon_task.so"
#define DPLUGIN      BUILD_DIR "/tests/fixtures/daemon_plugin.so"
#define FANOUT       BUILD_DIR "/examples/fanout.so"

/* Time bounds stretch under the sanitizers: gortd is instrumented there too. */
#if defined(__SANITIZE_THREAD__)
#define SLOWDOWN 10
#elif defined(__SANITIZE_ADDRESS__)
#define SLOWDOWN 3
#else
#define SLOWDOWN 1
#endif

/* Generous: two slow shared cores, sanitizer builds. */
#define DAEMON_START_NS (30 * 1000000000LL)
#define DAEMON_STOP_NS  (60 * 1000000000LL)

struct daemon {
	pid_t pid;
	char dir[48];
	char sock[100];
	char log[128];
};

static inline int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* A private directory for a daemon's socket and log. */
static inline void daemon_dir(struct daemon *d)
{
	memset(d, 0, sizeof(*d));
	snprintf(d->dir, sizeof d->dir, "/tmp/gortd-test-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(d->dir));
	chmod(d->dir, 0755);
	snprintf(d->sock, sizeof d->sock, "%s/gortd.sock", d->dir);
	snprintf(d->log, sizeof d->log, "%s/gortd.log", d->dir);
}

static inline bool daemon_connectable(const char *sock)
{
	struct gortclient *c;
	if (gortclient_connect(sock, &c) < 0)
		return false;
	gortclient_free(c);
	return true;
}

/* Starts gortd --foreground --socket DIR/gortd.sock with extra arguments
 * (NULL-terminated), its stderr in DIR/gortd.log, and waits until it accepts
 * connections. env (may be NULL): extra NAME=VALUE strings for its environment. */
static inline void daemon_start_env(struct daemon *d, char *const *env, const char *arg, ...)
{
	daemon_dir(d);
	const char *argv[32] = { GORTD, "--foreground", "--socket", d->sock, "--procs", "2" };
	int argc = 6;
	va_list ap;
	va_start(ap, arg);
	for (const char *a = arg; a && argc < 30; a = va_arg(ap, const char *))
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	pid_t parent = getpid();
	d->pid = fork();
	ck_assert_int_ge(d->pid, 0);
	if (d->pid == 0) {
		/* a test killed midway (a timeout, Ctrl-C) takes its gortd with it */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
			_exit(127);
		int fd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd >= 0)
			dup2(fd, 2);
		for (char *const *e = env; e && *e; e++)
			putenv(*e);
		execv(argv[0], (char **)argv);
		_exit(127);
	}
	int64_t deadline = mono_ns() + DAEMON_START_NS;
	while (!daemon_connectable(d->sock)) {
		int st;
		ck_assert_msg(waitpid(d->pid, &st, WNOHANG) == 0, "gortd exited at start (see %s)", d->log);
		ck_assert_msg(mono_ns() < deadline, "gortd did not start listening on %s", d->sock);
		sleep_ms(10);
	}
}
#define daemon_start(d, ...) daemon_start_env((d), NULL, ##__VA_ARGS__, NULL)

/* Waits for gortd to exit (at most DAEMON_STOP_NS); returns the wait status. */
static inline int daemon_wait(struct daemon *d)
{
	int st = -1;
	int64_t deadline = mono_ns() + DAEMON_STOP_NS;
	for (;;) {
		pid_t r = waitpid(d->pid, &st, WNOHANG);
		if (r == d->pid)
			break;
		if (mono_ns() > deadline) {
			kill(d->pid, SIGKILL);
			waitpid(d->pid, &st, 0);
			d->pid = 0;
			ck_abort_msg("gortd did not stop within 60 s of SIGTERM");
		}
		sleep_ms(10);
	}
	d->pid = 0;
	return st;
}

/* SIGTERM, then waits for the exit; returns the wait status. */
static inline int daemon_stop(struct daemon *d)
{
	if (d->pid <= 0)
		return -1;
	kill(d->pid, SIGTERM);
	return daemon_wait(d);
}

static inline char *daemon_log(const struct daemon *d);

/* Kills gortd if it still runs, fails the test if its log holds a sanitizer
 * report (the sanitizer builds run gortd instrumented too), removes the
 * directory. */
static inline void daemon_cleanup(struct daemon *d)
{
	bool crashed = false;
	if (d->pid > 0) {
		int st;
		if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
			crashed = WIFSIGNALED(st);
		} else {
			kill(d->pid, SIGKILL);
			waitpid(d->pid, NULL, 0);
		}
		d->pid = 0;
	}
	char *log = daemon_log(d);
	bool bad = crashed || strstr(log, "Sanitizer") || strstr(log, "runtime error:");
	char cmd[160];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->dir);
	if (!getenv("GORT_TEST_KEEP_DAEMON_DIRS")) /* debugging: keep the logs */
		(void)!system(cmd);
	ck_assert_msg(!bad, "gortd crashed or its log has a sanitizer report:\n%s", log);
	free(log);
}

/* The daemon's log, for assertions on what it said. Caller frees. */
static inline char *daemon_log(const struct daemon *d)
{
	FILE *f = fopen(d->log, "re");
	if (!f)
		return strdup("");
	char *buf = NULL;
	size_t cap = 0;
	ssize_t n = getdelim(&buf, &cap, '\0', f);
	fclose(f);
	if (n < 0) {
		free(buf);
		return strdup("");
	}
	return buf;
}

static inline struct gortclient *client(const struct daemon *d)
{
	struct gortclient *c = NULL;
	int r = gortclient_connect(d->sock, &c);
	ck_assert_msg(r == 0, "connect %s: %s", d->sock, strerror(-r));
	return c;
}

/* Runs gortctl --socket SOCK args... (NULL-terminated) with stdin from
 * /dev/null; returns its exit status (or -signal) and its stdout and stderr
 * (caller frees; may be NULL if not wanted). */
static inline int gortctl_v(const struct daemon *d, char **ret_out, char **ret_err, const char *const *args)
{
	const char *argv[40] = { GORTCTL, "--socket", d->sock };
	int argc = 3;
	for (const char *const *a = args; *a && argc < 38; a++)
		argv[argc++] = *a;
	argv[argc] = NULL;
	char outp[] = "/tmp/gortctl-out-XXXXXX", errp[] = "/tmp/gortctl-err-XXXXXX";
	int ofd = mkstemp(outp), efd = mkstemp(errp);
	ck_assert(ofd >= 0 && efd >= 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);
		dup2(null, 0);
		dup2(ofd, 1);
		dup2(efd, 2);
		execv(argv[0], (char **)argv);
		_exit(127);
	}
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	char *bufs[2] = { NULL, NULL };
	int fds[2] = { ofd, efd };
	for (int i = 0; i < 2; i++) {
		off_t n = lseek(fds[i], 0, SEEK_END);
		bufs[i] = calloc(1, (size_t)n + 1);
		ck_assert_int_eq(pread(fds[i], bufs[i], (size_t)n, 0), n);
		close(fds[i]);
	}
	unlink(outp);
	unlink(errp);
	if (ret_out)
		*ret_out = bufs[0];
	else
		free(bufs[0]);
	if (ret_err)
		*ret_err = bufs[1];
	else
		free(bufs[1]);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
}
#define gortctl(d, out, err, ...) gortctl_v((d), (out), (err), (const char *const[]){ __VA_ARGS__, NULL })

/* Submits FILE with args through the library (no wait); returns the task id. */
static inline uint64_t submit_task(struct gortclient *c, const char *file, int argc, char **argv)
{
	struct gortclient_submit s = { .file = file, .fd = -1, .argc = argc, .argv = argv };
	uint64_t id = 0;
	int64_t r = gortclient_submit(c, &s, &id);
	ck_assert_msg(r > 0, "submit %s: %s", file, gortclient_error(c));
	ck_assert_uint_gt(id, 0);
	return id;
}

/* One request, its reply (caller frees) or the negative errno of an error reply. */
static inline int call(struct gortclient *c, Gort__V1__Request *req, Gort__V1__Reply **ret)
{
	return gortclient_call(c, req, NULL, 0, ret);
}

static inline Gort__V1__Reply *stats_of(struct gortclient *c)
{
	Gort__V1__StatsRequest sr = GORT__V1__STATS_REQUEST__INIT;
	Gort__V1__Request req = GORT__V1__REQUEST__INIT;
	req.body_case = GORT__V1__REQUEST__BODY_STATS;
	req.stats = &sr;
	Gort__V1__Reply *reply = NULL;
	int r = call(c, &req, &reply);
	ck_assert_msg(r == 0, "stats: %s", gortclient_error(c));
	ck_assert_int_eq(reply->body_case, GORT__V1__REPLY__BODY_STATS);
	return reply;
}

/* Raw bytes to the daemon on a new connection; returns the socket. */
static inline int raw_connect(const struct daemon *d)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", d->sock);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	return fd;
}

#endif
