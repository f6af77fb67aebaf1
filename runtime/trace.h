/* runtime/trace.h: lifecycle events: the collector's consumers (subscribers, the daemon's history ring), flushes and counters. */
#ifndef GORT_TRACE_H
#define GORT_TRACE_H

#include <stdint.h>

#include "runtime.h"

/*
 * The hooks the scheduler calls (traceGoCreate, ...) are declared in
 * runtime.h; this is the consumers' side, used by the daemon, the plugin
 * feed, the tests and the benchmarks. Every function here may be called from
 * any thread, goroutine or not, unless it says otherwise.
 */

/* Kinds beyond the public enum gort_event_kind: never given to plugins. */
enum {
	/* events were lost before this point: arg of them, from proc's buffer (-1:
	 * the shared one); a stream that fell behind the history ring gets one too */
	TRACE_EV_DROPPED = 64,
	/* a scheduler sample (Go's schedtrace): arg goroutines alive, code the
	 * global run queue length, reason idle Ps, proc gomaxprocs, m threads */
	TRACE_EV_SAMPLE = 65,
};

#define TRACE_ENTRY_MAX 48

/* An event as consumers see it: times are nanotime(), in order. */
struct trace_event {
	int64_t time;
	int64_t task;          /* task id; 0: none (proc events, samples) */
	int64_t goid;          /* GO_* */
	/* GO_CREATE: the parent goid; GO_UNBLOCK: the goroutine that unblocked it
	 * (0: the runtime: io, timers, a thread outside the scheduler);
	 * TASK_EXIT: the exit code; DROPPED: how many; SAMPLE: goroutines */
	int64_t arg;
	int32_t proc;          /* the P the event happened on; -1: none */
	int32_t m;             /* the M; -1: a thread that is not one */
	uint8_t kind;          /* enum gort_event_kind, or TRACE_EV_* */
	uint8_t reason;        /* GO_STOP: enum gort_stop_reason; TASK_EXIT: task_status */
	uint8_t wait;          /* GO_STOP parked: enum waitreason */
	/* GO_CREATE, GO_START: the entry function's symbol (or its address, 0x...);
	 * TASK_*: the task's name */
	char entry[TRACE_ENTRY_MAX];
};

/* trace_kind_string: "go-create", "go-stop", ..., "dropped", "sample"; "?" if
 * unknown. trace_stop_string: "yield", "preempted", "parked", "syscall". */
const char *trace_kind_string(unsigned kind);
const char *trace_stop_string(unsigned reason);

/* A listener makes the scheduler write events (trace_on > 0) and keeps the
 * collector thread running. trace_acquire: one more listener; 0, or -errno if
 * the collector thread cannot start (then nothing changed). trace_release:
 * one fewer; the collector delivers what is buffered, then idles. */
int trace_acquire(void);
void trace_release(void);

/* Subscribers: fn(ev, arg) is called on the collector thread for every event
 * from now on, in time order, batch by batch; a slow fn delays the collector
 * (never the scheduler: the per-P buffers fill and drop, counted). fn must not
 * call trace_subscribe/unsubscribe. trace_subscribe: 0 or -errno (-ENOMEM,
 * the collector's start); *ret is the handle. trace_unsubscribe: once it
 * returns fn is not running and never called again; accepts NULL. */
struct trace_sub;
int trace_subscribe(void (*fn)(const struct trace_event *ev, void *arg), void *arg, struct trace_sub **ret);
void trace_unsubscribe(struct trace_sub *s);

/* trace_flush: returns once every event written before the call has been
 * collected, symbolized and delivered (no hold-back); at once when nobody
 * listens. Called before a task's module is unloaded, so that the symbols of
 * its entry functions are resolved while they exist. On a goroutine it leaves
 * its P meanwhile (a system call section). Gives up after 2 s. */
void trace_flush(void);

/* The history ring: the last n events the collector delivered, kept for
 * readers that come later (gortctl events). trace_history_enable: allocates
 * it (n events, rounded up to a power of two) and holds a listener: of every
 * event (all), or of task starts and exits and samples only, which leaves
 * the scheduler's hooks off (it then keeps goroutine events only while some
 * other listener holds them on); 0, -EEXIST (already on) or -ENOMEM.
 * trace_history_disable releases both. */
int trace_history_enable(uint32_t n, bool all);
void trace_history_disable(void);
/* Reads up to max events after *cursor (0: the oldest still kept) into out and
 * advances *cursor; *ret_missed: events that left the ring before this reader
 * got to them. Returns how many, 0 when caught up, -ENODEV when the ring is off. */
int trace_history_read(uint64_t *cursor, struct trace_event *out, int max, uint64_t *ret_missed);
/* The cursor of the newest event kept: a reader starting there sees only what
 * comes next. 0 when the ring is off. */
uint64_t trace_history_now(void);

/* Counters for stats. */
struct trace_stats {
	int32_t listeners;     /* trace_on */
	uint64_t events;       /* delivered by the collector */
	uint64_t dropped;      /* lost in full buffers (per-P and shared) */
	uint64_t rounds;       /* collector rounds */
	uint32_t history;      /* the history ring's size; 0: off */
};
/* Fills *ret; can't fail. */
void trace_stats_read(struct trace_stats *ret);

/* Tuning for tests: the collector's period (default 10 ms) and the hold-back
 * window that lets events from other buffers with earlier times arrive before
 * a batch is ordered (default 2 ms). Set before trace_acquire. */
extern int64_t trace_period_ns;
extern int64_t trace_holdback_ns;

#endif
