/* tests/test-daemon.c: gortd and gortctl end to end: every command, every bad input, authorization, systemd, shutdown. */
#include <grp.h>
#include <poll.h>
#include <pwd.h>

#include "daemonlib.h"
#include "proto/wire.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static long test_count_lines_str(const char *s)
{
	long n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* ---- commands ---- */

static struct daemon D;

static void setup(void)
{
	daemon_start(&D);
}

static void teardown(void)
{
	daemon_cleanup(&D);
}

static Gort__V1__Request request(Gort__V1__Request__BodyCase bc, void *body)
{
	Gort__V1__Request req = GORT__V1__REQUEST__INIT;
	req.body_case = bc;
	req.submit = body; /* the union: any member */
	return req;
}

START_TEST(test_submit_wait_exit_code)
{
	struct gortclient *c = client(&D);
	char *argv[] = { "exit", "7" };
	uint64_t id = submit_task(c, DTASK, 2, argv);
	Gort__V1__WaitRequest w = GORT__V1__WAIT_REQUEST__INIT;
	w.task_id = id;
	Gort__V1__Request req = request(GORT__V1__REQUEST__BODY_WAIT, &w);
	Gort__V1__Reply *reply;
	assert_ok(call(c, &req, &reply));
	ck_assert_int_eq(reply->body_case, GORT__V1__REPLY__BODY_EXIT);
	ck_assert_uint_eq(reply->exit->task_id, id);
	ck_assert_int_eq(reply->exit->code, 7);
	ck_assert_str_eq(reply->exit->status, "exited");
	gort__v1__reply__free_unpacked(reply, NULL);
	gortclient_free(c);
}
END_TEST

START_TEST(test_gortctl_submit_wait_streams_output)
{
	char *out, *err;
	int code = gortctl(&D, &out, &err, "submit", "--wait", DTASK, "--", "echo", "one", "two");
	ck_assert_msg(code == 0, "exit %d: %s", code, err);
	ck_assert_msg(strstr(out, "echo: one two\n"), "stdout: %s", out);
	ck_assert_msg(strstr(err, "to stderr\n"), "stderr: %s", err);
	free(out);
	free(err);
	code = gortctl(&D, &out, &err, "submit", "--wait", "--name", "fan", FANOUT, "--", "6");
	ck_assert_msg(code == 0, "exit %d: %s", code, err);
	ck_assert_msg(strstr(out, "6 goroutines on 2 procs"), "stdout: %s", out);
	ck_assert_int_eq(test_count_lines_str(out), 7);
	free(out);
	free(err);
	/* the task's code is gortctl's */
	code = gortctl(&D, &out, &err, "submit", "--wait", DTASK, "--", "exit", "42");
	ck_assert_int_eq(code, 42);
	free(out);
	free(err);
}
END_TEST

START_TEST(test_gortctl_submit_then_wait)
{
	char *out, *err;
	ck_assert_int_eq(gortctl(&D, &out, &err, "submit", DTASK, "--", "exit", "3"), 0);
	char *end;
	unsigned long id = strtoul(out, &end, 10);
	ck_assert_msg(id > 0 && *end == '\n', "submit printed '%s'", out);
	free(out);
	free(err);
	char ids[24];
	snprintf(ids, sizeof ids, "%lu", id);
	ck_assert_int_eq(gortctl(&D, &out, &err, "wait", ids), 3);
	free(out);
	free(err);
	/* --json */
	ck_assert_int_eq(gortctl(&D, &out, &err, "--json", "wait", ids), 3);
	ck_assert_msg(strstr(out, "\"code\":3") && strstr(out, "\"status\":\"exited\""), "%s", out);
	free(out);
	free(err);
	ck_assert_int_eq(gortctl(&D, &out, &err, "--json", "submit", DTASK), 0);
	ck_assert_msg(strncmp(out, "{\"task_id\":", 11) == 0, "%s", out);
	free(out);
	free(err);
}
END_TEST

START_TEST(test_tasks_ps_logs_kill)
{
	struct gortclient *c = client(&D);
	char *argv[] = { "sleep" };
	uint64_t id = submit_task(c, DTASK, 1, argv);
	char ids[24];
	snprintf(ids, sizeof ids, "%llu", (unsigned long long)id);

	/* its output reaches the kept log once it runs */
	char *out, *err;
	int64_t deadline = mono_ns() + 30 * 1000000000LL;
	for (;;) {
		ck_assert_int_eq(gortctl(&D, &out, &err, "logs", ids), 0);
		if (strstr(out, "sleeping"))
			break;
		ck_assert_msg(mono_ns() < deadline, "no output in logs: '%s'", out);
		free(out);
		free(err);
		sleep_ms(20);
	}
	free(out);
	free(err);

	ck_assert_int_eq(gortctl(&D, &out, &err, "tasks"), 0);
	ck_assert_msg(strstr(out, "ID") && strstr(out, "daemon_task.so") && strstr(out, "running"), "%s", out);
	free(out);
	free(err);
	ck_assert_int_eq(gortctl(&D, &out, &err, "--json", "tasks"), 0);
	ck_assert_msg(strstr(out, "\"tasks\":[{\"id\":") && strstr(out, "\"state\":\"running\""), "%s", out);
	free(out);
	free(err);

	/* its main goroutine sleeps */
	ck_assert_int_eq(gortctl(&D, &out, &err, "ps", ids), 0);
	ck_assert_msg(strstr(out, "GOID") && strstr(out, "waiting") && strstr(out, "sleep"), "%s", out);
	free(out);
	free(err);
	ck_assert_int_eq(gortctl(&D, &out, &err, "--json", "ps"), 0);
	ck_assert_msg(strstr(out, "\"wait_reason\":\"sleep\""), "%s", out);
	free(out);
	free(err);

	ck_assert_int_eq(gortctl(&D, &out, &err, "kill", ids), 0);
	free(out);
	free(err);
	ck_assert_int_eq(gortctl(&D, &out, &err, "wait", ids), 137);
	free(out);
	free(err);
	/* killing it again: a daemon error, said in one line */
	ck_assert_int_eq(gortctl(&D, &out, &err, "kill", ids), 1);
	ck_assert_msg(strstr(err, "already ended") && strchr(err, '\n') == err + strlen(err) - 1, "%s", err);
	free(out);
	free(err);
	ck_assert_int_eq(gortctl(&D, &out, &err, "tasks"), 0);
	ck_assert_msg(strstr(out, "killed"), "%s", out);
	free(out);
	free(err);
	gortclient_free(c);
}
END_TEST

START_TEST(test_ctrl_c_on_submit_wait_kills_the_task)
{
	char outp[] = "/tmp/gortctl-int-XXXXXX", errp[] = "/tmp/gortctl-int-err-XXXXXX";
	int ofd = mkstemp(outp), efd = mkstemp(errp);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(ofd, 1);
		dup2(efd, 2);
		execl(GORTCTL, GORTCTL, "--socket", D.sock, "submit", "--wait", DTASK, "--", "sleep", (char *)NULL);
		_exit(127);
	}
	/* once the task runs (its output is in our file), Ctrl-C */
	int64_t deadline = mono_ns() + 30 * 1000000000LL;
	for (;;) {
		char buf[64] = "";
		ck_assert_int_ge(pread(ofd, buf, sizeof buf - 1, 0), 0);
		if (strstr(buf, "sleeping"))
			break;
		ck_assert_msg(mono_ns() < deadline, "the task never ran");
		sleep_ms(10);
	}
	kill(pid, SIGINT);
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	char err[512] = "";
	ck_assert_int_ge(pread(efd, err, sizeof err - 1, 0), 0);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 137, "status %#x: %s", st, err);
	ck_assert_msg(strstr(err, "interrupted: killing task"), "%s", err);
	close(ofd);
	close(efd);
	unlink(outp);
	unlink(errp);
	/* the daemon's table agrees */
	char *out;
	ck_assert_int_eq(gortctl(&D, &out, NULL, "tasks"), 0);
	ck_assert_msg(strstr(out, "killed"), "%s", out);
	free(out);
}
END_TEST

START_TEST(test_remote_host_over_ssh)
{
	/* An ssh stand-in that runs the remote command here, as sshd would hand it
	 * to the user's shell: checks -H's command line and quoting. */
	char path[160], cmd[2048];
	snprintf(path, sizeof path, "%s/ssh", D.dir);
	FILE *f = fopen(path, "we");
	fprintf(f, "#!/bin/sh\n[ \"$1 $2 $3 $4\" = \"-T -o BatchMode=yes --\" ] || exit 99\n"
		   "[ \"$5\" = \"me@far\" ] || exit 98\nshift 5\nexec sh -c \"$*\"\n");
	fclose(f);
	chmod(path, 0755);
	char cwd[400];
	ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
	snprintf(cmd, sizeof cmd, "ln -s '%s/%s' '%s/gortctl'", cwd, GORTCTL, D.dir);
	ck_assert_int_eq(system(cmd), 0);
	snprintf(cmd, sizeof cmd,
		 "PATH='%s':$PATH %s -H me@far --socket '%s' submit --wait '%s/%s' -- echo \"it's\" 'a b' >'%s/out' 2>/dev/null",
		 D.dir, GORTCTL, D.sock, cwd, DTASK, D.dir);
	int st = system(cmd);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
	snprintf(path, sizeof path, "%s/out", D.dir);
	f = fopen(path, "re");
	char out[256] = "";
	ck_assert_ptr_nonnull(fgets(out, sizeof out, f));
	fclose(f);
	ck_assert_str_eq(out, "echo: it's a b\n");
	snprintf(cmd, sizeof cmd, "PATH='%s':$PATH %s -H me@far --socket '%s' wait 999 2>/dev/null", D.dir, GORTCTL, D.sock);
	st = system(cmd);
	ck_assert_int_eq(WEXITSTATUS(st), 1);
}
END_TEST

START_TEST(test_unknown_task)
{
	static const char *cmds[][2] = { { "wait", "999999" }, { "kill", "999999" }, { "logs", "999999" },
					 { "ps", "999999" } };
	for (size_t i = 0; i < 4; i++) {
		char *out, *err;
		ck_assert_int_eq(gortctl(&D, &out, &err, cmds[i][0], cmds[i][1]), 1);
		ck_assert_msg(strstr(err, "no task 999999"), "%s: %s", cmds[i][0], err);
		free(out);
		free(err);
	}
}
END_TEST

START_TEST(test_plugins)
{
	char *out, *err;
	ck_assert_int_eq(gortctl(&D, &out, &err, "plugin", "load", DPLUGIN), 0);
	ck_assert_str_eq(out, "dplugin\n");
	free(out);
	free(err);
	ck_assert_int_eq(gortctl(&D, &out, &err, "plugin", "list"), 0);
	ck_assert_msg(strstr(out, "dplugin") && strstr(out, "1.2"), "%s", out);
	free(out);
	free(err);
	/* the same name twice is refused */
	ck_assert_int_eq(gortctl(&D, &out, &err, "plugin", "load", DPLUGIN), 1);
	free(out);
	free(err);
	ck_assert_int_eq(gortctl(&D, &out, &err, "plugin", "unload", "dplugin"), 0);
	free(out);
	free(err);
	ck_assert_int_eq(gortctl(&D, &out, &err, "plugin", "unload", "dplugin"), 1);
	ck_assert_msg(strstr(err, "no plugin called"), "%s", err);
	free(out);
	free(err);
	ck_assert_int_eq(gortctl(&D, &out, &err, "--json", "plugin", "list"), 0);
	ck_assert_msg(strstr(out, "\"plugins\":[]"), "%s", out);
	free(out);
	free(err);
}
END_TEST

START_TEST(test_stats_formats)
{
	char *out, *err;
	ck_assert_int_eq(gortctl(&D, &out, &err, "stats"), 0);
	ck_assert_msg(strncmp(out, "SCHED ", 6) == 0 && strstr(out, "gomaxprocs=2 idleprocs=") &&
			      strstr(out, "runqueue=") && strstr(out, "sysmon: rounds=") && strstr(out, "preempt: requested=") &&
			      strstr(out, "\nio: ") && strstr(out, "gortd: pid="),
		      "%s", out);
	free(out);
	free(err);
	ck_assert_int_eq(gortctl(&D, &out, &err, "--json", "stats"), 0);
	ck_assert_msg(strstr(out, "\"sched\":{") && strstr(out, "\"gomaxprocs\":2") &&
			      strstr(out, "\"local_runq\":[") && strstr(out, "\"daemon\":{"),
		      "%s", out);
	free(out);
	free(err);
	ck_assert_int_eq(gortctl(&D, &out, &err, "stats", "--prometheus"), 0);
	ck_assert_msg(strstr(out, "# TYPE gort_sched_gomaxprocs gauge\ngort_sched_gomaxprocs 2\n") &&
			      strstr(out, "gort_sched_local_runqueue{p=\"1\"}"),
		      "%s", out);
	free(out);
	free(err);

	/* the figures are the scheduler's: a task spinning on both Ps shows up */
	struct gortclient *c = client(&D);
	char *argv[] = { "spin", "2" };
	uint64_t id = submit_task(c, DTASK, 2, argv);
	int64_t deadline = mono_ns() + 30 * 1000000000LL;
	for (;;) {
		Gort__V1__Reply *r = stats_of(c);
		int32_t idle = r->stats->sched->idleprocs;
		int64_t gs = r->stats->sched->goroutines;
		ck_assert_int_eq(r->stats->sched->gomaxprocs, 2);
		ck_assert_uint_eq(r->stats->sched->n_local_runq, 2);
		bool found = false;
		for (size_t i = 0; i < r->stats->n_tasks; i++)
			found |= r->stats->tasks[i]->id == id && r->stats->tasks[i]->goroutines == 2;
		gort__v1__reply__free_unpacked(r, NULL);
		if (idle == 0 && gs >= 2 && found)
			break;
		ck_assert_msg(mono_ns() < deadline, "stats never showed both Ps busy (idle %d, goroutines %lld)", idle,
			      (long long)gs);
		sleep_ms(20);
	}
	Gort__V1__KillRequest k = GORT__V1__KILL_REQUEST__INIT;
	k.task_id = id;
	Gort__V1__Request req = request(GORT__V1__REQUEST__BODY_KILL, &k);
	assert_ok(call(c, &req, NULL));
	gortclient_free(c);
}
END_TEST

START_TEST(test_stats_watch)
{
	/* --watch repeats until interrupted: let it print three samples */
	char outp[] = "/tmp/gortctl-watch-XXXXXX";
	int ofd = mkstemp(outp);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(ofd, 1);
		execl(GORTCTL, GORTCTL, "--socket", D.sock, "stats", "--watch", "0.1", (char *)NULL);
		_exit(127);
	}
	int64_t deadline = mono_ns() + 30 * 1000000000LL;
	long n;
	while ((n = 0, 1)) {
		char buf[65536];
		ssize_t k = pread(ofd, buf, sizeof buf - 1, 0);
		buf[k > 0 ? k : 0] = '\0';
		for (char *p = buf; (p = strstr(p, "SCHED ")); p++)
			n++;
		if (n >= 3 || mono_ns() > deadline)
			break;
		sleep_ms(20);
	}
	kill(pid, SIGINT);
	waitpid(pid, NULL, 0);
	close(ofd);
	unlink(outp);
	ck_assert_int_ge(n, 3);
}
END_TEST

START_TEST(test_usage_errors)
{
	static const char *const cases[][4] = {
		{ "bogus" }, { "wait" }, { "kill", "abc" }, { "kill", "0" }, { "ps", "1", "2" },
		{ "submit" }, { "submit", "--stack-size", "lots", "x.so" }, { "submit", "--frobnicate", "x.so" },
		{ "plugin" }, { "plugin", "eat" }, { "stats", "--watch", "-1" }, { "tasks", "extra" },
		{ "trace" }, { "events", "--nope" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const char *args[6] = { cases[i][0], cases[i][1], cases[i][2], cases[i][3], NULL, NULL };
		char *out, *err;
		int code = gortctl_v(&D, &out, &err, args);
		ck_assert_msg(code == 2, "%s %s: exit %d (%s)", cases[i][0], cases[i][1] ? cases[i][1] : "", code, err);
		ck_assert_msg(strncmp(err, "gortctl: ", 9) == 0 && strchr(err, '\n') == err + strlen(err) - 1,
			      "not one line: %s", err);
		free(out);
		free(err);
	}
}
END_TEST

START_TEST(test_connect_errors_say_what_to_do)
{
	char *err;
	const char *args[] = { "stats", NULL };
	struct daemon nowhere = D;
	snprintf(nowhere.sock, sizeof nowhere.sock, "%s/nothing-here.sock", D.dir);
	ck_assert_int_eq(gortctl_v(&nowhere, NULL, &err, args), 1);
	ck_assert_msg(strstr(err, "cannot connect to") && strstr(err, "no such file") &&
			      strstr(err, "is gortd running? try systemctl start gortd"),
		      "%s", err);
	free(err);
	/* a stale socket file with nobody behind it */
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", nowhere.sock);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	close(fd);
	ck_assert_int_eq(gortctl_v(&nowhere, NULL, &err, args), 1);
	ck_assert_msg(strstr(err, "nobody is listening"), "%s", err);
	free(err);
}
END_TEST

START_TEST(test_submit_load_errors)
{
	char *out, *err;
	/* not an ELF file */
	char path[160];
	snprintf(path, sizeof path, "%s/notelf.so", D.dir);
	FILE *f = fopen(path, "we");
	fputs("this is text\n", f);
	fclose(f);
	ck_assert_int_eq(gortctl(&D, &out, &err, "submit", path), 1);
	ck_assert_msg(strstr(err, "notelf.so") && strchr(err, '\n') == err + strlen(err) - 1, "%s", err);
	free(out);
	free(err);
	/* no such file: the client says so before connecting */
	ck_assert_int_eq(gortctl(&D, &out, &err, "submit", "/nonexistent/x.so"), 1);
	ck_assert_msg(strstr(err, "No such file"), "%s", err);
	free(out);
	free(err);
	/* a pipe instead of a binary is refused: reading it could block the server */
	struct gortclient *c = client(&D);
	int p[2];
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	struct gortclient_submit s = { .file = "pipe", .fd = p[0] };
	uint64_t id;
	ck_assert_int_eq(gortclient_submit(c, &s, &id), -EINVAL);
	ck_assert_msg(strstr(gortclient_error(c), "not a regular file"), "%s", gortclient_error(c));
	close(p[0]);
	close(p[1]);
	/* a stack size beyond reason */
	s = (struct gortclient_submit){ .file = DTASK, .fd = -1, .stack_size = 1ULL << 40 };
	ck_assert_int_eq(gortclient_submit(c, &s, &id), -EINVAL);
	/* the connection is still good */
	gort__v1__reply__free_unpacked(stats_of(c), NULL);
	gortclient_free(c);
}
END_TEST

START_TEST(test_replies_interleave_by_id)
{
	/* a wait pending on one connection does not hold up other requests on it */
	struct gortclient *c = client(&D);
	char *argv[] = { "sleep" };
	uint64_t id = submit_task(c, DTASK, 1, argv);
	Gort__V1__WaitRequest w = GORT__V1__WAIT_REQUEST__INIT;
	w.task_id = id;
	Gort__V1__Request wreq = request(GORT__V1__REQUEST__BODY_WAIT, &w);
	int64_t wid = gortclient_send(c, &wreq, NULL, 0);
	ck_assert_int_gt(wid, 0);
	for (int i = 0; i < 5; i++)
		gort__v1__reply__free_unpacked(stats_of(c), NULL);
	Gort__V1__KillRequest k = GORT__V1__KILL_REQUEST__INIT;
	k.task_id = id;
	Gort__V1__Request kreq = request(GORT__V1__REQUEST__BODY_KILL, &k);
	assert_ok(call(c, &kreq, NULL));
	int code;
	char status[32];
	assert_ok(gortclient_wait_exit(c, (uint64_t)wid, &code, status, sizeof status));
	ck_assert_int_eq(code, 137);
	ck_assert_str_eq(status, "killed");
	gortclient_free(c);
}
END_TEST

/* ---- bad input: an error reply where possible, the connection closed, everyone else fine ---- */

/* Reads one reply from a raw socket (blocking); NULL at EOF. */
static Gort__V1__Reply *raw_reply(int fd)
{
	struct wire_reader r;
	wire_reader_init(&r, WIRE_REPLY_MAX);
	int ret;
	do
		ret = wire_reader_recv(&r, fd);
	while (ret == WIRE_MORE);
	if (ret != WIRE_FRAME) {
		ck_assert_msg(ret == WIRE_EOF || ret == -ECONNRESET, "reading a reply: %d", ret);
		wire_reader_deinit(&r);
		return NULL;
	}
	uint8_t *body;
	uint32_t len;
	int fds[WIRE_FDS_MAX];
	unsigned nfds;
	wire_reader_take(&r, &body, &len, fds, &nfds);
	ck_assert_uint_eq(nfds, 0);
	Gort__V1__Reply *reply;
	assert_ok(wire_reply_unpack(body, len, &reply, NULL));
	free(body);
	return reply;
}

/* Sends bytes (with fds) and expects an error reply with err, then EOF. */
static void expect_refused(const uint8_t *bytes, size_t n, const int *fds, int nfds, bool shut, int err)
{
	int fd = raw_connect(&D);
	if (nfds) {
		char control[CMSG_SPACE(sizeof(int) * 8)];
		memset(control, 0, sizeof control); /* the padding goes to the kernel too (valgrind) */
		struct iovec iov = { .iov_base = (void *)bytes, .iov_len = n };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
				     .msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds) };
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
		ck_assert_int_eq(sendmsg(fd, &mh, MSG_NOSIGNAL), (ssize_t)n);
	} else {
		ck_assert_int_eq(send(fd, bytes, n, MSG_NOSIGNAL), (ssize_t)n);
	}
	if (shut)
		shutdown(fd, SHUT_WR);
	Gort__V1__Reply *reply = raw_reply(fd);
	ck_assert_msg(reply != NULL, "no error reply (want %s)", strerror(err));
	ck_assert_msg(reply->error == err, "error %d (%s), want %d: %s", reply->error, reply->message, err,
		      strerror(err));
	ck_assert(reply->message && *reply->message);
	gort__v1__reply__free_unpacked(reply, NULL);
	ck_assert_ptr_null(raw_reply(fd)); /* closed */
	close(fd);
}

static size_t frame_of(Gort__V1__Request *req, uint8_t *buf)
{
	size_t n = gort__v1__request__get_packed_size(req);
	buf[0] = (uint8_t)n, buf[1] = (uint8_t)(n >> 8), buf[2] = (uint8_t)(n >> 16), buf[3] = (uint8_t)(n >> 24);
	gort__v1__request__pack(req, buf + 4);
	return n + 4;
}

START_TEST(test_bad_input)
{
	/* a bystander connected through all of it */
	struct gortclient *by = client(&D);
	uint8_t buf[256];

	/* truncated frame: 100 bytes announced, 10 sent, then the client is done */
	memcpy(buf, "\x64\x00\x00\x00" "0123456789", 14);
	expect_refused(buf, 14, NULL, 0, true, EPROTO);
	/* oversized length */
	expect_refused((const uint8_t *)"\xff\xff\xff\xff", 4, NULL, 0, false, EMSGSIZE);
	expect_refused((const uint8_t *)"\x01\x00\x10\x00", 4, NULL, 0, false, EMSGSIZE);
	/* garbage bytes */
	memcpy(buf, "\x08\x00\x00\x00" "\xff\xfe\xfd\xfc\x0b\x0c\x0e\x0f", 12);
	expect_refused(buf, 12, NULL, 0, false, EBADMSG);
	/* a field twice: a message our encoder never writes */
	memcpy(buf, "\x04\x00\x00\x00" "\x08\x01\x08\x02", 8);
	expect_refused(buf, 8, NULL, 0, false, EBADMSG);
	/* unknown request type (a future field 25) */
	memcpy(buf, "\x05\x00\x00\x00" "\x08\x01\xca\x01\x00", 9);
	expect_refused(buf, 9, NULL, 0, false, EOPNOTSUPP);
	/* an empty message: no request at all */
	expect_refused((const uint8_t *)"\x00\x00\x00\x00", 4, NULL, 0, false, EOPNOTSUPP);

	/* wrong fds: stats with an fd, submit claiming one and sending none,
	 * submit with stdio and one fd, plugin load with two */
	int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int two[2] = { devnull, devnull };
	Gort__V1__StatsRequest sr = GORT__V1__STATS_REQUEST__INIT;
	Gort__V1__Request req = request(GORT__V1__REQUEST__BODY_STATS, &sr);
	size_t n = frame_of(&req, buf);
	expect_refused(buf, n, two, 1, false, EBADF);
	Gort__V1__SubmitRequest sub = GORT__V1__SUBMIT_REQUEST__INIT;
	req = request(GORT__V1__REQUEST__BODY_SUBMIT, &sub);
	req.nfds = 1;
	n = frame_of(&req, buf);
	expect_refused(buf, n, NULL, 0, false, EBADF);
	sub.stdio = true;
	n = frame_of(&req, buf);
	expect_refused(buf, n, two, 1, false, EBADF);
	Gort__V1__PluginLoadRequest pl = GORT__V1__PLUGIN_LOAD_REQUEST__INIT;
	req = request(GORT__V1__REQUEST__BODY_PLUGIN_LOAD, &pl);
	req.nfds = 2;
	n = frame_of(&req, buf);
	expect_refused(buf, n, two, 2, false, EBADF);
	/* more fds than any request carries: the kernel truncates, the frame is refused */
	int six[6] = { devnull, devnull, devnull, devnull, devnull, devnull };
	req = request(GORT__V1__REQUEST__BODY_STATS, &sr);
	n = frame_of(&req, buf);
	expect_refused(buf, n, six, 6, false, ETOOMANYREFS);
	close(devnull);

	/* the bystander and the daemon carry on */
	Gort__V1__Reply *r = stats_of(by);
	ck_assert_uint_ge(r->stats->daemon->errors, 11);
	gort__v1__reply__free_unpacked(r, NULL);
	gortclient_free(by);
	ck_assert_int_eq(waitpid(D.pid, NULL, WNOHANG), 0);
	char *log = daemon_log(&D);
	ck_assert_msg(strstr(log, "<4>client uid 0 pid ") && strstr(log, "truncated frame"), "%s", log);
	free(log);
}
END_TEST

START_TEST(test_client_vanishes_mid_request)
{
	/* half a frame, then gone */
	int fd = raw_connect(&D);
	ck_assert_int_eq(send(fd, "\x40\x00\x00\x00\x08", 5, MSG_NOSIGNAL), 5);
	close(fd);
	/* a request, gone before the reply */
	fd = raw_connect(&D);
	uint8_t buf[64];
	Gort__V1__StatsRequest sr = GORT__V1__STATS_REQUEST__INIT;
	Gort__V1__Request req = request(GORT__V1__REQUEST__BODY_STATS, &sr);
	size_t n = frame_of(&req, buf);
	ck_assert_int_eq(send(fd, buf, n, MSG_NOSIGNAL), (ssize_t)n);
	close(fd);
	/* submit --wait, gone while the task runs: the task is killed (hangup) */
	struct gortclient *c = client(&D);
	char *argv[] = { "sleep" };
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	struct gortclient_submit s = { .file = DTASK, .fd = -1, .argc = 1, .argv = argv, .wait = true,
				       .stdio = true, .stdio_fds = { null, null, null } };
	uint64_t id;
	ck_assert_int_gt(gortclient_submit(c, &s, &id), 0);
	close(null);
	gortclient_free(c);
	c = client(&D);
	Gort__V1__WaitRequest w = GORT__V1__WAIT_REQUEST__INIT;
	w.task_id = id;
	req = request(GORT__V1__REQUEST__BODY_WAIT, &w);
	Gort__V1__Reply *reply;
	assert_ok(call(c, &req, &reply));
	ck_assert_str_eq(reply->exit->status, "killed");
	gort__v1__reply__free_unpacked(reply, NULL);
	/* and a plain wait that hangs up does not kill */
	char *argv2[] = { "sleep" };
	uint64_t id2 = submit_task(c, DTASK, 1, argv2);
	struct gortclient *c2 = client(&D);
	w.task_id = id2;
	req = request(GORT__V1__REQUEST__BODY_WAIT, &w);
	ck_assert_int_gt(gortclient_send(c2, &req, NULL, 0), 0);
	sleep_ms(50);
	gortclient_free(c2);
	sleep_ms(50);
	Gort__V1__TasksRequest tr = GORT__V1__TASKS_REQUEST__INIT;
	req = request(GORT__V1__REQUEST__BODY_TASKS, &tr);
	assert_ok(call(c, &req, &reply));
	bool running = false;
	for (size_t i = 0; i < reply->tasks->n_tasks; i++)
		if (reply->tasks->tasks[i]->id == id2)
			running = strcmp(reply->tasks->tasks[i]->state, "running") == 0;
	ck_assert(running);
	gort__v1__reply__free_unpacked(reply, NULL);
	gortclient_free(c);
	c = client(&D);
	gort__v1__reply__free_unpacked(stats_of(c), NULL);
	gortclient_free(c);
}
END_TEST

/* ---- authorization ---- */

/* In a child that drops to nobody: what a stranger on the socket may do. */
static int stranger(const char *sock, bool expect_control)
{
	/* Opened before dropping to nobody: the checkout may sit in a directory
	 * nobody cannot enter (a mktemp -d clone), and what is tested is the
	 * daemon's decision, not the file's permissions. */
	int fd = open(DTASK, O_RDONLY | O_CLOEXEC);
	struct passwd *pw = getpwnam("nobody");
	if (fd < 0 || !pw || setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0)
		return 10;
	struct gortclient *c;
	if (gortclient_connect(sock, &c) < 0)
		return 11;
	Gort__V1__StatsRequest sr = GORT__V1__STATS_REQUEST__INIT;
	Gort__V1__Request req = request(GORT__V1__REQUEST__BODY_STATS, &sr);
	if (gortclient_call(c, &req, NULL, 0, NULL) < 0)
		return 12;
	Gort__V1__TasksRequest tr = GORT__V1__TASKS_REQUEST__INIT;
	req = request(GORT__V1__REQUEST__BODY_TASKS, &tr);
	if (gortclient_call(c, &req, NULL, 0, NULL) < 0)
		return 13;
	char *argv[] = { "exit", "5" };
	struct gortclient_submit s = { .file = DTASK, .fd = fd, .argc = 2, .argv = argv };
	uint64_t id = 0;
	int64_t r = gortclient_submit(c, &s, &id);
	if (expect_control) {
		if (r <= 0)
			return 14;
	} else {
		if (r != -EPERM || !strstr(gortclient_error(c), "permission denied") ||
		    !strstr(gortclient_error(c), "you are uid"))
			return 15;
		Gort__V1__KillRequest k = GORT__V1__KILL_REQUEST__INIT;
		k.task_id = 1;
		req = request(GORT__V1__REQUEST__BODY_KILL, &k);
		if (gortclient_call(c, &req, NULL, 0, NULL) != -EPERM)
			return 16;
		Gort__V1__PluginUnloadRequest pu = GORT__V1__PLUGIN_UNLOAD_REQUEST__INIT;
		pu.name = "x";
		req = request(GORT__V1__REQUEST__BODY_PLUGIN_UNLOAD, &pu);
		if (gortclient_call(c, &req, NULL, 0, NULL) != -EPERM)
			return 17;
		/* refusals do not close the connection */
		req = request(GORT__V1__REQUEST__BODY_STATS, &sr);
		if (gortclient_call(c, &req, NULL, 0, NULL) < 0)
			return 18;
	}
	gortclient_free(c);
	return 0;
}

static int run_stranger(const char *sock, bool expect_control)
{
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(stranger(sock, expect_control));
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + WTERMSIG(st);
}

START_TEST(test_auth_stranger_refused_stats_allowed)
{
	if (geteuid() != 0 || !getpwnam("nobody"))
		return; /* needs root to become nobody */
	chmod(D.sock, 0666); /* what SocketGroup= would grant */
	int r = run_stranger(D.sock, false);
	ck_assert_msg(r == 0, "stranger step %d failed", r);
	char *log = daemon_log(&D);
	char want[64];
	snprintf(want, sizeof want, "refused submit from uid %u", (unsigned)getpwnam("nobody")->pw_uid);
	ck_assert_msg(strstr(log, want), "%s", log);
	free(log);
}
END_TEST

START_TEST(test_auth_allow_uid_and_group)
{
	if (geteuid() != 0 || !getpwnam("nobody"))
		return;
	struct passwd *pw = getpwnam("nobody");
	char uid[16], gid[16];
	snprintf(uid, sizeof uid, "%u", (unsigned)pw->pw_uid);
	snprintf(gid, sizeof gid, "%u", (unsigned)pw->pw_gid);
	struct daemon d2;
	daemon_start(&d2, "--allow-uid", uid);
	chmod(d2.sock, 0666);
	ck_assert_int_eq(run_stranger(d2.sock, true), 0);
	daemon_cleanup(&d2);
	daemon_start(&d2, "--allow-group", gid);
	chmod(d2.sock, 0666);
	ck_assert_int_eq(run_stranger(d2.sock, true), 0);
	daemon_cleanup(&d2);
	/* by name, as an admin writes it */
	daemon_start(&d2, "--allow-uid", "nobody");
	chmod(d2.sock, 0666);
	ck_assert_int_eq(run_stranger(d2.sock, true), 0);
	daemon_cleanup(&d2);
}
END_TEST

/* ---- gortd itself: flags, socket, systemd ---- */

static int run_gortd(const char *const *args, char **ret_err)
{
	const char *argv[16] = { GORTD };
	int argc = 1;
	for (; *args; args++)
		argv[argc++] = *args;
	argv[argc] = NULL;
	char errp[] = "/tmp/gortd-err-XXXXXX";
	int efd = mkstemp(errp);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(efd, 2);
		execv(GORTD, (char **)argv);
		_exit(127);
	}
	int st;
	waitpid(pid, &st, 0);
	off_t n = lseek(efd, 0, SEEK_END);
	char *buf = calloc(1, (size_t)n + 1);
	ck_assert_int_eq(pread(efd, buf, (size_t)n, 0), n);
	close(efd);
	unlink(errp);
	*ret_err = buf;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(test_gortd_flags)
{
	char *err;
	static const char *const bad[][4] = {
		{ "--procs", "0" }, { "--procs", "x" }, { "--allow-uid", "no-such-user-here" },
		{ "--allow-group", "no-such-group-here" }, { "--frob" }, { "extra" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		const char *args[4] = { bad[i][0], bad[i][1], NULL, NULL };
		ck_assert_int_eq(run_gortd(args, &err), 2);
		ck_assert_msg(strstr(err, "gortd"), "%s", err);
		free(err);
	}
	/* a live daemon's socket is not taken over */
	const char *args[] = { "--foreground", "--socket", D.sock, NULL };
	ck_assert_int_eq(run_gortd(args, &err), 1);
	ck_assert_msg(strstr(err, "another gortd is listening"), "%s", err);
	free(err);
	/* the socket is 0660 in a directory gortd created */
	struct stat st;
	ck_assert_int_eq(stat(D.sock, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0660);
}
END_TEST

START_TEST(test_gortd_run_one_task)
{
	/* gortd --run FILE.so [-- ARGS]: no socket, the task's code is gortd's */
	char *err;
	const char *exit5[] = { "--run", DTASK, "--", "exit", "5", NULL };
	ck_assert_int_eq(run_gortd(exit5, &err), 5);
	free(err);
	const char *echo[] = { "--run", DTASK, "--", "echo", NULL };
	ck_assert_int_eq(run_gortd(echo, &err), 0);
	ck_assert_msg(strstr(err, "to stderr"), "%s", err);
	free(err);
	const char *bad[] = { "--run", "/nonexistent.so", NULL };
	ck_assert_int_eq(run_gortd(bad, &err), 1);
	ck_assert_msg(strstr(err, "gortd: /nonexistent.so: No such file"), "%s", err);
	free(err);
}
END_TEST

START_TEST(test_gortd_creates_parent_and_replaces_stale_socket)
{
	struct daemon d2;
	daemon_dir(&d2);
	snprintf(d2.sock, sizeof d2.sock, "%s/a/b/gortd.sock", d2.dir);
	/* a stale socket file left behind */
	char cmd[256];
	snprintf(cmd, sizeof cmd, "mkdir -p %s/a/b", d2.dir);
	ck_assert_int_eq(system(cmd), 0);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", d2.sock);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	close(fd);
	d2.pid = fork();
	if (d2.pid == 0) {
		int lfd = open(d2.log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(lfd, 2);
		execl(GORTD, GORTD, "--foreground", "--socket", d2.sock, (char *)NULL);
		_exit(127);
	}
	int64_t deadline = mono_ns() + DAEMON_START_NS;
	while (!daemon_connectable(d2.sock)) {
		ck_assert(mono_ns() < deadline);
		sleep_ms(10);
	}
	ck_assert_int_eq(daemon_stop(&d2), 0);
	/* SIGTERM removed the socket it created */
	ck_assert_int_eq(access(d2.sock, F_OK), -1);
	daemon_cleanup(&d2);
}
END_TEST

START_TEST(test_gortd_detaches_without_foreground)
{
	struct daemon d2;
	daemon_dir(&d2);
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 2);
		execl(GORTD, GORTD, "--socket", d2.sock, (char *)NULL);
		_exit(127);
	}
	int st;
	/* the parent returns 0 once the child serves */
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	struct gortclient *c = client(&d2);
	Gort__V1__Reply *r = stats_of(c);
	pid_t child = (pid_t)r->stats->daemon->pid;
	gort__v1__reply__free_unpacked(r, NULL);
	gortclient_free(c);
	ck_assert_int_ne(child, pid);
	kill(child, SIGTERM);
	int64_t deadline = mono_ns() + DAEMON_STOP_NS;
	while (kill(child, 0) == 0) {
		ck_assert(mono_ns() < deadline);
		sleep_ms(10);
	}
	daemon_cleanup(&d2);
}
END_TEST

START_TEST(test_socket_activation)
{
	struct daemon d2;
	daemon_dir(&d2);
	d2.pid = fork();
	if (d2.pid == 0) {
		int fd = open(d2.log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(fd, 2);
		execlp("systemd-socket-activate", "systemd-socket-activate", "-l", d2.sock, GORTD, "--procs", "1",
		       (char *)NULL);
		_exit(127);
	}
	int64_t deadline = mono_ns() + DAEMON_START_NS;
	struct gortclient *c = NULL;
	while (gortclient_connect(d2.sock, &c) < 0) {
		ck_assert_msg(mono_ns() < deadline, "systemd-socket-activate did not listen");
		sleep_ms(10);
	}
	/* the first connection started gortd on the inherited socket */
	Gort__V1__Reply *r = stats_of(c);
	ck_assert_int_eq(r->stats->sched->gomaxprocs, 1);
	ck_assert_int_eq((pid_t)r->stats->daemon->pid, d2.pid);
	gort__v1__reply__free_unpacked(r, NULL);
	gortclient_free(c);
	char *log = daemon_log(&d2);
	ck_assert_msg(strstr(log, "socket from systemd"), "%s", log);
	free(log);
	int st = daemon_stop(&d2);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	daemon_cleanup(&d2);
}
END_TEST

START_TEST(test_socket_activation_wrong_socket)
{
	/* a datagram socket from "systemd" is refused */
	struct daemon d2;
	daemon_dir(&d2);
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(d2.log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(fd, 2);
		execlp("systemd-socket-activate", "systemd-socket-activate", "--datagram", "-l", d2.sock, GORTD,
		       (char *)NULL);
		_exit(127);
	}
	int64_t deadline = mono_ns() + DAEMON_START_NS;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", d2.sock);
	while (sendto(fd, "x", 1, 0, (struct sockaddr *)&sa, sizeof sa) < 0) {
		ck_assert(mono_ns() < deadline);
		sleep_ms(10);
	}
	close(fd);
	int st;
	while (waitpid(pid, &st, WNOHANG) == 0) {
		ck_assert_msg(mono_ns() < deadline, "gortd accepted a datagram socket");
		sleep_ms(10);
	}
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1);
	char *log = daemon_log(&d2);
	ck_assert_msg(strstr(log, "not a listening Unix stream socket"), "%s", log);
	free(log);
	daemon_cleanup(&d2);
}
END_TEST

/* sd_notify messages gortd sends to a NOTIFY_SOCKET of ours. */
struct notify_log {
	int fd;
	char path[100];
};

static void notify_open(struct notify_log *n, const char *dir)
{
	snprintf(n->path, sizeof n->path, "%s/notify", dir);
	n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", n->path);
	ck_assert_int_eq(bind(n->fd, (struct sockaddr *)&sa, sizeof sa), 0);
}

/* The next datagram within ms, or NULL. Caller frees. */
static char *notify_next(struct notify_log *n, int ms)
{
	struct pollfd p = { .fd = n->fd, .events = POLLIN };
	if (poll(&p, 1, ms) <= 0)
		return NULL;
	char buf[4096];
	ssize_t k = recv(n->fd, buf, sizeof buf - 1, 0);
	ck_assert_int_gt(k, 0);
	buf[k] = '\0';
	return strdup(buf);
}

/* Waits for a datagram containing what; returns when it came (mono ns). */
static int64_t notify_expect(struct notify_log *n, const char *what, int64_t within_ns)
{
	int64_t deadline = mono_ns() + within_ns;
	for (;;) {
		int64_t left = (deadline - mono_ns()) / 1000000;
		ck_assert_msg(left > 0, "no %s from gortd", what);
		char *m = notify_next(n, (int)left);
		if (!m)
			continue;
		bool hit = strstr(m, what) != NULL;
		free(m);
		if (hit)
			return mono_ns();
	}
}

START_TEST(test_notify_ready_status_watchdog_stopping)
{
	struct daemon d2;
	daemon_dir(&d2);
	struct notify_log n;
	notify_open(&n, d2.dir);
	char env1[160], env2[] = "WATCHDOG_USEC=200000";
	snprintf(env1, sizeof env1, "NOTIFY_SOCKET=%s", n.path);
	char *env[] = { env1, env2, NULL };
	/* daemon_start_env makes its own directory: use that one's socket, our notify */
	struct daemon d3;
	daemon_start_env(&d3, env, NULL);
	char *m = notify_next(&n, 10000);
	ck_assert_msg(m && strstr(m, "READY=1") && strstr(m, "STATUS=tasks: 0 running, goroutines: 0, procs: 2"),
		      "first message: %s", m ? m : "(none)");
	free(m);
	/* STATUS= follows, with a task counted */
	struct gortclient *c = client(&d3);
	char *argv[] = { "sleep" };
	uint64_t id = submit_task(c, DTASK, 1, argv);
	notify_expect(&n, "STATUS=tasks: 1 running, goroutines: 1", 10 * 1000000000LL);
	/* WATCHDOG=1 at half of 200 ms while the scheduler runs */
	int64_t t0 = notify_expect(&n, "WATCHDOG=1", 10 * 1000000000LL);
	for (int i = 0; i < 5; i++)
		notify_expect(&n, "WATCHDOG=1", 10 * 1000000000LL);
	ck_assert_int_lt(mono_ns() - t0, 5 * 1000000000LL);
	Gort__V1__Reply *r = stats_of(c);
	ck_assert_uint_ge(r->stats->daemon->watchdog_pings, 6);
	gort__v1__reply__free_unpacked(r, NULL);
	(void)id;
	gortclient_free(c);
	kill(d3.pid, SIGTERM);
	notify_expect(&n, "STOPPING=1", 30 * 1000000000LL);
	int st = daemon_wait(&d3);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(n.fd);
	daemon_cleanup(&d3);
	daemon_cleanup(&d2);
}
END_TEST

START_TEST(test_watchdog_stops_when_scheduler_wedged)
{
	struct daemon d2;
	daemon_dir(&d2);
	struct notify_log n;
	notify_open(&n, d2.dir);
	char env1[160], env2[] = "WATCHDOG_USEC=400000";
	snprintf(env1, sizeof env1, "NOTIFY_SOCKET=%s", n.path);
	char *env[] = { env1, env2, NULL };
	struct daemon d3;
	daemon_start_env(&d3, env, "--procs", "1", NULL);
	for (int i = 0; i < 3; i++)
		notify_expect(&n, "WATCHDOG=1", 10 * 1000000000LL);
	/* One P, and a task that holds it in a blocking call with every signal
	 * blocked: no goroutine can run, so no pings until it lets go. */
	struct gortclient *c = client(&d3);
	char *argv[] = { "wedge", "3000" };
	uint64_t id = submit_task(c, DTASK, 2, argv);
	int64_t start = mono_ns(), last = start, gap = 0;
	while (mono_ns() - start < 6 * 1000000000LL) {
		char *m = notify_next(&n, 100);
		if (m && strstr(m, "WATCHDOG=1")) {
			int64_t now = mono_ns();
			if (now - last > gap)
				gap = now - last;
			last = now;
		}
		free(m);
	}
	ck_assert_msg(gap >= 2 * 1000000000LL, "the watchdog kept pinging (longest gap %lld ms)",
		      (long long)(gap / 1000000));
	/* and pings again once the scheduler runs */
	notify_expect(&n, "WATCHDOG=1", 10 * 1000000000LL);
	char *log = daemon_log(&d3);
	ck_assert_msg(strstr(log, "<3>watchdog: the scheduler made no progress"), "%s", log);
	free(log);
	(void)id;
	gortclient_free(c);
	ck_assert_int_eq(daemon_stop(&d3), 0);
	close(n.fd);
	daemon_cleanup(&d3);
	daemon_cleanup(&d2);
}
END_TEST

static void sigterm_shutdown(char **argv2, int argc2)
{
	struct daemon d2;
	daemon_start(&d2);
	struct gortclient *c = client(&d2);
	char *sleep_argv[] = { "sleep" };
	uint64_t a = submit_task(c, DTASK, 1, sleep_argv);
	if (argv2)
		submit_task(c, DTASK, argc2, argv2);
	Gort__V1__WaitRequest w = GORT__V1__WAIT_REQUEST__INIT;
	w.task_id = a;
	Gort__V1__Request req = request(GORT__V1__REQUEST__BODY_WAIT, &w);
	int64_t wid = gortclient_send(c, &req, NULL, 0);
	ck_assert_int_gt(wid, 0);
	sleep_ms(100);
	kill(d2.pid, SIGTERM);
	/* the waiter hears that its task was ended */
	int code;
	char status[32];
	assert_ok(gortclient_wait_exit(c, (uint64_t)wid, &code, status, sizeof status));
	ck_assert_str_eq(status, "killed");
	gortclient_free(c);
	int st = daemon_wait(&d2);
	char *log = daemon_log(&d2);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "gortd exit status %#x: %s", st, log);
	ck_assert_int_eq(access(d2.sock, F_OK), -1);
	ck_assert_msg(strstr(log, "shutting down") && strstr(log, "stopped"), "%s", log);
	free(log);
	daemon_cleanup(&d2);
}

START_TEST(test_sigterm_orderly_shutdown)
{
	/* parked tasks, and one whose goroutines sit on channels */
	char *argv[] = { "fanout", "1000" };
	sigterm_shutdown(argv, 2);
}
END_TEST

START_TEST(test_sigterm_ends_spinning_tasks)
{
	/* every P taken by pure loops: only preemption can end them */
	char *argv[] = { "spin", "3" };
	sigterm_shutdown(argv, 2);
}
END_TEST

START_TEST(test_sigterm_twice_leaves_a_wedged_task)
{
	/* a task nothing can stop (its thread blocks every signal): the first
	 * SIGTERM waits for it, a second one leaves at once, with status 1 */
	struct daemon d2;
	daemon_start(&d2);
	struct gortclient *c = client(&d2);
	char *argv[] = { "wedge", "60000" };
	submit_task(c, DTASK, 2, argv);
	gortclient_free(c);
	sleep_ms(100);
	kill(d2.pid, SIGTERM);
	sleep_ms(300);
	int64_t t0 = mono_ns();
	int st = daemon_stop(&d2); /* the second SIGTERM */
	ck_assert_int_lt(mono_ns() - t0, 10 * 1000000000LL);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 1, "gortd exit status %#x", st);
	char *log = daemon_log(&d2);
	ck_assert_msg(strstr(log, "<3>gortd") && strstr(log, "a second signal came"), "%s", log);
	free(log);
	daemon_cleanup(&d2);
}
END_TEST

START_TEST(test_systemd_units_verify)
{
	/* systemd-analyze verify on the units as installed, with ExecStart= at this build */
	char dir[] = "/tmp/gort-units-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char cwd[512], cmd[2048];
	ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
	snprintf(cmd, sizeof cmd,
		 "sed 's|/usr/local/bin/gortd|%s/%s|' systemd/gortd.service > %s/gortd.service && "
		 "cp systemd/gortd.socket %s/ && "
		 "SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no %s/gortd.socket %s/gortd.service > %s/out 2>&1",
		 cwd, GORTD, dir, dir, dir, dir, dir);
	int r = system(cmd);
	snprintf(cmd, sizeof cmd, "%s/out", dir);
	FILE *f = fopen(cmd, "re");
	char out[4096] = "";
	if (f) {
		size_t k = fread(out, 1, sizeof out - 1, f);
		out[k] = '\0';
		fclose(f);
	}
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	(void)!system(cmd);
	ck_assert_msg(r == 0, "systemd-analyze verify failed:\n%s", out);
}
END_TEST

static Suite *daemon_suite(void)
{
	Suite *s = suite_create("daemon");
	TCase *tc = tcase_create("commands");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_submit_wait_exit_code);
	tcase_add_test(tc, test_gortctl_submit_wait_streams_output);
	tcase_add_test(tc, test_gortctl_submit_then_wait);
	tcase_add_test(tc, test_tasks_ps_logs_kill);
	tcase_add_test(tc, test_ctrl_c_on_submit_wait_kills_the_task);
	tcase_add_test(tc, test_remote_host_over_ssh);
	tcase_add_test(tc, test_unknown_task);
	tcase_add_test(tc, test_plugins);
	tcase_add_test(tc, test_stats_formats);
	tcase_add_test(tc, test_stats_watch);
	tcase_add_test(tc, test_usage_errors);
	tcase_add_test(tc, test_connect_errors_say_what_to_do);
	tcase_add_test(tc, test_submit_load_errors);
	tcase_add_test(tc, test_replies_interleave_by_id);
	suite_add_tcase(s, tc);

	tc = tcase_create("bad input");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_bad_input);
	tcase_add_test(tc, test_client_vanishes_mid_request);
	suite_add_tcase(s, tc);

	tc = tcase_create("auth");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_auth_stranger_refused_stats_allowed);
	tcase_add_test(tc, test_auth_allow_uid_and_group);
	suite_add_tcase(s, tc);

	tc = tcase_create("gortd");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_gortd_flags);
	tcase_add_test(tc, test_gortd_run_one_task);
	tcase_add_test(tc, test_gortd_creates_parent_and_replaces_stale_socket);
	tcase_add_test(tc, test_gortd_detaches_without_foreground);
	tcase_add_test(tc, test_socket_activation);
	tcase_add_test(tc, test_socket_activation_wrong_socket);
	tcase_add_test(tc, test_notify_ready_status_watchdog_stopping);
	tcase_add_test(tc, test_watchdog_stops_when_scheduler_wedged);
	tcase_add_test(tc, test_sigterm_orderly_shutdown);
	tcase_add_test(tc, test_sigterm_ends_spinning_tasks);
	tcase_add_test(tc, test_sigterm_twice_leaves_a_wedged_task);
	tcase_add_test(tc, test_systemd_units_verify);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_main(daemon_suite());
}
