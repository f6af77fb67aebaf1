/* runtime/task.h: the task and plugin API the daemon (and gortd --run) uses: load from an fd, run, wait, kill, list, logs. */
#ifndef GORT_TASK_H
#define GORT_TASK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "runtime.h"

/*
 * Lifetime, for the daemon:
 *
 *	runtime_start(procs, stacksize);          the scheduler (runtime.h)
 *	task_start(&spec, &t, err, sizeof err);   load + run; t is a reference
 *	task_wait(t, timeout, &code);             until it ended and is unloaded
 *	task_kill(t);                             from outside: status "killed"
 *	task_unref(t);
 *	...
 *	tasks_shutdown();                         kill every task, unload plugins
 *	runtime_stop();
 *
 * Every task_* function here is callable from any thread, goroutine or not,
 * except task_wait with a timeout other than 0, which blocks its thread: call it
 * from a thread of the daemon's own (or wrap it in gort_syscall_enter/exit).
 * Errors are negative errno; error text for the user goes to errbuf.
 */

/* How a task ended (or that it has not yet). */
enum task_status {
	/* running: gort_main (or an init function) has not returned, nobody killed it */
	TASK_RUNNING = 0,
	/* exited: gort_main returned, or gort_task_exit was called; exit_code is its value */
	TASK_EXITED,
	/* panicked: gort_panic or a fault (SIGSEGV, SIGBUS, SIGFPE, SIGILL, stack
	 * overflow) in task code; exit_code is 2, panic holds the message */
	TASK_PANICKED,
	/* killed: task_kill; exit_code is 137 (128 + SIGKILL, as a shell shows it) */
	TASK_KILLED,
};
const char *task_status_string(enum task_status s);

#define TASK_KILLED_CODE 137
#define TASK_LOG_SIZE    (64 * 1024)

/* What to run. Everything is copied or dup'ed: the caller keeps what it passed. */
struct task_spec {
	int fd;               /* the task binary, read from offset 0 (pread): not consumed */
	int argc;             /* argv[0] is the task's name by convention; may be 0 */
	char **argv;
	const char *name;     /* for listings and log prefixes; NULL: argv[0], else "task" */
	size_t stack_size;    /* goroutine stack size; 0: the runtime's default */
	int max_goroutines;   /* most goroutines alive at once (gort_go fails EAGAIN beyond); 0: no limit */
	int stdin_fd;         /* the task's fds 0/1/2 (e.g. the client's own): -1 = default, */
	int stdout_fd;        /* which is /dev/null for stdin and the daemon log (prefixed */
	int stderr_fd;        /* with the task id) for stdout/stderr */
	uid_t uid;            /* who submitted it (recorded only, for listings) */
};
/* A spec with every fd -1 and everything else zero. */
#define TASK_SPEC_INIT { .fd = -1, .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1 }

/* task_start: load the binary in spec->fd as a new, independent instance (a second
 * load of the same file, or of another with the same DT_SONAME, shares no globals
 * with the first) and start its main goroutine: GORT_INIT functions in source
 * order, then gort_main(argc, argv). Needs runtime_start first.
 * On success *ret is a new reference (task_unref it) and the task runs.
 * On failure returns negative errno, writes a one-line reason to errbuf (if any)
 * and touches nothing else:
 *	-ENOEXEC	not an ELF file / wrong class or machine / not a shared object
 *			(a PIE or executable) / needs an executable stack / no gort_main /
 *			dlopen failed (undefined symbol...: the dlerror text)
 *	-EINVAL		bad spec (negative fd, argc < 0...)
 *	-EBUSY		tasks_shutdown is in progress
 *	other		reading the binary, memfd_create, out of memory... */
int task_start(const struct task_spec *spec, struct task **ret, char *errbuf, size_t errlen);

/* task_wait: wait until t has ended and all of it is gone (goroutines stopped,
 * channels freed, module unloaded). timeout_ns < 0: forever; 0: just poll.
 * Returns 0 and the exit code in *ret_code (if non-NULL), or -ETIMEDOUT. */
int task_wait(struct task *t, int64_t timeout_ns, int *ret_code);

/* task_kill: end t from outside, wherever its goroutines are (spinning, parked,
 * in io). Its status becomes "killed" unless it had already ended (then -EALREADY).
 * Returns without waiting; task_wait for the end. */
int task_kill(struct task *t);

/* References: the daemon's table holds one per task until task_forget. */
struct task *task_ref(struct task *t);
/* Drops a reference; frees t after the last one. Accepts NULL; returns NULL. */
struct task *task_unref(struct task *t);
/* task_find: a new reference to the task with this id, or NULL (never started,
 * or forgotten). Ended tasks stay findable until task_forget or until more than
 * TASK_KEEP_ENDED ended tasks are kept (the oldest go first). */
#define TASK_KEEP_ENDED 256
struct task *task_find(int64_t id);
/* task_forget: drop an ended task from the table (task_find no longer finds it).
 * -EBUSY if it is still running. */
int task_forget(struct task *t);

/* A snapshot of one task, for `gortctl tasks`, `wait`, `ps`. */
struct task_info {
	int64_t id;
	char name[64];
	enum task_status status;
	int exit_code;               /* valid once status != TASK_RUNNING */
	bool done;                   /* ended and fully unloaded (task_wait would return) */
	uid_t uid;
	int64_t goroutines;          /* alive now */
	int64_t goroutines_created;  /* over its life */
	int64_t goroutines_ended;
	int64_t cpu_ns;              /* run slices of its goroutines (coarse clock; syscalls excluded) */
	int64_t switches;            /* run slices ended (parks, yields, preemptions, exits) */
	int64_t io_requests;         /* gort_* io calls made by its goroutines */
	int64_t panics;
	int max_goroutines;
	size_t stack_size;
	int64_t start_ns, end_ns;    /* gort_now() at start and at end (0: not yet) */
	char panic[256];             /* "panic: ..." first line when panicked, else "" */
};
/* Fills *ret. This function can't fail. */
void task_get_info(struct task *t, struct task_info *ret);
int64_t task_id(struct task *t);
/* task_entry_name: what ps calls the runtime's own goroutine entries: a task's
 * main goroutine ("gort_main": it runs the GORT_INIT functions, then gort_main)
 * and the reaper that ends a task; NULL for any other fn. Can't fail. */
const char *task_entry_name(gort_fn fn);

/* task_list: references to every task in the table (running and kept ended ones),
 * oldest first, in a malloc'ed array; release with task_list_free. */
int task_list(struct task ***ret, size_t *ret_n);
void task_list_free(struct task **v, size_t n);

/* task_logs: a copy of the task's last output (stdout and stderr, interleaved as
 * written, at most TASK_LOG_SIZE bytes) starting at absolute byte offset `from`
 * (0: the oldest kept). *ret is malloc'ed (free it), *ret_len its size, *ret_next
 * the offset to pass next time to follow the output (bytes that fell out of the
 * window are skipped). -ENOMEM only. */
int task_logs(struct task *t, uint64_t from, char **ret, size_t *ret_len, uint64_t *ret_next);

/* Where default task output goes (the daemon's log): fd and a prefix format.
 * Default: fd 2, lines "<6>[task ID NAME] text". Set before the first task. */
void task_set_log_fd(int fd);

/* tasks_shutdown: kill every running task, wait for them, unload every plugin and
 * stop the output pump. Then runtime_stop may follow. task_start fails -EBUSY
 * meanwhile; afterwards tasks may be started again (after runtime_start). */
void tasks_shutdown(void);

/* ---- for the rest of the runtime ---- */

/* task_fd: the fd a task goroutine's fd 0, 1 or 2 really is (its own stdio);
 * any other fd, or a caller outside a task, gets fd back. io.c calls it on every
 * fd argument. This function can't fail. */
int task_fd(int fd);

/* The calling goroutine's task id, 0 outside tasks. */
int64_t task_current_id(void);
/* Running tasks of the table, and their goroutines (statistics samples). */
int64_t task_running_count(void);
int64_t task_goroutines_total(void);

/* ---- plugins (plugin.c) ---- */

/* plugin_load: load a plugin from fd (not consumed) the way task_start loads a
 * task, check its GORT_PLUGIN descriptor (abi == GORT_PLUGIN_ABI, a name no
 * loaded plugin has) and call its init. On success, its hooks start getting
 * events and ticks, and *ret_name (if non-NULL, size namelen) holds its name.
 * Failures: -ENOEXEC (as task_start, or no/invalid descriptor, or ABI mismatch),
 * -EEXIST (name taken), -ECANCELED (init refused), with the reason in errbuf. */
int plugin_load(int fd, char *ret_name, size_t namelen, char *errbuf, size_t errlen);

/* plugin_unload: call fini and unload the plugin called name. Refuses with -EBUSY
 * while any running task holds one of its symbols (got one from gort_plugin_sym:
 * a task holds the plugin from then until it ends); -ENOENT if no such plugin. */
int plugin_unload(const char *name);

struct plugin_info {
	char name[64];
	char version[32];
	int64_t holders;       /* running tasks holding one of its symbols */
	uint64_t events;       /* events delivered to on_event */
	uint64_t dropped;      /* events dropped because its hook lagged behind */
	uint64_t ticks;        /* on_tick calls */
};
/* plugin_list: every loaded plugin, in load order, as a malloc'ed array. */
int plugin_list(struct plugin_info **ret, size_t *ret_n);

/* plugin_unload_all: unload every plugin, waiting for holders to end (shutdown). */
void plugin_unload_all(void);

/* plugin_emit: queue ev for every plugin with an on_event hook (entry and wait
 * are copied: the hook sees its own copies). Never blocks: a plugin whose queue
 * is full drops the event (counted). Any thread; one load when none listens. */
struct gort_event;
void plugin_emit(const struct gort_event *ev, const char *entry, const char *wait);
/* plugin_release_task: the task with this id ended: its holds on plugins go. */
void plugin_release_task(int64_t task);
/* Interval of on_tick calls (default 1 s), and events each plugin's queue
 * holds (default 4096): tests change them before loading. */
extern int64_t plugin_tick_ns;
extern uint32_t plugin_queue_size;

#endif
