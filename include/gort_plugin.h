/* gort_plugin.h: the public contract for gort plugins: the descriptor, lifecycle events and stats samples. */
#ifndef GORT_PLUGIN_H
#define GORT_PLUGIN_H

#include <stdint.h>

#include <gort.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A plugin is a shared object (cc -shared -fPIC) that stays loaded until it is
 * unloaded (gortctl plugin unload NAME). It defines one descriptor:
 *
 *	static void on_event(const struct gort_event *ev) { ... }
 *	GORT_PLUGIN(.name = "counter", .version = "1.0", .on_event = on_event);
 *
 * Every hook is optional. init runs once at load (nonzero refuses the load), fini
 * once at unload. on_event and on_tick run on the plugin's own thread, never on a
 * goroutine or a scheduler thread: a hook may take its time or block, which only
 * delays (and, when its queue overflows, drops) its own events; no goroutine
 * waits for it. Hooks of one plugin are never called concurrently.
 *
 * Structs grow at the end only: each starts with its size, so a plugin built
 * against an older header reads the fields it knows. GORT_PLUGIN_ABI changes only
 * when a field changes meaning or the descriptor's layout changes.
 *
 * Symbols a plugin exports (default visibility) are what tasks reach with
 * gort_plugin_sym("name", "symbol"); a task that got one holds the plugin loaded
 * until it ends (an unload is refused meanwhile).
 */

#define GORT_PLUGIN_ABI 1u

/* What happened (struct gort_event.kind). */
enum gort_event_kind {
	GORT_EV_NONE = 0,
	GORT_EV_GO_CREATE,      /* goid created by parent (entry: its entry symbol) */
	GORT_EV_GO_START,       /* goid started running on proc/m */
	GORT_EV_GO_STOP,        /* goid stopped running: reason says why (enum gort_stop_reason) */
	GORT_EV_GO_UNBLOCK,     /* goid made runnable again after waiting */
	GORT_EV_GO_END,         /* goid ended */
	GORT_EV_TASK_START,     /* task started (name: its name) */
	GORT_EV_TASK_EXIT,      /* task ended with code; status: 1 exited, 2 panicked, 3 killed */
	GORT_EV_PROC_START,     /* proc (a P) started running on m */
	GORT_EV_PROC_STOP,      /* proc stopped (idle) */
	GORT_EV_KIND_COUNT
};

/* Why a goroutine stopped (GORT_EV_GO_STOP). */
enum gort_stop_reason {
	GORT_STOP_YIELD = 1,    /* gort_yield */
	GORT_STOP_PREEMPTED,    /* sysmon took its time slice */
	GORT_STOP_PARKED,       /* waiting: wait says on what ("chan receive", "sleep", ...) */
	GORT_STOP_SYSCALL,      /* entered a blocking call */
};

struct gort_event {
	uint32_t size;          /* sizeof(struct gort_event) as the runtime sent it */
	uint32_t kind;          /* enum gort_event_kind */
	int64_t time;           /* gort_now() when it happened */
	int64_t task;           /* task id; 0 outside any task */
	int64_t goid;           /* the goroutine (GO_* events), else 0 */
	int64_t parent;         /* GO_CREATE: the creating goroutine (0: none) */
	int32_t proc;           /* the P, -1 if none */
	int32_t m;              /* the M (thread), -1 if none */
	int32_t reason;         /* GO_STOP: enum gort_stop_reason; TASK_EXIT: status */
	int32_t code;           /* TASK_EXIT: the exit code */
	const char *entry;      /* GO_CREATE: entry function symbol; TASK_*: task name */
	const char *wait;       /* GO_STOP parked: the wait reason as gortctl ps shows it */
	/* strings are valid during the hook call only */
};

/* A statistics sample (Go's schedtrace plus sysmon's counters). Counters are
 * cumulative since the runtime started; the rest are instantaneous. */
struct gort_stats {
	uint32_t size;          /* sizeof(struct gort_stats) as the runtime sent it */
	uint32_t nprocs;        /* entries in runq[] */
	int64_t time;           /* gort_now() of the sample */
	int32_t gomaxprocs;
	int32_t idleprocs;
	int32_t threads;
	int32_t spinningthreads;
	int32_t idlethreads;
	int32_t runqueue;       /* global run queue length */
	int64_t goroutines;     /* alive */
	int64_t tasks;          /* running tasks */
	uint64_t sysmon_rounds;
	uint64_t retakes;
	uint64_t preempt_coop;
	uint64_t preempt_signal;
	uint64_t io_polls;
	uint64_t io_completions;
	const int32_t *runq;    /* per-P local run queue lengths, nprocs of them (valid during the call) */
};

/* The descriptor. */
struct gort_plugin {
	uint32_t abi;                                   /* GORT_PLUGIN_ABI */
	const char *name, *version;
	int  (*init)(void);                             /* nonzero refuses the load */
	void (*fini)(void);
	void (*on_event)(const struct gort_event *ev);  /* goroutine/task lifecycle */
	void (*on_tick)(const struct gort_stats *st);   /* each stats sample */
};

/* GORT_PLUGIN(.name = ..., .version = ..., hooks...): defines the descriptor the
 * loader looks for (the exported symbol gort_plugin). */
#define GORT_PLUGIN(...)                                                               \
	__attribute__((visibility("default"), used)) const struct gort_plugin gort_plugin = { \
		.abi = GORT_PLUGIN_ABI, __VA_ARGS__                                     \
	}

#ifdef __cplusplus
}
#endif
#endif
