/* tests/test-trace.c: check suite for runtime/trace.c: the exact events of a known program's goroutines, drops when the consumer stalls, the path with nobody listening, the history ring, symbols of an unloaded task. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>

#include "testlib.h"

#include "gort_plugin.h"
#include "module.h"
#include "stats.h"
#include "task.h"
#include "trace.h"

/* ---- a subscriber that records everything ---- */

struct rec {
	pthread_mutex_t lock;
	struct trace_event *v;
	size_t n, cap;
	_Atomic bool stall;      /* the callback blocks while set */
	_Atomic bool stalled;    /* it is blocked now */
};

static struct rec rec = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void rec_fn(const struct trace_event *ev, void *arg)
{
	struct rec *r = arg;
	while (atomic_load(&r->stall)) {
		atomic_store(&r->stalled, true);
		usleep(1000);
	}
	atomic_store(&r->stalled, false);
	pthread_mutex_lock(&r->lock);
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 4096;
		r->v = realloc(r->v, r->cap * sizeof(*r->v));
		ck_assert(r->v);
	}
	r->v[r->n++] = *ev;
	pthread_mutex_unlock(&r->lock);
}

static struct trace_sub *sub;

static void rec_start(void)
{
	pthread_mutex_lock(&rec.lock);
	rec.n = 0;
	pthread_mutex_unlock(&rec.lock);
	assert_ok(trace_subscribe(rec_fn, &rec, &sub));
}

static void rec_stop(void)
{
	trace_flush();
	trace_unsubscribe(sub);
	sub = NULL;
}

/* The events of goroutine goid, in order, as "kind[:detail]" words. */
static void sequence(int64_t goid, char *buf, size_t n)
{
	buf[0] = '\0';
	size_t off = 0;
	for (size_t i = 0; i < rec.n; i++) {
		const struct trace_event *e = &rec.v[i];
		if (e->goid != goid || e->kind > GORT_EV_GO_END)
			continue;
		const char *detail = "";
		if (e->kind == GORT_EV_GO_STOP)
			detail = e->reason == GORT_STOP_PARKED ? waitreason_string((enum waitreason)e->wait)
							       : trace_stop_string(e->reason);
		off += (size_t)snprintf(buf + off, n - off, "%s%s%s%s", off ? " " : "", trace_kind_string(e->kind),
					*detail ? ":" : "", detail);
		if (off >= n)
			break;
	}
}

static const struct trace_event *find(int64_t goid, unsigned kind, int nth)
{
	for (size_t i = 0; i < rec.n; i++)
		if (rec.v[i].goid == goid && rec.v[i].kind == kind && nth-- == 0)
			return &rec.v[i];
	return NULL;
}

/* ---- the known program ---- */

static gort_chan *ch;
static _Atomic int64_t receiver_goid, main_goid;

static void receiver(void *arg)
{
	(void)arg;
	receiver_goid = gort_id();
	int v = 0;
	ck_assert(gort_chan_recv(ch, &v));
	ck_assert_int_eq(v, 42);
}

/* Whether goroutine goid is parked with reason. */
static bool parked(int64_t goid, enum waitreason reason)
{
	struct ginfo *gs;
	size_t n;
	if (goroutines_snapshot(&gs, &n) < 0)
		return false;
	bool yes = false;
	for (size_t i = 0; i < n; i++)
		if (gs[i].goid == goid && gs[i].status == G_WAITING && gs[i].waitreason == reason)
			yes = true;
	free(gs);
	return yes;
}

static int known_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	main_goid = gort_id();
	ch = gort_chan_make(sizeof(int), 0);
	receiver_goid = 0;
	int64_t id = gort_go(receiver, NULL);
	ck_assert_int_gt(id, 0);
	/* send only once the receiver is parked on the channel */
	for (int i = 0; i < 20000 && !parked(id, WAIT_CHAN_RECV); i++)
		gort_sleep(500 * 1000);
	ck_assert(parked(id, WAIT_CHAN_RECV));
	int v = 42;
	gort_chan_send(ch, &v);
	gort_chan_free(ch);
	return 7;
}

START_TEST(test_known_program_exact_sequence)
{
	rec_start();
	run_gort(known_main, 2, 7);
	rec_stop();
	int64_t rg = receiver_goid, mg = main_goid;
	ck_assert_int_gt(rg, 0);
	char seq[1024];
	sequence(rg, seq, sizeof seq);
	ck_assert_str_eq(seq, "go-create go-start go-stop:chan receive go-unblock go-start go-end");
	/* who did what */
	const struct trace_event *c = find(rg, GORT_EV_GO_CREATE, 0);
	ck_assert_int_eq(c->arg, mg);                 /* created by main */
	ck_assert(c->entry[0] != '\0');
	ck_assert_int_gt(c->task, 0);
	const struct trace_event *u = find(rg, GORT_EV_GO_UNBLOCK, 0);
	ck_assert_int_eq(u->arg, mg);                 /* unblocked by the sender */
	ck_assert_int_eq(u->task, c->task);
	for (int k = 0; k < 2; k++) {
		const struct trace_event *s = find(rg, GORT_EV_GO_START, k);
		ck_assert_int_ge(s->proc, 0);
		ck_assert_int_lt(s->proc, 2);
		ck_assert_int_ge(s->m, 0);
		ck_assert_str_eq(s->entry, c->entry);
	}
	/* main: created by no goroutine (gort_run's thread), started, parked in
	 * its sleeps, ended last; its task started before and exited after */
	sequence(mg, seq, sizeof seq);
	ck_assert_msg(strncmp(seq, "go-create go-start", 18) == 0, "main: %s", seq);
	/* it stops only in its sleeps (none if the receiver was parked at once) */
	for (const char *p = strstr(seq, "go-stop"); p; p = strstr(p + 1, "go-stop"))
		ck_assert_msg(strncmp(p, "go-stop:sleep go-unblock go-start", 33) == 0, "main: %s", seq);
	size_t len = strlen(seq);
	ck_assert_msg(len > 6 && strcmp(seq + len - 6, "go-end") == 0, "main: %s", seq);
	ck_assert_int_eq(find(mg, GORT_EV_GO_CREATE, 0)->arg, 0);
	int64_t task = c->task, tstart = -1, texit = -1;
	for (size_t i = 0; i < rec.n; i++) {
		if (rec.v[i].task != task)
			continue;
		if (rec.v[i].kind == GORT_EV_TASK_START)
			tstart = (int64_t)i;
		if (rec.v[i].kind == GORT_EV_TASK_EXIT) {
			texit = (int64_t)i;
			ck_assert_int_eq(rec.v[i].arg, 7);
			ck_assert_int_eq(rec.v[i].reason, TASK_EXITED);
		}
	}
	ck_assert_int_ge(tstart, 0);
	ck_assert_int_gt(texit, tstart);
	/* in time order, Ps started before their goroutines */
	bool procs = false;
	for (size_t i = 1; i < rec.n; i++) {
		ck_assert_int_le(rec.v[i - 1].time, rec.v[i].time);
		procs |= rec.v[i].kind == GORT_EV_PROC_START;
	}
	ck_assert(procs);
}
END_TEST

/* ---- yields, preemption, system calls ---- */

static void yielder(void *arg)
{
	(void)arg;
	gort_yield();
	gort_syscall_enter();
	usleep(1000);
	gort_syscall_exit();
}

static _Atomic int64_t yielder_goid;

static int yield_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	yielder_goid = gort_go(yielder, NULL);
	gort_sleep(20 * 1000000);
	return 0;
}

START_TEST(test_yield_and_syscall_reasons)
{
	rec_start();
	run_gort(yield_main, 1, 0);
	rec_stop();
	char seq[1024];
	sequence(yielder_goid, seq, sizeof seq);
	/* one P: the yield and the syscall are the only stops, and the goroutine
	 * gets its P back from the syscall on its own (no one else wants it) */
	ck_assert_msg(strncmp(seq, "go-create go-start go-stop:yield go-start go-stop:syscall go-start", 66) == 0,
		      "yielder: %s", seq);
	size_t len = strlen(seq);
	ck_assert_msg(strcmp(seq + len - 6, "go-end") == 0, "yielder: %s", seq);
}
END_TEST

/* One P, a goroutine in a long system call while main wants to run: sysmon
 * takes the P from the syscall's M; the P's track shows it stop (no M: the
 * one in the syscall has let it go), then start on another M. */
static _Atomic bool blocker_in;

static void blocker(void *arg)
{
	(void)arg;
	gort_syscall_enter();
	atomic_store(&blocker_in, true);
	usleep(300 * 1000);
	gort_syscall_exit();
}

static int retake_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	blocker_in = false;
	gort_go(blocker, NULL);
	while (!atomic_load(&blocker_in))
		gort_yield();
	/* main is runnable on the P the blocker's M holds in its syscall: it runs
	 * only once sysmon retook the P */
	gort_yield();
	return 0;
}

START_TEST(test_proc_retaken_from_syscall)
{
	rec_start();
	run_gort(retake_main, 1, 0);
	rec_stop();
	bool stop = false, start_after = false;
	for (size_t i = 0; i < rec.n; i++) {
		const struct trace_event *e = &rec.v[i];
		if (e->kind == GORT_EV_PROC_STOP && e->proc == 0 && e->m == -1)
			stop = true;
		else if (stop && e->kind == GORT_EV_PROC_START && e->proc == 0)
			start_after = true;
	}
	ck_assert_msg(stop && start_after, "retaken P: stop %d, start after %d (%zu events)", stop, start_after, rec.n);
}
END_TEST

static _Atomic bool spin_stop;
static _Atomic int64_t spinner_goid;

static void spinner(void *arg)
{
	(void)arg;
	while (!atomic_load_explicit(&spin_stop, memory_order_relaxed))
		;
}

static int preempt_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	spin_stop = false;
	spinner_goid = gort_go(spinner, NULL);
	/* one P: main runs again only once sysmon preempted the spinner */
	gort_yield();
	spin_stop = true;
	return 0;
}

START_TEST(test_preempted_reason)
{
	rec_start();
	run_gort(preempt_main, 1, 0);
	rec_stop();
	char seq[1024];
	sequence(spinner_goid, seq, sizeof seq);
	ck_assert_msg(strstr(seq, "go-stop:preempted") != NULL, "spinner: %s", seq);
}
END_TEST

/* ---- drops when the consumer stalls ---- */

static void nothing(void *arg)
{
	(void)arg;
}

static long spawn_n;

static int spawn_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	for (long i = 0; i < spawn_n; i++)
		ck_assert_int_gt(gort_go(nothing, NULL), 0);
	return 0;
}

START_TEST(test_drops_counted_when_consumer_stalls)
{
	struct trace_stats before, after;
	trace_stats_read(&before);
	/* more events than two P buffers and the shared one hold */
	spawn_n = 40000;
	trace_holdback_ns = 0; /* the first round that collects anything delivers, and stalls */
	atomic_store(&rec.stall, true);
	rec_start();
	/* the program runs to its end while the consumer is stuck */
	run_gort(spawn_main, 2, 0);
	for (int i = 0; i < 60000 && !atomic_load(&rec.stalled); i++)
		usleep(1000);
	bool stalled = atomic_load(&rec.stalled);
	/* let go before any assertion: a stuck consumer would hold the collector
	 * (and every later subscriber) when suites share a process (valgrind) */
	atomic_store(&rec.stall, false);
	rec_stop();
	trace_holdback_ns = 2 * 1000000;
	ck_assert(stalled);
	trace_stats_read(&after);
	ck_assert_uint_gt(after.dropped, before.dropped);
	uint64_t dropped = 0, ends = 0;
	for (size_t i = 0; i < rec.n; i++) {
		if (rec.v[i].kind == TRACE_EV_DROPPED) {
			ck_assert_int_gt(rec.v[i].arg, 0);
			dropped += (uint64_t)rec.v[i].arg;
		}
		ends += rec.v[i].kind == GORT_EV_GO_END;
	}
	ck_assert_uint_eq(dropped, after.dropped - before.dropped);
	/* some goroutines' ends were lost, and every one is either seen or counted */
	ck_assert_uint_lt(ends, (uint64_t)spawn_n + 1);
	ck_assert_uint_ge(ends + dropped, (uint64_t)spawn_n + 1);
}
END_TEST

/* ---- nobody listening ---- */

START_TEST(test_nobody_listening)
{
	struct trace_stats before, after;
	trace_stats_read(&before);
	ck_assert_int_eq(before.listeners, 0);
	ck_assert_int_eq(atomic_load(&trace_on), 0);
	run_gort(known_main, 2, 7);
	spawn_n = 1000;
	run_gort(spawn_main, 2, 0);
	trace_flush(); /* returns at once: nobody listens */
	trace_stats_read(&after);
	/* nothing was written: the hooks' one branch skipped them all */
	ck_assert_uint_eq(after.events, before.events);
	ck_assert_uint_eq(after.dropped, before.dropped);
	/* a listener that comes later sees nothing of what happened before it */
	rec_start();
	rec_stop();
	for (size_t i = 0; i < rec.n; i++)
		ck_assert_int_ne(rec.v[i].kind, GORT_EV_GO_CREATE);
}
END_TEST

/* ---- the history ring ---- */

START_TEST(test_history_ring)
{
	struct trace_event buf[64];
	uint64_t cur = 0, missed = 0;
	ck_assert_int_eq(trace_history_read(&cur, buf, 64, &missed), -ENODEV);
	ck_assert_uint_eq(trace_history_now(), 0);
	assert_ok(trace_history_enable(32, true));
	ck_assert_int_eq(trace_history_enable(32, true), -EEXIST);
	struct trace_stats st;
	trace_stats_read(&st);
	ck_assert_uint_eq(st.history, 32);
	ck_assert_int_eq(st.listeners, 1);
	spawn_n = 100;
	run_gort(spawn_main, 2, 0);
	trace_flush();
	/* from the oldest kept: the last 32, with the task's exit among them */
	int n = trace_history_read(&cur, buf, 64, &missed);
	ck_assert_int_eq(n, 32);
	ck_assert_uint_eq(missed, 0);
	ck_assert_uint_eq(cur, trace_history_now());
	bool exit_seen = false;
	for (int i = 0; i < n; i++)
		exit_seen |= buf[i].kind == GORT_EV_TASK_EXIT;
	ck_assert(exit_seen);
	ck_assert_int_eq(trace_history_read(&cur, buf, 64, &missed), 0);
	/* a reader that falls behind is told how many it missed */
	uint64_t behind = cur;
	run_gort(spawn_main, 2, 0);
	trace_flush();
	uint64_t now = trace_history_now();
	ck_assert_uint_gt(now, behind + 32);
	n = trace_history_read(&behind, buf, 8, &missed);
	ck_assert_int_eq(n, 8);
	ck_assert_uint_eq(missed, now - 32 - cur);
	ck_assert_uint_eq(behind, now - 32 + 8);
	/* a reader from now sees nothing yet */
	uint64_t live = trace_history_now();
	ck_assert_int_eq(trace_history_read(&live, buf, 64, &missed), 0);
	trace_history_disable();
	trace_stats_read(&st);
	ck_assert_uint_eq(st.history, 0);
	ck_assert_int_eq(st.listeners, 0);
	ck_assert_int_eq(trace_history_read(&live, buf, 64, &missed), -ENODEV);
	trace_history_disable(); /* twice: a no-op */
}
END_TEST

/* ---- symbols of a task whose module is unloaded ---- */

START_TEST(test_symbols_of_an_unloaded_task)
{
	char exe[PATH_MAX - 64], path[PATH_MAX];
	ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
	ck_assert_int_gt(len, 0);
	exe[len] = '\0';
	snprintf(path, sizeof path, "%s/fixtures/task_trace.so", dirname(exe));
	assert_ok(runtime_start(2, 0));
	rec_start();
	struct task_spec spec = TASK_SPEC_INIT;
	spec.fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_msg(spec.fd >= 0, "%s: %s", path, strerror(errno));
	char *argv[] = { (char *)"tracer", (char *)"3", NULL };
	spec.argc = 2;
	spec.argv = argv;
	spec.stdout_fd = spec.stderr_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	struct task *t;
	char err[256];
	int r = task_start(&spec, &t, err, sizeof err);
	ck_assert_msg(r == 0, "task_start: %s", err);
	close(spec.fd);
	close(spec.stdout_fd);
	assert_ok(task_wait(t, 60LL * 1000000000, NULL)); /* ended and unloaded */
	int64_t id = task_id(t);
	task_unref(t);
	ck_assert_int_eq(module_count(), 0);
	rec_stop();
	tasks_shutdown();
	runtime_stop();
	int workers = 0;
	bool named = false;
	for (size_t i = 0; i < rec.n; i++) {
		const struct trace_event *e = &rec.v[i];
		if (e->task != id)
			continue;
		if (e->kind == GORT_EV_GO_CREATE && strcmp(e->entry, "trace_worker") == 0)
			workers++;
		if (e->kind == GORT_EV_TASK_START || e->kind == GORT_EV_TASK_EXIT)
			named = strcmp(e->entry, "tracer") == 0;
	}
	ck_assert_int_eq(workers, 3);
	ck_assert(named);
}
END_TEST

static Suite *trace_suite(void)
{
	Suite *s = suite_create("trace");
	TCase *tc = tcase_create("trace");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_nobody_listening);
	tcase_add_test(tc, test_known_program_exact_sequence);
	tcase_add_test(tc, test_yield_and_syscall_reasons);
	tcase_add_test(tc, test_proc_retaken_from_syscall);
	tcase_add_test(tc, test_preempted_reason);
	tcase_add_test(tc, test_drops_counted_when_consumer_stalls);
	tcase_add_test(tc, test_history_ring);
	tcase_add_test(tc, test_symbols_of_an_unloaded_task);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_main(trace_suite());
}
