/* tests/testlib.h: helpers shared by gort's check suites. */
#ifndef GORT_TESTLIB_H
#define GORT_TESTLIB_H

#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gort.h>

/* Suites that run goroutines in their own process link the runtime's objects;
 * the others (the wire format, the daemon's, whose goroutines run in gortd)
 * define GORT_TEST_NO_RUNTIME first. */
#ifndef GORT_TEST_NO_RUNTIME
#include "runtime.h" /* getg, for the assertions below */
#endif

#define SEC 1000000000LL
#define MS 1000000LL
#define US 1000LL

/* A random number below n for test code, safe from any goroutine (the
 * runtime's fastrand is per M: only for code that holds its M). */
static inline uint32_t trand(uint32_t n)
{
	static _Atomic uint64_t seed = 0x2545f4914f6cdd1dULL;
	uint64_t x = atomic_fetch_add(&seed, 0x9e3779b97f4a7c15ULL);
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return (uint32_t)(((x >> 32) * n) >> 32);
}

/* The parent's side of a child whose stderr is pfd[1]: reads it whole into
 * out (NUL-terminated), closes the pipe and returns the child's wait status. */
static inline int child_stderr(int pfd[2], pid_t pid, char *out, size_t outsize)
{
	close(pfd[1]);
	size_t n = 0;
	ssize_t r;
	while (n < outsize - 1 && (r = read(pfd[0], out + n, outsize - 1 - n)) > 0)
		n += (size_t)r;
	out[n] = '\0';
	close(pfd[0]);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	return status;
}

/* Runs main_fn under gort_run with procs Ps in a child process; returns its
 * wait status and what it wrote to stderr. */
static inline int run_child(int (*main_fn)(int, char **), int procs, char *out, size_t outsize)
{
	int pfd[2];
	ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(pfd[1], 2);
		alarm(120); /* never outlive a hung test as an orphan */
		struct gort_config cfg = { .procs = procs };
		_exit(gort_run(main_fn, 0, NULL, &cfg));
	}
	return child_stderr(pfd, pid, out, outsize);
}

/* main_fn, run in a child on two Ps, must panic with msg: exit code 2 and
 * "panic: msg" on stderr. */
static inline void expect_panic(int (*main_fn)(int, char **), const char *msg)
{
	char out[8192];
	int status = run_child(main_fn, 2, out, sizeof out);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 2, "status %#x, stderr: %s", status, out);
	char want[256];
	snprintf(want, sizeof want, "panic: %s", msg);
	ck_assert_msg(strstr(out, want), "want \"%s\" in stderr: %s", want, out);
}

#ifdef GORT_RUNTIME_H
/* Waits (sleeping 100 us at a time) until *slot holds a G parked with reason;
 * 10 s at most. For suites that include the runtime's headers. */
static inline struct g *wait_parked(struct g *_Atomic *slot, enum waitreason reason)
{
	int64_t deadline = gort_now() + 10 * SEC;
	for (;;) {
		struct g *gp = atomic_load(slot);
		if (gp && readgstatus(gp) == G_WAITING && gp->waitreason == reason)
			return gp;
		ck_assert_msg(gort_now() < deadline, "goroutine never parked (reason %d)", reason);
		gort_sleep(100 * 1000);
	}
}
#endif

/* check's assertions in goroutines. Every ck_assert, passing or not, takes a
 * pthread mutex in check's code (_mark_point: it writes the location to the
 * runner), and that code is linked into the test executable, which gort counts
 * as program code and preempts asynchronously. A goroutine preempted holding
 * that mutex (its thread descheduled mid-call on a loaded machine, sysmon's
 * signal on its return) waits in a run queue while the goroutines that run on
 * its P and the other block their threads on the mutex with their Ps held: a
 * deadlock (test-select's close race hung so, GORT_LOCK_NO_MEMBARRIER=1 at
 * load ~14, once in ~500 runs). So every assertion's call into check counts as
 * a runtime lock held by its M (m->locks, which the preemption signal's
 * handler respects), below; and goroutines that run many at a time on several
 * Ps still record what they see (a counter of wrong results, the first bad
 * value) for one goroutine or the test's thread to assert on, which keeps the
 * runner's mutex out of their way. */
#ifndef GORT_TEST_NO_RUNTIME
/* In the runtime's own section, where the preemption signal never stops a
 * goroutine: in the test's code, a goroutine stopped between its load of
 * gp->m and the increment resumed on another M and bumped the old M's count,
 * as that M's g0 changed it (TSan saw the race once, in test-proc's million
 * goroutines; the old M's count was then one too high, the new one's too low). */
static __attribute__((noinline, section("gort_text"))) struct m *test_nopreempt(void)
{
	struct g *gp = getg();
	struct m *mp = gp ? gp->m : NULL;
	if (mp)
		mp->locks++;
	return mp;
}

static inline void test_mark_point(const char *file, int line)
{
	struct m *mp = test_nopreempt();
	(_mark_point)(file, line);
	if (mp)
		mp->locks--;
}
#define _mark_point(file, line) test_mark_point(file, line)
/* (it does not return: the lock goes with the goroutine, or the process) */
#define _ck_assert_failed(file, line, ...) ((void)test_nopreempt(), (_ck_assert_failed)(file, line, __VA_ARGS__))
#endif

/* Asserts that an internal call returned no negative errno, naming it. */
#define assert_ok(expr)                                                                      \
	do {                                                                                 \
		long _r = (long)(expr);                                                      \
		ck_assert_msg(_r >= 0, "%s failed: %s", #expr, strerror((int)-_r));          \
	} while (0)

/* Asserts a POSIX-style call succeeded (-1 + errno otherwise). */
#define assert_posix(expr)                                                                   \
	do {                                                                                 \
		long _r = (long)(expr);                                                      \
		ck_assert_msg(_r != -1, "%s failed: %s", #expr, strerror(errno));            \
	} while (0)

/* errno of the thread running now: after a gort_* call that may park, the
 * goroutine may be on another thread, and the compiler may reuse an errno
 * address it computed before the call (docs/HACKING.md). */
static __attribute__((noipa, unused)) int test_errno(void)
{
	return errno;
}

static __attribute__((noipa, unused)) void test_set_errno(int e)
{
	errno = e;
}

/* Workload sizes shrink under valgrind and the sanitizers (GORT_TEST_SCALE=k
 * divides them by k), never below 1. */
static inline long scaled(long n)
{
	const char *s = getenv("GORT_TEST_SCALE");
	long k = s ? atol(s) : 1;
	if (k > 1)
		n /= k;
	return n > 0 ? n : 1;
}

static inline pid_t test_gettid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* Entries of directory dir but . and ..; -1 if it cannot be read. */
static inline int test_count_entries(const char *dir)
{
	int n = 0;
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	struct dirent *de;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* Number of threads in this process. */
static inline int test_thread_count(void)
{
	return test_count_entries("/proc/self/task");
}

/* Number of open fds in this process. */
static inline int test_fd_count(void)
{
	return test_count_entries("/proc/self/fd") - 1; /* the DIR's own */
}

static inline long test_count_lines(const char *path)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	long n = 0;
	int c;
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

/* Resident set size in KiB. */
static inline long test_rss_kib(void)
{
	long size, rss;
	FILE *f = fopen("/proc/self/statm", "re");
	if (!f)
		return -1;
	if (fscanf(f, "%ld %ld", &size, &rss) != 2)
		rss = -1;
	fclose(f);
	return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Runs main_fn under gort_run with procs Ps and checks its exit code. */
static inline void run_gort(int (*main_fn)(int, char **), int procs, int want)
{
	struct gort_config cfg = { .procs = procs };
	char *argv[] = { (char *)"test", NULL };
	int r = gort_run(main_fn, 1, argv, &cfg);
	ck_assert_msg(r == want, "gort_run returned %d, want %d (errno %s)", r, want, strerror(errno));
}

static inline int test_main(Suite *s)
{
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
