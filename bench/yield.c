/* bench/yield.c: gort benchmark: 4 goroutines each calling gort_yield 1,000,000 times; ns per yield. */
#include "benchlib.h"

#define WORKERS 4

static long n_yields = 1000000; /* per goroutine */

static void worker(void *arg)
{
	for (long i = 0; i < n_yields; i++)
		gort_yield();
	gort_wg_done(arg);
}

/* one round: returns ns per yield (wall time / total yields) */
static double run_round(void *arg)
{
	(void)arg;
	return (double)bench_go_wait(worker, WORKERS) / ((double)WORKERS * n_yields);
}

static int bench_main(int argc, char **argv)
{
	n_yields = bench_size(argc, argv, n_yields, LONG_MAX, "usage: bench-yield [YIELDS_PER_GOROUTINE]");
	bench_rounds("yield_ns_per_yield", "ns", run_round, NULL);
	return 0;
}

int main(int argc, char **argv)
{
	return bench_run(bench_main, argc, argv, NULL);
}
