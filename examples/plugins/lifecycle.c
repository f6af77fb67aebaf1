/* examples/plugins/lifecycle.c: a plugin that logs task lifecycle events and a statistics line every tick. */
#include <gort_plugin.h>
#include <stdatomic.h>
#include <stdio.h>

/*   gortctl plugin load build/examples/plugins/lifecycle.so
 *   gortctl plugin list
 *   gortctl plugin unload lifecycle
 * Its hooks run on a thread of its own: printing (to the daemon's stderr, which
 * is its log) delays no goroutine. */

static atomic_llong events, goroutines;

static void on_event(const struct gort_event *ev)
{
	events++;
	switch (ev->kind) {
	case GORT_EV_TASK_START:
		fprintf(stderr, "<6>lifecycle: task %lld (%s) started\n", (long long)ev->task, ev->entry);
		break;
	case GORT_EV_TASK_EXIT:
		fprintf(stderr, "<6>lifecycle: task %lld (%s) ended: %s, code %d\n", (long long)ev->task, ev->entry,
			ev->reason == 1 ? "exited" : ev->reason == 2 ? "panicked" : "killed", ev->code);
		break;
	case GORT_EV_GO_CREATE:
		goroutines++;
		break;
	case GORT_EV_GO_END:
		goroutines--;
		break;
	}
}

static void on_tick(const struct gort_stats *st)
{
	fprintf(stderr, "<7>lifecycle: procs=%d idle=%d threads=%d runqueue=%d tasks=%lld goroutines=%lld\n",
		st->gomaxprocs, st->idleprocs, st->threads, st->runqueue, (long long)st->tasks,
		(long long)st->goroutines);
}

/* For tasks, through gort_plugin_sym("lifecycle", "lifecycle_events_seen"). */
long long lifecycle_events_seen(void)
{
	return events;
}

GORT_PLUGIN(.name = "lifecycle", .version = "1.0", .on_event = on_event, .on_tick = on_tick);
