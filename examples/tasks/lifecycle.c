/* examples/tasks/lifecycle.c: a task's life: GORT_INIT in source order, gort_main, and how it can end (exit, panic, fault). */
#include <gort.h>
#include <stdlib.h>
#include <string.h>

/*
 *   gortd --run build/examples/lifecycle.so                 init, main, exit 0
 *   gortd --run build/examples/lifecycle.so -- exit 3       gort_task_exit(3) from a goroutine
 *   gortd --run build/examples/lifecycle.so -- panic        "panic: ..." and a trace, exit 2
 *   gortd --run build/examples/lifecycle.so -- segv         a fault becomes the same kind of panic
 *   gortd --run build/examples/lifecycle.so -- leave        main returns while goroutines still wait:
 *                                                          the task ends anyway, as Go's main does
 */

static const char *mode = "";
static int code;
static gort_chan *never;

/* Init functions run on the main goroutine before gort_main, in the order
 * they appear in the source, whatever order the compiler emitted them in. */
static void first(void);
static void second(void);
GORT_INIT(first);
GORT_INIT(second);

static void first(void)
{
	never = gort_chan_make(sizeof(int), 0);
	gort_printf("init: first\n");
}

static void second(void)
{
	gort_printf("init: second\n");
}

static void exiter(void *arg)
{
	(void)arg;
	gort_sleep(1000000);
	gort_printf("goroutine %lld ends the task with %d\n", (long long)gort_id(), code);
	gort_task_exit(code);
}

static void waiter(void *arg)
{
	(void)arg;
	int v;
	gort_chan_recv(never, &v); /* nobody sends: stopped when the task ends */
}

__attribute__((noinline)) static void crash(volatile int *p)
{
	*p = 1;
}

int gort_main(int argc, char **argv)
{
	mode = argc > 1 ? argv[1] : "";
	code = argc > 2 ? atoi(argv[2]) : 0;
	gort_printf("main: mode '%s'\n", mode);
	if (strcmp(mode, "exit") == 0) {
		gort_go(exiter, NULL);
		for (;;)
			gort_sleep(1000000000);
	}
	if (strcmp(mode, "panic") == 0)
		gort_panic("something is wrong: %d", 42);
	if (strcmp(mode, "segv") == 0)
		crash(NULL);
	if (strcmp(mode, "leave") == 0) {
		for (int i = 0; i < 1000; i++)
			gort_go(waiter, NULL);
		gort_printf("main returns with 1000 goroutines blocked\n");
	}
	return 0;
}
