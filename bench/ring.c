/* bench/ring.c: gort benchmark: 1000 goroutines in a ring of unbuffered channels pass a token 1,000,000 hops; ns per hop. */
#include "benchlib.h"

#define RING 1000

static long n_hops = 1000000;

struct ring {
	gort_chan *ch[RING]; /* member i receives on ch[i], sends on ch[(i + 1) % RING] */
	gort_chan *done;     /* the member that receives hop count 0 reports here */
	gort_wg wg;
};

struct member {
	struct ring *ring;
	int i;
};

/* the token is the number of hops still to go; runs until its channel is closed */
static void member(void *arg)
{
	struct member *m = arg;
	struct ring *r = m->ring;
	gort_chan *in = r->ch[m->i], *out = r->ch[(m->i + 1) % RING];
	long v;

	while (gort_chan_recv(in, &v)) {
		if (v == 0) {
			gort_chan_send(r->done, &v);
		} else {
			v--;
			gort_chan_send(out, &v);
		}
	}
	gort_wg_done(&r->wg);
}

/* one round: returns ns per hop; building and tearing down the ring is not timed */
static double run_round(void *arg)
{
	static struct ring r;
	static struct member members[RING];
	long v = n_hops;

	(void)arg;
	r.wg = (gort_wg)GORT_WG_INIT;
	r.done = bench_chan_make(sizeof(long), 0);
	for (int i = 0; i < RING; i++)
		r.ch[i] = bench_chan_make(sizeof(long), 0);
	gort_wg_add(&r.wg, RING);
	for (int i = 0; i < RING; i++) {
		members[i] = (struct member){ .ring = &r, .i = i };
		bench_go(member, &members[i]);
	}

	int64_t t0 = gort_now();
	gort_chan_send(r.ch[0], &v);
	gort_chan_recv(r.done, &v);
	int64_t t1 = gort_now();

	for (int i = 0; i < RING; i++)
		gort_chan_close(r.ch[i]);
	gort_wg_wait(&r.wg);
	for (int i = 0; i < RING; i++)
		gort_chan_free(r.ch[i]);
	gort_chan_free(r.done);
	return (double)(t1 - t0) / n_hops;
}

static int bench_main(int argc, char **argv)
{
	n_hops = bench_size(argc, argv, n_hops, LONG_MAX, "usage: bench-ring [HOPS]");
	bench_rounds("ring_ns_per_hop", "ns", run_round, NULL);
	return 0;
}

int main(int argc, char **argv)
{
	return bench_run(bench_main, argc, argv, NULL);
}
