/* tests/test-timer.c: timers and gort_sleep (runtime/timer.c): order, never early, deletion, 100k sleepers, idle Ms don't poll. */
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <sys/resource.h>
#include <time.h>

#include "timer.h"
#include "testlib.h"

static gort_wg wg;

/* ---- the heap: callbacks fire in deadline order, never early ---- */

enum { NTIMERS = 2000 };
static struct timer timers[NTIMERS];
static int64_t fired_at[NTIMERS];
static int fired_seq[NTIMERS];
static _Atomic int nfired;
static bool deleted[NTIMERS];

static void record_fire(void *arg)
{
	long i = (long)arg;
	fired_at[i] = nanotime();
	fired_seq[i] = atomic_fetch_add(&nfired, 1);
}

static int heap_order_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	int64_t base = nanotime() + 100 * MS;
	int ndeleted = 0;
	atomic_store(&nfired, 0);
	for (long i = 0; i < NTIMERS; i++) {
		/* distinct deadlines in a scrambled order over ~60 ms */
		int64_t when = base + (int64_t)((i * 7919) % NTIMERS) * 30 * US;
		/* every fifth is deleted below; of the others, odd ones are
		 * nodelete (the heap keeps no index for them): both kinds mixed */
		timers[i] = (struct timer){ .when = when, .f = record_fire, .arg = (void *)i,
					    .nodelete = i % 5 != 0 && i % 2 == 1 };
		deleted[i] = false;
		assert_ok(addtimer(&timers[i]));
	}
	/* delete every fifth before it fires (on a machine slow enough to take
	 * 100 ms for this, one may have fired already: then it must count as such) */
	for (long i = 0; i < NTIMERS; i += 5) {
		if (!deltimer(&timers[i]))
			continue;
		ck_assert(!deltimer(&timers[i])); /* not armed any more */
		deleted[i] = true;
		ndeleted++;
	}
	ck_assert_int_gt(ndeleted, 0);
	int64_t deadline = gort_now() + 30 * SEC;
	while (atomic_load(&nfired) < NTIMERS - ndeleted) {
		ck_assert(gort_now() < deadline);
		gort_sleep(MS);
	}
	gort_sleep(20 * MS);
	ck_assert_int_eq(atomic_load(&nfired), NTIMERS - ndeleted);
	/* never before when; on one P (one heap) in deadline order */
	for (long i = 0; i < NTIMERS; i++) {
		if (deleted[i])
			continue;
		ck_assert_msg(fired_at[i] >= timers[i].when, "timer %ld fired %lld ns early", i,
			      (long long)(timers[i].when - fired_at[i]));
		if (!timers[i].nodelete)
			ck_assert(!deltimer(&timers[i])); /* fired: nothing to delete */
		for (long j = 0; j < NTIMERS && gort_procs() == 1; j++)
			if (!deleted[j] && timers[j].when < timers[i].when && fired_seq[j] > fired_seq[i])
				ck_abort_msg("timer %ld (when %lld) fired after timer %ld (when %lld)", j,
					     (long long)timers[j].when, i, (long long)timers[i].when);
	}
	return 0;
}

START_TEST(test_timers_fire_in_order_never_early)
{
	run_gort(heap_order_main, 1, 0);
}
END_TEST

/* The same on two Ps: each fires, none early, deleted ones never. */
START_TEST(test_timers_two_ps_never_early)
{
	run_gort(heap_order_main, 2, 0);
}
END_TEST

/* deltimer on a nodelete timer is a runtime bug: it throws. */
static int deltimer_nodelete_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	static struct timer t;
	t = (struct timer){ .when = nanotime() + SEC, .f = record_fire, .nodelete = true };
	assert_ok(addtimer(&t));
	deltimer(&t);
	return 0;
}

START_TEST(test_deltimer_nodelete_throws)
{
	int pfd[2];
	ck_assert_int_eq(pipe(pfd), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(pfd[1], 2);
		alarm(120);
		struct gort_config cfg = { .procs = 1 };
		_exit(gort_run(deltimer_nodelete_main, 0, NULL, &cfg));
	}
	char out[4096];
	int status = child_stderr(pfd, pid, out, sizeof out);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "status %#x: %s", status, out);
	ck_assert_msg(strstr(out, "fatal error: deltimer: a nodelete timer"), "stderr: %s", out);
}
END_TEST

/* ---- gort_sleep ---- */

static _Atomic long early;

static void sleeper(void *arg)
{
	int64_t d = (int64_t)(long)arg;
	int64_t t0 = gort_now();
	gort_sleep(d);
	int64_t dt = gort_now() - t0;
	if (dt < d)
		atomic_fetch_add(&early, 1);
	gort_wg_done(&wg);
}

static int sleep_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	enum { N = 500 };
	gort_wg_add(&wg, N);
	for (long i = 0; i < N; i++)
		gort_go(sleeper, (void *)(long)(trand(30000) * US));
	gort_wg_wait(&wg);
	ck_assert_int_eq(atomic_load(&early), 0);
	/* zero and negative durations return at once */
	int64_t t0 = gort_now();
	gort_sleep(0);
	gort_sleep(-5);
	ck_assert_int_lt(gort_now() - t0, SEC);
	return 0;
}

START_TEST(test_sleep_never_early)
{
	run_gort(sleep_main, 2, 0);
}
END_TEST

START_TEST(test_sleep_outside_goroutine)
{
	int64_t t0 = gort_now();
	gort_sleep(5 * MS);
	ck_assert_int_ge(gort_now() - t0, 5 * MS);
	gort_sleep(0);
}
END_TEST

/* A P busy with runnable goroutines still wakes its sleepers. */
static _Atomic bool woke;

static void short_sleeper(void *arg)
{
	(void)arg;
	gort_sleep(5 * MS);
	atomic_store(&woke, true);
}

static int busy_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	gort_go(short_sleeper, NULL);
	int64_t deadline = gort_now() + 20 * SEC;
	while (!atomic_load(&woke)) {
		ck_assert_msg(gort_now() < deadline, "sleeper never woke on a busy P");
		gort_yield(); /* runnable all the time: the P never idles */
	}
	return 0;
}

START_TEST(test_sleeper_wakes_on_busy_p)
{
	run_gort(busy_main, 1, 0);
}
END_TEST

/* 100,000 sleeping goroutines are cheap: all wake, none early. */
static int many_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	long n = scaled(100000);
#if defined(__SANITIZE_THREAD__)
	if (n > 4000)
		n = 4000; /* every goroutine is a TSan fiber, and TSan caps those at ~8k */
#endif
	atomic_store(&early, 0);
	int64_t t0 = gort_now();
	gort_wg_add(&wg, n);
	for (long i = 0; i < n; i++)
		ck_assert_int_gt(gort_go(sleeper, (void *)(long)(10 * MS)), 0);
	gort_wg_wait(&wg);
	int64_t dt = gort_now() - t0;
	ck_assert_int_eq(atomic_load(&early), 0);
	ck_assert_msg(dt < 30 * SEC, "%ld sleepers took %lld ms", n, (long long)(dt / MS));
	return 0;
}

START_TEST(test_hundred_thousand_sleepers)
{
	run_gort(many_main, 2, 0);
}
END_TEST

/* ---- idle Ms sleep until the timer: no polling, and on time ---- */

static double cpu_seconds(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static int idle_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	gort_sleep(20 * MS); /* let the runtime settle */
	double c0 = cpu_seconds();
	gort_sleep(500 * MS);
	double used = cpu_seconds() - c0;
	/* a polling loop would burn CPU the whole time; sleeping Ms burn ~none */
	if (!getenv("GORT_VALGRIND"))
		ck_assert_msg(used < 0.1, "%.3f s of CPU while every goroutine slept 0.5 s", used);
	/* short sleeps wake close to their deadline (median over 21) */
	int64_t late[21];
	for (int i = 0; i < 21; i++) {
		int64_t t0 = gort_now();
		gort_sleep(2 * MS);
		late[i] = gort_now() - t0 - 2 * MS;
		ck_assert_int_ge(late[i], 0);
	}
	qsort(late, 21, sizeof late[0], cmp64);
	ck_assert_msg(late[10] < 20 * MS, "median lateness %lld us", (long long)(late[10] / US));
	return 0;
}

START_TEST(test_idle_m_sleeps_until_timer)
{
	run_gort(idle_main, 2, 0);
}
END_TEST

/* one case per test: CK_RUN_CASE=<name> runs one alone */
#define ADD(s, test, timeout)                                  \
	do {                                                   \
		TCase *tc = tcase_create(#test);               \
		tcase_set_timeout(tc, timeout);                \
		tcase_add_test(tc, test);                      \
		suite_add_tcase(s, tc);                        \
	} while (0)

static Suite *timer_suite(void)
{
	Suite *s = suite_create("timer");
	ADD(s, test_timers_fire_in_order_never_early, 120);
	ADD(s, test_timers_two_ps_never_early, 120);
	ADD(s, test_deltimer_nodelete_throws, 120);
	ADD(s, test_sleep_never_early, 120);
	ADD(s, test_sleep_outside_goroutine, 120);
	ADD(s, test_sleeper_wakes_on_busy_p, 120);
	ADD(s, test_hundred_thousand_sleepers, 300);
	ADD(s, test_idle_m_sleeps_until_timer, 120);
	return s;
}

int main(void)
{
	return test_main(timer_suite());
}
