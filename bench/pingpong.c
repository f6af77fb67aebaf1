/* bench/pingpong.c: gort benchmark: two goroutines bounce an int over unbuffered channels 1,000,000 times; ns per round trip. */
#include "benchlib.h"

static long n_trips = 1000000;

struct pingpong {
	gort_chan *ping, *pong;
	gort_wg wg;
};

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
static double run_round(void *arg)
{
	struct pingpong pp = { .wg = GORT_WG_INIT };
	int v = 0;

	(void)arg;
	pp.ping = bench_chan_make(sizeof(int), 0);
	pp.pong = bench_chan_make(sizeof(int), 0);
	gort_wg_add(&pp.wg, 1);
	bench_go(ponger, &pp);

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
	/* the token is an int */
	n_trips = bench_size(argc, argv, n_trips, 1000000000, "usage: bench-pingpong [ROUND_TRIPS]");
	bench_rounds("pingpong_ns_per_roundtrip", "ns", run_round, NULL);
	return 0;
}

int main(int argc, char **argv)
{
	return bench_run(bench_main, argc, argv, NULL);
}
