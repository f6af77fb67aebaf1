/* bench/yield.c: gort benchmark: 4 goroutines each calling gort_yield 1,000,000 times; ns per yield. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gort.h>

#define ROUNDS 5 /* timed rounds, after one untimed warm-up round */
#define WORKERS 4

static long n_yields = 1000000; /* per goroutine */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void metric(const char *name, double value, const char *unit)
{
	printf("METRIC %s %.2f %s\n", name, value, unit);
	fflush(stdout);
}

static void worker(void *arg)
{
	for (long i = 0; i < n_yields; i++)
		gort_yield();
	gort_wg_done(arg);
}

/* one round: returns ns per yield (wall time / total yields) */
static double run_round(void)
{
	gort_wg wg = GORT_WG_INIT;
	int64_t t0 = gort_now();
	gort_wg_add(&wg, WORKERS);
	for (int i = 0; i < WORKERS; i++)
		if (gort_go(worker, &wg) < 0)
			gort_panic("gort_go: %s", strerror(errno));
	gort_wg_wait(&wg);
	return (double)(gort_now() - t0) / ((double)WORKERS * n_yields);
}

static int bench_main(int argc, char **argv)
{
	double v[ROUNDS];

	if (argc > 1)
		n_yields = atol(argv[1]);
	if (n_yields <= 0)
		gort_panic("usage: bench-yield [YIELDS_PER_GOROUTINE]");
	run_round();
	for (int r = 0; r < ROUNDS; r++)
		v[r] = run_round();
	metric("yield_ns_per_yield", median(v, ROUNDS), "ns");
	return 0;
}

int main(int argc, char **argv)
{
	int rc = gort_run(bench_main, argc, argv, NULL);
	if (rc < 0) {
		perror("gort_run");
		return 1;
	}
	return rc;
}
