/* bench/fileread.c: gort benchmark: 8 goroutines each gort_pread a whole page-cached file in 64 KiB chunks; total MiB/s. */
#define _GNU_SOURCE /* O_CLOEXEC, AT_FDCWD under -std=c11 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gort.h>

#define ROUNDS 5 /* timed rounds, after one untimed warm-up round */
#define READERS 8
#define CHUNK (64 * 1024)

struct reader {
	int fd;
	off_t size;
	char *buf; /* CHUNK bytes, off the goroutine's stack */
	gort_wg *wg;
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

static void reader(void *arg)
{
	struct reader *r = arg;

	for (off_t off = 0; off < r->size;) {
		ssize_t n = gort_pread(r->fd, r->buf, CHUNK, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			gort_panic("gort_pread: %s", strerror(errno));
		if (n == 0)
			gort_panic("gort_pread: unexpected end of file at %lld", (long long)off);
		off += n;
	}
	gort_wg_done(r->wg);
}

/* one round: returns MiB/s over all readers */
static double run_round(struct reader *readers)
{
	gort_wg wg = GORT_WG_INIT;
	int64_t t0 = gort_now();
	gort_wg_add(&wg, READERS);
	for (int i = 0; i < READERS; i++) {
		readers[i].wg = &wg;
		if (gort_go(reader, &readers[i]) < 0)
			gort_panic("gort_go: %s", strerror(errno));
	}
	gort_wg_wait(&wg);
	double secs = (double)(gort_now() - t0) / 1e9;
	return (double)READERS * (double)readers[0].size / (1024.0 * 1024.0) / secs;
}

static int bench_main(int argc, char **argv)
{
	struct reader readers[READERS];
	struct stat st;
	double v[ROUNDS];

	if (argc < 2) {
		fprintf(stderr, "usage: bench-fileread FILE\n");
		return 2;
	}
	int fd = gort_openat(AT_FDCWD, argv[1], O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "bench-fileread: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	if (st.st_size <= 0) {
		fprintf(stderr, "bench-fileread: %s: empty file\n", argv[1]);
		return 1;
	}
	for (int i = 0; i < READERS; i++) {
		readers[i] = (struct reader){ .fd = fd, .size = st.st_size, .buf = malloc(CHUNK) };
		if (!readers[i].buf)
			gort_panic("out of memory");
	}

	run_round(readers);
	for (int r = 0; r < ROUNDS; r++)
		v[r] = run_round(readers);
	metric("fileread_mib_per_sec", median(v, ROUNDS), "MiB/s");

	for (int i = 0; i < READERS; i++)
		free(readers[i].buf);
	gort_close(fd);
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
