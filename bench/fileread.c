/* bench/fileread.c: gort benchmark: 8 goroutines each gort_pread a whole page-cached file in 64 KiB chunks; total MiB/s. */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "benchlib.h"

#define READERS 8
#define CHUNK (64 * 1024)

struct reader {
	int fd;
	off_t size;
	char *buf; /* CHUNK bytes, off the goroutine's stack */
	gort_wg *wg;
};

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

/* one round over readers[READERS]: returns MiB/s over all readers */
static double run_round(void *arg)
{
	struct reader *readers = arg;
	gort_wg wg = GORT_WG_INIT;
	int64_t t0 = gort_now();
	gort_wg_add(&wg, READERS);
	for (int i = 0; i < READERS; i++) {
		readers[i].wg = &wg;
		bench_go(reader, &readers[i]);
	}
	gort_wg_wait(&wg);
	double secs = (double)(gort_now() - t0) / 1e9;
	return (double)READERS * (double)readers[0].size / (1024.0 * 1024.0) / secs;
}

static int bench_main(int argc, char **argv)
{
	struct reader readers[READERS];
	struct stat st;

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

	bench_rounds("fileread_mib_per_sec", "MiB/s", run_round, readers);

	for (int i = 0; i < READERS; i++)
		free(readers[i].buf);
	gort_close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	return bench_run(bench_main, argc, argv, NULL);
}
