/* tests/test-daemon-views.c: gortctl ps, stats (per task), top and the Prometheus output against a real gortd. */
#include <ctype.h>
#include <math.h>
#include <regex.h>

#include "daemonlib.h"
#include "proto/wire.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define VTASK BUILD_DIR "/tests/fixtures/views_task.so"

static struct daemon D;

static void setup(void)
{
	daemon_start(&D);
}

static void teardown(void)
{
	daemon_cleanup(&D);
}

static Gort__V1__Reply *ps_of(struct gortclient *c, uint64_t task)
{
	Gort__V1__PsRequest pr = GORT__V1__PS_REQUEST__INIT;
	pr.task_id = task;
	Gort__V1__Request req = GORT__V1__REQUEST__INIT;
	req.body_case = GORT__V1__REQUEST__BODY_PS;
	req.ps = &pr;
	Gort__V1__Reply *reply = NULL;
	int r = call(c, &req, &reply);
	ck_assert_msg(r == 0, "ps: %s", gortclient_error(c));
	ck_assert_int_eq(reply->body_case, GORT__V1__REPLY__BODY_PS);
	return reply;
}

static const Gort__V1__GoroutineInfo *find_entry(const Gort__V1__PsReply *ps, const char *entry)
{
	for (size_t i = 0; i < ps->n_goroutines; i++)
		if (strcmp(ps->goroutines[i]->entry, entry) == 0)
			return ps->goroutines[i];
	return NULL;
}

static void kill_task(struct gortclient *c, uint64_t id)
{
	Gort__V1__KillRequest k = GORT__V1__KILL_REQUEST__INIT;
	k.task_id = id;
	Gort__V1__Request req = GORT__V1__REQUEST__INIT;
	req.body_case = GORT__V1__REQUEST__BODY_KILL;
	req.kill = &k;
	Gort__V1__Reply *reply = NULL;
	assert_ok(call(c, &req, &reply));
	gort__v1__reply__free_unpacked(reply, NULL);
	Gort__V1__WaitRequest w = GORT__V1__WAIT_REQUEST__INIT;
	w.task_id = id;
	req.body_case = GORT__V1__REQUEST__BODY_WAIT;
	req.wait = &w;
	assert_ok(call(c, &req, &reply));
	gort__v1__reply__free_unpacked(reply, NULL);
}

/* The parked goroutines of views_task and what ps must say of each. */
static const struct {
	const char *entry, *state, *reason;
} parked[] = {
	{ "views_chan_send", "waiting", "chan send" },
	{ "views_chan_recv", "waiting", "chan receive" },
	{ "views_select", "waiting", "select" },
	{ "views_select_none", "waiting", "select (no cases)" },
	{ "views_sleep", "waiting", "sleep" },
	{ "views_static_sleep", "waiting", "sleep" },
	{ "views_mutex", "waiting", "mutex" },
	{ "views_waitgroup", "waiting", "waitgroup" },
	{ "views_io_read", "waiting", "io read" },
	{ "views_syscall", "syscall", "" },
	{ "gort_main", "waiting", "chan receive" },
};

/* Polls ps until every parked goroutine shows its state (the syscall one
 * leaves its section for a moment every 100 ms), and with spinners until one
 * of them is seen running and one runnable. Returns the last reply. */
static Gort__V1__Reply *ps_until_settled(struct gortclient *c, uint64_t task, bool spinners)
{
	int64_t deadline = mono_ns() + 60 * 1000000000LL;
	for (;;) {
		Gort__V1__Reply *reply = ps_of(c, task);
		const Gort__V1__PsReply *ps = reply->ps;
		bool ok = true;
		char why[256] = "";
		for (size_t i = 0; i < ARRAY_SIZE(parked) && ok; i++) {
			const Gort__V1__GoroutineInfo *g = find_entry(ps, parked[i].entry);
			ok = g && strcmp(g->state, parked[i].state) == 0 && strcmp(g->wait_reason, parked[i].reason) == 0;
			if (!ok)
				snprintf(why, sizeof why, "%s: %s [%s]", parked[i].entry, g ? g->state : "absent",
					 g ? g->wait_reason : "");
		}
		if (ok && spinners) {
			bool running = false, runnable = false;
			for (size_t i = 0; i < ps->n_goroutines; i++) {
				const Gort__V1__GoroutineInfo *g = ps->goroutines[i];
				if (strcmp(g->entry, "views_spin") != 0)
					continue;
				running |= strcmp(g->state, "running") == 0;
				runnable |= strcmp(g->state, "runnable") == 0;
			}
			ok = running && runnable;
			snprintf(why, sizeof why, "spinners: running %d runnable %d", running, runnable);
		}
		if (ok)
			return reply;
		ck_assert_msg(mono_ns() < deadline, "ps never showed every goroutine as expected: %s", why);
		gort__v1__reply__free_unpacked(reply, NULL);
		sleep_ms(20);
	}
}

/* The main goroutine's id, from the task's "ready GOID" line. */
static int64_t ready_goid(uint64_t task)
{
	char ids[24];
	snprintf(ids, sizeof ids, "%llu", (unsigned long long)task);
	int64_t deadline = mono_ns() + 60 * 1000000000LL;
	for (;;) {
		char *out;
		ck_assert_int_eq(gortctl(&D, &out, NULL, "logs", ids), 0);
		char *r = strstr(out, "ready ");
		if (r) {
			int64_t goid = strtoll(r + 6, NULL, 10);
			free(out);
			return goid;
		}
		free(out);
		ck_assert_msg(mono_ns() < deadline, "task %s never said ready", ids);
		sleep_ms(20);
	}
}

START_TEST(test_ps_wait_reasons)
{
	struct gortclient *c = client(&D);
	/* 3 spinners on 2 Ps: at any time some run and one waits for a P */
	char *argv[] = { "3" };
	uint64_t id = submit_task(c, VTASK, 1, argv);
	/* another task, which ps TASK must leave out */
	char *argv2[] = { "0" };
	uint64_t other = submit_task(c, VTASK, 1, argv2);
	int64_t main_goid = ready_goid(id);
	ready_goid(other);

	Gort__V1__Reply *reply = ps_until_settled(c, id, true);
	const Gort__V1__PsReply *ps = reply->ps;
	ck_assert_uint_eq(ps->total, ps->n_goroutines);
	ck_assert(!ps->truncated);
	for (size_t i = 0; i < ps->n_goroutines; i++) {
		const Gort__V1__GoroutineInfo *g = ps->goroutines[i];
		ck_assert_msg(g->task_id == id, "goroutine %lld of task %llu in ps %llu", (long long)g->goid,
			      (unsigned long long)g->task_id, (unsigned long long)id);
		/* created by: main created every other one */
		if (g->goid != main_goid)
			ck_assert_int_eq(g->parent_goid, main_goid);
		ck_assert_int_ge(g->state_ns, 0);
		if (strcmp(g->state, "running") == 0) {
			ck_assert_msg(g->m >= 0 && g->p >= 0 && g->p < 2, "running on M%lld P%d", (long long)g->m, g->p);
		} else if (strcmp(g->state, "syscall") == 0) {
			ck_assert_msg(g->m >= 0 && g->p == -1, "syscall on M%lld P%d", (long long)g->m, g->p);
		} else {
			ck_assert_msg(g->m == -1 && g->p == -1, "%s %s on M%lld P%d", g->entry, g->state, (long long)g->m,
				      g->p);
		}
		if (strcmp(g->state, "waiting") == 0)
			ck_assert_int_eq(g->wait_ns, g->state_ns);
		else
			ck_assert_str_eq(g->wait_reason, "");
	}
	ck_assert_int_eq(find_entry(ps, "gort_main")->goid, main_goid);
	int64_t sleep_goid = find_entry(ps, "views_sleep")->goid;
	int64_t first = find_entry(ps, "views_sleep")->state_ns;
	gort__v1__reply__free_unpacked(reply, NULL);

	/* how long in that state grows with time (the coarse clock: a tick or so) */
	sleep_ms(300);
	reply = ps_of(c, id);
	const Gort__V1__GoroutineInfo *g = find_entry(reply->ps, "views_sleep");
	ck_assert_int_eq(g->goid, sleep_goid);
	ck_assert_msg(g->state_ns >= first + 250 * 1000000LL, "sleeping for %lld ns, then %lld ns 300 ms later",
		      (long long)first, (long long)g->state_ns);
	gort__v1__reply__free_unpacked(reply, NULL);

	/* every task: both tasks' goroutines */
	reply = ps_of(c, 0);
	bool saw_other = false;
	for (size_t i = 0; i < reply->ps->n_goroutines; i++)
		saw_other |= reply->ps->goroutines[i]->task_id == other;
	ck_assert(saw_other);
	gort__v1__reply__free_unpacked(reply, NULL);

	/* gortctl ps TASK: the table */
	char ids[24], *out, *err;
	snprintf(ids, sizeof ids, "%llu", (unsigned long long)id);
	ck_assert_int_eq(gortctl(&D, &out, &err, "ps", ids), 0);
	ck_assert_msg(strstr(out, "GOID") && strstr(out, "WAIT") && strstr(out, "FOR") && strstr(out, "PARENT") &&
			      strstr(out, "ENTRY"),
		      "%s", out);
	for (size_t i = 0; i < ARRAY_SIZE(parked); i++)
		ck_assert_msg(strstr(out, parked[i].entry), "no %s in:\n%s", parked[i].entry, out);
	ck_assert_msg(strstr(out, "select (no cases)") && strstr(out, "chan send") && strstr(out, "waitgroup") &&
			      strstr(out, "io read") && strstr(out, "syscall"),
		      "%s", out);
	free(out);
	free(err);
	/* and as JSON */
	ck_assert_int_eq(gortctl(&D, &out, &err, "--json", "ps", ids), 0);
	ck_assert_msg(strstr(out, "\"wait_reason\":\"select (no cases)\"") && strstr(out, "\"state_ns\":"), "%s", out);
	free(out);
	free(err);

	kill_task(c, id);
	kill_task(c, other);
	gortclient_free(c);
}
END_TEST

/* The io wait reason on the fallback path (no io_uring), in its own gortd. */
START_TEST(test_ps_io_wait_fallback)
{
	struct daemon d2;
	char *env[] = { "GORT_NO_URING=1", NULL };
	daemon_start_env(&d2, env, NULL);
	struct gortclient *c = client(&d2);
	Gort__V1__Reply *st = stats_of(c);
	ck_assert_str_eq(st->stats->io->mode, "epoll");
	gort__v1__reply__free_unpacked(st, NULL);
	char *argv[] = { "0" };
	uint64_t id = submit_task(c, VTASK, 1, argv);
	Gort__V1__Reply *reply = ps_until_settled(c, id, false);
	const Gort__V1__GoroutineInfo *g = find_entry(reply->ps, "views_io_read");
	ck_assert_str_eq(g->wait_reason, "io read");
	gort__v1__reply__free_unpacked(reply, NULL);
	kill_task(c, id);
	gortclient_free(c);
	daemon_cleanup(&d2);
}
END_TEST

static const Gort__V1__TaskInfo *stats_task(const Gort__V1__StatsReply *st, uint64_t id)
{
	for (size_t i = 0; i < st->n_tasks; i++)
		if (st->tasks[i]->id == id)
			return st->tasks[i];
	ck_abort_msg("task %llu not in stats", (unsigned long long)id);
	return NULL;
}

static void wait_task(struct gortclient *c, uint64_t id)
{
	Gort__V1__WaitRequest w = GORT__V1__WAIT_REQUEST__INIT;
	w.task_id = id;
	Gort__V1__Request req = GORT__V1__REQUEST__INIT;
	req.body_case = GORT__V1__REQUEST__BODY_WAIT;
	req.wait = &w;
	Gort__V1__Reply *reply = NULL;
	assert_ok(call(c, &req, &reply));
	gort__v1__reply__free_unpacked(reply, NULL);
}

/* CPU time the kernel has charged process pid (all its threads), in ns. */
static int64_t proc_cpu_ns(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "re");
	ck_assert_ptr_nonnull(f);
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* fields after the command's closing parenthesis: state is field 3,
	 * utime 14, stime 15 */
	char *p = strrchr(buf, ')');
	ck_assert_ptr_nonnull(p);
	unsigned long long ut = 0, st = 0;
	ck_assert_int_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st), 2);
	return (int64_t)((ut + st) * (1000000000ULL / (unsigned long long)sysconf(_SC_CLK_TCK)));
}

START_TEST(test_stats_per_task)
{
	struct gortclient *c = client(&D);
	/* io: 4 goroutines x 50 writes, plus an open and a close each */
	char *io[] = { "io", "50", "4" };
	uint64_t ioid = submit_task(c, VTASK, 3, io);
	wait_task(c, ioid);
	char *pan[] = { "panic" };
	uint64_t panid = submit_task(c, VTASK, 1, pan);
	wait_task(c, panid);
	char *spin[] = { "1" };
	uint64_t spinid = submit_task(c, VTASK, 1, spin);
	ready_goid(spinid);

	Gort__V1__Reply *reply = ps_until_settled(c, spinid, false);
	gort__v1__reply__free_unpacked(reply, NULL);
	sleep_ms(500);
	reply = stats_of(c);
	const Gort__V1__StatsReply *st = reply->stats;

	const Gort__V1__TaskInfo *t = stats_task(st, ioid);
	ck_assert_str_eq(t->state, "exited");
	ck_assert_uint_eq(t->goroutines_created, 5);
	ck_assert_uint_eq(t->goroutines_ended, 5);
	ck_assert_int_eq(t->goroutines, 0);
	ck_assert_msg(t->io_requests == 4 * 52, "io requests %llu", (unsigned long long)t->io_requests);
	ck_assert_uint_eq(t->panics, 0);
	/* every goroutine ran at least one slice (parks of the wait group, exits) */
	ck_assert_uint_ge(t->switches, 5);
	ck_assert_int_ge(t->cpu_ns, 0);

	t = stats_task(st, panid);
	ck_assert_str_eq(t->state, "panicked");
	ck_assert_uint_eq(t->panics, 1);

	/* the spinner's task: CPU time grows, bounded by 2 Ps x its wall time */
	t = stats_task(st, spinid);
	ck_assert_str_eq(t->state, "running");
	ck_assert_ptr_nonnull(t->states);
	/* 9 parked + main waiting; the syscall one and the spinner not */
	ck_assert_uint_eq(t->states->waiting, 10);
	ck_assert_uint_eq(t->states->syscall + t->states->running + t->states->runnable, 2);
	ck_assert_uint_eq(t->goroutines_created, 12);
	ck_assert_uint_eq(t->goroutines_ended, 0);
	ck_assert_msg(t->cpu_ns > 0 && t->cpu_ns <= 2 * t->runtime_ns + 50000000, "cpu %lld ns in %lld ns",
		      (long long)t->cpu_ns, (long long)t->runtime_ns);
	int64_t cpu1 = t->cpu_ns;
	ck_assert_uint_gt(t->switches, 0);
	/* every P and every M */
	ck_assert_uint_eq(st->n_procs, 2);
	for (size_t i = 0; i < st->n_procs; i++) {
		ck_assert_int_eq(st->procs[i]->id, (int)i);
		ck_assert_msg(strcmp(st->procs[i]->status, "idle") == 0 || strcmp(st->procs[i]->status, "running") == 0 ||
				      strcmp(st->procs[i]->status, "syscall") == 0,
			      "%s", st->procs[i]->status);
	}
	ck_assert_uint_ge(st->n_threads, 2);
	gort__v1__reply__free_unpacked(reply, NULL);

	int64_t deadline = mono_ns() + 60 * 1000000000LL;
	for (;;) {
		reply = stats_of(c);
		t = stats_task(reply->stats, spinid);
		bool grew = t->cpu_ns > cpu1;
		gort__v1__reply__free_unpacked(reply, NULL);
		if (grew)
			break;
		ck_assert_msg(mono_ns() < deadline, "the spinner's CPU time does not grow");
		sleep_ms(50);
	}

	/* against the kernel's account: over a second, the task's CPU time (its
	 * run slices) covers what gortd's threads used, most of which is the
	 * spinner's (a slice is wall time: it also counts time the kernel gave
	 * other processes), and stays within 2 Ps' worth */
	reply = stats_of(c);
	int64_t task0 = stats_task(reply->stats, spinid)->cpu_ns, proc0 = proc_cpu_ns(D.pid), wall0 = mono_ns();
	gort__v1__reply__free_unpacked(reply, NULL);
	sleep_ms(1000);
	reply = stats_of(c);
	int64_t task1 = stats_task(reply->stats, spinid)->cpu_ns, proc1 = proc_cpu_ns(D.pid), wall1 = mono_ns();
	gort__v1__reply__free_unpacked(reply, NULL);
	int64_t dtask = task1 - task0, dproc = proc1 - proc0, dwall = wall1 - wall0;
	ck_assert_msg(dtask >= dproc * 6 / 10 - 50000000 && dtask <= 2 * dwall + 50000000,
		      "task CPU +%lld ns, gortd's CPU +%lld ns, wall %lld ns", (long long)dtask, (long long)dproc,
		      (long long)dwall);

	/* gortctl stats: Go's schedtrace line, a line per P and M, the table */
	char *out, *err;
	ck_assert_int_eq(gortctl(&D, &out, &err, "stats"), 0);
	regex_t re;
	ck_assert_int_eq(regcomp(&re,
				 "^SCHED [0-9]+ms: gomaxprocs=2 idleprocs=[0-9]+ threads=[0-9]+ spinningthreads=[0-9]+ "
				 "idlethreads=[0-9]+ runqueue=[0-9]+ \\[[0-9]+ [0-9]+\\]$",
				 REG_EXTENDED | REG_NEWLINE | REG_NOSUB),
			 0);
	ck_assert_msg(regexec(&re, out, 0, NULL, 0) == 0, "no schedtrace line in:\n%s", out);
	regfree(&re);
	ck_assert_msg(strstr(out, "  P0: status=") && strstr(out, "  P1: status=") && strstr(out, "  M0: tid="), "%s", out);
	ck_assert_msg(strstr(out, "RUNNABLE") && strstr(out, "CPU") && strstr(out, "SWITCHES") && strstr(out, "PANICS"),
		      "%s", out);
	ck_assert_msg(strstr(out, "preempt: requested=") && strstr(out, "sysmon: rounds="), "%s", out);
	free(out);
	free(err);
	kill_task(c, spinid);
	gortclient_free(c);
}
END_TEST

/* ---- Prometheus text exposition format 0.0.4: a checker ---- */

/* messages quote the offending line, cut to fit */
#pragma GCC diagnostic ignored "-Wformat-truncation"

static bool prom_name_ok(const char *s, size_t n, bool label)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool ok = isalpha((unsigned char)c) || c == '_' || (!label && c == ':') || (i > 0 && isdigit((unsigned char)c));
		if (!ok)
			return false;
	}
	return true;
}

static bool prom_value_ok(const char *s)
{
	if (!strcmp(s, "+Inf") || !strcmp(s, "-Inf") || !strcmp(s, "NaN"))
		return true;
	char *end;
	errno = 0;
	strtod(s, &end);
	return end != s && *end == '\0' && errno == 0;
}

struct prom_metric {
	char name[128];
	bool help, type, samples;
	char type_str[16];
};

/* Checks text against the format, as a textfile collector would read it: every
 * line a comment or a sample; HELP and TYPE once per metric, before its
 * samples, and its samples in one block; counters end in _total; label values
 * escaped; no series twice. Returns NULL, or what is wrong (static buffer). */
static const char *prom_check(const char *text)
{
	static char why[512];
	struct prom_metric m[256];
	int nm = 0;
	char (*series)[512] = calloc(4096, sizeof(*series));
	int nseries = 0;
	const char *last_sample = "";
	int lineno = 0;
#define BAD(...)                                                                      \
	do {                                                                          \
		int o_ = snprintf(why, sizeof why, "line %d: ", lineno);             \
		snprintf(why + o_, sizeof why - (size_t)o_, __VA_ARGS__);             \
		free(series);                                                         \
		return why;                                                           \
	} while (0)
	for (const char *line = text; *line;) {
		const char *nl = strchr(line, '\n');
		if (!nl)
			BAD("no newline at the end");
		char buf[1024];
		size_t len = (size_t)(nl - line);
		lineno++;
		if (len >= sizeof buf)
			BAD("too long");
		memcpy(buf, line, len);
		buf[len] = '\0';
		line = nl + 1;
		if (len == 0)
			continue;
		if (buf[0] == '#') {
			char kind[8], name[128];
			int off = 0;
			if (sscanf(buf, "# %7s %127s %n", kind, name, &off) < 2)
				continue; /* a plain comment */
			bool help = !strcmp(kind, "HELP"), type = !strcmp(kind, "TYPE");
			if (!help && !type)
				continue;
			if (!prom_name_ok(name, strlen(name), false))
				BAD("bad metric name '%s'", name);
			int k;
			for (k = 0; k < nm && strcmp(m[k].name, name); k++)
				;
			if (k == nm) {
				if (nm == (int)ARRAY_SIZE(m))
					BAD("too many metrics");
				memset(&m[nm], 0, sizeof m[nm]);
				snprintf(m[nm].name, sizeof m[nm].name, "%s", name);
				nm++;
			}
			if (m[k].samples)
				BAD("%s %s after its samples", kind, name);
			if ((help && m[k].help) || (type && m[k].type))
				BAD("%s %s twice", kind, name);
			if (help) {
				m[k].help = true;
				if (!buf[off])
					BAD("empty HELP for %s", name);
				for (const char *p = buf + off; *p; p++)
					if (*p == '\\' && *++p != '\\' && *p != 'n')
						BAD("bad escape in HELP of %s", name);
			} else {
				const char *t = buf + off;
				if (strcmp(t, "counter") && strcmp(t, "gauge") && strcmp(t, "histogram") && strcmp(t, "summary") &&
				    strcmp(t, "untyped"))
					BAD("bad TYPE '%s'", t);
				m[k].type = true;
				snprintf(m[k].type_str, sizeof m[k].type_str, "%s", t);
				if (!strcmp(t, "counter") && (strlen(name) < 6 || strcmp(name + strlen(name) - 6, "_total")))
					BAD("counter %s does not end in _total", name);
			}
			continue;
		}
		/* a sample: name[{labels}] value */
		size_t n = strcspn(buf, "{ ");
		char name[128];
		if (n >= sizeof name || !prom_name_ok(buf, n, false))
			BAD("bad sample name in '%s'", buf);
		memcpy(name, buf, n);
		name[n] = '\0';
		int k;
		for (k = 0; k < nm && strcmp(m[k].name, name); k++)
			;
		if (k == nm || !m[k].help || !m[k].type)
			BAD("sample of %s without HELP and TYPE before it", name);
		if (m[k].samples && strcmp(last_sample, name))
			BAD("samples of %s are not in one block", name);
		m[k].samples = true;
		last_sample = m[k].name;
		const char *p = buf + n;
		char labels[16][64];
		int nl2 = 0;
		if (*p == '{') {
			p++;
			while (*p != '}') {
				size_t ln = strcspn(p, "=");
				if (!p[ln] || ln >= 64 || !prom_name_ok(p, ln, true))
					BAD("bad label name in '%s'", buf);
				if (nl2 == 16)
					BAD("too many labels");
				memcpy(labels[nl2], p, ln);
				labels[nl2][ln] = '\0';
				for (int j = 0; j < nl2; j++)
					if (!strcmp(labels[j], labels[nl2]))
						BAD("label %s twice", labels[nl2]);
				nl2++;
				p += ln + 1;
				if (*p++ != '"')
					BAD("label value not quoted in '%s'", buf);
				for (; *p != '"'; p++) {
					if (!*p)
						BAD("unterminated label value in '%s'", buf);
					if (*p == '\\') {
						p++;
						if (*p != '\\' && *p != '"' && *p != 'n')
							BAD("bad escape in a label value of '%s'", buf);
					}
				}
				p++;
				if (*p == ',')
					p++;
				else if (*p != '}')
					BAD("bad label list in '%s'", buf);
			}
			p++;
		}
		if (*p != ' ')
			BAD("no value in '%s'", buf);
		p++;
		char value[64];
		size_t vn = strcspn(p, " ");
		if (vn == 0 || vn >= sizeof value)
			BAD("bad value in '%s'", buf);
		memcpy(value, p, vn);
		value[vn] = '\0';
		if (!prom_value_ok(value))
			BAD("bad value '%s'", value);
		if (p[vn] == ' ') { /* an optional timestamp */
			char *end;
			strtoll(p + vn + 1, &end, 10);
			if (*end)
				BAD("bad timestamp in '%s'", buf);
		}
		/* the series: the text before the value */
		char s[512];
		snprintf(s, sizeof s, "%.*s", (int)(p - 1 - buf), buf);
		for (int j = 0; j < nseries; j++)
			if (!strcmp(series[j], s))
				BAD("series %s twice", s);
		if (nseries == 4096)
			BAD("too many series");
		snprintf(series[nseries++], sizeof series[0], "%s", s);
	}
	for (int k = 0; k < nm; k++)
		if (!m[k].samples)
			BAD("metric %s has no sample", m[k].name);
#undef BAD
	free(series);
	return NULL;
}

START_TEST(test_prometheus_checker_rejects)
{
	/* the checker must be able to fail */
	static const char *const bad[] = {
		"gort_x 1\n",
		"# HELP gort_x x.\ngort_x 1\n",
		"# HELP gort_x_total x.\n# TYPE gort_x_total counter\ngort_x_total one\n",
		"# HELP gort_x x.\n# TYPE gort_x counter\ngort_x 1\n",
		"# HELP gort_x x.\n# TYPE gort_x gauge\ngort_x{a=\"1\"} 1\ngort_x{a=\"1\"} 2\n",
		"# HELP gort_x x.\n# TYPE gort_x gauge\ngort_x{a=\"\\q\"} 1\n",
		"# HELP gort_x x.\n# TYPE gort_x gauge\ngort_x{a=\"x} 1\n",
		"# HELP gort_x x.\n# TYPE gort_x gauge\ngort_x{a=1} 1\n",
		"# HELP gort_x x.\n# TYPE gort_x gauge\ngort_x 1",
		"# HELP gort_x x.\n# TYPE gort_x gauge\n# HELP gort_y y.\n# TYPE gort_y gauge\ngort_x 1\ngort_y 1\ngort_x{a=\"b\"} 1\n",
		"# HELP gort_x x.\n# TYPE gort_x gauge\ngort_x 1\n# HELP gort_x x.\n",
		"# HELP gort_x x.\n# TYPE gort_x gauge\n",
		"# HELP 1x x.\n# TYPE 1x gauge\n1x 1\n",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		ck_assert_msg(prom_check(bad[i]) != NULL, "accepted:\n%s", bad[i]);
	ck_assert_ptr_null(prom_check("# HELP gort_x_total x \\\\ \\n.\n# TYPE gort_x_total counter\n"
				      "gort_x_total{a=\"\\\"\\\\\\n\",b=\"\"} 1.5e+09 1700000000000\n"));
}
END_TEST

START_TEST(test_prometheus_output_parses)
{
	struct gortclient *c = client(&D);
	/* names that need escaping in a label value */
	struct gortclient_submit s = { .file = VTASK, .fd = -1, .name = "quote\" back\\ nl\nend" };
	char *argv[] = { "io", "3", "2" };
	s.argc = 3;
	s.argv = argv;
	uint64_t id = 0;
	ck_assert_msg(gortclient_submit(c, &s, &id) > 0, "%s", gortclient_error(c));
	wait_task(c, id);
	char *spin[] = { "0" };
	uint64_t id2 = submit_task(c, VTASK, 1, spin);
	ready_goid(id2);

	char *out, *err;
	ck_assert_int_eq(gortctl(&D, &out, &err, "stats", "--prometheus"), 0);
	const char *why = prom_check(out);
	ck_assert_msg(!why, "%s in:\n%s", why, out);
	char want[160];
	snprintf(want, sizeof want, "gort_task_io_requests_total{task=\"%llu\",name=\"quote\\\" back\\\\ nl\\nend\"} 10\n",
		 (unsigned long long)id);
	ck_assert_msg(strstr(out, want), "no '%s' in:\n%s", want, out);
	ck_assert_msg(strstr(out, "gort_sched_local_runqueue{p=\"1\"} ") && strstr(out, "gort_p_schedticks_total{p=\"0\"} ") &&
			      strstr(out, "gort_task_cpu_seconds_total{task=") &&
			      strstr(out, "gort_task_goroutines_by_state{task=") && strstr(out, ",state=\"waiting\"} ") &&
			      strstr(out, "gort_task_panics_total{task=") && strstr(out, "gort_uptime_seconds "),
		      "%s", out);
	/* promtool, when there is one (Debian: the prometheus package) */
	if (system("command -v promtool >/dev/null 2>&1") == 0) {
		char path[] = "/tmp/gort-prom-XXXXXX";
		int fd = mkstemp(path);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(write(fd, out, strlen(out)), (ssize_t)strlen(out));
		close(fd);
		char cmd[128];
		snprintf(cmd, sizeof cmd, "promtool check metrics < %s", path);
		int st = system(cmd);
		unlink(path);
		ck_assert_msg(st == 0, "promtool check metrics failed");
	}
	free(out);
	free(err);
	kill_task(c, id2);
	gortclient_free(c);
}
END_TEST

/* ---- top, through tmux ---- */

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The pane's text (caller frees). */
static char *tmux_capture(const char *srv)
{
	char path[] = "/tmp/gort-tmux-XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(sh("tmux -L %s capture-pane -p -t top > %s", srv, path), 0);
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t cap = 0;
	if (getdelim(&buf, &cap, '\0', f) < 0) {
		free(buf);
		buf = strdup("");
	}
	fclose(f);
	unlink(path);
	return buf;
}

/* Waits until the pane shows all of want (NULL-terminated); returns it. */
static char *tmux_wait_for(const char *srv, const char *const *want)
{
	int64_t deadline = mono_ns() + 60 * 1000000000LL;
	for (;;) {
		char *pane = tmux_capture(srv);
		bool all = true;
		for (const char *const *w = want; *w; w++)
			all &= strstr(pane, *w) != NULL;
		if (all)
			return pane;
		ck_assert_msg(mono_ns() < deadline, "tmux pane never showed what top should:\n%s", pane);
		free(pane);
		sleep_ms(100);
	}
}

START_TEST(test_top_in_tmux)
{
	ck_assert_msg(sh("command -v tmux >/dev/null") == 0, "tmux is missing (scripts/deps.sh installs it)");
	struct gortclient *c = client(&D);
	char *spin[] = { "1" };
	uint64_t id = submit_task(c, VTASK, 1, spin);
	ready_goid(id);

	char srv[48], done[128], tid[32];
	snprintf(srv, sizeof srv, "gort-top-%d", (int)getpid());
	snprintf(done, sizeof done, "%s/top.done", D.dir);
	snprintf(tid, sizeof tid, "%llu", (unsigned long long)id);
	/* after top: its exit code and the terminal's modes, to a file */
	ck_assert_int_eq(sh("tmux -L %s -f /dev/null new-session -d -s top -x 132 -y 40 "
			    "'%s --socket %s top; echo \"exit=$?\" > %s.tmp; stty -a >> %s.tmp; mv %s.tmp %s; sleep 60'",
			    srv, GORTCTL, D.sock, done, done, done, done),
			 0);
	char row[64];
	snprintf(row, sizeof row, "%-6s views_task.so", tid);
	char *pane = tmux_wait_for(srv, (const char *const[]){ "gortctl top", "Sched: 2 procs", "PROC", "P0 ", "P1 ",
							       "TASK", row, "running", "Sysmon:", NULL });
	/* the task row: 12 goroutines, 10 of them waiting */
	char *r = strstr(pane, row);
	long gors = 0, run = 0, runq = 0, wait = 0;
	ck_assert_msg(sscanf(r + strlen(row), " running %ld %ld %ld %ld", &gors, &run, &runq, &wait) == 4, "%s", r);
	ck_assert_int_eq(gors, 12);
	ck_assert_int_eq(wait, 10);
	free(pane);

	/* a resize redraws at the new width */
	ck_assert_int_eq(sh("tmux -L %s resize-window -t top -x 70 -y 30", srv), 0);
	pane = tmux_wait_for(srv, (const char *const[]){ "gortctl top", "PROC", NULL });
	for (char *l = pane; *l;) {
		char *nl = strchr(l, '\n');
		size_t n = nl ? (size_t)(nl - l) : strlen(l);
		ck_assert_msg(n <= 70, "a line of %zu columns after the resize to 70:\n%s", n, pane);
		l += n + (nl != NULL);
	}
	free(pane);

	/* q quits, and the terminal is back in its modes (canonical, echo) */
	ck_assert_int_eq(sh("tmux -L %s send-keys -t top q", srv), 0);
	int64_t deadline = mono_ns() + 30 * 1000000000LL;
	while (access(done, F_OK) != 0) {
		ck_assert_msg(mono_ns() < deadline, "top did not quit on q");
		sleep_ms(50);
	}
	FILE *f = fopen(done, "re");
	char *text = NULL;
	size_t cap = 0;
	ck_assert(getdelim(&text, &cap, '\0', f) > 0);
	fclose(f);
	ck_assert_msg(strncmp(text, "exit=0\n", 7) == 0, "%s", text);
	ck_assert_msg(strstr(text, "icanon") && strstr(text, "isig") && !strstr(text, "-icanon") &&
			      !strstr(text, "-isig") && !strstr(text, "-echo ") && !strstr(text, "-echo\n"),
		      "terminal not restored:\n%s", text);
	free(text);
	/* the alternate screen is gone: the pane no longer shows top */
	pane = tmux_capture(srv);
	ck_assert_msg(!strstr(pane, "PROC  STATUS"), "%s", pane);
	free(pane);

	/* Ctrl-C quits too */
	unlink(done);
	ck_assert_int_eq(sh("tmux -L %s respawn-pane -k -t top "
			    "'%s --socket %s top; echo \"exit=$?\" > %s.tmp; stty -a >> %s.tmp; mv %s.tmp %s; sleep 60'",
			    srv, GORTCTL, D.sock, done, done, done, done),
			 0);
	free(tmux_wait_for(srv, (const char *const[]){ "gortctl top", "PROC", NULL }));
	ck_assert_int_eq(sh("tmux -L %s send-keys -t top C-c", srv), 0);
	deadline = mono_ns() + 30 * 1000000000LL;
	while (access(done, F_OK) != 0) {
		ck_assert_msg(mono_ns() < deadline, "top did not quit on Ctrl-C");
		sleep_ms(50);
	}
	f = fopen(done, "re");
	text = NULL;
	ck_assert(getdelim(&text, &cap, '\0', f) > 0);
	fclose(f);
	ck_assert_msg(strncmp(text, "exit=0\n", 7) == 0 && !strstr(text, "-icanon"), "%s", text);
	free(text);
	sh("tmux -L %s kill-server", srv);
	kill_task(c, id);
	gortclient_free(c);
}
END_TEST

/* gortctl -H HOST top: ssh is asked for a terminal (-t) when gortctl has one,
 * else -T as for every other command (and the remote top refuses). */
START_TEST(test_top_remote_asks_ssh_for_a_tty)
{
	char path[160], log[160];
	snprintf(path, sizeof path, "%s/ssh", D.dir);
	snprintf(log, sizeof log, "%s/ssh.args", D.dir);
	FILE *f = fopen(path, "we");
	fprintf(f, "#!/bin/sh\necho \"$1 $5 $6 $7\" >> '%s'\n", log);
	fclose(f);
	chmod(path, 0755);
	char srv[48];
	snprintf(srv, sizeof srv, "gort-ssh-%d", (int)getpid());
	ck_assert_int_eq(sh("tmux -L %s -f /dev/null new-session -d -s top -x 100 -y 30 "
			    "'PATH=%s:$PATH %s -H me@far top; sleep 60'",
			    srv, D.dir, GORTCTL),
			 0);
	int64_t deadline = mono_ns() + 30 * 1000000000LL;
	while (access(log, F_OK) != 0) {
		ck_assert_msg(mono_ns() < deadline, "gortctl -H never ran ssh");
		sleep_ms(50);
	}
	sh("tmux -L %s kill-server", srv);
	ck_assert_int_eq(sh("PATH=%s:$PATH %s -H me@far top </dev/null >/dev/null", D.dir, GORTCTL), 0);
	ck_assert_int_eq(sh("PATH=%s:$PATH %s -H me@far --socket /x ps 3 </dev/null >/dev/null", D.dir, GORTCTL), 0);
	f = fopen(log, "re");
	char buf[512] = "";
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = '\0';
	fclose(f);
	ck_assert_str_eq(buf, "-t me@far gortctl 'top'\n-T me@far gortctl 'top'\n-T me@far gortctl '--socket'\n");
}
END_TEST

START_TEST(test_views_bad_input)
{
	char *out, *err;
	/* top without a terminal: refused in one clear line */
	ck_assert_int_eq(gortctl(&D, &out, &err, "top"), 2);
	ck_assert_msg(strstr(err, "top needs a terminal"), "%s", err);
	free(out);
	free(err);
	ck_assert_int_eq(gortctl(&D, &out, &err, "top", "extra"), 2);
	free(out);
	free(err);
	ck_assert_int_eq(gortctl(&D, &out, &err, "--json", "top"), 2);
	free(out);
	free(err);
	ck_assert_int_eq(gortctl(&D, &out, &err, "ps", "0"), 2);
	free(out);
	free(err);
	ck_assert_int_eq(gortctl(&D, &out, &err, "ps", "1", "2"), 2);
	free(out);
	free(err);
	ck_assert_int_eq(gortctl(&D, &out, &err, "ps", "999999"), 1);
	ck_assert_msg(strstr(err, "no task 999999"), "%s", err);
	free(out);
	free(err);

	/* the new reply fields pass the validator only when well formed */
	Gort__V1__ProcInfo p = GORT__V1__PROC_INFO__INIT;
	p.id = 1;
	p.status = "running";
	p.m = -1;
	Gort__V1__ProcInfo *pp = &p;
	Gort__V1__ThreadInfo m = GORT__V1__THREAD_INFO__INIT;
	m.spinning = true;
	Gort__V1__ThreadInfo *mp = &m;
	Gort__V1__GoroutineStates gs = GORT__V1__GOROUTINE_STATES__INIT;
	gs.waiting = 3;
	Gort__V1__TaskInfo ti = GORT__V1__TASK_INFO__INIT;
	ti.name = "t";
	ti.state = "running";
	ti.states = &gs;
	ti.cpu_ns = 5;
	Gort__V1__TaskInfo *tp = &ti;
	Gort__V1__StatsReply sr = GORT__V1__STATS_REPLY__INIT;
	sr.n_procs = 1;
	sr.procs = &pp;
	sr.n_threads = 1;
	sr.threads = &mp;
	sr.n_tasks = 1;
	sr.tasks = &tp;
	Gort__V1__Reply reply = GORT__V1__REPLY__INIT;
	reply.body_case = GORT__V1__REPLY__BODY_STATS;
	reply.stats = &sr;
	uint8_t buf[512];
	size_t n = protobuf_c_message_pack(&reply.base, buf);
	ck_assert_uint_lt(n, sizeof buf);
	Gort__V1__Reply *back = NULL;
	const char *why = NULL;
	assert_ok(wire_reply_unpack(buf, n, &back, &why));
	ck_assert_int_eq(back->stats->procs[0]->m, -1);
	ck_assert_uint_eq(back->stats->tasks[0]->states->waiting, 3);
	gort__v1__reply__free_unpacked(back, NULL);

	/* ProcInfo.status (field 2, a string) sent as a varint */
	static const uint8_t wrong_type[] = { 0x82, 0x01, 0x04, /* StatsReply.procs (16), 4 bytes */
					      0x08, 0x01, 0x10, 0x05 };
	/* Reply.stats (19): a message holding the above */
	uint8_t frame[32] = { 0x9a, 0x01, sizeof wrong_type };
	memcpy(frame + 3, wrong_type, sizeof wrong_type);
	ck_assert_int_eq(wire_reply_unpack(frame, 3 + sizeof wrong_type, &back, &why), -EBADMSG);
	ck_assert_str_eq(why, "field has the wrong wire type");
	/* ThreadInfo.spinning (5) given twice */
	static const uint8_t twice[] = { 0x8a, 0x01, 0x04, /* StatsReply.threads (17), 4 bytes */
					 0x28, 0x01, 0x28, 0x01 };
	frame[2] = sizeof twice;
	memcpy(frame + 3, twice, sizeof twice);
	ck_assert_int_eq(wire_reply_unpack(frame, 3 + sizeof twice, &back, &why), -EBADMSG);
	ck_assert_str_eq(why, "field given twice");
	/* GoroutineInfo.state_ns (8) as a length-delimited field */
	static const uint8_t ps_bad[] = { 0x0a, 0x03, /* PsReply.goroutines (1), 3 bytes */
					  0x42, 0x01, 0x00 };
	uint8_t frame2[16] = { 0x72, sizeof ps_bad }; /* Reply.ps (14) */
	memcpy(frame2 + 2, ps_bad, sizeof ps_bad);
	ck_assert_int_eq(wire_reply_unpack(frame2, 2 + sizeof ps_bad, &back, &why), -EBADMSG);
	ck_assert_str_eq(why, "field has the wrong wire type");
	/* the daemon keeps serving */
	struct gortclient *c = client(&D);
	Gort__V1__Reply *st = stats_of(c);
	gort__v1__reply__free_unpacked(st, NULL);
	gortclient_free(c);
}
END_TEST

static Suite *views_suite(void)
{
	Suite *s = suite_create("daemon-views");
	TCase *tc = tcase_create("views");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, test_ps_wait_reasons);
	tcase_add_test(tc, test_ps_io_wait_fallback);
	tcase_add_test(tc, test_stats_per_task);
	tcase_add_test(tc, test_prometheus_checker_rejects);
	tcase_add_test(tc, test_prometheus_output_parses);
	tcase_add_test(tc, test_top_in_tmux);
	tcase_add_test(tc, test_top_remote_asks_ssh_for_a_tty);
	tcase_add_test(tc, test_views_bad_input);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_main(views_suite());
}
