/* bench/park.c: gort benchmark: 1,000,000 goroutines parked at once on one unbuffered channel; creation ns and RSS KiB per goroutine. */
#include <fcntl.h>
#include <unistd.h>

#include "benchlib.h"

static long n_goroutines = 1000000;

/* On a cache line of its own (as bench_go_wait's wait group): on run_round's
 * stack it shared one with the creator's spills and each gort_go's return
 * address, and every parker's wg_done pulled it away from the creating CPU.
 * The Go twin's WaitGroups escape to the heap, away from its stack. */
struct park {
	_Alignas(64) gort_chan *ch; /* never sent on: every parker blocks receiving until it is closed */
	gort_wg parked, exited;
};

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
 * blocks on the channel); values[0] = creation time per goroutine in ns,
 * values[1] = resident KiB per goroutine with all of them alive, against
 * *base_kib, the RSS before the first round (so memory the runtime caches from
 * an earlier round still counts).
 */
static void run_round(void *base_kib, double *values)
{
	struct park p = { .parked = GORT_WG_INIT, .exited = GORT_WG_INIT };

	p.ch = bench_chan_make(sizeof(char), 0);
	gort_wg_add(&p.exited, n_goroutines);

	int64_t t0 = gort_now();
	gort_wg_add(&p.parked, n_goroutines);
	for (long i = 0; i < n_goroutines; i++)
		bench_go(parker, &p);
	gort_wg_wait(&p.parked);
	int64_t t1 = gort_now();

	values[0] = (double)(t1 - t0) / n_goroutines;
	values[1] = (rss_kib() - *(double *)base_kib) / n_goroutines;
	gort_chan_close(p.ch);
	gort_wg_wait(&p.exited);
	gort_chan_free(p.ch);
}

static int bench_main(int argc, char **argv)
{
	static const struct bench_metric metrics[] = {
		{ "park_create_ns_per_goroutine", "ns" },
		{ "park_rss_kib_per_goroutine", "KiB" },
	};
	double base;

	n_goroutines = bench_size(argc, argv, n_goroutines, LONG_MAX, "usage: bench-park [N]");
	base = rss_kib();
	bench_rounds_n(run_round, &base, metrics, 2);
	return 0;
}

int main(int argc, char **argv)
{
	return bench_run(bench_main, argc, argv, NULL);
}
