/* bench/ring.c: gort benchmark: 1000 goroutines in a ring of unbuffered channels pass a token 1,000,000 hops; ns per hop. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gort.h>

#define ROUNDS 5 /* timed rounds, after one untimed warm-up round */
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
static double run_round(void)
{
	static struct ring r;
	static struct member members[RING];
	long v = n_hops;

	r.wg = (gort_wg)GORT_WG_INIT;
	r.done = gort_chan_make(sizeof(long), 0);
	if (!r.done)
		gort_panic("gort_chan_make: %s", strerror(errno));
	for (int i = 0; i < RING; i++)
		if (!(r.ch[i] = gort_chan_make(sizeof(long), 0)))
			gort_panic("gort_chan_make: %s", strerror(errno));
	gort_wg_add(&r.wg, RING);
	for (int i = 0; i < RING; i++) {
		members[i] = (struct member){ .ring = &r, .i = i };
		if (gort_go(member, &members[i]) < 0)
			gort_panic("gort_go: %s", strerror(errno));
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
	double v[ROUNDS];

	if (argc > 1)
		n_hops = atol(argv[1]);
	if (n_hops <= 0)
		gort_panic("usage: bench-ring [HOPS]");
	run_round();
	for (int r = 0; r < ROUNDS; r++)
		v[r] = run_round();
	metric("ring_ns_per_hop", median(v, ROUNDS), "ns");
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
