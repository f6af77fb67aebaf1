/* bench/spawn.c: gort benchmark: start 1,000,000 goroutines that each call wg_done, wait for all; ns per goroutine. */
#include "benchlib.h"

static long n_goroutines = 1000000;

static void worker(void *arg)
{
	gort_wg_done(arg);
}

/* one round: returns ns per goroutine (create + run + finish) */
static double run_round(void *arg)
{
	(void)arg;
	return (double)bench_go_wait(worker, n_goroutines) / n_goroutines;
}

static int bench_main(int argc, char **argv)
{
	n_goroutines = bench_size(argc, argv, n_goroutines, LONG_MAX, "usage: bench-spawn [N]");
	bench_rounds("spawn_ns_per_goroutine", "ns", run_round, NULL);
	return 0;
}

int main(int argc, char **argv)
{
	return bench_run(bench_main, argc, argv, NULL);
}
