/* bench/pingpong.c: gort benchmark: two goroutines bounce an int over unbuffered channels 1,000,000 times; ns per round trip. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gort.h>

#define ROUNDS 5 /* timed rounds, after one untimed warm-up round */

static long n_trips = 1000000;

struct pingpong {
	gort_chan *ping, *pong;
	gort_wg wg;
};

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

/* the other side: receive on ping, answer on pong, n_trips times */
static void ponger(void *arg)
{
	struct pingpong *pp = arg;
	int v;

	for (long i = 0; i < n_trips; i++) {
		gort_chan_recv(pp->ping, &v);
		v++;
		gort_chan_send(pp->pong, &v);
	}
	gort_wg_done(&pp->wg);
}

/* one round: returns ns per round trip (main goroutine sends ping, waits for pong) */
static double run_round(void)
{
	struct pingpong pp = { .wg = GORT_WG_INIT };
	int v = 0;

	pp.ping = gort_chan_make(sizeof(int), 0);
	pp.pong = gort_chan_make(sizeof(int), 0);
	if (!pp.ping || !pp.pong)
		gort_panic("gort_chan_make: %s", strerror(errno));
	gort_wg_add(&pp.wg, 1);
	if (gort_go(ponger, &pp) < 0)
		gort_panic("gort_go: %s", strerror(errno));

	int64_t t0 = gort_now();
	for (long i = 0; i < n_trips; i++) {
		gort_chan_send(pp.ping, &v);
		gort_chan_recv(pp.pong, &v);
	}
	int64_t t1 = gort_now();

	if (v != n_trips)
		gort_panic("pingpong: got %d, want %ld", v, n_trips);
	gort_wg_wait(&pp.wg);
	gort_chan_free(pp.ping);
	gort_chan_free(pp.pong);
	return (double)(t1 - t0) / n_trips;
}

static int bench_main(int argc, char **argv)
{
	double v[ROUNDS];

	if (argc > 1)
		n_trips = atol(argv[1]);
	if (n_trips <= 0 || n_trips > 1000000000)
		gort_panic("usage: bench-pingpong [ROUND_TRIPS]");
	run_round();
	for (int r = 0; r < ROUNDS; r++)
		v[r] = run_round();
	metric("pingpong_ns_per_roundtrip", median(v, ROUNDS), "ns");
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
