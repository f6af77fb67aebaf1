/* tests/test-sync.c: the sync package (runtime/sync.c, runtime/sema.c): mutex (exclusion, trylock, starvation mode), once, wait groups, semaphores. */
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "sema.h"
#include "testlib.h"

static gort_wg wg;

/* ---- mutex ---- */

static gort_mutex mu = GORT_MUTEX_INIT;
static long shared_counter; /* not atomic: the mutex protects it */
static long excl_per;
static _Atomic int inside;
static _Atomic int overlap;

static void locker(void *arg)
{
	long id = (long)arg;
	for (long i = 0; i < excl_per; i++) {
		if (id % 2 && i % 7 == 0) {
			while (!gort_mutex_trylock(&mu))
				gort_yield();
		} else {
			gort_mutex_lock(&mu);
		}
		if (atomic_fetch_add(&inside, 1) != 0)
			atomic_store(&overlap, 1);
		shared_counter++;
		if (i % 64 == 0)
			gort_yield(); /* holding it across a reschedule */
		atomic_fetch_sub(&inside, 1);
		gort_mutex_unlock(&mu);
	}
	gort_wg_done(&wg);
}

static int exclusion_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	enum { N = 8 };
	excl_per = scaled(50000);
	gort_wg_add(&wg, N);
	for (long i = 0; i < N; i++)
		gort_go(locker, (void *)i);
	gort_wg_wait(&wg);
	ck_assert_int_eq(atomic_load(&overlap), 0);
	ck_assert_int_eq(shared_counter, N * excl_per);
	ck_assert_uint_eq(mu.state, 0); /* unlocked, no waiters, no flags */
	return 0;
}

START_TEST(test_mutex_exclusion)
{
	run_gort(exclusion_main, 2, 0);
}
END_TEST

static void try_holder(void *arg)
{
	gort_mutex *m = arg;
	ck_assert(!gort_mutex_trylock(m));
	gort_wg_done(&wg);
}

static int trylock_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	gort_mutex m = GORT_MUTEX_INIT;
	/* uncontended: one atomic each way; the semaphore untouched */
	gort_mutex_lock(&m);
	ck_assert_uint_eq(m.state, 1);
	gort_mutex_unlock(&m);
	ck_assert_uint_eq(m.state, 0);
	ck_assert_uint_eq(m.sema, 0);
	ck_assert(gort_mutex_trylock(&m));
	ck_assert(!gort_mutex_trylock(&m));
	gort_wg_add(&wg, 1);
	gort_go(try_holder, &m); /* another goroutine can't take it either */
	gort_wg_wait(&wg);
	gort_mutex_unlock(&m);
	ck_assert(gort_mutex_trylock(&m));
	gort_mutex_unlock(&m);
	/* zero-initialised works like the static initialiser */
	gort_mutex z;
	memset(&z, 0, sizeof z);
	gort_mutex_lock(&z);
	gort_mutex_unlock(&z);
	return 0;
}

START_TEST(test_mutex_trylock_and_uncontended)
{
	run_gort(trylock_main, 2, 0);
}
END_TEST

/* A blocked locker parks (wait reason "mutex") and is woken by unlock. */
static struct g *_Atomic parked_g;
static _Atomic int got_it;

static void blocked_locker(void *arg)
{
	gort_mutex *m = arg;
	atomic_store(&parked_g, getg());
	gort_mutex_lock(m);
	atomic_store(&got_it, 1);
	gort_mutex_unlock(m);
	gort_wg_done(&wg);
}

static int park_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	static gort_mutex m;
	gort_mutex_lock(&m);
	gort_wg_add(&wg, 1);
	gort_go(blocked_locker, &m);
	int64_t deadline = gort_now() + 10 * SEC;
	struct g *gp;
	while (!(gp = atomic_load(&parked_g)) || readgstatus(gp) != G_WAITING || gp->waitreason != WAIT_MUTEX) {
		ck_assert(gort_now() < deadline);
		gort_sleep(100 * 1000);
	}
	ck_assert_uint_eq(m.state >> 3, 1); /* one waiter */
	ck_assert_int_eq(atomic_load(&got_it), 0);
	gort_mutex_unlock(&m);
	gort_wg_wait(&wg);
	ck_assert_int_eq(atomic_load(&got_it), 1);
	ck_assert_uint_eq(m.state, 0);
	return 0;
}

START_TEST(test_mutex_waiter_parks)
{
	run_gort(park_main, 2, 0);
}
END_TEST

/* Starvation mode (Go's TestMutexFairness): a goroutine that takes the mutex
 * back right after releasing it can't keep another one out for long, and the
 * mutex is seen in starvation mode meanwhile. */
static _Atomic bool hog_stop;
static _Atomic bool saw_starving;

static void hog(void *arg)
{
	gort_mutex *m = arg;
	while (!atomic_load(&hog_stop)) {
		gort_mutex_lock(m);
		int64_t until = gort_now() + 100 * 1000; /* hold 100 us */
		while (gort_now() < until)
			if (__atomic_load_n(&m->state, __ATOMIC_RELAXED) & 4)
				atomic_store(&saw_starving, true);
		gort_mutex_unlock(m);
	}
	gort_wg_done(&wg);
}

static _Atomic bool polite_done, polite_stop;
static _Atomic int polite_rounds;

/* Ten rounds at least, then on until hog has seen starvation mode: a round
 * enters it only if polite, woken, finds the mutex held after waiting over
 * 1 ms, which on a loaded machine (hog's thread descheduled, polite woken to an
 * unlocked mutex) may not happen in the first ten. */
static void polite(void *arg)
{
	gort_mutex *m = arg;
	while (!atomic_load(&polite_stop) && (atomic_load(&polite_rounds) < 10 || !atomic_load(&saw_starving))) {
		gort_sleep(100 * 1000);
		gort_mutex_lock(m);
		gort_mutex_unlock(m);
		atomic_fetch_add(&polite_rounds, 1);
	}
	atomic_store(&polite_done, true);
}

static int fairness_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	static gort_mutex m;
	gort_wg_add(&wg, 1);
	gort_go(hog, &m);
	gort_go(polite, &m);
	/* polite's lock/unlock rounds must go on while hog keeps hogging, and
	 * hog must see the mutex in starvation mode meanwhile */
	int64_t deadline = gort_now() + 20 * SEC;
	while (!atomic_load(&polite_done) && gort_now() < deadline)
		gort_sleep(MS);
	int rounds = atomic_load(&polite_rounds); /* before hog lets go */
	bool starving = atomic_load(&saw_starving);
	atomic_store(&polite_stop, true);
	atomic_store(&hog_stop, true);
	gort_wg_wait(&wg);
	while (!atomic_load(&polite_done))
		gort_sleep(MS);
	ck_assert_msg(rounds >= 10, "polite goroutine starved: %d rounds in 20 s", rounds);
	ck_assert_msg(starving, "no starvation mode in %d rounds", rounds);
	ck_assert_uint_eq(__atomic_load_n(&m.state, __ATOMIC_RELAXED), 0);
	return 0;
}

START_TEST(test_mutex_starvation_mode)
{
	run_gort(fairness_main, 2, 0);
}
END_TEST

/* Heavy contention with starvation in and out: nothing lost. */
static void contender(void *arg)
{
	gort_mutex *m = arg;
	for (long i = 0; i < excl_per; i++) {
		gort_mutex_lock(m);
		shared_counter++;
		if (i % 100 == 0) {
			int64_t until = gort_now() + 1200 * 1000; /* > 1 ms: waiters starve */
			while (gort_now() < until)
				;
		}
		gort_mutex_unlock(m);
	}
	gort_wg_done(&wg);
}

static int contention_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	static gort_mutex m;
	enum { N = 6 };
	shared_counter = 0;
	excl_per = scaled(3000);
	gort_wg_add(&wg, N);
	for (int i = 0; i < N; i++)
		gort_go(contender, &m);
	gort_wg_wait(&wg);
	ck_assert_int_eq(shared_counter, N * excl_per);
	ck_assert_uint_eq(m.state, 0);
	return 0;
}

START_TEST(test_mutex_contention_through_starvation)
{
	run_gort(contention_main, 2, 0);
}
END_TEST

static int unlock_unlocked_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	gort_mutex m = GORT_MUTEX_INIT;
	gort_mutex_unlock(&m);
	return 0;
}

START_TEST(test_panic_unlock_of_unlocked)
{
	expect_panic(unlock_unlocked_main, "sync: unlock of unlocked mutex");
}
END_TEST

/* ---- once ---- */

static gort_once once = GORT_ONCE_INIT;
static _Atomic int once_calls;
static _Atomic int once_done_flag;
static _Atomic int once_early;

static void once_fn(void)
{
	atomic_fetch_add(&once_calls, 1);
	gort_sleep(10 * MS); /* the others must wait for it */
	atomic_store(&once_done_flag, 1);
}

static void once_caller(void *arg)
{
	(void)arg;
	gort_once_do(&once, once_fn);
	if (!atomic_load(&once_done_flag))
		atomic_store(&once_early, 1);
	gort_wg_done(&wg);
}

static void never_called(void)
{
	ck_abort_msg("once ran its function twice");
}

static int once_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	enum { N = 100 };
	gort_wg_add(&wg, N);
	for (int i = 0; i < N; i++)
		gort_go(once_caller, NULL);
	gort_wg_wait(&wg);
	ck_assert_int_eq(atomic_load(&once_calls), 1);
	ck_assert_int_eq(atomic_load(&once_early), 0);
	gort_once_do(&once, never_called);
	/* zero-initialised */
	gort_once z;
	memset(&z, 0, sizeof z);
	atomic_store(&once_calls, 0);
	gort_once_do(&z, once_fn);
	gort_once_do(&z, once_fn);
	ck_assert_int_eq(atomic_load(&once_calls), 1);
	return 0;
}

START_TEST(test_once_runs_once_and_others_wait)
{
	run_gort(once_main, 2, 0);
}
END_TEST

static int once_null_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	gort_once o = GORT_ONCE_INIT;
	gort_once_do(&o, NULL);
	return 0;
}

START_TEST(test_panic_once_null_function)
{
	expect_panic(once_null_main, "sync: once with a NULL function");
}
END_TEST

/* Go's Once: a function that ends its goroutine (Goexit) still counts as
 * returned -- the deferred done.Store(1) and Unlock run -- so the waiters
 * return and nobody runs it again. */
static gort_once exit_once = GORT_ONCE_INIT;
static _Atomic int exit_waiters_in, exit_waiters_out;

static void fn_waits_then_exits(void)
{
	atomic_fetch_add(&once_calls, 1);
	/* every waiter is parked on the once before the function ends its goroutine */
	while (atomic_load(&exit_waiters_in) < 8)
		gort_sleep(MS);
	gort_sleep(5 * MS);
	ck_assert_int_eq(atomic_load(&exit_waiters_out), 0);
	gort_exit();
}

static void exit_once_runner(void *arg)
{
	(void)arg;
	gort_once_do(&exit_once, fn_waits_then_exits);
	ck_abort_msg("gort_exit in a once function returned");
}

static void exit_once_waiter(void *arg)
{
	(void)arg;
	atomic_fetch_add(&exit_waiters_in, 1);
	gort_once_do(&exit_once, never_called);
	atomic_fetch_add(&exit_waiters_out, 1);
	gort_wg_done(&wg);
}

/* nested: the inner once's function ends the goroutine; both complete */
static gort_once outer_once = GORT_ONCE_INIT, inner_once = GORT_ONCE_INIT;

static void inner_exits(void)
{
	atomic_fetch_add(&once_calls, 1);
	gort_exit();
}

static void outer_calls_inner(void)
{
	atomic_fetch_add(&once_calls, 1);
	gort_once_do(&inner_once, inner_exits);
	ck_abort_msg("unreachable");
}

static void nested_runner(void *arg)
{
	(void)arg;
	gort_once_do(&outer_once, outer_calls_inner);
}

static int once_exit_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	atomic_store(&once_calls, 0);
	ck_assert_int_gt(gort_go(exit_once_runner, NULL), 0);
	while (atomic_load(&once_calls) == 0)
		gort_yield();
	gort_wg_add(&wg, 8);
	for (int i = 0; i < 8; i++)
		ck_assert_int_gt(gort_go(exit_once_waiter, NULL), 0);
	gort_wg_wait(&wg);
	ck_assert_int_eq(atomic_load(&exit_waiters_out), 8);
	ck_assert_int_eq(atomic_load(&once_calls), 1);
	ck_assert_uint_eq(exit_once.done, 1);
	gort_once_do(&exit_once, never_called);

	atomic_store(&once_calls, 0);
	ck_assert_int_gt(gort_go(nested_runner, NULL), 0);
	for (int k = 0; k < 10000 && !__atomic_load_n(&outer_once.done, __ATOMIC_ACQUIRE); k++)
		gort_sleep(MS);
	ck_assert_uint_eq(__atomic_load_n(&inner_once.done, __ATOMIC_ACQUIRE), 1);
	ck_assert_uint_eq(__atomic_load_n(&outer_once.done, __ATOMIC_ACQUIRE), 1);
	ck_assert_int_eq(atomic_load(&once_calls), 2);
	gort_once_do(&outer_once, never_called);
	gort_once_do(&inner_once, never_called);
	return 0;
}

START_TEST(test_once_function_ends_its_goroutine)
{
	run_gort(once_exit_main, 2, 0);
}
END_TEST

/* A function that never returns keeps the other callers waiting (Go: they
 * block forever); when the task ends meanwhile -- here gort_run's main
 * returns -- the once is completed as Goexit would, not left taken: the once
 * is in the program's memory, which outlives the task, and the next gort_run
 * finds it done. */
static gort_once block_once = GORT_ONCE_INIT;
static gort_chan *block_ch;
static _Atomic int block_waiters_in, block_waiters_out;

static void fn_blocks(void)
{
	atomic_fetch_add(&once_calls, 1);
	int v;
	gort_chan_recv(block_ch, &v); /* nobody sends */
	ck_abort_msg("unreachable");
}

static void block_runner(void *arg)
{
	(void)arg;
	gort_once_do(&block_once, fn_blocks);
}

static void block_waiter(void *arg)
{
	(void)arg;
	atomic_fetch_add(&block_waiters_in, 1);
	gort_once_do(&block_once, never_called);
	atomic_fetch_add(&block_waiters_out, 1);
}

static int once_block_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	atomic_store(&once_calls, 0);
	block_ch = gort_chan_make(sizeof(int), 0);
	ck_assert_ptr_nonnull(block_ch);
	ck_assert_int_gt(gort_go(block_runner, NULL), 0);
	while (atomic_load(&once_calls) == 0)
		gort_yield();
	for (int i = 0; i < 4; i++)
		ck_assert_int_gt(gort_go(block_waiter, NULL), 0);
	while (atomic_load(&block_waiters_in) < 4)
		gort_sleep(MS);
	gort_sleep(20 * MS);
	ck_assert_int_eq(atomic_load(&block_waiters_out), 0); /* still waiting, as in Go */
	ck_assert_uint_eq(__atomic_load_n(&block_once.done, __ATOMIC_ACQUIRE), 0);
	return 3; /* the task ends with the runner and the waiters parked */
}

static gort_once *after_once; /* which once the next gort_run finds done */

static int once_after_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	gort_once_do(after_once, never_called);
	return 4;
}

START_TEST(test_once_task_ends_while_function_blocks)
{
	run_gort(once_block_main, 2, 3);
	ck_assert_uint_eq(__atomic_load_n(&block_once.done, __ATOMIC_ACQUIRE), 1);
	ck_assert_uint_eq(__atomic_load_n(&block_once.m.state, __ATOMIC_ACQUIRE), 0);
	ck_assert_int_eq(atomic_load(&block_waiters_out), 0); /* discarded, never resumed */
	ck_assert_int_eq(atomic_load(&once_calls), 1);
	after_once = &block_once;
	run_gort(once_after_main, 1, 4);
}
END_TEST

/* The function ends the whole task (gort_task_exit) on the main goroutine:
 * the same. */
static gort_once taskexit_once = GORT_ONCE_INIT;

static void fn_task_exit(void)
{
	gort_task_exit(6);
}

static int once_taskexit_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	gort_once_do(&taskexit_once, fn_task_exit);
	ck_abort_msg("unreachable");
	return 0;
}

START_TEST(test_once_function_ends_the_task)
{
	run_gort(once_taskexit_main, 2, 6);
	ck_assert_uint_eq(taskexit_once.done, 1);
	ck_assert_uint_eq(taskexit_once.m.state, 0);
	after_once = &taskexit_once;
	run_gort(once_after_main, 1, 4);
	gort_once_do(&taskexit_once, never_called); /* and from a plain thread */
}
END_TEST

/* Outside any goroutine (a plain thread, no runtime running) it works too. */
static _Atomic int thread_once_calls;
static void thread_once_fn(void)
{
	atomic_fetch_add(&thread_once_calls, 1);
}

START_TEST(test_once_from_a_thread)
{
	gort_once o = GORT_ONCE_INIT;
	gort_once_do(&o, thread_once_fn);
	gort_once_do(&o, thread_once_fn);
	ck_assert_int_eq(atomic_load(&thread_once_calls), 1);
}
END_TEST

/* ---- wait groups ---- */

static _Atomic long wg_work;

static void wg_worker(void *arg)
{
	gort_wg *w = arg;
	gort_sleep((int64_t)trand(2000) * 1000);
	atomic_fetch_add(&wg_work, 1);
	gort_wg_done(w);
}

static _Atomic int wg_early; /* waiters released before all the work was done */

/* released four at a time: no check assertion here (testlib.h, "check's
 * assertions in goroutines"); main asserts on wg_early */
static void wg_waiter(void *arg)
{
	gort_wg *w = arg;
	gort_wg_wait(w);
	if (atomic_load(&wg_work) != 64)
		atomic_fetch_add(&wg_early, 1);
	gort_wg_done(&wg);
}

static int wg_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	gort_wg w = GORT_WG_INIT;
	gort_wg_wait(&w); /* zero: returns at once */
	/* several waiters, all released together; then reused */
	for (int round = 0; round < 3; round++) {
		atomic_store(&wg_work, 0);
		gort_wg_add(&w, 64);
		gort_wg_add(&wg, 4);
		for (int i = 0; i < 4; i++)
			gort_go(wg_waiter, &w);
		for (int i = 0; i < 64; i++)
			gort_go(wg_worker, &w);
		gort_wg_wait(&wg);
		ck_assert_msg(atomic_load(&wg_early) == 0, "%d waiters released before the 64 done",
			      atomic_load(&wg_early));
		ck_assert_uint_eq(w.state, 0);
	}
	return 0;
}

START_TEST(test_waitgroup_many_waiters_and_reuse)
{
	run_gort(wg_main, 2, 0);
}
END_TEST

static int wg_negative_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	gort_wg w = GORT_WG_INIT;
	gort_wg_done(&w);
	return 0;
}

START_TEST(test_panic_waitgroup_negative)
{
	expect_panic(wg_negative_main, "sync: negative WaitGroup counter");
}
END_TEST

/* ---- semaphores ---- */

static uint32_t sem;
static _Atomic int order_next;
static int order_got[8];
static struct g *_Atomic sem_g[8];

static void sem_waiter(void *arg)
{
	long i = (long)arg;
	atomic_store(&sem_g[i], getg());
	semacquire(&sem, false, WAIT_MUTEX);
	order_got[i] = atomic_fetch_add(&order_next, 1);
	gort_wg_done(&wg);
}

static int sema_main(int argc, char **argv)
{
	(void)argc, (void)argv;
	/* a count is taken without waiting */
	uint32_t s = 2;
	semacquire(&s, false, WAIT_MUTEX);
	semacquire(&s, false, WAIT_MUTEX);
	ck_assert_uint_eq(s, 0);
	semrelease(&s, false); /* nobody waits: just the count */
	ck_assert_uint_eq(s, 1);
	/* waiters are woken FIFO, plain and with hand-off */
	for (int handoff = 0; handoff < 2; handoff++) {
		atomic_store(&order_next, 0);
		gort_wg_add(&wg, 8);
		for (long i = 0; i < 8; i++) {
			atomic_store(&sem_g[i], NULL);
			gort_go(sem_waiter, (void *)i);
			int64_t deadline = gort_now() + 10 * SEC;
			struct g *gp;
			while (!(gp = atomic_load(&sem_g[i])) || readgstatus(gp) != G_WAITING) {
				ck_assert(gort_now() < deadline);
				gort_sleep(100 * 1000);
			}
		}
		for (int i = 0; i < 8; i++) {
			semrelease(&sem, handoff);
			/* one at a time, so the order is the queue's */
			int64_t deadline = gort_now() + 10 * SEC;
			while (atomic_load(&order_next) != i + 1) {
				ck_assert(gort_now() < deadline);
				gort_sleep(100 * 1000);
			}
		}
		gort_wg_wait(&wg);
		for (int i = 0; i < 8; i++)
			ck_assert_int_eq(order_got[i], i);
		ck_assert_uint_eq(sem, 0);
	}
	return 0;
}

START_TEST(test_sema_count_and_fifo)
{
	run_gort(sema_main, 2, 0);
}
END_TEST

static Suite *sync_suite(void)
{
	Suite *s = suite_create("sync");
	TCase *tc = tcase_create("mutex");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_mutex_exclusion);
	tcase_add_test(tc, test_mutex_trylock_and_uncontended);
	tcase_add_test(tc, test_mutex_waiter_parks);
	tcase_add_test(tc, test_mutex_starvation_mode);
	tcase_add_test(tc, test_mutex_contention_through_starvation);
	tcase_add_test(tc, test_panic_unlock_of_unlocked);
	suite_add_tcase(s, tc);

	tc = tcase_create("once-wg-sema");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_once_runs_once_and_others_wait);
	tcase_add_test(tc, test_panic_once_null_function);
	tcase_add_test(tc, test_once_function_ends_its_goroutine);
	tcase_add_test(tc, test_once_task_ends_while_function_blocks);
	tcase_add_test(tc, test_once_function_ends_the_task);
	tcase_add_test(tc, test_once_from_a_thread);
	tcase_add_test(tc, test_waitgroup_many_waiters_and_reuse);
	tcase_add_test(tc, test_panic_waitgroup_negative);
	tcase_add_test(tc, test_sema_count_and_fifo);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_main(sync_suite());
}
