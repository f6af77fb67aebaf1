/* examples/tasks/fanout.c: a task for gortd: fans out goroutines that each compute and print, gathers them over a channel. */
#include <gort.h>
#include <stdlib.h>

/* gortctl submit --wait build/examples/fanout.so -- 8 */

struct job {
	int n;
	gort_chan *results;
};

static void worker(void *arg)
{
	struct job *j = arg;
	/* Something to compute: the sum of the first n*20000 integers. */
	unsigned long sum = 0;
	for (unsigned long i = 0; i < (unsigned long)j->n * 20000; i++)
		sum += i;
	gort_printf("goroutine %lld: job %d -> %lu\n", (long long)gort_id(), j->n, sum);
	gort_chan_send(j->results, &sum);
}

int gort_main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 8;
	if (n <= 0 || n > 1000) {
		gort_eprintf("usage: fanout [N: 1..1000]\n");
		return 2;
	}
	gort_chan *results = gort_chan_make(sizeof(unsigned long), 0);
	struct job *jobs = calloc((size_t)n, sizeof(*jobs));
	if (!jobs)
		return 1;
	for (int i = 0; i < n; i++) {
		jobs[i] = (struct job){ .n = i + 1, .results = results };
		gort_go(worker, &jobs[i]);
	}
	unsigned long total = 0, r;
	for (int i = 0; i < n; i++) {
		gort_chan_recv(results, &r);
		total += r;
	}
	gort_printf("%d goroutines on %d procs, total %lu\n", n, gort_procs(), total);
	gort_chan_free(results);
	free(jobs);
	return 0;
}
