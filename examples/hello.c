/* examples/hello.c: fan out goroutines, gather their results over a wait group, print them. */
#include <gort.h>
#include <stdio.h>

#define N 8

static gort_wg wg = GORT_WG_INIT;
static long squares[N];

static void worker(void *arg)
{
	long i = (long)arg;
	squares[i] = i * i;
	gort_wg_done(&wg);
}

static int hello_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	gort_printf("hello from goroutine %lld, %d procs\n", (long long)gort_id(), gort_procs());
	gort_wg_add(&wg, N);
	for (long i = 0; i < N; i++)
		if (gort_go(worker, (void *)i) < 0)
			return 1;
	gort_wg_wait(&wg);
	long sum = 0;
	for (int i = 0; i < N; i++)
		sum += squares[i];
	gort_printf("%d goroutines computed squares 0..%d, sum %ld\n", N, N - 1, sum);
	return 0;
}

int main(int argc, char **argv)
{
	return gort_run(hello_main, argc, argv, NULL);
}
