/* bench/preempt.c: gort benchmark: on one P, how late a 1 ms gort_sleep wakes while another goroutine spins in a pure loop; p50/p99 µs. */
#include "benchlib.h"

#define WARMUP 20    /* untimed sleeps first */
#define SAMPLES 200
#define SLEEP_NS 1000000LL

static volatile int spinner_started;
static volatile unsigned long spin_counter;

/* nearest-rank percentile of sorted v[n] */
static double percentile(const double *v, int n, int p)
{
	int rank = (p * n + 99) / 100;
	return v[rank > 0 ? rank - 1 : 0];
}

/* never calls into the runtime: only asynchronous preemption can take the P back */
static void spinner(void *arg)
{
	(void)arg;
	spinner_started = 1;
	for (;;)
		spin_counter++;
}

static int bench_main(int argc, char **argv)
{
	static double late_us[SAMPLES];

	(void)argc;
	(void)argv;
	bench_go(spinner, NULL);
	/* with one P, once the spinner runs we are back only after it is preempted */
	while (!spinner_started)
		gort_yield();

	for (int i = 0; i < WARMUP + SAMPLES; i++) {
		int64_t t0 = gort_now();
		gort_sleep(SLEEP_NS);
		int64_t late = gort_now() - t0 - SLEEP_NS;
		if (i >= WARMUP)
			late_us[i - WARMUP] = (double)late / 1e3;
	}

	bench_sort(late_us, SAMPLES);
	bench_metric("preempt_lateness_p50_us", percentile(late_us, SAMPLES, 50), "us");
	bench_metric("preempt_lateness_p99_us", percentile(late_us, SAMPLES, 99), "us");
	return 0; /* the task ends; the runtime stops the spinner */
}

int main(int argc, char **argv)
{
	const struct gort_config cfg = { .procs = 1 };

	return bench_run(bench_main, argc, argv, &cfg);
}
