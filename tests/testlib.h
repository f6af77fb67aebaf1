/* tests/testlib.h: helpers shared by gort's check suites. */
#ifndef GORT_TESTLIB_H
#define GORT_TESTLIB_H

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gort.h>

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

/* Number of threads in this process. */
static inline int test_thread_count(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/task");
	if (!d)
		return -1;
	struct dirent *de;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
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
