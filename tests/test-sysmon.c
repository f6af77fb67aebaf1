/* tests/test-sysmon.c: the monitor thread (runtime/sysmon.c): backoff and deep sleep, waking when work returns, scavenging, samples, counters. */
#include <pthread.h>
#include <stdatomic.h>

#include "runtime.h"
#include "sysmon.h"
#include "testlib.h"

/* Goroutine code the tests need preempted, registered as program code even in a
 * statically linked build (see tests/test-preempt.c). */
#define PREEMPTIBLE __attribute__((section("gort_test_text"), noinline))
extern const char __start_gort_test_text[], __stop_gort_test_text[];

static void register_test_code(void)
{
	assert_ok(preempt_code_add((uintptr_t)__start_gort_test_text, (uintptr_t)__stop_gort_test_text));
}

static struct sysmon_stats stats(void)
{
	struct sysmon_stats st;
	assert_ok(sysmon_stats_read(&st));
	return st;
}

static gort_wg wg;
static _Atomic int stop;
static _Atomic long counter;

PREEMPTIBLE static void spin_until_stop(void *arg)
{
	(void)arg;
	while (!atomic_load_explicit(&stop, memory_order_relaxed))
		atomic_store_explicit(&counter, atomic_load_explicit(&counter, memory_order_relaxed) + 1,
				      memory_order_relaxed);
	gort_wg_done(&wg);
}

/* ---- idle: long delay, then deep sleep; work: short rounds again at once ---- */

/* sysmon's delay as a thread outside the runtime sees it while goroutines sleep */
static _Atomic int64_t maxdelay;
static _Atomic int sampling;

static void *delay_sampler(void *arg)
{
	(void)arg;
	while (atomic_load(&sampling)) {
		struct sysmon_stats st;
		sysmon_stats_read(&st);
		if (st.delay_ns > atomic_load(&maxdelay))
			atomic_store(&maxdelay, st.delay_ns);
		usleep(2000);
	}
	return NULL;
}

/* How long an unkicked deep sleep lasts (sysmon.c's SYSMON_DEEP_SLEEP). */
#define DEEP_SLEEP_NS SEC

/* Sleeps 50 ms at a time until sysmon has slept deeply at least once (20 s at
 * most: each of our wakeups kicks it back to short rounds, and on a loaded
 * machine it may take several sleeps to get there); its stats then. */
static struct sysmon_stats wait_deep_sleep(void)
{
	struct sysmon_stats st = stats();
	int64_t deadline = gort_now() + 20 * SEC;
	while (st.deep_sleeps == 0 && gort_now() < deadline) {
		gort_sleep(50 * 1000 * 1000);
		st = stats();
	}
	ck_assert_uint_gt(st.deep_sleeps, 0);
	return st;
}

static int idle_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	register_test_code();
	/* nothing runs for a while: the delay grows to 10 ms, then sysmon sleeps
	 * until kicked */
	struct sysmon_stats st = wait_deep_sleep();
	ck_assert_uint_gt(st.idle_rounds, 50);

	/* Idle, the rounds are few (nothing like 20 us polling), and our own
	 * wakeup, which starts a G on an idle P, kicks a deeply sleeping sysmon.
	 * Checked on a window of 200 ms into which a deep sleep began: it can have
	 * ended only by a kick, or by its timeout if the window lasted longer
	 * than that (a loaded machine: such a window is not conclusive). */
	pthread_t th;
	atomic_store(&sampling, 1);
	ck_assert_int_eq(pthread_create(&th, NULL, delay_sampler, NULL), 0);
	bool kicked = false;
	int windows = 0;
	int64_t deadline = gort_now() + 20 * SEC;
	while (!(kicked && atomic_load(&maxdelay) >= 10 * 1000 * 1000) && gort_now() < deadline) {
		struct sysmon_stats a = stats();
		int64_t t0 = gort_now();
		gort_sleep(200 * 1000 * 1000);
		int64_t dt = gort_now() - t0;
		struct sysmon_stats b = stats();
		windows++;
		/* a kick's short rounds, the backoff, then 10 ms rounds at most */
		ck_assert_msg(b.rounds - a.rounds < 200 + (uint64_t)(dt / (5 * MS)), "%llu rounds in %lld ms",
			      (unsigned long long)(b.rounds - a.rounds), (long long)(dt / MS));
		if (b.deep_sleeps > a.deep_sleeps && dt < DEEP_SLEEP_NS) {
			ck_assert_msg(b.kicks > a.kicks, "a deep sleep began in a window of %lld ms, no kick ended it",
				      (long long)(dt / MS));
			kicked = true;
		}
	}
	atomic_store(&sampling, 0);
	pthread_join(th, NULL);
	ck_assert_msg(kicked, "no deep sleep seen in %d windows of 200 ms", windows);
	ck_assert_int_ge(atomic_load(&maxdelay), 10 * 1000 * 1000);

	/* Work again: sysmon has been sleeping deeply (up to a second) while we
	 * slept; a goroutine that never yields must still be preempted within a
	 * slice or so, which it is only if starting work woke sysmon. We start it
	 * after a sleep into which a deep sleep began (not a long one: see below). */
	struct sysmon_stats c, c2;
	int64_t tc, t0;
	deadline = gort_now() + 20 * SEC;
	do {
		ck_assert_msg(gort_now() < deadline, "no deep sleep began during a sleep of 100 ms");
		c = stats();
		tc = gort_now();
		gort_sleep(100 * 1000 * 1000);
		t0 = gort_now();
		c2 = stats();
	} while (c2.deep_sleeps == c.deep_sleeps || t0 - tc > 300 * MS);
	gort_wg_add(&wg, 1);
	atomic_store(&stop, 0);
	ck_assert_int_gt(gort_go(spin_until_stop, NULL), 0);
	gort_yield(); /* one P: back only once the spinner is preempted */
	int64_t away = gort_now() - t0;
	atomic_store(&stop, 1);
	gort_wg_wait(&wg);
	struct sysmon_stats d = stats();
	ck_assert_uint_gt(d.kicks, c.kicks);
	/* An unkicked sysmon would sleep on until its deep sleep, begun after tc,
	 * timed out: the preemption must come before that (by 700 ms at least,
	 * where it takes a slice and the loaded machine's delays). */
	ck_assert_msg(away < tc + DEEP_SLEEP_NS - t0, "main waited %lld ms for the spinner's preemption",
		      (long long)(away / MS));
	ck_assert_uint_gt(d.preempt_async, c.preempt_async);
	return 0;
}

START_TEST(test_idle_backoff_deep_sleep_and_kick)
{
	run_gort(idle_main, 1, 0);
}
END_TEST

/* ---- a kick: short rounds again, backing off from the first ---- */

static int kick_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	(void)wait_deep_sleep();
	/* each of our wakeups from a 50 ms sleep finds sysmon asleep deeply
	 * (it backs off to 10 ms and sleeps in ~20 ms) and kicks it */
	struct sysmon_stats a = stats(), b = a;
	int64_t deadline = gort_now() + 20 * SEC;
	while (b.kicks - a.kicks < 10 && gort_now() < deadline) {
		gort_sleep(50 * 1000 * 1000);
		b = stats();
	}
	uint64_t kicks = b.kicks - a.kicks, rounds = b.rounds - a.rounds;
	ck_assert_uint_ge(kicks, 10);
	/* ~11 rounds a kick (20 us doubling to 10 ms, one round at 10 ms);
	 * 50 rounds of 20 us first made it ~60 */
	ck_assert_msg(rounds < 30 * kicks, "%llu rounds for %llu kicks", (unsigned long long)rounds,
		      (unsigned long long)kicks);
	return 0;
}

START_TEST(test_kick_backs_off_at_once)
{
	run_gort(kick_main, 1, 0);
}
END_TEST

/* ---- busy without retakes: the delay still backs off ---- */

static int busy_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	register_test_code();
	gort_wg_add(&wg, 1);
	atomic_store(&stop, 0);
	ck_assert_int_gt(gort_go(spin_until_stop, NULL), 0);
	/* the delay backs off to 10 ms although a P is busy: ~60 rounds, as fast
	 * as sysmon's thread gets the CPU (slowly under TSan on a loaded machine) */
	int64_t deadline = gort_now() + 20 * SEC;
	while (stats().delay_ns != 10 * 1000 * 1000) {
		ck_assert_msg(gort_now() < deadline, "the delay is still %lld us",
			      (long long)(stats().delay_ns / US));
		gort_sleep(10 * 1000 * 1000);
	}
	struct sysmon_stats a = stats(), b;
	int64_t t0 = gort_now();
	/* at least 300 ms, and two slices preempted */
	do {
		gort_sleep(100 * 1000 * 1000);
		b = stats();
	} while ((gort_now() - t0 < 300 * MS || b.preempt_requested - a.preempt_requested < 2) &&
		 gort_now() < deadline);
	int64_t dt = gort_now() - t0;
	atomic_store(&stop, 1);
	gort_wg_wait(&wg);
	/* the spinner is preempted every slice (or, under TSan, whenever a signal
	 * finds it outside TSan's runtime), so we woke up... */
	ck_assert_uint_ge(b.preempt_requested - a.preempt_requested, 2);
	/* ...but sysmon did not poll every 20 us to do it: a few rounds per 10 ms */
	ck_assert_msg(b.rounds - a.rounds < (uint64_t)(dt / (200 * 1000)),
		      "%llu rounds in %lld ms", (unsigned long long)(b.rounds - a.rounds),
		      (long long)(dt / 1000000));
	/* and the preemptions did not bring the short rounds back */
	ck_assert_int_eq(b.delay_ns, 10 * 1000 * 1000);
	return 0;
}

START_TEST(test_busy_backoff)
{
	run_gort(busy_main, 1, 0);
}
END_TEST

/* ---- stacks of pooled dead Gs go back to the kernel ---- */

static gort_wg gate;

static void parked(void *arg)
{
	(void)arg;
	volatile char touch[8 * 1024];
	for (size_t i = 0; i < sizeof touch; i += 1024)
		touch[i] = 1;
	gort_wg_wait(&gate);
	gort_wg_done(&wg);
}

static int scavenge_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	enum { N = 5000 }; /* above the pool's watermark (4096) */
	struct sysmon_stats a = stats();
	gort_wg_add(&gate, 1);
	gort_wg_add(&wg, N);
	for (int i = 0; i < N; i++)
		ck_assert_int_gt(gort_go(parked, NULL), 0);
	gort_wg_done(&gate);
	gort_wg_wait(&wg);
	struct sysmon_stats b = stats();
	for (int i = 0; i < 60 && b.scavenged == a.scavenged; i++) {
		gort_sleep(100 * 1000 * 1000);
		b = stats();
	}
	ck_assert_uint_gt(b.scavenged, a.scavenged);
	return 0;
}

START_TEST(test_scavenges_pooled_stacks)
{
	run_gort(scavenge_main, 2, 0);
}
END_TEST

/* ---- the scheduler sample ---- */

static int sample_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	/* a sample taken while this goroutine's M exists */
	int64_t start = gort_now();
	struct sysmon_stats st = stats();
	for (int i = 0; i < 100 && st.sample.when <= start; i++) {
		gort_sleep(10 * 1000 * 1000);
		st = stats();
	}
	ck_assert_int_gt(st.sample.when, start);
	ck_assert_int_le(st.sample.when, gort_now());
	ck_assert_int_eq(st.sample.procs, 2);
	ck_assert_int_ge(st.sample.idleprocs, 0);
	ck_assert_int_le(st.sample.idleprocs, 2);
	ck_assert_int_ge(st.sample.threads, 1);
	ck_assert_int_ge(st.sample.runqueue, 0);
	return 0;
}

START_TEST(test_sample)
{
	run_gort(sample_main, 2, 0);
	/* the last run's figures stay readable; a new run starts from zero */
	struct sysmon_stats st = stats();
	ck_assert_uint_gt(st.rounds, 0);
	run_gort(sample_main, 2, 0);
}
END_TEST

/* ---- bad input ---- */

START_TEST(test_bad_input)
{
	ck_assert_int_eq(sysmon_stats_read(NULL), -EINVAL);
	ck_assert_int_eq(sysmon_set_forcepreempt(0), -EINVAL);
	ck_assert_int_eq(sysmon_set_forcepreempt(-1), -EINVAL);
	ck_assert_int_eq(sysmon_set_forcepreempt(49 * 1000), -EINVAL);
	ck_assert_int_eq(sysmon_set_forcepreempt(10LL * 1000 * 1000 * 1000 + 1), -EINVAL);
	ck_assert_int_eq(sysmon_set_forcepreempt(5 * 1000 * 1000), 10 * 1000 * 1000);
	ck_assert_int_eq(sysmon_set_forcepreempt(10 * 1000 * 1000), 5 * 1000 * 1000);
	/* sysmon_stop without a sysmon, twice */
	sysmon_stop();
	sysmon_stop();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sysmon");
	TCase *tc = tcase_create("sysmon");
	/* TSan makes every goroutine a fiber whose switches cost in proportion to
	 * the fibers alive: test_scavenges_pooled_stacks' 5000 (the pool's
	 * watermark is 4096) took over 120 s at load ~14 */
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_idle_backoff_deep_sleep_and_kick);
	tcase_add_test(tc, test_kick_backs_off_at_once);
	tcase_add_test(tc, test_busy_backoff);
	tcase_add_test(tc, test_scavenges_pooled_stacks);
	tcase_add_test(tc, test_sample);
	tcase_add_test(tc, test_bad_input);
	suite_add_tcase(s, tc);
	return test_main(s);
}
