/* bench/sleep.c: gort benchmark: 100,000 goroutines each gort_sleep 10 ms, wait for all; total ms. */
#include "benchlib.h"

#define SLEEP_NS 10000000LL

static long n_goroutines = 100000;

static void sleeper(void *arg)
{
	gort_sleep(SLEEP_NS);
	gort_wg_done(arg);
}

/* one round: returns ms from the first spawn until the last sleeper is done */
static double run_round(void *arg)
{
	(void)arg;
	return (double)bench_go_wait(sleeper, n_goroutines) / 1e6;
}

static int bench_main(int argc, char **argv)
{
	n_goroutines = bench_size(argc, argv, n_goroutines, LONG_MAX, "usage: bench-sleep [N]");
	bench_rounds("sleep_total_ms", "ms", run_round, NULL);
	return 0;
}

int main(int argc, char **argv)
{
	return bench_run(bench_main, argc, argv, NULL);
}
