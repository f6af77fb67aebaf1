/* tests/test-select.c: gort_select (runtime/select.c): readiness, default, nil cases, blocking and wakeups, fairness, lock order, close races, panics. */
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "chan.h"
#include "testlib.h"

static gort_select_case rcase(gort_chan *c, void *elem)
{
	return (gort_select_case){ .chan = c, .dir = GORT_RECV, .elem = elem };
}

static gort_select_case scase(gort_chan *c, void *elem)
{
	return (gort_select_case){ .chan = c, .dir = GORT_SEND, .elem = elem };
}

static struct g *_Atomic gslot;
static gort_wg gwg;
static gort_chan *ga, *gb, *gc;

/* ---- readiness and default ---- */

static int ready_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	gort_chan *a = gort_chan_make(sizeof(long), 1), *b = gort_chan_make(sizeof(long), 1);
	long va = -1, vb = -1, x = 5;
	gort_select_case cs[2] = { rcase(a, &va), rcase(b, &vb) };
	/* nothing ready: default */
	ck_assert_int_eq(gort_select(cs, 2, false), -1);
	ck_assert(!cs[0].ok && !cs[1].ok);
	ck_assert_int_eq(gort_select(NULL, 0, false), -1);
	/* one ready: that one, with its value */
	gort_chan_send(b, &x);
	ck_assert_int_eq(gort_select(cs, 2, false), 1);
	ck_assert(cs[1].ok);
	ck_assert_int_eq(vb, 5);
	ck_assert_int_eq(va, -1);
	/* a send case on a buffered channel with room */
	long y = 8;
	gort_select_case ss[2] = { scase(a, &y), rcase(b, &vb) };
	ck_assert_int_eq(gort_select(ss, 2, true), 0);
	ck_assert(ss[0].ok);
	ck_assert_int_eq(gort_chan_len(a), 1);
	/* now a is full: the send case is not ready */
	ck_assert_int_eq(gort_select(ss, 2, false), -1);
	/* a closed channel is ready for receiving: zero and !ok */
	gort_chan_close(b);
	vb = 77;
	ck_assert_int_eq(gort_select(cs + 1, 1, true), 0);
	ck_assert(!cs[1].ok);
	ck_assert_int_eq(vb, 0);
	/* receiving into NULL discards */
	gort_select_case d = rcase(a, NULL);
	ck_assert_int_eq(gort_select(&d, 1, false), 0);
	ck_assert(d.ok);
	ck_assert_int_eq(gort_chan_len(a), 0);
	gort_chan_free(a);
	gort_chan_free(b);
	return 0;
}

START_TEST(test_ready_cases_and_default)
{
	run_gort(ready_main, 2, 0);
}
END_TEST

/* ---- nil cases ---- */

static _Atomic int nil_passed;

static void nil_selector(void *arg)
{
	(void)arg;
	atomic_store(&gslot, getg());
	long v;
	gort_select_case cs[2] = { rcase(NULL, &v), scase(NULL, &v) };
	gort_select(cs, 2, true);
	atomic_store(&nil_passed, 1);
}

static void empty_selector(void *arg)
{
	(void)arg;
	atomic_store(&gslot, getg());
	gort_select(NULL, 0, true);
	atomic_store(&nil_passed, 1);
}

static int nil_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	gort_chan *a = gort_chan_make(sizeof(long), 1);
	long v = 1;
	gort_chan_send(a, &v);
	/* a nil case is never chosen, even next to a ready one */
	for (int i = 0; i < 100; i++) {
		gort_select_case cs[3] = { rcase(NULL, &v), rcase(a, &v), scase(NULL, &v) };
		ck_assert_int_eq(gort_select(cs, 3, true), 1);
		gort_chan_send(a, &v);
	}
	gort_select_case only_nil[2] = { rcase(NULL, &v), scase(NULL, &v) };
	ck_assert_int_eq(gort_select(only_nil, 2, false), -1);
	/* blocking on nothing but nil cases, or no cases: forever */
	gort_go(nil_selector, NULL);
	wait_parked(&gslot, WAIT_SELECT_NO_CASES);
	atomic_store(&gslot, NULL);
	gort_go(empty_selector, NULL);
	wait_parked(&gslot, WAIT_SELECT_NO_CASES);
	gort_sleep(20 * MS);
	ck_assert_int_eq(atomic_load(&nil_passed), 0);
	gort_chan_free(a);
	return 0;
}

START_TEST(test_nil_cases_never_ready)
{
	run_gort(nil_main, 2, 0);
}
END_TEST

/* ---- blocking select, woken by each kind of partner ---- */

static long sel_va, sel_vb;
static _Atomic int sel_result = -2;
static _Atomic bool sel_ok;

static void blocking_selector(void *arg)
{
	long out = (long)arg;
	atomic_store(&gslot, getg());
	gort_select_case cs[3] = { rcase(ga, &sel_va), rcase(gb, &sel_vb), scase(gc, &out) };
	int r = gort_select(cs, 3, true);
	atomic_store(&sel_ok, cs[r].ok);
	atomic_store(&sel_result, r);
	gort_wg_done(&gwg);
}

/* Starts a blocking selector, waits until it is parked, then checks its sudogs
 * are queued on all three channels. */
static void start_selector(long out)
{
	sel_va = sel_vb = -1;
	atomic_store(&sel_result, -2);
	atomic_store(&gslot, NULL);
	gort_wg_add(&gwg, 1);
	gort_go(blocking_selector, (void *)out);
	struct g *gp = wait_parked(&gslot, WAIT_SELECT);
	int n = 0;
	for (struct sudog *sg = gp->waiting; sg; sg = sg->waitlink)
		n++;
	ck_assert_int_eq(n, 3);
}

/* After the select returned, no sudog of it is left on any channel. */
static void assert_queues_empty(void)
{
	gort_chan *chans[] = { ga, gb, gc };
	for (int i = 0; i < 3; i++) {
		struct hchan *c = (struct hchan *)chans[i];
		chanlock(c);
		bool empty = !c->recvq.first && !c->sendq.first;
		chanunlock(c);
		ck_assert_msg(empty, "channel %d still has waiters", i);
	}
}

static int wake_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	ga = gort_chan_make(sizeof(long), 0);
	gb = gort_chan_make(sizeof(long), 0);
	gc = gort_chan_make(sizeof(long), 0);

	/* woken by a send on b */
	start_selector(0);
	long v = 31;
	gort_chan_send(gb, &v);
	gort_wg_wait(&gwg);
	ck_assert_int_eq(atomic_load(&sel_result), 1);
	ck_assert(atomic_load(&sel_ok));
	ck_assert_int_eq(sel_vb, 31);
	ck_assert_int_eq(sel_va, -1);
	assert_queues_empty();

	/* woken by a receive on c: its send case completes */
	start_selector(44);
	ck_assert(gort_chan_recv(gc, &v));
	ck_assert_int_eq(v, 44);
	gort_wg_wait(&gwg);
	ck_assert_int_eq(atomic_load(&sel_result), 2);
	ck_assert(atomic_load(&sel_ok));
	assert_queues_empty();

	/* woken by a close of a: ok=false, zeroed */
	start_selector(0);
	gort_chan_close(ga);
	gort_wg_wait(&gwg);
	ck_assert_int_eq(atomic_load(&sel_result), 0);
	ck_assert(!atomic_load(&sel_ok));
	ck_assert_int_eq(sel_va, 0);
	assert_queues_empty();

	/* woken by a trysend (a parked select receiver counts as ready) */
	gort_chan_free(ga);
	ga = gort_chan_make(sizeof(long), 0);
	start_selector(0);
	v = 9;
	ck_assert(gort_chan_trysend(gb, &v));
	gort_wg_wait(&gwg);
	ck_assert_int_eq(atomic_load(&sel_result), 1);
	ck_assert_int_eq(sel_vb, 9);
	assert_queues_empty();

	gort_chan_free(ga);
	gort_chan_free(gb);
	gort_chan_free(gc);
	return 0;
}

START_TEST(test_blocking_select_woken_by_send_recv_close)
{
	run_gort(wake_main, 2, 0);
}
END_TEST

/* A select sender meeting a select receiver on an unbuffered channel. */
static long s2s_n;

static void select_sender(void *arg)
{
	(void)arg;
	long dummy;
	for (long i = 1; i <= s2s_n; i++) {
		gort_select_case cs[2] = { scase(ga, &i), rcase(gb, &dummy) };
		if (gort_select(cs, 2, true) != 0)
			ck_abort_msg("select chose the case nobody is on");
	}
	gort_wg_done(&gwg);
}

static int select_to_select_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	s2s_n = scaled(50000);
	ga = gort_chan_make(sizeof(long), 0);
	gb = gort_chan_make(sizeof(long), 0);
	gc = gort_chan_make(sizeof(long), 0);
	gort_wg_add(&gwg, 1);
	gort_go(select_sender, NULL);
	long dummy = 0;
	uint64_t sum = 0;
	for (long i = 1; i <= s2s_n; i++) {
		long v = 0;
		/* gb and gc: nobody is on their other side */
		gort_select_case cs[2] = { rcase(ga, &v), scase(gc, &dummy) };
		/* plain ifs in hot loops: every ck_assert is a write to check's pipe */
		int r = gort_select(cs, 2, true);
		if (r != 0 || v != i)
			ck_abort_msg("select %d, value %ld, want 0 and %ld", r, v, i);
		sum += (uint64_t)v;
	}
	gort_wg_wait(&gwg);
	ck_assert_uint_eq(sum, (uint64_t)s2s_n * (uint64_t)(s2s_n + 1) / 2);
	gort_chan_free(ga);
	gort_chan_free(gb);
	gort_chan_free(gc);
	return 0;
}

START_TEST(test_select_meets_select)
{
	run_gort(select_to_select_main, 2, 0);
}
END_TEST

/* ---- the same channel in several cases ---- */

static void dup_selector(void *arg)
{
	(void)arg;
	long v1 = -1, v2 = -1, out = 7;
	atomic_store(&gslot, getg());
	gort_select_case cs[3] = { rcase(ga, &v1), rcase(ga, &v2), scase(ga, &out) };
	int r = gort_select(cs, 3, true);
	atomic_store(&sel_result, r);
	gort_wg_done(&gwg);
}

static int dup_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	ga = gort_chan_make(sizeof(long), 0);
	for (int round = 0; round < 50; round++) {
		atomic_store(&gslot, NULL);
		gort_wg_add(&gwg, 1);
		gort_go(dup_selector, NULL);
		wait_parked(&gslot, WAIT_SELECT);
		long v = 3;
		if (round % 2) {
			gort_chan_send(ga, &v);
			gort_wg_wait(&gwg);
			ck_assert_int_lt(atomic_load(&sel_result), 2);
		} else {
			ck_assert(gort_chan_recv(ga, &v));
			ck_assert_int_eq(v, 7);
			gort_wg_wait(&gwg);
			ck_assert_int_eq(atomic_load(&sel_result), 2);
		}
		struct hchan *c = (struct hchan *)ga;
		chanlock(c);
		ck_assert(!c->recvq.first && !c->sendq.first);
		chanunlock(c);
	}
	gort_chan_free(ga);
	return 0;
}

START_TEST(test_same_channel_in_several_cases)
{
	run_gort(dup_main, 2, 0);
}
END_TEST

/* ---- many cases: the allocated path and the heapsort lock order ---- */

enum { MANY = 100 };
static gort_chan *many[MANY];

static void many_selector(void *arg)
{
	(void)arg;
	long vals[MANY];
	gort_select_case cs[MANY];
	for (int i = 0; i < MANY; i++)
		cs[i] = rcase(many[i], &vals[i]);
	atomic_store(&gslot, getg());
	int r = gort_select(cs, MANY, true);
	ck_assert_int_eq(vals[r], r * 10);
	atomic_store(&sel_result, r);
	gort_wg_done(&gwg);
}

static int many_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	for (int i = 0; i < MANY; i++)
		many[i] = gort_chan_make(sizeof(long), i % 2);
	/* ready at one random index: found */
	for (int round = 0; round < 100; round++) {
		int k = (int)trand(MANY);
		long v = k * 10, got[MANY];
		gort_select_case cs[MANY];
		for (int i = 0; i < MANY; i++)
			cs[i] = rcase(many[i], &got[i]);
		if (k % 2 == 0) {
			ck_assert_int_eq(gort_select(cs, MANY, false), -1);
			continue; /* unbuffered: nothing to find without a sender */
		}
		gort_chan_send(many[k], &v);
		ck_assert_int_eq(gort_select(cs, MANY, false), k);
		ck_assert_int_eq(got[k], v);
	}
	/* parked on all of them: woken by any */
	for (int round = 0; round < 20; round++) {
		int k = (int)trand(MANY);
		atomic_store(&gslot, NULL);
		gort_wg_add(&gwg, 1);
		gort_go(many_selector, NULL);
		wait_parked(&gslot, WAIT_SELECT);
		long v = k * 10;
		gort_chan_send(many[k], &v);
		gort_wg_wait(&gwg);
		ck_assert_int_eq(atomic_load(&sel_result), k);
		for (int i = 0; i < MANY; i++) {
			struct hchan *c = (struct hchan *)many[i];
			chanlock(c);
			ck_assert(!c->recvq.first);
			chanunlock(c);
		}
	}
	for (int i = 0; i < MANY; i++)
		gort_chan_free(many[i]);
	return 0;
}

START_TEST(test_many_cases)
{
	run_gort(many_main, 2, 0);
}
END_TEST

/* ---- fairness: uniform among ready cases ---- */

static int fair_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	enum { K = 4, ROUNDS = 40000 };
	gort_chan *c[K];
	long hits[K] = { 0 }, v = 1, got;
	gort_select_case cs[K];
	for (int i = 0; i < K; i++) {
		c[i] = gort_chan_make(sizeof(long), 1);
		gort_chan_send(c[i], &v);
		cs[i] = rcase(c[i], &got);
	}
	for (int r = 0; r < ROUNDS; r++) {
		int i = gort_select(cs, K, false);
		if (i < 0)
			ck_abort_msg("nothing ready");
		hits[i]++;
		gort_chan_send(c[i], &v); /* all K stay ready */
	}
	/* expected 10000 each; sd ~87: bounds are > 20 sd wide */
	for (int i = 0; i < K; i++)
		ck_assert_msg(hits[i] > ROUNDS / K * 8 / 10 && hits[i] < ROUNDS / K * 12 / 10,
			      "case %d chosen %ld times of %d", i, hits[i], ROUNDS);
	/* and with a nil case mixed in, still uniform among the others */
	long hits3[3] = { 0 };
	gort_select_case cs3[4] = { cs[0], rcase(NULL, &got), cs[1], cs[2] };
	for (int r = 0; r < ROUNDS; r++) {
		int i = gort_select(cs3, 4, true);
		if (i == 1)
			ck_abort_msg("nil case chosen");
		hits3[i == 0 ? 0 : i - 1]++;
		gort_chan_send(cs3[i].chan, &v);
	}
	for (int i = 0; i < 3; i++)
		ck_assert_msg(hits3[i] > ROUNDS / 3 * 8 / 10 && hits3[i] < ROUNDS / 3 * 12 / 10,
			      "case %d chosen %ld times of %d", i, hits3[i], ROUNDS);
	for (int i = 0; i < K; i++)
		gort_chan_free(c[i]);
	return 0;
}

START_TEST(test_fairness)
{
	run_gort(fair_main, 2, 0);
}
END_TEST

/* ---- lock order: selects over the same channels in opposite orders ---- */

static long cross_n;
static _Atomic uint64_t cross_sum;
static _Atomic long cross_count;

static void cross_a(void *arg)
{
	(void)arg;
	long v = 0;
	for (long i = 1; i <= cross_n; i++) {
		long out = i;
		gort_select_case cs[2] = { scase(ga, &out), rcase(gb, &v) };
		if (gort_select(cs, 2, true) == 1) {
			atomic_fetch_add(&cross_sum, (uint64_t)v);
			atomic_fetch_add(&cross_count, 1);
			i--; /* ours still to send */
		}
	}
	gort_wg_done(&gwg);
}

static void cross_b(void *arg)
{
	(void)arg;
	long v = 0;
	for (long i = 1; i <= cross_n; i++) {
		long out = i;
		gort_select_case cs[2] = { rcase(ga, &v), scase(gb, &out) };
		if (gort_select(cs, 2, true) == 0) {
			atomic_fetch_add(&cross_sum, (uint64_t)v);
			atomic_fetch_add(&cross_count, 1);
			i--;
		}
	}
	gort_wg_done(&gwg);
}

/* drains whatever is left once one side is done */
static void cross_drain(void *arg)
{
	long v;
	while (gort_chan_recv(arg, &v)) {
		atomic_fetch_add(&cross_sum, (uint64_t)v);
		atomic_fetch_add(&cross_count, 1);
	}
	gort_wg_done(&gwg);
}

static int cross_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	cross_n = scaled(20000);
	ga = gort_chan_make(sizeof(long), 0);
	gb = gort_chan_make(sizeof(long), 0);
	/* Each side sends 1..n on its channel and takes whatever the other
	 * side offers meanwhile: two selects that lock {ga, gb} from opposite
	 * case orders; everything sent is received exactly once. */
	gort_wg_add(&gwg, 2);
	gort_go(cross_a, NULL);
	gort_go(cross_b, NULL);
	/* the side that finishes first leaves the other's last sends unmatched */
	gort_wg_add(&gwg, 2);
	gort_go(cross_drain, ga);
	gort_go(cross_drain, gb);
	/* stuck means no progress for a minute (a sanitizer on a loaded machine
	 * may take longer than that for all of it) */
	int64_t deadline = gort_now() + 60 * SEC;
	long seen = 0;
	while (atomic_load(&cross_count) < 2 * cross_n) {
		if (atomic_load(&cross_count) != seen) {
			seen = atomic_load(&cross_count);
			deadline = gort_now() + 60 * SEC;
		}
		ck_assert_msg(gort_now() < deadline, "stuck at %ld of %ld", atomic_load(&cross_count), 2 * cross_n);
		gort_sleep(MS);
	}
	gort_chan_close(ga);
	gort_chan_close(gb);
	gort_wg_wait(&gwg);
	ck_assert_int_eq(atomic_load(&cross_count), 2 * cross_n);
	ck_assert_uint_eq(atomic_load(&cross_sum), (uint64_t)cross_n * (uint64_t)(cross_n + 1));
	gort_chan_free(ga);
	gort_chan_free(gb);
	return 0;
}

START_TEST(test_opposite_orders_no_deadlock)
{
	run_gort(cross_main, 2, 0);
}
END_TEST

/* ---- stress: many selectors over shared channels, checksums ---- */

enum { SEL_PRODUCERS = 4, SEL_CONSUMERS = 4, SEL_CHANS = 3 };
static gort_chan *selch[SEL_CHANS];
static long sel_per;
static _Atomic uint8_t *sel_seen;
static _Atomic long sel_dup, sel_count;
static gort_wg sel_prod_wg, sel_cons_wg;

static void sel_producer(void *arg)
{
	long id = (long)arg;
	for (long k = 0; k < sel_per; k++) {
		long v = id * sel_per + k;
		gort_select_case cs[SEL_CHANS];
		for (int i = 0; i < SEL_CHANS; i++)
			cs[i] = scase(selch[i], &v);
		if (gort_select(cs, SEL_CHANS, true) < 0)
			ck_abort_msg("blocking select returned -1");
	}
	gort_wg_done(&sel_prod_wg);
}

static void sel_consumer(void *arg)
{
	(void)arg;
	long v, n = 0;
	bool open[SEL_CHANS] = { true, true, true };
	int nopen = SEL_CHANS;
	while (nopen > 0) {
		gort_select_case cs[SEL_CHANS];
		for (int i = 0; i < SEL_CHANS; i++)
			cs[i] = rcase(open[i] ? selch[i] : NULL, &v);
		int r = gort_select(cs, SEL_CHANS, true);
		if (!cs[r].ok) {
			open[r] = false;
			nopen--;
			continue;
		}
		if (atomic_exchange(&sel_seen[v], 1))
			atomic_fetch_add(&sel_dup, 1);
		n++;
	}
	atomic_fetch_add(&sel_count, n);
	gort_wg_done(&sel_cons_wg);
}

static int sel_stress_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	sel_per = scaled(20000);
	long total = SEL_PRODUCERS * sel_per;
	sel_seen = calloc((size_t)total, 1);
	for (int i = 0; i < SEL_CHANS; i++)
		selch[i] = gort_chan_make(sizeof(long), (size_t)i * 2); /* 0, 2, 4 */
	gort_wg_add(&sel_prod_wg, SEL_PRODUCERS);
	gort_wg_add(&sel_cons_wg, SEL_CONSUMERS);
	for (long i = 0; i < SEL_CONSUMERS; i++)
		gort_go(sel_consumer, NULL);
	for (long i = 0; i < SEL_PRODUCERS; i++)
		gort_go(sel_producer, (void *)i);
	gort_wg_wait(&sel_prod_wg);
	for (int i = 0; i < SEL_CHANS; i++)
		gort_chan_close(selch[i]);
	gort_wg_wait(&sel_cons_wg);
	ck_assert_int_eq(atomic_load(&sel_dup), 0);
	ck_assert_int_eq(atomic_load(&sel_count), total);
	for (long i = 0; i < total; i++)
		if (!atomic_load(&sel_seen[i]))
			ck_abort_msg("value %ld lost", i);
	free((void *)sel_seen);
	for (int i = 0; i < SEL_CHANS; i++)
		gort_chan_free(selch[i]);
	return 0;
}

START_TEST(test_stress_selects)
{
	run_gort(sel_stress_main, 2, 0);
}
END_TEST

/* ---- close racing with blocked and arriving selects ---- */

static _Atomic long cr_done, cr_bad;

/* Four of these at a time on two Ps: no check assertion here (testlib.h,
 * "check's assertions in goroutines"): a wrong result is counted, and main
 * asserts on the count. */
static void close_race_selector(void *arg)
{
	(void)arg;
	long va, vb;
	gort_select_case cs[2] = { rcase(ga, &va), rcase(gb, &vb) };
	int r = gort_select(cs, 2, true);
	if (cs[r].ok || (r == 0 ? va : vb) != 0)
		atomic_fetch_add(&cr_bad, 1); /* a value, or no zero value, from a closed channel */
	atomic_fetch_add(&cr_done, 1);
	gort_wg_done(&gwg);
}

static void closer(void *arg)
{
	for (uint32_t i = trand(4); i > 0; i--)
		gort_yield();
	gort_chan_close(arg);
	gort_wg_done(&gwg);
}

static int select_close_race_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	long rounds = scaled(1000);
	for (long r = 0; r < rounds; r++) {
		ga = gort_chan_make(sizeof(long), 0);
		gb = gort_chan_make(sizeof(long), r % 2);
		gort_wg_add(&gwg, 6);
		for (int i = 0; i < 4; i++)
			gort_go(close_race_selector, NULL);
		gort_go(closer, ga);
		gort_go(closer, gb);
		gort_wg_wait(&gwg);
		gort_chan_free(ga);
		gort_chan_free(gb);
	}
	ck_assert_int_eq(atomic_load(&cr_done), rounds * 4);
	ck_assert_msg(atomic_load(&cr_bad) == 0, "%ld selects on closed channels got a value or no zero value",
		      atomic_load(&cr_bad));
	return 0;
}

START_TEST(test_close_races_with_select)
{
	run_gort(select_close_race_main, 2, 0);
}
END_TEST

/* ---- panics and bad input ---- */

static int select_send_closed_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	gort_chan *a = gort_chan_make(sizeof(long), 1);
	gort_chan_close(a);
	long v = 1;
	gort_select_case cs[1] = { scase(a, &v) };
	gort_select(cs, 1, false);
	return 0;
}

START_TEST(test_panic_select_send_on_closed)
{
	expect_panic(select_send_closed_main, "send on closed channel");
}
END_TEST

static void blocked_select_sender(void *arg)
{
	(void)arg;
	long v = 1, w;
	atomic_store(&gslot, getg());
	gort_select_case cs[2] = { scase(ga, &v), rcase(gb, &w) };
	gort_select(cs, 2, true);
}

static int blocked_select_close_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	atomic_store(&gslot, NULL); /* not a G of an earlier test (one process under valgrind) */
	ga = gort_chan_make(sizeof(long), 0);
	gb = gort_chan_make(sizeof(long), 0);
	gort_go(blocked_select_sender, NULL);
	wait_parked(&gslot, WAIT_SELECT);
	gort_chan_close(ga);
	gort_sleep(10 * SEC);
	return 0;
}

START_TEST(test_panic_blocked_select_send_closed)
{
	expect_panic(blocked_select_close_main, "send on closed channel");
}
END_TEST

static int negative_n_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	gort_select_case cs[1];
	gort_select(cs, -1, false);
	return 0;
}

START_TEST(test_panic_negative_case_count)
{
	expect_panic(negative_n_main, "select: bad case list");
}
END_TEST

static int null_cases_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	gort_select(NULL, 2, false);
	return 0;
}

START_TEST(test_panic_null_case_array)
{
	expect_panic(null_cases_main, "select: bad case list");
}
END_TEST

static int bad_dir_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	gort_chan *a = gort_chan_make(sizeof(long), 1);
	long v;
	gort_select_case cs[1] = { { .chan = a, .dir = (enum gort_select_dir)7, .elem = &v } };
	gort_select(cs, 1, false);
	return 0;
}

START_TEST(test_panic_bad_direction)
{
	expect_panic(bad_dir_main, "select: case 0: bad direction 7");
}
END_TEST

static int null_send_elem_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	gort_chan *a = gort_chan_make(sizeof(long), 1);
	gort_select_case cs[1] = { scase(a, NULL) };
	gort_select(cs, 1, false);
	return 0;
}

START_TEST(test_panic_null_send_element)
{
	expect_panic(null_send_elem_main, "select: case 0: NULL element pointer");
}
END_TEST

static int too_many_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	gort_select(NULL, 65537, false);
	return 0;
}

START_TEST(test_panic_too_many_cases)
{
	expect_panic(too_many_main, "select: bad case list (65537 cases");
}
END_TEST

static Suite *select_suite(void)
{
	Suite *s = suite_create("select");
	TCase *tc = tcase_create("semantics");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_ready_cases_and_default);
	tcase_add_test(tc, test_nil_cases_never_ready);
	tcase_add_test(tc, test_blocking_select_woken_by_send_recv_close);
	tcase_add_test(tc, test_select_meets_select);
	tcase_add_test(tc, test_same_channel_in_several_cases);
	tcase_add_test(tc, test_many_cases);
	tcase_add_test(tc, test_fairness);
	suite_add_tcase(s, tc);

	tc = tcase_create("stress");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_opposite_orders_no_deadlock);
	tcase_add_test(tc, test_stress_selects);
	tcase_add_test(tc, test_close_races_with_select);
	suite_add_tcase(s, tc);

	tc = tcase_create("panics");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_panic_select_send_on_closed);
	tcase_add_test(tc, test_panic_blocked_select_send_closed);
	tcase_add_test(tc, test_panic_negative_case_count);
	tcase_add_test(tc, test_panic_null_case_array);
	tcase_add_test(tc, test_panic_bad_direction);
	tcase_add_test(tc, test_panic_null_send_element);
	tcase_add_test(tc, test_panic_too_many_cases);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_main(select_suite());
}
