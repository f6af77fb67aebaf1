/* bench/park.c: gort benchmark: 1,000,000 goroutines parked at once on one unbuffered channel; creation ns and RSS KiB per goroutine. */
#define _GNU_SOURCE /* O_CLOEXEC, AT_FDCWD under -std=c11 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gort.h>

#define ROUNDS 5 /* timed rounds, after one untimed warm-up round */

static long n_goroutines = 1000000;

struct park {
	gort_chan *ch;         /* never sent on: every parker blocks receiving until it is closed */
	gort_wg parked, exited;
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

/* resident set size in KiB, from /proc/self/statm */
static double rss_kib(void)
{
	char buf[128];
	long size, resident;
	int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);

	if (fd >= 0)
		close(fd);
	if (n <= 0)
		gort_panic("/proc/self/statm: %s", strerror(errno));
	buf[n] = '\0';
	if (sscanf(buf, "%ld %ld", &size, &resident) != 2)
		gort_panic("/proc/self/statm: unexpected contents");
	return (double)resident * sysconf(_SC_PAGESIZE) / 1024;
}

static void parker(void *arg)
{
	struct park *p = arg;
	char c;

	gort_wg_done(&p->parked);
	gort_chan_recv(p->ch, &c);
	gort_wg_done(&p->exited);
}

/*
 * One round: creates all parkers and waits until each has checked in (it then
 * blocks on the channel); *ns = creation time per goroutine, *kib = resident
 * memory per goroutine with all of them alive, against base_kib, the RSS before
 * the first round (so memory the runtime caches from an earlier round still counts).
 */
static void run_round(double base_kib, double *ns, double *kib)
{
	struct park p = { .parked = GORT_WG_INIT, .exited = GORT_WG_INIT };

	p.ch = gort_chan_make(sizeof(char), 0);
	if (!p.ch)
		gort_panic("gort_chan_make: %s", strerror(errno));
	gort_wg_add(&p.exited, n_goroutines);

	int64_t t0 = gort_now();
	gort_wg_add(&p.parked, n_goroutines);
	for (long i = 0; i < n_goroutines; i++)
		if (gort_go(parker, &p) < 0)
			gort_panic("gort_go: %s", strerror(errno));
	gort_wg_wait(&p.parked);
	int64_t t1 = gort_now();

	*ns = (double)(t1 - t0) / n_goroutines;
	*kib = (rss_kib() - base_kib) / n_goroutines;
	gort_chan_close(p.ch);
	gort_wg_wait(&p.exited);
	gort_chan_free(p.ch);
}

static int bench_main(int argc, char **argv)
{
	double ns[ROUNDS], kib[ROUNDS], base;

	if (argc > 1)
		n_goroutines = atol(argv[1]);
	if (n_goroutines <= 0)
		gort_panic("usage: bench-park [N]");
	base = rss_kib();
	run_round(base, &ns[0], &kib[0]);
	for (int r = 0; r < ROUNDS; r++)
		run_round(base, &ns[r], &kib[r]);
	metric("park_create_ns_per_goroutine", median(ns, ROUNDS), "ns");
	metric("park_rss_kib_per_goroutine", median(kib, ROUNDS), "KiB");
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
