/* bench/benchlib.h: what every gort benchmark shares: size argument, warm-up + timed rounds + median, METRIC lines, the gort_run main(). */
#ifndef GORT_BENCHLIB_H
#define GORT_BENCHLIB_H

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gort.h>

/*
 * Header-only on purpose: each benchmark is one .c file linked against
 * libgort.a (the Makefile's bench-% rule), and everything here is static inline
 * so a program carries only what it uses.
 */

#define BENCH_ROUNDS 5     /* timed rounds, after one untimed warm-up round */
#define BENCH_MAX_VALUES 4 /* metrics one round may report */

/* a metric a round reports: printed as "METRIC <name> <median> <unit>" */
struct bench_metric {
	const char *name;
	const char *unit;
};

static inline int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* sorts v[n] ascending */
static inline void bench_sort(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), bench_cmp_double);
}

/* median of v[n]; sorts v */
static inline double bench_median(double *v, int n)
{
	bench_sort(v, n);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* prints one "METRIC <name> <value> <unit>" line, flushed */
static inline void bench_metric(const char *name, double value, const char *unit)
{
	printf("METRIC %s %.2f %s\n", name, value, unit);
	fflush(stdout);
}

/*
 * The optional size argument argv[1] (atol), else def; panics with usage
 * unless the result is in 1..max.
 */
static inline long bench_size(int argc, char **argv, long def, long max, const char *usage)
{
	long n = argc > 1 ? atol(argv[1]) : def;

	if (n <= 0 || n > max)
		gort_panic("%s", usage);
	return n;
}

/* gort_go(fn, arg), panicking on failure */
static inline void bench_go(gort_fn fn, void *arg)
{
	if (gort_go(fn, arg) < 0)
		gort_panic("gort_go: %s", strerror(errno));
}

/* gort_chan_make(elem_size, cap), panicking on failure */
static inline gort_chan *bench_chan_make(size_t elem_size, size_t cap)
{
	gort_chan *ch = gort_chan_make(elem_size, cap);

	if (!ch)
		gort_panic("gort_chan_make: %s", strerror(errno));
	return ch;
}

/*
 * Starts n goroutines fn(wg) on one wait group, each of which must call
 * gort_wg_done(wg) once, and waits for all of them; returns the ns from just
 * before gort_wg_add until gort_wg_wait returned.
 */
static inline int64_t bench_go_wait(gort_fn fn, long n)
{
	/* a cache line of its own: the goroutines' done would otherwise share
	 * it with this frame's spills and the calls' return addresses */
	struct { _Alignas(64) gort_wg wg; char pad[64 - sizeof(gort_wg)]; } line = { .wg = GORT_WG_INIT };
	int64_t t0 = gort_now();

	gort_wg_add(&line.wg, n);
	for (long i = 0; i < n; i++)
		bench_go(fn, &line.wg);
	gort_wg_wait(&line.wg);
	return gort_now() - t0;
}

/*
 * Runs round(arg, values) once untimed, then BENCH_ROUNDS times; round stores
 * one value per metric in values[0..n). Prints each metric's median over the
 * timed rounds, in order, once all rounds are done. n is 1..BENCH_MAX_VALUES.
 */
static inline void bench_rounds_n(void (*round)(void *arg, double *values), void *arg,
				  const struct bench_metric *metrics, int n)
{
	double v[BENCH_MAX_VALUES][BENCH_ROUNDS], values[BENCH_MAX_VALUES];

	if (n < 1 || n > BENCH_MAX_VALUES)
		gort_panic("bench_rounds_n: %d metrics", n);
	round(arg, values);
	for (int r = 0; r < BENCH_ROUNDS; r++) {
		round(arg, values);
		for (int i = 0; i < n; i++)
			v[i][r] = values[i];
	}
	for (int i = 0; i < n; i++)
		bench_metric(metrics[i].name, bench_median(v[i], BENCH_ROUNDS), metrics[i].unit);
}

struct bench_round1 {
	double (*round)(void *arg);
	void *arg;
};

static inline void bench_round1_call(void *p, double *values)
{
	struct bench_round1 *r = p;

	values[0] = r->round(r->arg);
}

/* bench_rounds_n for a round that returns its one value: one METRIC line */
static inline void bench_rounds(const char *name, const char *unit, double (*round)(void *arg), void *arg)
{
	struct bench_round1 r = { .round = round, .arg = arg };
	const struct bench_metric m = { .name = name, .unit = unit };

	bench_rounds_n(bench_round1_call, &r, &m, 1);
}

/* main() of a benchmark: gort_run(bench_main, argc, argv, cfg); 1 when the runtime cannot start */
static inline int bench_run(int (*bench_main)(int argc, char **argv), int argc, char **argv,
			    const struct gort_config *cfg)
{
	int rc = gort_run(bench_main, argc, argv, cfg);

	if (rc < 0) {
		perror("gort_run");
		return 1;
	}
	return rc;
}

#endif
