/* tests/test-proc.c: the scheduler (runtime/proc.c): goroutine lifecycle, reuse, spreading, locked threads, gort_run. */
#include <errno.h>
#include <fenv.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <valgrind/memcheck.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

#include "chan.h"
#include "runtime.h"
#include "testlib.h"

int64_t allg_count(void);
extern long stack_guard_budget;
extern bool stack_guard_markers;

/* ---- lifecycle and reuse ---- */

static gort_wg wg;
static _Atomic long counter;

static void incr(void *arg)
{
	atomic_fetch_add(&counter, (long)arg);
	gort_wg_done(&wg);
}

static int lifecycle_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	/* 100 rounds of 100 short goroutines: the G structs must come back from the free
	 * lists, so allgs stays near one round's worth. */
	int64_t first = 0;
	for (int round = 0; round < 100; round++) {
		gort_wg_add(&wg, 100);
		for (long i = 0; i < 100; i++) {
			int64_t id = gort_go(incr, (void *)1);
			ck_assert_int_gt(id, 0);
			if (round == 0 && i == 0)
				first = id;
		}
		gort_wg_wait(&wg);
	}
	ck_assert_int_eq(atomic_load(&counter), 100 * 100);
	ck_assert_int_gt(first, gort_id()); /* goids grow */
	ck_assert_int_le(allg_count(), 4 * 100 + 64 * 4);
	return 7;
}

START_TEST(test_lifecycle_and_reuse)
{
	run_gort(lifecycle_main, 2, 7);
}
END_TEST

/* ---- the global free list's batches ---- */

enum { GFB_N = 3000, GFB_NOP = 45 };
static gort_chan *gfb_ch;
static gort_wg gfb_parked, gfb_exited;
static _Atomic int gfb_ran;

static void gfb_parker(void *arg)
{
	(void)arg;
	char c;
	gort_wg_done(&gfb_parked);
	gort_chan_recv(gfb_ch, &c);
	gort_wg_done(&gfb_exited);
}

static void gfb_count(void *arg)
{
	(void)arg;
	atomic_fetch_add(&gfb_ran, 1);
}

/* The global list's shape (runtime.h's schedt): every batch holds GFREE_BATCH
 * dead Gs but the first, which holds gfreen; they add up to ngfree. */
static void gfb_check_shape(void)
{
	lock(&sched.gflock);
	int32_t total = 0;
	for (struct g *b = sched.gfree; b; b = b->gfreebatch) {
		int32_t n = 0;
		for (struct g *gp = b; gp; gp = gp->schedlink) {
			ck_assert_int_eq(readgstatus(gp), G_DEAD);
			n++;
		}
		ck_assert_int_eq(n, b == sched.gfree ? sched.gfreen : GFREE_BATCH);
		total += n;
	}
	ck_assert_int_eq(total, sched.ngfree);
	unlock(&sched.gflock);
}

/* A goroutine whose stack cannot be had (far larger than the address space)
 * fails with ENOMEM; the dead G taken for it keeps its stack and goes back to
 * the free lists (nothing else runs meanwhile: the counts are exact). */
static void gfb_stack_fails(bool has_p)
{
	struct stack_stats a, b;
	int64_t ngfree = sched.ngfree, allg = allg_count();
	stack_stats(&a);
	for (int i = 0; i < 2; i++) {
		int err = 0;
		ck_assert_ptr_null(newproc(gfb_count, NULL, NULL, (size_t)1 << 46, &err));
		ck_assert_int_eq(err, -ENOMEM);
	}
	stack_stats(&b);
	ck_assert_uint_eq(b.inuse, a.inuse);
	ck_assert_int_eq(allg_count(), allg);
	if (!has_p)
		ck_assert_int_eq(sched.ngfree, ngfree);
	gfb_check_shape();
}

/* A thread without a P creates goroutines (as task_start does): each takes a
 * G from the global list's first batch, which is left partial. */
static void *gfb_nop_thread(void *arg)
{
	(void)arg;
	gfb_stack_fails(false);
	for (int i = 0; i < GFB_NOP; i++) {
		int err = 0;
		ck_assert_ptr_nonnull(newproc(gfb_count, NULL, NULL, 0, &err));
		if (i == 0 || i == GFB_NOP - 1)
			gfb_check_shape();
	}
	return NULL;
}

static void gfb_round(void)
{
	gfb_ch = gort_chan_make(1, 0);
	ck_assert_ptr_nonnull(gfb_ch);
	gort_wg_add(&gfb_parked, GFB_N);
	gort_wg_add(&gfb_exited, GFB_N);
	for (int i = 0; i < GFB_N; i++)
		ck_assert_int_gt(gort_go(gfb_parker, NULL), 0);
	gort_wg_wait(&gfb_parked);
	gort_chan_close(gfb_ch);
	gort_wg_wait(&gfb_exited);
	gort_chan_free(gfb_ch);
}

static int gfb_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	/* GFB_N goroutines alive at once, then all dead: most go to the global
	 * list, in batches */
	gfb_round();
	int64_t allocated = allg_count();
	ck_assert_int_ge(allocated, GFB_N);
	gfb_check_shape();
	ck_assert_int_gt(sched.ngfree, GFB_NOP + GFREE_BATCH);
	gfb_stack_fails(true);

	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, gfb_nop_thread, NULL), 0);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	int64_t deadline = gort_now() + 10 * SEC;
	while (atomic_load(&gfb_ran) < GFB_NOP) {
		ck_assert_msg(gort_now() < deadline, "%d of %d ran", atomic_load(&gfb_ran), GFB_NOP);
		gort_yield();
	}
	/* the same again from goroutines: the Gs come from the lists (but for
	 * those cached by the P that does not create them) */
	gfb_round();
	gfb_check_shape();
	ck_assert_int_le(allg_count(), allocated + 2 * GFREE_MAX);
	return 0;
}

START_TEST(test_gfree_batches)
{
	run_gort(gfb_main, 2, 0);
}
END_TEST

static void ids_worker(void *arg)
{
	int64_t *slot = arg;
	*slot = gort_id();
	gort_wg_done(&wg);
}

static int ids_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	enum { N = 1000 };
	static int64_t ids[N], returned[N];
	gort_wg_add(&wg, N);
	for (int i = 0; i < N; i++)
		returned[i] = gort_go(ids_worker, &ids[i]);
	gort_wg_wait(&wg);
	for (int i = 0; i < N; i++) {
		ck_assert_int_eq(ids[i], returned[i]);
		for (int j = 0; j < i; j++)
			ck_assert_int_ne(ids[i], ids[j]);
	}
	return 0;
}

START_TEST(test_goids_unique)
{
	run_gort(ids_main, 2, 0);
}
END_TEST

/* ---- gort_exit ---- */

static _Atomic int after_exit;

/* called through a pointer so the compiler can't see the recursion ends in gort_exit */
static void (*volatile exit_fn)(void) = gort_exit;

static void nested_exit(int depth)
{
	if (depth == 0) {
		gort_wg_done(&wg);
		exit_fn();
		return;
	}
	nested_exit(depth - 1);
	atomic_store(&after_exit, 1);
}

static void exiter(void *arg)
{
	(void)arg;
	nested_exit(10);
	atomic_store(&after_exit, 2);
}

static int exit_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	gort_wg_add(&wg, 50);
	for (int i = 0; i < 50; i++)
		gort_go(exiter, NULL);
	gort_wg_wait(&wg);
	gort_sleep(10 * 1000 * 1000);
	ck_assert_int_eq(atomic_load(&after_exit), 0);
	return 3;
}

START_TEST(test_exit_from_nested_call)
{
	run_gort(exit_main, 2, 3);
}
END_TEST

static void late_worker(void *arg)
{
	(void)arg;
	gort_sleep(20 * 1000 * 1000);
}

static int main_goexit_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	gort_go(late_worker, NULL);
	gort_exit(); /* the task goes on until its last goroutine ends: then deadlock */
}

START_TEST(test_main_goexit_ends_task_when_all_done)
{
	run_gort(main_goexit_main, 2, 2);
}
END_TEST

static int deadlock_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	/* its own wait group: the suite's stays usable for the tests after this
	 * one when they share a process (CK_FORK=no, as under valgrind) */
	static gort_wg dwg;
	gort_wg_add(&dwg, 1);
	gort_wg_wait(&dwg); /* nobody will ever call done: Go's checkdead */
	return 0;
}

START_TEST(test_deadlock_detected)
{
	run_gort(deadlock_main, 2, 2);
}
END_TEST

/* ---- errors at the API boundary ---- */

static void noop(void *arg)
{
	(void)arg;
}

static int rerun_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	errno = 0;
	ck_assert_int_eq(gort_run(rerun_main, 0, NULL, NULL), -1);
	ck_assert_int_eq(errno, EDEADLK);
	errno = 0;
	ck_assert_int_eq(gort_go(NULL, NULL), -1);
	ck_assert_int_eq(errno, EINVAL);
	return 0;
}

START_TEST(test_api_errors)
{
	errno = 0;
	ck_assert_int_eq(gort_go(noop, NULL), -1);
	ck_assert_int_eq(errno, EPERM);
	ck_assert_int_eq(gort_id(), 0);
	errno = 0;
	ck_assert_int_eq(gort_run(NULL, 0, NULL, NULL), -1);
	ck_assert_int_eq(errno, EINVAL);
	run_gort(rerun_main, 1, 0);
}
END_TEST

/* ---- work spreads over the Ps ---- */

static _Atomic int seen_p[8];
static _Atomic bool stop_spin;

static void spreader(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop_spin)) {
		atomic_store(&seen_p[getg()->m->p->id], 1);
		volatile unsigned x = 0;
		for (int i = 0; i < 100000; i++)
			x += (unsigned)i;
		gort_yield();
	}
	gort_wg_done(&wg);
}

static int spread_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	ck_assert_int_eq(gort_procs(), 2);
	gort_wg_add(&wg, 8);
	for (int i = 0; i < 8; i++)
		gort_go(spreader, NULL);
	/* No timing assert: wait (up to a minute) until both Ps have run one. */
	int64_t deadline = gort_now() + 60LL * 1000 * 1000 * 1000;
	while (!(atomic_load(&seen_p[0]) && atomic_load(&seen_p[1])) && gort_now() < deadline)
		gort_sleep(1000 * 1000);
	atomic_store(&stop_spin, true);
	gort_wg_wait(&wg);
	ck_assert(atomic_load(&seen_p[0]) && atomic_load(&seen_p[1]));
	return 0;
}

START_TEST(test_work_spreads_over_ps)
{
	run_gort(spread_main, 2, 0);
}
END_TEST

/* ---- locked threads ---- */

static _Atomic int others_ran;
static pid_t locked_tid;
static gort_wg step;

static void other(void *arg)
{
	(void)arg;
	atomic_fetch_add(&others_ran, 1);
	gort_wg_done(&step);
	gort_wg_done(&wg);
}

static void locked_worker(void *arg)
{
	(void)arg;
	gort_lock_os_thread();
	pid_t tid = test_gettid();
	locked_tid = tid;
	for (int i = 0; i < 20; i++) {
		/* With one P, the only way `other` can run while this G waits for it
		 * is that this G's M gives the P away and sleeps (stoplockedm). */
		gort_wg_add(&step, 1);
		gort_go(other, NULL);
		gort_wg_wait(&step);
		ck_assert_int_eq(atomic_load(&others_ran), i + 1);
		ck_assert_int_eq(test_gettid(), tid);
		gort_sleep(100 * 1000);
		gort_yield();
		ck_assert_int_eq(test_gettid(), tid);
	}
	gort_unlock_os_thread();
	gort_wg_done(&wg);
}

static int locked_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	gort_wg_add(&wg, 21);
	gort_go(locked_worker, NULL);
	gort_wg_wait(&wg);
	ck_assert_int_eq(atomic_load(&others_ran), 20);
	return 0;
}

START_TEST(test_locked_g_keeps_its_thread_and_frees_the_p)
{
	run_gort(locked_main, 1, 0);
}
END_TEST

static _Atomic pid_t exited_tid;
static _Atomic int reused;

static void locked_exiter(void *arg)
{
	(void)arg;
	gort_lock_os_thread();
	atomic_store(&exited_tid, test_gettid());
	gort_wg_done(&wg);
	/* returns still locked: the thread must die with it */
}

static void tid_checker(void *arg)
{
	(void)arg;
	if (test_gettid() == atomic_load(&exited_tid))
		atomic_store(&reused, 1);
	gort_wg_done(&wg);
}

static bool thread_alive(pid_t tid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/self/task/%d", tid);
	return access(path, F_OK) == 0;
}

static int locked_exit_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	gort_wg_add(&wg, 1);
	gort_go(locked_exiter, NULL);
	gort_wg_wait(&wg);
	pid_t tid = atomic_load(&exited_tid);
	ck_assert_int_ne(tid, test_gettid());
	for (int i = 0; i < 5000 && thread_alive(tid); i++)
		gort_sleep(1000 * 1000);
	ck_assert_msg(!thread_alive(tid), "thread %d of the exited locked G is still alive", tid);
	gort_wg_add(&wg, 200);
	for (int i = 0; i < 200; i++)
		gort_go(tid_checker, NULL);
	gort_wg_wait(&wg);
	ck_assert_int_eq(atomic_load(&reused), 0);
	return 0;
}

START_TEST(test_locked_g_exit_takes_thread)
{
	run_gort(locked_exit_main, 2, 0);
}
END_TEST

/* ---- FP control state ---- */

static _Atomic int fp_bad;

static void fp_worker(void *arg)
{
	int mode = (int)(long)arg;
	if (fegetround() != FE_TONEAREST)
		atomic_store(&fp_bad, 1); /* new goroutines start with the default */
	fesetround(mode);
	for (int i = 0; i < 1000; i++) {
		gort_yield();
		if (fegetround() != mode)
			atomic_store(&fp_bad, 2);
	}
	volatile double one = 1.0, three = 3.0;
	double q = one / three;
	fesetround(FE_TONEAREST);
	double down = 0.33333333333333331; /* nearest */
	/* valgrind keeps MXCSR (the checks above) but rounds SSE arithmetic to
	 * nearest whatever it says (its manual's floating-point limitations) */
	bool arith = getenv("GORT_VALGRIND") == NULL;
	if (arith && mode == FE_DOWNWARD && !(q <= down))
		atomic_store(&fp_bad, 3);
	if (arith && mode == FE_UPWARD && !(q > down))
		atomic_store(&fp_bad, 4);
	gort_wg_done(&wg);
}

static int fp_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	static const int modes[] = { FE_DOWNWARD, FE_UPWARD, FE_TOWARDZERO, FE_TONEAREST };
	gort_wg_add(&wg, 16);
	for (int i = 0; i < 16; i++)
		gort_go(fp_worker, (void *)(long)modes[i % 4]);
	gort_wg_wait(&wg);
	ck_assert_int_eq(atomic_load(&fp_bad), 0);
	return 0;
}

START_TEST(test_fp_control_state_per_goroutine)
{
	run_gort(fp_main, 2, 0);
}
END_TEST

/* ---- errno travels with the goroutine ---- */

static _Atomic int errno_bad;

/* errno through a call the compiler cannot fold (noipa: not even as a const function), so each access asks the
 * thread it runs on (task code that caches &errno has the caveat HACKING.md
 * describes) */
static __attribute__((noipa)) int *errno_here(void)
{
	return &errno;
}

static void errno_worker(void *arg)
{
	int mine = (int)(long)arg;
	*errno_here() = mine;
	for (int i = 0; i < 300; i++) {
		if (i % 3 == 0)
			gort_sleep(10 * 1000);
		else
			gort_yield();
		if (*errno_here() != mine)
			atomic_store(&errno_bad, 1);
		*errno_here() = mine;
	}
	gort_wg_done(&wg);
}

static int errno_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	gort_wg_add(&wg, 16);
	for (long i = 0; i < 16; i++)
		gort_go(errno_worker, (void *)(1000 + i));
	gort_wg_wait(&wg);
	ck_assert_int_eq(atomic_load(&errno_bad), 0);
	return 0;
}

START_TEST(test_errno_per_goroutine)
{
	run_gort(errno_main, 2, 0);
}
END_TEST

/* ---- gort_run twice ---- */

static int twice_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	gort_wg_add(&wg, 100);
	for (int i = 0; i < 100; i++)
		gort_go(incr, (void *)1);
	gort_wg_wait(&wg);
	return 5;
}

START_TEST(test_run_twice)
{
	/* the count after a first run: TSan starts a thread of its own with the
	 * first thread anyone creates, and keeps it */
	run_gort(twice_main, 2, 5);
	int threads = test_thread_count();
	for (int i = 0; i < 3; i++) {
		run_gort(twice_main, 2, 5);
		/* the runtime's threads are gone, though a thread that returned may
		 * still be leaving the kernel's list: wait until the count is back,
		 * long deadline */
		int n = test_thread_count();
		for (int k = 0; k < 6000 && n > threads; k++) {
			usleep(10000);
			n = test_thread_count();
		}
		if (n > threads) {
			/* name them: whose thread outlived gort_run */
			char names[512] = "";
			DIR *d = opendir("/proc/self/task");
			struct dirent *de;
			while (d && (de = readdir(d))) {
				char path[300], comm[32] = "";
				snprintf(path, sizeof path, "/proc/self/task/%s/comm", de->d_name);
				FILE *f = de->d_name[0] != '.' ? fopen(path, "re") : NULL;
				if (f && fgets(comm, sizeof comm, f))
					strncat(names, comm, sizeof names - strlen(names) - 1);
				if (f)
					fclose(f);
			}
			if (d)
				closedir(d);
			ck_abort_msg("%d threads after gort_run returned, %d before: %s", n, threads, names);
		}
	}
}
END_TEST

/* A goroutine still blocked on a gort_mutex when its run ends: the end of its
 * task leaves a ghost in its place (sema.c), which runtime_stop must drop
 * (sema_drop_ghosts) with the rest of the run. A second run contending for a
 * mutex at the same address (the program's, zeroed again) must find no
 * waiter of the first run's: that ghost took the unlock meant for the new
 * waiter, which never woke (this test, before sema_drop_ghosts). */
static gort_mutex stale_mu;
static struct g *_Atomic stale_waiter;
static _Atomic int stale_woke;

static void stale_lock(void *arg)
{
	(void)arg;
	atomic_store(&stale_waiter, getg());
	gort_mutex_lock(&stale_mu);
	atomic_store(&stale_woke, 1);
	gort_mutex_unlock(&stale_mu);
}

/* Locks stale_mu, starts stale_lock and waits until it is blocked on it. */
static void stale_contend(void)
{
	atomic_store(&stale_waiter, NULL);
	atomic_store(&stale_woke, 0);
	gort_mutex_lock(&stale_mu);
	ck_assert_int_eq(gort_go(stale_lock, NULL) > 0, 1);
	int64_t deadline = nanotime() + 20LL * 1000 * 1000 * 1000;
	struct g *gp;
	while ((!(gp = atomic_load(&stale_waiter)) || readgstatus(gp) != G_WAITING ||
		gp->waitreason != WAIT_MUTEX) && nanotime() < deadline)
		gort_sleep(1000 * 1000);
	ck_assert_msg(gp && readgstatus(gp) == G_WAITING, "the second locker never blocked");
}

static int stale_first_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	stale_contend();
	return 0; /* the waiter is dropped with the run */
}

static int stale_second_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	stale_contend();
	gort_mutex_unlock(&stale_mu);
	int64_t deadline = nanotime() + 20LL * 1000 * 1000 * 1000;
	while (!atomic_load(&stale_woke) && nanotime() < deadline)
		gort_sleep(1000 * 1000);
	ck_assert_msg(atomic_load(&stale_woke), "the unlock never woke the second run's waiter");
	return 0;
}

START_TEST(test_run_twice_drops_sema_waiters)
{
	run_gort(stale_first_main, 2, 0);
	memset(&stale_mu, 0, sizeof stale_mu);
	run_gort(stale_second_main, 2, 0);
}
END_TEST

/* ---- procs ---- */

START_TEST(test_cgroup_cpu_max_parse)
{
	ck_assert_int_eq(cgroup_cpu_limit_parse("max 100000\n"), 0);
	ck_assert_int_eq(cgroup_cpu_limit_parse("100000 100000\n"), 1);
	ck_assert_int_eq(cgroup_cpu_limit_parse("150000 100000\n"), 2);
	ck_assert_int_eq(cgroup_cpu_limit_parse("50000 100000"), 1);
	ck_assert_int_eq(cgroup_cpu_limit_parse("400000 100000"), 4);
	ck_assert_int_eq(cgroup_cpu_limit_parse("garbage"), 0);
	ck_assert_int_eq(cgroup_cpu_limit_parse("-5 100000"), 0);
	ck_assert_int_eq(cgroup_cpu_limit_parse("100 0"), 0);
}
END_TEST

static int procs_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return gort_procs();
}

START_TEST(test_procs_selection)
{
	struct gort_config cfg = { 0 };
	unsetenv("GORTMAXPROCS");
	ck_assert_int_eq(gort_run(procs_main, 0, NULL, &cfg), getproccount());
	setenv("GORTMAXPROCS", "3", 1);
	ck_assert_int_eq(gort_run(procs_main, 0, NULL, &cfg), 3);
	cfg.procs = 5; /* the program's own setting wins over the environment */
	ck_assert_int_eq(gort_run(procs_main, 0, NULL, &cfg), 5);
	setenv("GORTMAXPROCS", "bogus", 1);
	ck_assert_int_eq(gort_run(procs_main, 0, NULL, NULL), getproccount());
	unsetenv("GORTMAXPROCS");
}
END_TEST

/* ---- stacks ---- */

static int deep(int n, volatile char *prev)
{
	volatile char buf[1024];
	buf[0] = (char)n;
	buf[1023] = prev ? prev[0] : 0;
	if (n == 0)
		return buf[0];
	return deep(n - 1, buf) + buf[1023];
}

static void big_stack_user(void *arg)
{
	(void)arg;
	deep(200, NULL); /* ~200 KiB */
	gort_wg_done(&wg);
}

static int big_stack_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	gort_wg_add(&wg, 4);
	for (int i = 0; i < 4; i++)
		gort_go(big_stack_user, NULL);
	gort_wg_wait(&wg);
	return 0;
}

START_TEST(test_stack_size_honored)
{
	struct gort_config cfg = { .procs = 2, .stack_size = 512 * 1024 };
	ck_assert_int_eq(gort_run(big_stack_main, 0, NULL, &cfg), 0);
}
END_TEST

static void overflower(void *arg)
{
	(void)arg;
	deep(1000, NULL); /* ~1 MiB on a 64 KiB stack */
}

static int overflow_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	gort_go(overflower, NULL);
	gort_sleep(5LL * 1000 * 1000 * 1000);
	return 0;
}

/* Runs overflow_main in a child; returns its stderr and wait status. */
static int run_overflow_child(long guard_budget, char *out, size_t outsize)
{
	int pfd[2];
	ck_assert_int_eq(pipe(pfd), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(pfd[1], 2);
		stack_guard_budget = guard_budget;
		struct gort_config cfg = { .procs = 1 };
		_exit(gort_run(overflow_main, 0, NULL, &cfg));
	}
	return child_stderr(pfd, pid, out, outsize);
}

START_TEST(test_stack_overflow_guard_page)
{
	char out[4096];
	int status = run_overflow_child(-1, out, sizeof out);
	/* the guard page stops it before any harm: a panic of the task (code 2) */
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 2, "status %#x: %s", status, out);
	ck_assert_msg(strstr(out, "stack overflow") && strstr(out, "goroutine 2"), "stderr: %s", out);
}
END_TEST

static void small_overflower(void *arg)
{
	(void)arg;
	/* a contiguous overrun: 66 KiB of locals on a 64 KiB stack, into the canary page */
	volatile char buf[66 * 1024];
	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = 1;
	gort_yield();
}

static int small_overflow_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	gort_go(small_overflower, NULL);
	gort_sleep(5LL * 1000 * 1000 * 1000);
	return 0;
}

START_TEST(test_stack_overflow_canary)
{
	int pfd[2];
	ck_assert_int_eq(pipe(pfd), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(pfd[1], 2);
		stack_guard_budget = 0; /* no guard pages: the canary must catch it */
		stack_guard_markers = false;
		struct gort_config cfg = { .procs = 1 };
		_exit(gort_run(small_overflow_main, 0, NULL, &cfg));
	}
	char out[4096];
	int status = child_stderr(pfd, pid, out, sizeof out);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "status %#x: %s", status, out);
	ck_assert_msg(strstr(out, "stack overflow") && strstr(out, "goroutine 2"), "stderr: %s", out);
}
END_TEST

/* ---- a million goroutines ---- */

static gort_wg started, release;

static void parked(void *arg)
{
	(void)arg;
	gort_wg_done(&started);
	gort_wg_wait(&release);
	gort_wg_done(&wg);
}

static long million_n;
static long million_rss_kib;

static int million_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	long n = million_n;
	long rss0 = test_rss_kib();
	gort_wg_add(&release, 1);
	gort_wg_add(&started, n);
	gort_wg_add(&wg, n);
	for (long i = 0; i < n; i++)
		ck_assert_int_gt(gort_go(parked, NULL), 0);
	gort_wg_wait(&started);
	million_rss_kib = test_rss_kib() - rss0;
	long maps = test_count_lines("/proc/self/maps");
	ck_assert_msg(maps < 65530 * 3 / 4, "%ld mappings for %ld goroutines", maps, n);
	gort_wg_done(&release);
	gort_wg_wait(&wg);
	return 0;
}

START_TEST(test_million_goroutines)
{
	million_n = scaled(1000000);
#if defined(__SANITIZE_THREAD__)
	/* every goroutine is a TSan fiber, and TSan dies beyond ~8k of them; its
	 * per-fiber state and shadow memory make the RSS bound meaningless */
	if (million_n > 4000)
		million_n = 4000;
	run_gort(million_main, 2, 0);
	return;
#endif
	if (getenv("GORT_VALGRIND")) {
		/* memcheck: a fiftieth of the speed, and shadow memory in the RSS */
		if (million_n > 10000)
			million_n = 10000;
		run_gort(million_main, 2, 0);
		return;
	}
	run_gort(million_main, 2, 0);
	/* one page of stack and the G: generous bound, not a benchmark */
	ck_assert_msg(million_rss_kib / million_n <= 12, "%ld KiB for %ld goroutines", million_rss_kib, million_n);
}
END_TEST

/* gopark's direct switch runs park_direct_m on the next G's stack, below its
 * saved context, only when PARK_DIRECT_ROOM is free there. The next G, T,
 * parks; main paints T's dead stack below the saved sp, readies T into
 * runnext and parks itself (the direct switch's case); T, resumed, looks at
 * the paint. With the whole stack free the switch lands there (what the
 * direct switch uses must fit in the room); with a deep T (under the room
 * left) it must fall back to g0 and leave the paint alone (it failed so, 104
 * bytes changed 312 deep, with park_direct_next's room check taken out). */
#define ROOM_SLACK 16 /* gogo's scratch below the saved sp */
#if defined(__SANITIZE_THREAD__)
/* TSan's own calls when T resumes (its func-exit hooks) write up to ~1.3 KiB
 * below T's saved sp, where park_direct_m's frames would be: the paint cannot
 * tell them apart, so under TSan the rounds run for the race detector only. */
#define ROOM_PAINT_CHECKED 0
#else
#define ROOM_PAINT_CHECKED 1
#endif
#define ROOM_PAINT 0xa5
static struct g *_Atomic room_t;
static _Atomic uintptr_t room_parksp;
static _Atomic long room_dirty;
static _Atomic uintptr_t room_lowest;
static size_t room_leave; /* stack T leaves free below its frame; 0: all */

static bool room_parked(struct g *gp, void *arg)
{
	(void)arg;
	atomic_store(&room_t, gp);
	return true;
}

static __attribute__((noinline)) void room_wait(void)
{
	gopark(room_parked, NULL, WAIT_CHAN_RECV);
}

static void room_target(void *arg)
{
	(void)arg;
	struct g *gp = getg();
	if (room_leave) {
		uintptr_t here = (uintptr_t)__builtin_frame_address(0);
		char *hold = __builtin_alloca(here - gp->stacklo - room_leave);
		__asm__ volatile("" : : "r"(hold) : "memory");
	}
	room_wait();
	/* resumed: no call until the paint is read */
	uintptr_t lo = gp->stacklo, hi = atomic_load(&room_parksp) - ROOM_SLACK;
	VALGRIND_MAKE_MEM_DEFINED(lo, hi - lo);
	long dirty = 0;
	uintptr_t lowest = hi;
	for (uintptr_t a = lo; a < hi; a++) {
		if (*(volatile unsigned char *)a != ROOM_PAINT) {
			dirty++;
			if (a < lowest)
				lowest = a;
		}
	}
	atomic_store(&room_dirty, dirty);
	atomic_store(&room_lowest, lowest);
	gort_wg_done(&wg);
}

/* One round: returns the bytes T found changed below its saved sp (and in
 * *ret_used how deep below it the lowest was, in *ret_room the room T had). */
static long room_round(size_t leave, uintptr_t *ret_used, uintptr_t *ret_room)
{
	room_leave = leave;
	atomic_store(&room_t, NULL);
	ck_assert_int_gt(gort_go(room_target, NULL), 0);
	struct g *t;
	while (!(t = atomic_load(&room_t)) || readgstatus(t) != G_WAITING)
		gosched();
	uintptr_t sp = t->sched.sp;
	atomic_store(&room_parksp, sp);
#if defined(__SANITIZE_ADDRESS__)
	__asan_unpoison_memory_region((void *)t->stacklo, sp - t->stacklo);
#endif
	VALGRIND_MAKE_MEM_UNDEFINED(t->stacklo, sp - t->stacklo);
	memset((void *)t->stacklo, ROOM_PAINT, sp - t->stacklo - ROOM_SLACK);
	gort_wg_add(&wg, 1);
	goready(t); /* runnext: main's park below may switch straight to T */
	gort_wg_wait(&wg);
	*ret_used = sp - atomic_load(&room_lowest);
	*ret_room = sp - t->stacklo;
	return atomic_load(&room_dirty);
}

static int room_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	/* T with its whole stack free: the direct switch lands on it (not on a
	 * 61st schedtick: some of the rounds) and uses less than the room */
	int landed = 0;
	for (int i = 0; i < 8; i++) {
		uintptr_t used, room;
		if (room_round(0, &used, &room) > 0) {
			landed++;
			ck_assert_uint_lt(used, PARK_DIRECT_ROOM);
		}
	}
	if (ROOM_PAINT_CHECKED)
		ck_assert_int_gt(landed, 0);
	/* T deep in its stack, less than the room left: never */
	for (int i = 0; i < 8; i++) {
		uintptr_t used, room;
		long dirty = room_round(PARK_DIRECT_ROOM / 2 + 1024, &used, &room);
		ck_assert_uint_lt(room, PARK_DIRECT_ROOM);
		ck_assert_msg(dirty == 0 || !ROOM_PAINT_CHECKED,
			      "%ld bytes changed below a deep goroutine's saved sp (room %lu), %lu deep", dirty,
			      (unsigned long)room, (unsigned long)used);
	}
	return 0;
}

START_TEST(test_park_direct_needs_room)
{
	run_gort(room_main, 1, 0);
}
END_TEST

/* gopark's direct switch when the unlock function refuses: the parking G
 * readied B into runnext, the switch lands on B's stack, and then unlockf
 * says no. Nothing may publish B while the switch still runs on its stack:
 * a thief on the other P would resume B over those frames (B's locals are
 * checked after every wake). In a child: corruption may crash. */
static struct g *_Atomic refuse_b;
static _Atomic int refuse_bparked, refuse_done;
static _Atomic long refuse_corrupt;

static bool refuse_accept(struct g *gp, void *arg)
{
	(void)gp;
	(void)arg;
	atomic_store(&refuse_bparked, 1);
	return true;
}

static bool refuse_refuse(struct g *gp, void *arg)
{
	(void)gp;
	(void)arg;
	return false;
}

static void refuse_bfn(void *arg)
{
	(void)arg;
	volatile unsigned long pat[64];
	for (int i = 0; i < 64; i++)
		pat[i] = 0x5a5a5a5a00000000ul + (unsigned long)i;
	atomic_store(&refuse_b, getg());
	while (!atomic_load(&refuse_done)) {
		gopark(refuse_accept, NULL, WAIT_CHAN_RECV);
		for (int i = 0; i < 64; i++)
			if (pat[i] != 0x5a5a5a5a00000000ul + (unsigned long)i)
				atomic_fetch_add(&refuse_corrupt, 1);
	}
}

static int refuse_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	gort_go(refuse_bfn, NULL);
	long n = scaled(100000);
	for (long i = 0; i < n; i++) {
		while (!atomic_load(&refuse_bparked) || !atomic_load(&refuse_b) ||
		       readgstatus(atomic_load(&refuse_b)) != G_WAITING)
			gosched();
		atomic_store(&refuse_bparked, 0);
		if (i == n - 1)
			atomic_store(&refuse_done, 1);
		goready(atomic_load(&refuse_b));
		gopark(refuse_refuse, NULL, WAIT_CHAN_SEND);
	}
	return atomic_load(&refuse_corrupt) ? 1 : 0;
}

START_TEST(test_park_refused_with_runnext)
{
	char out[4096];
	int status = run_child(refuse_main, 2, out, sizeof out);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x, stderr: %s", status, out);
}
END_TEST

/* A G readied into runnext by a G that keeps running is not stranded: the
 * idle P's M takes it (the owner's plain put and take of a biased runnext,
 * the thief's revocation, and the thief's wait only while runnext moves).
 * Without the steal B would run only once sysmon preempts A (>= 10 ms),
 * on A's thread. */
static gort_chan *steal_c;
static _Atomic pid_t steal_btid;
static _Atomic int steal_bran;

static void steal_b(void *arg)
{
	(void)arg;
	int v;
	while (gort_chan_recv(steal_c, &v)) {
		atomic_store(&steal_btid, test_gettid());
		atomic_store(&steal_bran, 1);
	}
	gort_wg_done(&wg);
}

static int steal_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	steal_c = gort_chan_make(sizeof(int), 0);
	gort_wg_add(&wg, 1);
	gort_go(steal_b, NULL);
	int rounds = 40, stolen = 0, ran = 0;
	for (int i = 0; i < rounds; i++) {
		gort_sleep(2 * 1000 * 1000); /* B parks in its receive again */
		atomic_store(&steal_bran, 0);
		gort_chan_send(steal_c, &i);
		pid_t me = test_gettid();
		/* busy, no scheduling point: only another M can run B now */
		int64_t deadline = nanotime() + 5LL * 1000 * 1000 * 1000;
		while (!atomic_load(&steal_bran) && nanotime() < deadline)
			procyield(50);
		if (atomic_load(&steal_bran)) {
			ran++;
			if (atomic_load(&steal_btid) != me)
				stolen++;
		}
	}
	gort_chan_close(steal_c);
	gort_wg_wait(&wg);
	gort_chan_free(steal_c);
	ck_assert_int_eq(ran, rounds);
	/* generous: a loaded machine may let sysmon's preemption win a few */
	ck_assert_msg(stolen >= rounds / 2, "B ran on another thread %d times of %d", stolen, rounds);
	return 0;
}

START_TEST(test_runnext_stolen_from_busy_p)
{
	run_gort(steal_main, 2, 0);
}
END_TEST

/* Owner takes of a biased runnext racing thieves' steals: pairs hand a token
 * back and forth, and the sender sometimes stays busy after its send, long
 * enough for the other P to steal the receiver from runnext. Every token
 * arrives once, in order (a G taken twice would run on two stacks at once). */
#define HANDOFF_PAIRS 4
static gort_chan *handoff_c[HANDOFF_PAIRS][2];
static _Atomic long handoff_bad;
static long handoff_n;

static void handoff_spin(long i)
{
	if (i % 7 == 0) {
		int64_t until = nanotime() + (i % 5) * 20 * 1000;
		while (nanotime() < until)
			procyield(20);
	}
}

static void handoff_echo(void *arg)
{
	long k = (long)arg, v, want = 0;
	while (gort_chan_recv(handoff_c[k][0], &v)) {
		if (v != want++)
			atomic_fetch_add(&handoff_bad, 1);
		gort_chan_send(handoff_c[k][1], &v);
		handoff_spin(v);
	}
	gort_wg_done(&wg);
}

static void handoff_driver(void *arg)
{
	long k = (long)arg;
	for (long i = 0; i < handoff_n; i++) {
		long v = i;
		gort_chan_send(handoff_c[k][0], &v);
		handoff_spin(i + 3);
		gort_chan_recv(handoff_c[k][1], &v);
		if (v != i)
			atomic_fetch_add(&handoff_bad, 1);
	}
	gort_chan_close(handoff_c[k][0]);
	gort_wg_done(&wg);
}

static int handoff_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	handoff_n = scaled(20000);
	gort_wg_add(&wg, 2 * HANDOFF_PAIRS);
	for (long k = 0; k < HANDOFF_PAIRS; k++) {
		handoff_c[k][0] = gort_chan_make(sizeof(long), 0);
		handoff_c[k][1] = gort_chan_make(sizeof(long), 0);
		gort_go(handoff_echo, (void *)k);
		gort_go(handoff_driver, (void *)k);
	}
	gort_wg_wait(&wg);
	for (long k = 0; k < HANDOFF_PAIRS; k++) {
		gort_chan_free(handoff_c[k][0]);
		gort_chan_free(handoff_c[k][1]);
	}
	ck_assert_int_eq(atomic_load(&handoff_bad), 0);
	return 0;
}

START_TEST(test_runnext_handoffs_race_thieves)
{
	run_gort(handoff_main, 2, 0);
}
END_TEST

/* gort_chan_free takes no lock (chan.c), so freeing a channel biased to
 * another P costs no revocation: here from a thread without a P, which
 * would always revoke through chanlock. A close from such a thread does
 * (the counter's control). */
static gort_chan *freebias_c;

static void *freebias_close(void *arg)
{
	(void)arg;
	gort_chan_close(freebias_c);
	return NULL;
}

static void *freebias_free(void *arg)
{
	(void)arg;
	gort_chan_free(freebias_c);
	return NULL;
}

/* a buffered channel taken 200 times in a row by our P: biased to it */
static gort_chan *freebias_make(void)
{
	gort_chan *c = gort_chan_make(sizeof(int), 1);
	for (int i = 0; i < 200; i++) {
		int v = i;
		gort_chan_send(c, &v);
		gort_chan_recv(c, &v);
	}
	ck_assert_int_eq(atomic_load(&((struct hchan *)c)->bias), getg()->m->p->id + 1);
	return c;
}

static void freebias_on_thread(void *(*fn)(void *))
{
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, fn, NULL), 0);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
}

static int freebias_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	if (!membarrier_ok())
		return 0; /* no membarrier: no lock is ever biased */
	freebias_c = freebias_make();
	uint64_t r0 = atomic_load(&sched.nchanrevokes);
	freebias_on_thread(freebias_close);
	ck_assert_uint_eq(atomic_load(&sched.nchanrevokes), r0 + 1);
	gort_chan_free(freebias_c);

	freebias_c = freebias_make();
	r0 = atomic_load(&sched.nchanrevokes);
	freebias_on_thread(freebias_free);
	ck_assert_uint_eq(atomic_load(&sched.nchanrevokes), r0);
	return 0;
}

START_TEST(test_chan_free_does_not_revoke)
{
	run_gort(freebias_main, 2, 0);
}
END_TEST

static Suite *proc_suite(void)
{
	Suite *s = suite_create("proc");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_lifecycle_and_reuse);
	tcase_add_test(tc, test_gfree_batches);
	tcase_add_test(tc, test_goids_unique);
	tcase_add_test(tc, test_exit_from_nested_call);
	tcase_add_test(tc, test_main_goexit_ends_task_when_all_done);
	tcase_add_test(tc, test_deadlock_detected);
	tcase_add_test(tc, test_api_errors);
	tcase_add_test(tc, test_work_spreads_over_ps);
	tcase_add_test(tc, test_locked_g_keeps_its_thread_and_frees_the_p);
	tcase_add_test(tc, test_locked_g_exit_takes_thread);
	tcase_add_test(tc, test_fp_control_state_per_goroutine);
	tcase_add_test(tc, test_errno_per_goroutine);
	tcase_add_test(tc, test_park_direct_needs_room);
	tcase_add_test(tc, test_park_refused_with_runnext);
	tcase_add_test(tc, test_runnext_stolen_from_busy_p);
	tcase_add_test(tc, test_runnext_handoffs_race_thieves);
	tcase_add_test(tc, test_chan_free_does_not_revoke);
	tcase_add_test(tc, test_run_twice);
	tcase_add_test(tc, test_run_twice_drops_sema_waiters);
	tcase_add_test(tc, test_cgroup_cpu_max_parse);
	tcase_add_test(tc, test_procs_selection);
	tcase_add_test(tc, test_stack_size_honored);
	tcase_add_test(tc, test_stack_overflow_guard_page);
	tcase_add_test(tc, test_stack_overflow_canary);
	tcase_add_test(tc, test_million_goroutines);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_main(proc_suite());
}
