/* tests/test-daemon-events.c: gortctl events (history, --task, --json, --follow) and gortctl trace (Chrome Trace Event JSON, checked with jq: it parses, its slices nest per track) against a real gortd; bad input refused. */
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>

#include "daemonlib.h"
#include "gort_plugin.h"
#include "proto/wire.h"

#define TTASK BUILD_DIR "/tests/fixtures/task_trace.so"

static struct daemon D;

/* The suite's daemon keeps goroutine events in its history at all times
 * (by default it keeps them only while a stream is open: test_default_detail). */
static void setup(void)
{
	char *env[] = { (char *)"GORTD_EVENT_DETAIL=goroutines", NULL };
	daemon_start_env(&D, env, NULL);
}

static void teardown(void)
{
	daemon_cleanup(&D);
}

/* Submits task_trace.so with args and waits for its end; returns its id. */
static uint64_t run_trace_task(const char *workers, const char *rounds, const char *ms)
{
	char *out = NULL, *err = NULL;
	int st = gortctl(&D, &out, &err, "submit", TTASK, "--", workers, rounds, ms);
	ck_assert_msg(st == 0, "submit: %d %s", st, err);
	uint64_t id = strtoull(out, NULL, 10);
	ck_assert_uint_gt(id, 0);
	free(out);
	free(err);
	char ids[24];
	snprintf(ids, sizeof ids, "%" PRIu64, id);
	st = gortctl(&D, NULL, &err, "wait", ids);
	ck_assert_msg(st == 0, "wait: %d %s", st, err);
	free(err);
	return id;
}

/* Runs a shell command line; returns its exit status and its stdout (caller frees). */
static int sh(char **ret_out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int sh(char **ret_out, const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	FILE *p = popen(cmd, "re");
	ck_assert_ptr_nonnull(p);
	char *buf = NULL;
	size_t cap = 0;
	ssize_t n = getdelim(&buf, &cap, '\0', p);
	if (n < 0) {
		free(buf);
		buf = strdup("");
	}
	int st = pclose(p);
	if (ret_out)
		*ret_out = buf;
	else
		free(buf);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void write_file(const char *path, const char *s)
{
	FILE *f = fopen(path, "we");
	ck_assert_ptr_nonnull(f);
	fputs(s, f);
	ck_assert_int_eq(fclose(f), 0);
}

static long jq_count(const char *file, const char *filter)
{
	char *out;
	int st = sh(&out, "jq -s '%s' '%s'", filter, file);
	ck_assert_msg(st == 0, "jq -s '%s' %s failed", filter, file);
	long n = strtol(out, NULL, 10);
	free(out);
	return n;
}

/* ---- events: history, --task, --json ---- */

START_TEST(test_events_history_task_json)
{
	uint64_t a = run_trace_task("2", "3", "0");
	uint64_t b = run_trace_task("1", "1", "0");
	char ta[24];
	snprintf(ta, sizeof ta, "%" PRIu64, a);

	/* human-readable: one line per event, this task's only */
	char *out = NULL, *err = NULL;
	ck_assert_int_eq(gortctl(&D, &out, &err, "events", "--task", ta), 0);
	char want[64];
	snprintf(want, sizeof want, "task %" PRIu64 " ", a);
	int lines = 0;
	for (char *l = strtok(out, "\n"); l; l = strtok(NULL, "\n")) {
		if (strstr(l, "events dropped"))
			continue;
		ck_assert_msg(strstr(l, want) != NULL, "a line of another task: %s", l);
		lines++;
	}
	ck_assert_int_gt(lines, 10);
	free(out);
	free(err);
	ck_assert_int_eq(gortctl(&D, &out, NULL, "events", "--task", ta), 0);
	ck_assert_msg(strstr(out, "task_trace.so starts"), "%s", out);
	ck_assert_msg(strstr(out, "created by G1: trace_worker"), "%s", out);
	ck_assert_msg(strstr(out, "stops: parked (chan "), "%s", out);
	ck_assert_msg(strstr(out, "unblocked by G"), "%s", out);
	ck_assert_msg(strstr(out, "task_trace.so exited, code 0"), "%s", out);
	free(out);

	/* --json: one object per line, every one this task's */
	char path[160];
	snprintf(path, sizeof path, "%s/events.json", D.dir);
	ck_assert_int_eq(gortctl(&D, &out, NULL, "--json", "events", "--task", ta), 0);
	write_file(path, out);
	free(out);
	char filter[160];
	snprintf(filter, sizeof filter, "[.[] | select(.task != %" PRIu64 " and .kind != \"dropped\")] | length", a);
	ck_assert_int_eq(jq_count(path, filter), 0);
	/* main and two workers, named; every transfer on the unbuffered channel
	 * parks one side and unblocks it */
	ck_assert_int_eq(jq_count(path, "[.[] | select(.kind == \"go-create\")] | length"), 3);
	ck_assert_int_eq(jq_count(path, "[.[] | select(.kind == \"go-create\" and .entry == \"trace_worker\")] | length"), 2);
	ck_assert_int_eq(jq_count(path, "[.[] | select(.kind == \"go-create\" and .entry == \"gort_main\")] | length"), 1);
	ck_assert_int_eq(jq_count(path, "[.[] | select(.kind == \"go-end\")] | length"), 3);
	ck_assert_int_ge(jq_count(path, "[.[] | select(.kind == \"go-unblock\" and .by > 0)] | length"), 6);
	ck_assert_int_ge(jq_count(path, "[.[] | select(.kind == \"go-stop\" and .reason == \"parked\" and "
					"(.wait == \"chan receive\" or .wait == \"chan send\"))] | length"),
			 6);
	ck_assert_int_eq(jq_count(path, "[.[] | select(.kind == \"task-exit\" and .status == \"exited\" and "
					".code == 0 and .name == \"task_trace.so\")] | length"),
			 1);
	/* each worker: created, started, ..., ended, in time order */
	ck_assert_int_eq(jq_count(path, "[group_by(.goid)[] | select(.[0].goid > 0) | "
					"select(.[0].kind != \"go-create\" or .[-1].kind != \"go-end\" or "
					"(map(.time_ns) != (map(.time_ns) | sort)))] | length"),
			 0);

	/* without --task: both tasks, and the Ps */
	ck_assert_int_eq(gortctl(&D, &out, NULL, "--json", "events"), 0);
	write_file(path, out);
	free(out);
	snprintf(filter, sizeof filter, "[.[] | select(.task == %" PRIu64 ")] | length", b);
	ck_assert_int_gt(jq_count(path, filter), 0);
	ck_assert_int_gt(jq_count(path, "[.[] | select(.kind == \"proc-start\")] | length"), 0);
}
END_TEST

/* ---- events --follow ---- */

static pid_t spawn_gortctl(const char *outpath, const char *const *args)
{
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		const char *argv[16] = { GORTCTL, "--socket", D.sock };
		int n = 3;
		for (const char *const *a = args; *a && n < 15; a++)
			argv[n++] = *a;
		argv[n] = NULL;
		int fd = open(outpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		dup2(null, 0);
		dup2(fd, 1);
		execv(argv[0], (char **)argv);
		_exit(127);
	}
	return pid;
}

static bool file_has(const char *path, const char *s)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	char *buf = NULL;
	size_t cap = 0;
	ssize_t n = getdelim(&buf, &cap, '\0', f);
	fclose(f);
	bool yes = n > 0 && strstr(buf, s);
	free(buf);
	return yes;
}

static int wait_exit(pid_t pid, int64_t ns)
{
	int64_t deadline = mono_ns() + ns;
	int st;
	while (waitpid(pid, &st, WNOHANG) != pid) {
		if (mono_ns() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			ck_abort_msg("gortctl did not exit");
		}
		sleep_ms(10);
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
}

START_TEST(test_events_follow)
{
	char path[160];
	snprintf(path, sizeof path, "%s/follow.out", D.dir);
	/* everything, as it happens; then a task runs */
	pid_t f = spawn_gortctl(path, (const char *const[]){ "--json", "events", "--follow", NULL });
	/* the follower is in: its stream counts in stats */
	struct gortclient *c = client(&D);
	int64_t deadline = mono_ns() + 30LL * 1000000000 * SLOWDOWN;
	for (;;) {
		Gort__V1__Reply *st = stats_of(c);
		ck_assert_ptr_nonnull(st->stats->trace);
		ck_assert_uint_eq(st->stats->trace->history, 65536);
		ck_assert_int_ge(st->stats->trace->listeners, 1);
		bool in = st->stats->trace->streams == 1;
		gort__v1__reply__free_unpacked(st, NULL);
		if (in)
			break;
		ck_assert(mono_ns() < deadline);
		sleep_ms(10);
	}
	gortclient_free(c);
	uint64_t id = run_trace_task("1", "3", "100");
	char want[96];
	snprintf(want, sizeof want, "\"kind\":\"task-exit\",\"task\":%" PRIu64, id);
	deadline = mono_ns() + 30LL * 1000000000 * SLOWDOWN;
	while (!file_has(path, want)) {
		ck_assert_msg(mono_ns() < deadline, "the follower never saw task %" PRIu64 " exit", id);
		sleep_ms(20);
	}
	ck_assert(file_has(path, "\"kind\":\"go-unblock\""));
	/* Ctrl-C ends it, successfully */
	kill(f, SIGINT);
	ck_assert_int_eq(wait_exit(f, 30LL * 1000000000), 0);
	char *out;
	ck_assert_int_eq(sh(&out, "jq -c . '%s' >/dev/null && echo ok", path), 0);
	ck_assert_str_eq(out, "ok\n");
	free(out);

	/* a follower of one task, and the daemon going away ends it */
	char ids[24];
	snprintf(ids, sizeof ids, "%" PRIu64, id);
	f = spawn_gortctl(path, (const char *const[]){ "events", "--follow", "--task", ids, NULL });
	deadline = mono_ns() + 30LL * 1000000000 * SLOWDOWN;
	while (!file_has(path, "exited, code 0")) {
		if (mono_ns() >= deadline) {
			/* what the follower did, for a failure seen once under load */
			int st = 0;
			pid_t w = waitpid(f, &st, WNOHANG);
			char *out = NULL;
			sh(&out, "head -c 2000 '%s'", path);
			ck_abort_msg("the follower did not print the retained events of task %s (%s %d); it printed: %s",
				     ids, w == f ? "it exited, status" : "still running, waitpid", w == f ? st : w, out);
		}
		sleep_ms(20);
	}
	ck_assert_int_eq(daemon_stop(&D), 0);
	ck_assert_int_eq(wait_exit(f, 30LL * 1000000000), 0);
}
END_TEST

/* ---- trace ---- */

START_TEST(test_trace_file)
{
	char path[160], dump[160];
	snprintf(path, sizeof path, "%s/trace.json", D.dir);
	snprintf(dump, sizeof dump, "%s/slices.txt", D.dir);
	pid_t t = spawn_gortctl(dump, (const char *const[]){ "trace", "--duration", "3", "-o", path, NULL });
	/* the recording takes what happens from now on */
	struct gortclient *c = client(&D);
	int64_t deadline = mono_ns() + 30LL * 1000000000 * SLOWDOWN;
	for (;;) {
		Gort__V1__Reply *st = stats_of(c);
		bool in = st->stats->trace->streams == 1;
		gort__v1__reply__free_unpacked(st, NULL);
		if (in)
			break;
		ck_assert(mono_ns() < deadline);
		sleep_ms(10);
	}
	gortclient_free(c);
	uint64_t id = run_trace_task("3", "4", "20");
	ck_assert_int_eq(wait_exit(t, 60LL * 1000000000 * SLOWDOWN), 0);

	/* it parses */
	char *out;
	ck_assert_int_eq(sh(&out, "jq -e '.traceEvents | length > 0' '%s'", path), 0);
	free(out);
	/* named tracks: the Ps and Ms processes, a P track */
	ck_assert_int_ge(jq_count(path, ".[0].traceEvents | map(select(.ph == \"M\" and .name == \"process_name\")) | length"), 4);
	ck_assert_int_ge(jq_count(path, ".[0].traceEvents | map(select(.ph == \"M\" and .name == \"thread_name\" and "
					".pid == 1 and (.args.name | startswith(\"P\")))) | length"),
			 1);
	/* goroutine slices of the workers, unblocks, the task's span */
	ck_assert_int_ge(jq_count(path, ".[0].traceEvents | map(select(.ph == \"B\" and (.name | endswith(\"trace_worker\")))) | length"), 3);
	ck_assert_int_ge(jq_count(path, ".[0].traceEvents | map(select(.ph == \"i\" and .name == \"unblock\")) | length"), 12);
	char filter[256];
	snprintf(filter, sizeof filter,
		 ".[0].traceEvents | map(select(.ph == \"X\" and .pid == 3 and .tid == %" PRIu64
		 " and .args.status == \"exited\" and .dur > 0)) | length",
		 id);
	ck_assert_int_eq(jq_count(path, filter), 1);
	/* every timestamp in µs, never negative */
	ck_assert_int_eq(jq_count(path, ".[0].traceEvents | map(select(.ts != null and .ts < 0)) | length"), 0);

	/* B/E slices nest per track: each E closes the B open on its track, in time order */
	ck_assert_int_eq(sh(NULL, "jq -r '.traceEvents[] | select(.ph == \"B\" or .ph == \"E\") | "
				  "\"\\(.pid) \\(.tid) \\(.ph) \\(.ts)\"' '%s' > '%s'",
			    path, dump),
			 0);
	FILE *f = fopen(dump, "re");
	ck_assert_ptr_nonnull(f);
	struct { int pid, tid, depth; double last; } tracks[64];
	int ntracks = 0, slices = 0;
	int pid, tid;
	char ph;
	double ts;
	while (fscanf(f, "%d %d %c %lf", &pid, &tid, &ph, &ts) == 4) {
		int k;
		for (k = 0; k < ntracks; k++)
			if (tracks[k].pid == pid && tracks[k].tid == tid)
				break;
		if (k == ntracks) {
			ck_assert_int_lt(ntracks, 64);
			tracks[ntracks++] = (typeof(tracks[0])){ pid, tid, 0, -1 };
		}
		ck_assert_msg(ts >= tracks[k].last, "track %d/%d goes back in time at %f", pid, tid, ts);
		tracks[k].last = ts;
		if (ph == 'B') {
			tracks[k].depth++;
			slices++;
		} else {
			ck_assert_msg(tracks[k].depth > 0, "track %d/%d: an E without its B at %f", pid, tid, ts);
			tracks[k].depth--;
		}
	}
	fclose(f);
	for (int k = 0; k < ntracks; k++)
		ck_assert_msg(tracks[k].depth == 0, "track %d/%d: a slice never ends", tracks[k].pid, tracks[k].tid);
	ck_assert_int_ge(slices, 3 * 4);
}
END_TEST

/* ---- bad input ---- */

static int events_call(struct gortclient *c, uint64_t task, bool follow, uint64_t ms, bool live)
{
	Gort__V1__EventsRequest er = GORT__V1__EVENTS_REQUEST__INIT;
	er.task_id = task;
	er.follow = follow;
	er.duration_ms = ms;
	er.live_only = live;
	Gort__V1__Request req = GORT__V1__REQUEST__INIT;
	req.body_case = GORT__V1__REQUEST__BODY_EVENTS;
	req.events = &er;
	Gort__V1__Reply *reply = NULL;
	int r = call(c, &req, &reply);
	if (reply)
		gort__v1__reply__free_unpacked(reply, NULL);
	return r;
}

/* Opens a live stream (follow, live_only) of ms without waiting for a reply;
 * returns its request id. */
static int64_t stream_open(struct gortclient *c, uint64_t ms)
{
	Gort__V1__EventsRequest er = GORT__V1__EVENTS_REQUEST__INIT;
	er.follow = true;
	er.live_only = true;
	er.duration_ms = ms;
	Gort__V1__Request req = GORT__V1__REQUEST__INIT;
	req.body_case = GORT__V1__REQUEST__BODY_EVENTS;
	req.events = &er;
	int64_t id = gortclient_send(c, &req, NULL, 0);
	ck_assert_int_gt(id, 0);
	return id;
}

START_TEST(test_bad_input)
{
	struct gortclient *c = client(&D);
	ck_assert_int_eq(events_call(c, 0, false, 1000, false), -EINVAL);
	ck_assert_msg(strstr(gortclient_error(c), "needs follow"), "%s", gortclient_error(c));
	ck_assert_int_eq(events_call(c, 0, false, 0, true), -EINVAL);
	ck_assert_int_eq(events_call(c, 0, true, 3600u * 1000u + 1, false), -EINVAL);
	ck_assert_msg(strstr(gortclient_error(c), "longer than an hour"), "%s", gortclient_error(c));
	ck_assert_int_eq(events_call(c, 999999, false, 0, false), -ENOENT);
	ck_assert_msg(strstr(gortclient_error(c), "no task 999999"), "%s", gortclient_error(c));
	ck_assert_int_eq(events_call(c, UINT64_MAX, true, 0, false), -ENOENT);
	/* the daemon still serves, on this connection and others */
	ck_assert_int_eq(events_call(c, 0, false, 0, false), 0);
	Gort__V1__Reply *st = stats_of(c);
	gort__v1__reply__free_unpacked(st, NULL);
	gortclient_free(c);

	/* gortctl's own checks: usage errors exit 2, a daemon's refusal 1 */
	char *err = NULL;
	ck_assert_int_eq(gortctl(&D, NULL, &err, "events", "--task", "0"), 2);
	free(err);
	ck_assert_int_eq(gortctl(&D, NULL, &err, "events", "--task"), 2);
	free(err);
	ck_assert_int_eq(gortctl(&D, NULL, &err, "events", "--bogus"), 2);
	ck_assert_msg(strstr(err, "unknown argument"), "%s", err);
	free(err);
	ck_assert_int_eq(gortctl(&D, NULL, &err, "events", "--task", "424242"), 1);
	ck_assert_msg(strstr(err, "no task 424242"), "%s", err);
	free(err);
	ck_assert_int_eq(gortctl(&D, NULL, &err, "trace", "--duration", "1"), 2);
	free(err);
	ck_assert_int_eq(gortctl(&D, NULL, &err, "trace", "-o", "x.json"), 2);
	free(err);
	ck_assert_int_eq(gortctl(&D, NULL, &err, "trace", "--duration", "-1", "-o", "x.json"), 2);
	free(err);
	ck_assert_int_eq(gortctl(&D, NULL, &err, "trace", "--duration", "7200", "-o", "x.json"), 2);
	free(err);
	ck_assert_int_eq(gortctl(&D, NULL, &err, "trace", "--duration", "1", "-o", "/nonexistent/dir/t.json"), 1);
	ck_assert_msg(strstr(err, "/nonexistent/dir/t.json"), "%s", err);
	free(err);
	c = client(&D);
	st = stats_of(c);
	ck_assert_uint_eq(st->stats->trace->streams, 0);
	gort__v1__reply__free_unpacked(st, NULL);
	gortclient_free(c);
}
END_TEST

/* ---- a daemon that keeps no history ---- */

START_TEST(test_no_history)
{
	struct daemon d2;
	char *env[] = { (char *)"GORTD_EVENT_HISTORY=0", NULL };
	daemon_start_env(&d2, env, NULL);
	struct gortclient *c = client(&d2);
	Gort__V1__Reply *st = stats_of(c);
	ck_assert_uint_eq(st->stats->trace->history, 0);
	ck_assert_int_eq(st->stats->trace->listeners, 0); /* the scheduler writes nothing */
	gort__v1__reply__free_unpacked(st, NULL);
	/* the retained events: none, and it says so */
	ck_assert_int_eq(events_call(c, 0, false, 0, false), -ENODEV);
	ck_assert_msg(strstr(gortclient_error(c), "GORTD_EVENT_HISTORY=0"), "%s", gortclient_error(c));
	/* a stream still works: events are on while it lasts */
	int64_t id = stream_open(c, 300);
	struct gortclient *c2 = client(&d2);
	st = stats_of(c2);
	ck_assert_uint_eq(st->stats->trace->history, 65536);
	gort__v1__reply__free_unpacked(st, NULL);
	for (bool end = false; !end;) {
		Gort__V1__Reply *reply = NULL;
		assert_ok(gortclient_recv_id(c, (uint64_t)id, &reply));
		ck_assert_int_eq(reply->body_case, GORT__V1__REPLY__BODY_EVENTS);
		end = reply->events->end;
		gort__v1__reply__free_unpacked(reply, NULL);
	}
	/* the stream is over: back to writing nothing */
	int64_t deadline = mono_ns() + 30LL * 1000000000;
	for (;;) {
		st = stats_of(c2);
		bool off = st->stats->trace->listeners == 0 && st->stats->trace->history == 0;
		gort__v1__reply__free_unpacked(st, NULL);
		if (off)
			break;
		ck_assert(mono_ns() < deadline);
		sleep_ms(10);
	}
	gortclient_free(c);
	gortclient_free(c2);
	daemon_cleanup(&d2);
}
END_TEST

/* ---- the default detail: task events always, goroutine events while a stream is open ---- */

/* trace.listeners of d's stats reaches want (at least 1) or 0 (exactly) within 30 s */
static void wait_listeners(struct gortclient *c, bool some)
{
	int64_t deadline = mono_ns() + 30LL * 1000000000 * SLOWDOWN;
	for (;;) {
		Gort__V1__Reply *st = stats_of(c);
		int32_t n = st->stats->trace->listeners;
		gort__v1__reply__free_unpacked(st, NULL);
		if (some ? n >= 1 : n == 0)
			return;
		ck_assert_msg(mono_ns() < deadline, "trace listeners stayed %d", n);
		sleep_ms(10);
	}
}

START_TEST(test_default_detail)
{
	struct daemon d2;
	daemon_start(&d2);
	struct gortclient *c = client(&d2);
	Gort__V1__Reply *st = stats_of(c);
	ck_assert_uint_eq(st->stats->trace->history, 65536);
	gort__v1__reply__free_unpacked(st, NULL);
	/* nobody streams: the scheduler's hooks are off, task events are kept */
	wait_listeners(c, false);
	char *out = NULL, *err = NULL;
	int code = gortctl(&d2, &out, &err, "submit", "--wait", TTASK, "--", "2", "3", "0");
	ck_assert_msg(code == 0, "submit: %d %s", code, err);
	free(out);
	free(err);
	ck_assert_int_eq(gortctl(&d2, &out, NULL, "events"), 0);
	ck_assert_msg(strstr(out, "task_trace.so starts") && strstr(out, "task_trace.so exited, code 0"), "%s", out);
	ck_assert_msg(!strstr(out, "created by") && !strstr(out, "unblocked by"), "goroutine events: %s", out);
	free(out);

	/* a stream is open: goroutine events are written, and it sees them */
	int64_t id = stream_open(c, 60u * 1000u);
	struct gortclient *c2 = client(&d2);
	wait_listeners(c2, true);
	code = gortctl(&d2, NULL, &err, "submit", "--wait", TTASK, "--", "2", "3", "0");
	ck_assert_msg(code == 0, "submit: %d %s", code, err);
	free(err);
	bool creates = false, exited = false;
	while (!(creates && exited)) {
		Gort__V1__Reply *reply = NULL;
		assert_ok(gortclient_recv_id(c, (uint64_t)id, &reply));
		ck_assert_int_eq(reply->body_case, GORT__V1__REPLY__BODY_EVENTS);
		ck_assert_msg(!reply->events->end, "the stream ended before the task's events came");
		for (size_t i = 0; i < reply->events->n_events; i++) {
			creates |= reply->events->events[i]->kind == GORT_EV_GO_CREATE;
			exited |= reply->events->events[i]->kind == GORT_EV_TASK_EXIT;
		}
		gort__v1__reply__free_unpacked(reply, NULL);
	}
	/* the stream's connection goes: the hooks are off again */
	gortclient_free(c);
	wait_listeners(c2, false);
	gortclient_free(c2);
	daemon_cleanup(&d2);
}
END_TEST

static Suite *events_suite(void)
{
	Suite *s = suite_create("daemon-events");
	TCase *tc = tcase_create("events");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120 * SLOWDOWN);
	tcase_add_test(tc, test_events_history_task_json);
	tcase_add_test(tc, test_default_detail);
	tcase_add_test(tc, test_events_follow);
	tcase_add_test(tc, test_trace_file);
	tcase_add_test(tc, test_bad_input);
	tcase_add_test(tc, test_no_history);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	return test_main(events_suite());
}
