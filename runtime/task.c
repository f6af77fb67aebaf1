/* runtime/task.c: tasks: the seed's runtime.main per task (load, init, main), the end of a task (exit, panic, fault, kill), stdio and logs, gort_run. */
#include <dlfcn.h>
#include <execinfo.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <ucontext.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

#include "chan.h"
#include "gort_plugin.h"
#include "module.h"
#include "sema.h"
#include "stats.h"
#include "task.h"
#include "timer.h"
#include "trace.h"

/*
 * Tasks
 * =====
 *
 * A task is what the seed calls a program, and task_main is its runtime.main:
 * the main goroutine runs the task's GORT_INIT functions in source order
 * (doInit(&main_inittask)), then gort_main; when that returns, the task ends
 * with its value whatever its other goroutines are doing, as runtime.main calls
 * exit, after giving a goroutine that is printing a panic up to 1,000 rounds to
 * finish (runningPanicDefers). gort_run hosts one task in the caller's process
 * (its "binary" is the program itself); the daemon hosts many, each loaded from
 * a shared object (module.c), and one task's end never ends another.
 *
 * The end of a task. exit() ends a Go program by ending the process; a task
 * shares its process, so its end must find and stop each of its goroutines
 * wherever it is, free what it owned, and unload its code once none of it runs:
 *
 *   1. Claim. The first of gort_main returning, gort_task_exit, a panic, a
 *      fault or task_kill wins `ending` (a CAS) and records the code and status;
 *      later ones lose and just end their own goroutine.
 *   2. The reaper. The winner's goroutine leaves the task (it counts as ended and
 *      its g->task is cleared: it runs only runtime code from now on) and becomes
 *      the reaper; a winner that is not a goroutine of the task (task_kill, Go's
 *      checkdead) starts a reaper goroutine outside any task. The reaper sets
 *      t->exited, then repeats until no goroutine of the task is left:
 *        - runnable and preempted goroutines need nothing: execute() discards a
 *          goroutine of an exited task instead of running it (it restarts it at
 *          an empty function that returns into goexit, so it leaves through
 *          goexit0 like any other, its frames abandoned);
 *        - running ones are asked to stop (g->preempt, and the preemption signal
 *          for code that never calls the runtime); they come back through the
 *          scheduler and are discarded;
 *        - parked ones are taken out of whatever they wait on, under that
 *          structure's own lock, and readied (so discarded): the task's channels
 *          (chan_cancel_task), semaphores of its mutexes and wait groups
 *          (semcancel_task), its sleep timers (timers_cancel_task), its io
 *          (io_cancel_g), and goroutines parked for good (nil channels, an empty
 *          select, a panicking main: the task's forever list). Each structure
 *          hands over a goroutine at most once: whoever takes it out of the
 *          structure under its lock readies it, and a goroutine that a normal
 *          wakeup took first is readied by that wakeup instead.
 *      It polls with a backoff from 20 us to 5 ms between rounds: ending a task
 *      is rare, and a round is a walk over the task's structures.
 *   3. Finish. With no goroutine of the task left, nothing can run its code:
 *      the reaper frees its channels, releases the plugins it held, dlcloses
 *      the module, closes its stdio, and marks it done (task_wait returns) once
 *      the output pump has drained its pipe.
 *
 * Rejected: a list of each task's goroutines maintained at every creation and
 * exit (a lock on goroutine creation, the hottest path: counts are per P for
 * that reason); killing threads (an M is shared by every task); unwinding a
 * parked goroutine through its own code with an error (C code would then run
 * on in a task that has ended).
 *
 * Panics and faults. gort_panic prints "panic: ..." and the goroutine's trace
 * to the task's stderr, then ends the task with 2. A fault (SIGSEGV, SIGBUS,
 * SIGFPE, SIGILL) in a task's goroutine outside the runtime's own code becomes
 * the same: the handler, on the M's signal stack, records the signal, address,
 * pc and a backtrace, then rewrites the interrupted context so that the thread
 * "returns" into sigpanic on the goroutine's own stack, as Go injects a call to
 * sigpanic: below the faulting frame, or, for a stack overflow (a fault in the
 * guard page under the stack), at the top of its stack, whose frames are dead
 * anyway. sigpanic prints and ends the task like gort_panic; the process and
 * every other task carry on. A fault in runtime code, on g0, or with a runtime
 * lock held is a runtime bug and stays fatal.
 *
 * Stdio. A task's fds 0, 1, 2 are its own (task_fd maps them for the io calls):
 * the daemon passes the client's, or stdin is /dev/null and stdout/stderr the
 * write end of a pipe that the pump thread drains into the daemon's log, one
 * line at a time prefixed with the task id, and into a 64 KiB ring kept for
 * `gortctl logs`. Output written straight to a client's fds is not copied to
 * the ring except gort_printf/gort_eprintf and panics.
 */

#define TASK_NAME_MAX 63

/* What task.c keeps about a task beyond struct task (runtime.h). */
struct task_life {
	char name[TASK_NAME_MAX + 1];
	_Atomic int32_t refs;
	_Atomic bool ending;           /* claimed: exit_code and status are set */
	_Atomic int32_t panicking;     /* goroutines printing a panic */
	int status;                    /* enum task_status */
	uid_t uid;
	int64_t start_ns, end_ns;
	char panic[256];               /* first line of the panic that ended it */
	struct module *mod;            /* NULL for gort_run's task */
	bool embedded;                 /* gort_run's: its fds are the process's own */
	bool pumped;                   /* stdout/stderr are our pipe */
	int piperd;                    /* the pump's end, until EOF */
	_Atomic int32_t pending;       /* the reaper's finish and the pump's EOF: done at 0 */
	_Atomic bool done;
	_Atomic uint32_t seq;          /* futex word: bumped at done and at need_reaper */
	_Atomic bool need_reaper;      /* gort_run's thread must start the reaper */
	struct gqueue forever;         /* parked for good; under t->lock */
	_Atomic bool started;          /* its main goroutine exists */

	pthread_mutex_t ringlock;
	char *ring;                    /* TASK_LOG_SIZE bytes, circular */
	uint64_t ringtotal;            /* bytes ever appended */
	char line[512];                /* the pump's partial line */
	size_t linelen;

	struct task *prev, *next;      /* the table, oldest first */
	bool in_table;
};

static _Atomic int64_t taskidgen;
static _Atomic int log_fd = 2;

/* The table of daemon tasks (task_find, task_list). */
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct task *table_head, *table_tail;
static int64_t table_running, table_ended;
static bool shutting_down;

static void task_emit(uint32_t kind, struct task *t);
static void pump_add(struct task *t);
static void ring_append(struct task *t, const char *buf, size_t n);
_Noreturn static void task_end_self(struct task *t, int code, int status, const char *panic);

const char *task_status_string(enum task_status s)
{
	switch (s) {
	case TASK_RUNNING: return "running";
	case TASK_EXITED: return "exited";
	case TASK_PANICKED: return "panicked";
	case TASK_KILLED: return "killed";
	}
	return "unknown";
}

/* ---- goroutine counts (per P, see runtime.h) ---- */

int task_pcount_init(struct task *t)
{
	t->pcount = aligned_alloc(64, sizeof(struct task_pcount) * (size_t)(gomaxprocs + 1));
	if (!t->pcount)
		return -ENOMEM;
	memset(t->pcount, 0, sizeof(struct task_pcount) * (size_t)(gomaxprocs + 1));
	return 0;
}

void task_pcount_fini(struct task *t)
{
	free(t->pcount);
	t->pcount = NULL;
}

/* A P's own slot: a plain increment, published with a release store (the
 * reaper's acquire loads then see everything the goroutine did before). */
static inline void pcount_bump(int64_t *c)
{
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + 1, __ATOMIC_RELEASE);
}

void task_gocreated(struct task *t, struct p *pp)
{
	if (pp)
		pcount_bump(&t->pcount[pp->id].created);
	else
		__atomic_fetch_add(&t->pcount[gomaxprocs].created, 1, __ATOMIC_RELEASE);
}

struct modrange {
	uintptr_t base, lo, hi;
};

static int modrange_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct modrange *r = arg;
	(void)size;
	if (info->dlpi_addr != r->base)
		return 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD)
			continue;
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
		if (r->hi == 0 || lo < r->lo)
			r->lo = lo;
		if (hi > r->hi)
			r->hi = hi;
	}
	return 1;
}

void task_module_range(struct task *t, uintptr_t *ret_lo, uintptr_t *ret_hi)
{
	struct module *m = t && t->life ? t->life->mod : NULL;
	struct modrange r = { .base = m ? m->base : 0 };
	if (m)
		dl_iterate_phdr(modrange_cb, &r);
	*ret_lo = r.lo;
	*ret_hi = r.hi;
}

/* Called by goexit0 (on g0, holding pp) for every goroutine of t that ends. */
void task_goexit(struct task *t, struct p *pp)
{
	pcount_bump(&t->pcount[pp->id].ended);
	if (t->max_goroutines)
		atomic_fetch_sub_explicit(&t->nlive, 1, memory_order_relaxed);
}

int64_t task_ncreated(const struct task *t)
{
	int64_t n = 0;
	for (int32_t i = 0; i <= gomaxprocs; i++)
		n += __atomic_load_n(&t->pcount[i].created, __ATOMIC_RELAXED);
	return n;
}

int64_t task_ngoroutines(const struct task *t)
{
	int64_t n = 0;
	for (int32_t i = 0; i <= gomaxprocs; i++)
		n += __atomic_load_n(&t->pcount[i].created, __ATOMIC_RELAXED) -
		     __atomic_load_n(&t->pcount[i].ended, __ATOMIC_RELAXED);
	return n;
}

/* Goroutines of t that may still exist: every end is read before every
 * creation, so a goroutine seen ended was seen created, and 0 means none is
 * left (none can be created any more: only a goroutine of t creates one). */
static int64_t task_alive(const struct task *t)
{
	int64_t ended = 0, created = 0;
	for (int32_t i = 0; i <= gomaxprocs; i++)
		ended += __atomic_load_n(&t->pcount[i].ended, __ATOMIC_ACQUIRE);
	for (int32_t i = 0; i <= gomaxprocs; i++)
		created += __atomic_load_n(&t->pcount[i].created, __ATOMIC_ACQUIRE);
	return created - ended;
}

int task_may_spawn(struct task *t)
{
	if (!t)
		return 0;
	if (atomic_load_explicit(&t->exited, memory_order_relaxed))
		return -ECANCELED;
	if (t->max_goroutines) {
		int64_t n = atomic_fetch_add_explicit(&t->nlive, 1, memory_order_relaxed);
		if (n >= t->max_goroutines) {
			atomic_fetch_sub_explicit(&t->nlive, 1, memory_order_relaxed);
			return -EAGAIN;
		}
	}
	return 0;
}

void task_spawn_failed(struct task *t)
{
	if (t && t->max_goroutines)
		atomic_fetch_sub_explicit(&t->nlive, 1, memory_order_relaxed);
}

/* ---- objects a task owns (channels, ...) ---- */

void task_own(struct task *t, struct task_obj *o, void (*free_fn)(struct task_obj *o))
{
	o->free_fn = free_fn;
	o->prev = NULL;
	if (!t) {
		o->next = NULL;
		return;
	}
	lock(&t->lock);
	o->next = t->objs;
	if (t->objs)
		t->objs->prev = o;
	t->objs = o;
	unlock(&t->lock);
}

void task_disown(struct task *t, struct task_obj *o)
{
	if (!t)
		return;
	lock(&t->lock);
	if (o->prev)
		o->prev->next = o->next;
	else
		t->objs = o->next;
	if (o->next)
		o->next->prev = o->prev;
	o->next = o->prev = NULL;
	unlock(&t->lock);
}

void task_free_objs(struct task *t)
{
	for (;;) {
		lock(&t->lock);
		struct task_obj *o = t->objs;
		if (o) {
			t->objs = o->next;
			if (o->next)
				o->next->prev = NULL;
			o->next = NULL;
		}
		unlock(&t->lock);
		if (!o)
			return;
		o->free_fn(o);
	}
}

/* ---- references and the table ---- */

struct task *task_ref(struct task *t)
{
	if (t)
		atomic_fetch_add(&t->life->refs, 1);
	return t;
}

static void task_free(struct task *t)
{
	struct task_life *l = t->life;
	module_unload(l->mod);
	if (!l->embedded) {
		for (int i = 0; i < t->argc; i++)
			free(t->argv[i]);
		free(t->argv);
	}
	free(l->ring);
	pthread_mutex_destroy(&l->ringlock);
	task_pcount_fini(t);
	free(t);
}

struct task *task_unref(struct task *t)
{
	if (t && atomic_fetch_sub(&t->life->refs, 1) == 1)
		task_free(t);
	return NULL;
}

static void table_add(struct task *t)
{
	struct task_life *l = t->life;
	l->prev = table_tail;
	l->next = NULL;
	if (table_tail)
		table_tail->life->next = t;
	else
		table_head = t;
	table_tail = t;
	l->in_table = true;
	table_running++;
}

static void table_del(struct task *t)
{
	struct task_life *l = t->life;
	if (l->prev)
		l->prev->life->next = l->next;
	else
		table_head = l->next;
	if (l->next)
		l->next->life->prev = l->prev;
	else
		table_tail = l->prev;
	l->in_table = false;
}

/* A task of the table ended: keep it for listings, but no more than
 * TASK_KEEP_ENDED of those. Returns the evicted one (caller unrefs it). */
static struct task *table_ended_one(void)
{
	table_running--;
	table_ended++;
	if (table_ended <= TASK_KEEP_ENDED)
		return NULL;
	for (struct task *t = table_head; t; t = t->life->next)
		if (atomic_load(&t->life->done)) {
			table_del(t);
			table_ended--;
			return t;
		}
	return NULL;
}

struct task *task_find(int64_t id)
{
	pthread_mutex_lock(&table_lock);
	struct task *t = table_head;
	while (t && t->id != id)
		t = t->life->next;
	task_ref(t);
	pthread_mutex_unlock(&table_lock);
	return t;
}

int task_forget(struct task *t)
{
	pthread_mutex_lock(&table_lock);
	if (!atomic_load(&t->life->done)) {
		pthread_mutex_unlock(&table_lock);
		return -EBUSY;
	}
	bool was = t->life->in_table;
	if (was) {
		table_del(t);
		table_ended--;
	}
	pthread_mutex_unlock(&table_lock);
	if (was)
		task_unref(t);
	return 0;
}

int task_list(struct task ***ret, size_t *ret_n)
{
	pthread_mutex_lock(&table_lock);
	size_t n = 0;
	for (struct task *t = table_head; t; t = t->life->next)
		n++;
	struct task **v = calloc(n ? n : 1, sizeof(*v));
	if (!v) {
		pthread_mutex_unlock(&table_lock);
		return -ENOMEM;
	}
	size_t i = 0;
	for (struct task *t = table_head; t; t = t->life->next)
		v[i++] = task_ref(t);
	pthread_mutex_unlock(&table_lock);
	*ret = v;
	*ret_n = n;
	return 0;
}

void task_list_free(struct task **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		task_unref(v[i]);
	free(v);
}

int64_t task_id(struct task *t)
{
	return t->id;
}

static void reaper_main(void *arg);
static void task_main(void *arg);

const char *task_entry_name(gort_fn fn)
{
	if (fn == task_main)
		return "gort_main";
	if (fn == reaper_main)
		return "task reaper";
	return NULL;
}

void task_get_info(struct task *t, struct task_info *ret)
{
	struct task_life *l = t->life;
	memset(ret, 0, sizeof(*ret));
	ret->id = t->id;
	snprintf(ret->name, sizeof ret->name, "%s", l->name);
	bool ending = atomic_load(&l->ending);
	ret->status = ending ? l->status : TASK_RUNNING;
	ret->exit_code = ending ? t->exit_code : 0;
	ret->done = atomic_load(&l->done);
	ret->uid = l->uid;
	ret->goroutines = ret->done ? 0 : task_alive(t);
	ret->goroutines_created = task_ncreated(t);
	for (int32_t i = 0; i <= gomaxprocs; i++) {
		const struct task_pcount *c = &t->pcount[i];
		ret->goroutines_ended += __atomic_load_n(&c->ended, __ATOMIC_RELAXED);
		ret->cpu_ns += __atomic_load_n(&c->cpu_ns, __ATOMIC_RELAXED);
		ret->switches += __atomic_load_n(&c->switches, __ATOMIC_RELAXED);
		ret->io_requests += __atomic_load_n(&c->ioreqs, __ATOMIC_RELAXED);
		ret->panics += __atomic_load_n(&c->panics, __ATOMIC_RELAXED);
	}
	ret->max_goroutines = t->max_goroutines;
	ret->stack_size = t->stacksize ? t->stacksize : default_stacksize;
	ret->start_ns = l->start_ns;
	ret->end_ns = ending ? l->end_ns : 0;
	if (ending && l->status == TASK_PANICKED)
		snprintf(ret->panic, sizeof ret->panic, "%s", l->panic);
}

/* Running tasks and their goroutines, for statistics samples. */
int64_t task_running_count(void)
{
	pthread_mutex_lock(&table_lock);
	int64_t n = table_running;
	pthread_mutex_unlock(&table_lock);
	return n;
}

int64_t task_goroutines_total(void)
{
	int64_t n = 0;
	pthread_mutex_lock(&table_lock);
	for (struct task *t = table_head; t; t = t->life->next)
		if (!atomic_load(&t->life->done))
			n += task_alive(t);
	pthread_mutex_unlock(&table_lock);
	return n;
}

/* ---- the calling goroutine's task ---- */

static struct task *curtask(void)
{
	struct g *gp = getg();
	return gp && gp != gp->m->g0 ? gp->task : NULL;
}

int64_t task_current_id(void)
{
	struct task *t = curtask();
	return t ? t->id : 0;
}

int task_fd(int fd)
{
	struct task *t = curtask();
	if (!t || fd < 0 || fd > 2)
		return fd;
	return fd == 0 ? t->stdin_fd : fd == 1 ? t->stdout_fd : t->stderr_fd;
}

/* ---- parking for good ---- */

static bool forever_commit(struct g *gp, void *arg)
{
	struct task *t = arg;
	lock(&t->lock);
	gqueue_push(&t->life->forever, gp);
	unlock(&t->lock);
	return true;
}

_Noreturn void task_block_forever(enum waitreason reason)
{
	struct g *gp = getg();
	struct task *t = gp && gp != gp->m->g0 ? gp->task : NULL;
	/* Only the end of its task ever readies it, and then it is discarded. */
	for (;;)
		gopark(t ? forever_commit : NULL, t, reason);
}

/* ---- output ---- */

static void write_all(int fd, const char *buf, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, buf, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		buf += w;
		n -= (size_t)w;
	}
}

/* Writes to a task's stdout or stderr: the pipe (the pump keeps it in the ring)
 * or the fd it was given (then the ring gets a copy here). */
static void task_output(struct task *t, int fd, const char *buf, size_t n)
{
	write_all(fd, buf, n);
	if (t && !t->life->pumped && !t->life->embedded)
		ring_append(t, buf, n);
}

/* task_output for gort_printf and gort_eprintf: the write may block (a client's
 * terminal, a full pipe), so a goroutine does it as a system call section,
 * whose P sysmon hands to another M if it lasts. (Panics write without: no
 * rescheduling may cut a panic's text.) */
static void task_output_blocking(struct task *t, int fd, const char *buf, size_t n)
{
	struct g *gp = getg();
	if (!gp || gp == gp->m->g0 || !gp->m->p || gp->m->locks) {
		task_output(t, fd, buf, n);
		return;
	}
	entersyscall();
	write_all(fd, buf, n);
	exitsyscall();
	if (t && !t->life->pumped && !t->life->embedded)
		ring_append(t, buf, n);
}

static int task_vprintf(int which, const char *fmt, va_list ap)
{
	struct task *t = curtask();
	int fd = t ? (which == 1 ? t->stdout_fd : t->stderr_fd) : which;
	char small[512];
	va_list aq;
	va_copy(aq, ap);
	int n = vsnprintf(small, sizeof small, fmt, aq);
	va_end(aq);
	if (n < 0)
		return n;
	if ((size_t)n < sizeof small) {
		task_output_blocking(t, fd, small, (size_t)n);
		return n;
	}
	char *big = malloc((size_t)n + 1);
	if (!big) {
		errno = ENOMEM;
		return -1;
	}
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	task_output_blocking(t, fd, big, (size_t)n);
	free(big);
	return n;
}

GORT_EXPORT int gort_printf(const char *fmt, ...)
{
	preemptcheck();
	va_list ap;
	va_start(ap, fmt);
	int r = task_vprintf(1, fmt, ap);
	va_end(ap);
	return r;
}

GORT_EXPORT int gort_eprintf(const char *fmt, ...)
{
	preemptcheck();
	va_list ap;
	va_start(ap, fmt);
	int r = task_vprintf(2, fmt, ap);
	va_end(ap);
	return r;
}

void task_set_log_fd(int fd)
{
	atomic_store(&log_fd, fd);
}

/* ---- the log ring ---- */

static void ring_append(struct task *t, const char *buf, size_t n)
{
	struct task_life *l = t->life;
	if (n == 0)
		return;
	pthread_mutex_lock(&l->ringlock);
	if (!l->ring)
		l->ring = malloc(TASK_LOG_SIZE); /* on first output: most tasks print little or nothing */
	if (!l->ring) {
		l->ringtotal += n; /* lost, but the offsets stay right */
		pthread_mutex_unlock(&l->ringlock);
		return;
	}
	if (n > TASK_LOG_SIZE) {
		l->ringtotal += n - TASK_LOG_SIZE;
		buf += n - TASK_LOG_SIZE;
		n = TASK_LOG_SIZE;
	}
	size_t at = l->ringtotal % TASK_LOG_SIZE;
	size_t first = n < TASK_LOG_SIZE - at ? n : TASK_LOG_SIZE - at;
	memcpy(l->ring + at, buf, first);
	memcpy(l->ring, buf + first, n - first);
	l->ringtotal += n;
	pthread_mutex_unlock(&l->ringlock);
}

int task_logs(struct task *t, uint64_t from, char **ret, size_t *ret_len, uint64_t *ret_next)
{
	struct task_life *l = t->life;
	pthread_mutex_lock(&l->ringlock);
	uint64_t total = l->ringtotal;
	uint64_t oldest = total > TASK_LOG_SIZE ? total - TASK_LOG_SIZE : 0;
	if (from < oldest)
		from = oldest;
	if (from > total)
		from = total;
	size_t n = (size_t)(total - from);
	char *buf = malloc(n ? n : 1);
	if (!buf) {
		pthread_mutex_unlock(&l->ringlock);
		return -ENOMEM;
	}
	size_t at = from % TASK_LOG_SIZE;
	size_t first = n < TASK_LOG_SIZE - at ? n : TASK_LOG_SIZE - at;
	if (n && !l->ring)
		memset(buf, 0, n);
	else if (n) {
		memcpy(buf, l->ring + at, first);
		memcpy(buf + first, l->ring, n - first);
	}
	pthread_mutex_unlock(&l->ringlock);
	*ret = buf;
	*ret_len = n;
	*ret_next = total;
	return 0;
}

/* ---- the output pump: task pipes into the daemon's log and the rings ---- */

static struct {
	pthread_mutex_t lock;
	pthread_t thread;
	bool running;
	_Atomic bool stopping;
	int epfd, evfd;
} pump = { .lock = PTHREAD_MUTEX_INITIALIZER, .epfd = -1, .evfd = -1 };

static void done_dec(struct task *t);
static void task_fatal(struct task *t, const char *msg);

static void pump_line(struct task *t, const char *s, size_t n)
{
	char buf[sizeof t->life->line + 128];
	int h = snprintf(buf, sizeof buf, "<6>[task %lld %s] ", (long long)t->id, t->life->name);
	if (h < 0)
		return;
	if (n > sizeof buf - (size_t)h - 1)
		n = sizeof buf - (size_t)h - 1;
	memcpy(buf + h, s, n);
	buf[(size_t)h + n] = '\n';
	write_all(atomic_load(&log_fd), buf, (size_t)h + n + 1);
}

static void pump_data(struct task *t, const char *buf, size_t n)
{
	struct task_life *l = t->life;
	ring_append(t, buf, n);
	for (size_t i = 0; i < n; i++) {
		if (buf[i] == '\n' || l->linelen == sizeof l->line) {
			pump_line(t, l->line, l->linelen);
			l->linelen = 0;
			if (buf[i] == '\n')
				continue;
		}
		l->line[l->linelen++] = buf[i];
	}
}

/* A running task none of whose goroutines is left (its main goroutine called
 * gort_exit, and the others ended) can never end by itself: as Go's checkdead
 * says for a program, it is a deadlock, and the task ends with 2. */
static void check_orphans(void)
{
	struct task *found[16];
	int n = 0;
	pthread_mutex_lock(&table_lock);
	for (struct task *t = table_head; t && n < 16; t = t->life->next)
		if (atomic_load(&t->life->started) && !atomic_load(&t->life->ending) && task_alive(t) == 0)
			found[n++] = task_ref(t);
	pthread_mutex_unlock(&table_lock);
	for (int i = 0; i < n; i++) {
		task_fatal(found[i], "no goroutines (main called gort_exit) - deadlock!");
		task_unref(found[i]);
	}
}

/* The pump thread: task pipes into the log and the rings; while tasks run, a
 * look for orphaned ones every 100 ms. */
static void *pump_main(void *arg)
{
	(void)arg;
	static char buf[65536];
	struct epoll_event evs[32];
	for (;;) {
		pthread_mutex_lock(&table_lock);
		int timeout = table_running > 0 ? 100 : -1;
		pthread_mutex_unlock(&table_lock);
		int n = epoll_wait(pump.epfd, evs, 32, timeout);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			check_orphans();
		for (int i = 0; i < n; i++) {
			struct task *t = evs[i].data.ptr;
			if (!t) {
				/* the eventfd: a new task (the timeout changes), or stop */
				uint64_t v;
				(void)!read(pump.evfd, &v, sizeof v);
				if (atomic_load(&pump.stopping))
					return NULL;
				continue;
			}
			struct task_life *l = t->life;
			ssize_t r = read(l->piperd, buf, sizeof buf);
			if (r > 0) {
				pump_data(t, buf, (size_t)r);
				continue;
			}
			if (r < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			/* EOF: every write end is closed, the task is over. */
			if (l->linelen) {
				pump_line(t, l->line, l->linelen);
				l->linelen = 0;
			}
			epoll_ctl(pump.epfd, EPOLL_CTL_DEL, l->piperd, NULL);
			close(l->piperd);
			l->piperd = -1;
			done_dec(t);
			task_unref(t);
		}
	}
}

/* Starts the pump thread if it is not running, and wakes it (a task started). */
static void pump_start(void)
{
	pthread_mutex_lock(&pump.lock);
	if (!pump.running) {
		pump.epfd = epoll_create1(EPOLL_CLOEXEC);
		pump.evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
		sigset_t all, old;
		sigfillset(&all);
		if (pump.epfd < 0 || pump.evfd < 0 || epoll_ctl(pump.epfd, EPOLL_CTL_ADD, pump.evfd, &ev) < 0)
			throw("task pump: epoll set-up failed");
		pthread_sigmask(SIG_SETMASK, &all, &old);
		if (pthread_create(&pump.thread, NULL, pump_main, NULL) != 0)
			throw("task pump: cannot start its thread");
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		pump.running = true;
	}
	uint64_t one = 1;
	(void)!write(pump.evfd, &one, sizeof one);
	pthread_mutex_unlock(&pump.lock);
}

/* Hands t's pipe to the pump (which holds a reference until EOF). */
static void pump_add(struct task *t)
{
	pthread_mutex_lock(&pump.lock);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = task_ref(t) };
	if (epoll_ctl(pump.epfd, EPOLL_CTL_ADD, t->life->piperd, &ev) < 0)
		throw("task pump: epoll_ctl failed");
	pthread_mutex_unlock(&pump.lock);
}

static void pump_stop(void)
{
	pthread_mutex_lock(&pump.lock);
	if (pump.running) {
		atomic_store(&pump.stopping, true);
		uint64_t one = 1;
		(void)!write(pump.evfd, &one, sizeof one);
		pthread_join(pump.thread, NULL);
		close(pump.epfd);
		close(pump.evfd);
		pump.epfd = pump.evfd = -1;
		pump.running = false;
		atomic_store(&pump.stopping, false);
	}
	pthread_mutex_unlock(&pump.lock);
}

/* ---- events for plugins ---- */

static void task_emit(uint32_t kind, struct task *t)
{
	if (traceTasksEnabled())
		traceTask(kind, t->id, t->life->name, kind == GORT_EV_TASK_EXIT ? t->life->status : 0,
			  kind == GORT_EV_TASK_EXIT ? t->exit_code : 0);
}

/* ---- the end of a task ---- */

/* The first end wins: records code and status. */
static bool task_claim(struct task *t, int code, int status)
{
	struct task_life *l = t->life;
	bool f = false;
	if (!atomic_compare_exchange_strong(&l->ending, &f, true))
		return false;
	t->exit_code = code;
	l->status = status;
	l->end_ns = nanotime();
	return true;
}

static void wake_waiters(struct task_life *l)
{
	atomic_fetch_add(&l->seq, 1);
	futexwakeup(&l->seq, INT32_MAX);
}

/* One of the two things a done task waits for (the reaper's finish, the pump's
 * EOF) happened. */
static void done_dec(struct task *t)
{
	struct task_life *l = t->life;
	if (atomic_fetch_sub(&l->pending, 1) != 1)
		return;
	if (l->in_table || !l->embedded) {
		pthread_mutex_lock(&table_lock);
		struct task *evict = l->in_table ? table_ended_one() : NULL;
		atomic_store(&l->done, true);
		pthread_mutex_unlock(&table_lock);
		task_unref(evict);
	} else {
		atomic_store(&l->done, true);
	}
	wake_waiters(l);
}

#define REAP_BATCH 256

/* The goroutines of a task that are running or in io, collected under
 * allglock and acted on after it (preemptM and io_cancel_g take locks); at
 * most REAP_BATCH a round, the rest in the reaper's next rounds. */
struct reap_scan {
	struct task *t;
	int n;
	struct g *g[REAP_BATCH];
	struct m *m[REAP_BATCH];   /* the M it ran on, NULL for io */
	int64_t goid[REAP_BATCH];  /* for io: which goroutine the G was (io_cancel_g checks) */
};

/* The fields are read racily, as stats.c's listing reads them (a G may change
 * state under us): a stale read costs one useless signal (the handler sees no
 * request on the G it interrupts), and io_cancel_g pins the G's io wait before
 * touching it and checks that it is still the goroutine read here (its goid):
 * a G reused by another goroutine meanwhile keeps its io. */
#define RACY(x) (*(const volatile __typeof__(x) *)&(x))
__attribute__((no_sanitize("thread"))) static void reap_one(struct g *gp, void *arg)
{
	struct reap_scan *s = arg;
	if (RACY(gp->task) != s->t || s->n == REAP_BATCH)
		return;
	uint32_t st = readgstatus(gp);
	if (st == G_RUNNING || st == G_SYSCALL) {
		s->g[s->n] = gp;
		s->m[s->n++] = RACY(gp->m);
	} else if (st == G_WAITING) {
		uint8_t why = RACY(gp->waitreason);
		if (why == WAIT_IO_READ || why == WAIT_IO_WRITE || why == WAIT_IO || why == WAIT_POLL) {
			s->g[s->n] = gp;
			s->goid[s->n] = RACY(gp->goid);
			s->m[s->n++] = NULL;
		}
	}
}

/* Asks t's running goroutines to stop (the flag, and the preemption signal for
 * code that never calls the runtime) and cancels the io its parked ones wait
 * for. */
static void reap_running(struct task *t)
{
	struct reap_scan *s = malloc(sizeof(*s));
	if (!s)
		return; /* next round */
	s->t = t;
	s->n = 0;
	forEachG(reap_one, s);
	for (int i = 0; i < s->n; i++) {
		if (s->m[i]) {
			atomic_store_explicit(&s->g[i]->preempt, true, memory_order_relaxed);
			preemptM(s->m[i]);
		} else {
			io_cancel_g(s->g[i], s->goid[i]);
		}
	}
	free(s);
}

/* The reaper: from a goroutine outside any task, once t->exited can be set.
 * Stops every goroutine of t, then finishes it (see the essay). */
static void task_reap(struct task *t)
{
	struct task_life *l = t->life;
	atomic_store(&t->exited, true);
	int64_t backoff = 20000;
	while (task_alive(t) > 0) {
		struct gqueue q = { 0 };
		lock(&t->lock);
		while (l->forever.head)
			gqueue_push(&q, gqueue_pop(&l->forever));
		unlock(&t->lock);
		chan_cancel_task(t, &q);
		semcancel_task(t, &q);
		timers_cancel_task(t, &q);
		if (q.head)
			injectglist(&q);
		reap_running(t);
		if (task_alive(t) == 0)
			break;
		gort_sleep(backoff);
		if (backoff < 5000000)
			backoff *= 2;
	}
	/* Nothing of the task runs or can run: free what it owned. */
	task_free_objs(t);
	plugin_release_task(t->id);
	struct module *m = l->mod;
	l->mod = NULL;
	trace_flush(); /* its goroutines' entry symbols are resolved while they exist */
	module_unload(m);
	if (!l->embedded) {
		close(t->stdin_fd);
		close(t->stdout_fd);
		if (t->stderr_fd != t->stdout_fd)
			close(t->stderr_fd);
		t->stdin_fd = t->stdout_fd = t->stderr_fd = -1;
	}
	task_emit(GORT_EV_TASK_EXIT, t);
	done_dec(t);
	task_unref(t); /* the running task's reference */
}

static void reaper_main(void *arg)
{
	task_reap(arg);
}

/* Starts a reaper goroutine for t, whose end was claimed by a thread that is
 * not one of its goroutines. Not with sched.lock held. */
static void task_start_reaper(struct task *t)
{
	int r;
	while (!newproc(reaper_main, t, NULL, 0, &r)) {
		/* out of memory: the end is claimed and must happen; retry */
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
}

/* The calling goroutine of t ends t (or, if another end won, just itself). */
/* The calling goroutine of t ends t (or, if another end won, just itself); a
 * winning panic's first line is kept for task_get_info. */
_Noreturn static void task_end_self(struct task *t, int code, int status, const char *panic)
{
	bool won = task_claim(t, code, status);
	if (won && panic) {
		const char *nl = strchr(panic, '\n');
		snprintf(t->life->panic, sizeof t->life->panic, "%.*s", (int)(nl ? nl - panic : (ptrdiff_t)strlen(panic)),
			 panic);
	}
	struct g *gp = getg();
	/* onces whose function called this: completed now, while the task's
	 * memory (the once may be in it) is still there */
	if (gp->oncing)
		once_abandon(gp);
	/* Leave the task: from here on this goroutine runs runtime code only, and
	 * it does not count among the goroutines the reaper waits for. */
	if (traceEnabled())
		traceGoEnd(gp);
	struct m *mp = acquirem();
	task_goexit(t, mp->p);
	gp->task = NULL;
	releasem(mp);
	if (won)
		task_reap(t);
	gort_exit();
}

/* The end of t was claimed by a thread that is not one of its goroutines,
 * maybe one holding sched.lock (Go's checkdead): the reaper starts on
 * gort_run's thread, or at once for a daemon task (whose ends are never
 * claimed under sched.lock). */
static void task_end_claimed(struct task *t)
{
	struct task_life *l = t->life;
	if (l->embedded) {
		atomic_store(&l->need_reaper, true);
		wake_waiters(l);
	} else {
		task_start_reaper(t);
	}
}

/* task_exit: ends t with code from wherever the caller is. The first end wins.
 * Can't fail. */
void task_exit(struct task *t, int code)
{
	if (task_claim(t, code, TASK_EXITED))
		task_end_claimed(t);
}

int task_kill(struct task *t)
{
	if (!task_claim(t, TASK_KILLED_CODE, TASK_KILLED))
		return -EALREADY;
	task_start_reaper(t);
	return 0;
}

int task_wait(struct task *t, int64_t timeout_ns, int *ret_code)
{
	struct task_life *l = t->life;
	int64_t deadline = timeout_ns > 0 ? nanotime() + timeout_ns : 0;
	for (;;) {
		uint32_t seq = atomic_load(&l->seq);
		if (atomic_load(&l->done)) {
			if (ret_code)
				*ret_code = t->exit_code;
			return 0;
		}
		if (timeout_ns == 0)
			return -ETIMEDOUT;
		int64_t left = -1;
		if (timeout_ns > 0) {
			left = deadline - nanotime();
			if (left <= 0)
				return -ETIMEDOUT;
		}
		futexsleep(&l->seq, seq, left);
	}
}

/* Ends t with 2 and "fatal error: msg" (Go's fatal errors: deadlocks); from any
 * thread, even one holding sched.lock (see task_exit). */
static void task_fatal(struct task *t, const char *msg)
{
	char buf[256];
	int n = snprintf(buf, sizeof buf, "fatal error: %s\n", msg);
	if (n > 0)
		write_all(t->stderr_fd, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
	if (!task_claim(t, 2, TASK_PANICKED))
		return;
	snprintf(t->life->panic, sizeof t->life->panic, "fatal error: %s", msg);
	task_end_claimed(t);
}

/* The task gort_run hosts: Go's checkdead applies to it as to a Go program. */
static struct task *embedded_task;

void task_checkdead(void)
{
	struct task *t = embedded_task;
	if (!t || atomic_load(&t->life->ending))
		return;
	if (task_ngoroutines(t) == 0)
		task_fatal(t, "no goroutines (main called gort_exit) - deadlock!");
	else
		task_fatal(t, "all goroutines are asleep - deadlock!");
}

GORT_EXPORT _Noreturn void gort_task_exit(int code)
{
	struct task *t = curtask();
	if (!t)
		exit(code);
	task_end_self(t, code, TASK_EXITED, NULL);
}

/* ---- panics ---- */

extern char __start_gort_text[] __attribute__((weak));
extern char __stop_gort_text[] __attribute__((weak));

/* Whether pc is the runtime's own code (runtime/ and arch/, linked into the
 * gort_text section). */
static bool pc_in_runtime(uintptr_t pc)
{
	return __start_gort_text && pc >= (uintptr_t)__start_gort_text && pc < (uintptr_t)__stop_gort_text;
}

/* Appends to buf (size, *len used) what printf would print. */
__attribute__((format(printf, 4, 5))) static void bprintf(char *buf, size_t size, size_t *len, const char *fmt, ...)
{
	if (*len >= size)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf + *len, size - *len, fmt, ap);
	va_end(ap);
	if (n > 0)
		*len = *len + (size_t)n < size ? *len + (size_t)n : size - 1;
}

/* pcs[0] is exact when exact0 (a fault's pc); the others are return addresses,
 * looked up one byte back (a call at a function's very end returns past it). */
static void format_trace(char *buf, size_t size, size_t *len, struct task *t, struct g *gp, void *const *pcs,
			 int n, bool exact0)
{
	bprintf(buf, size, len, "\n\ngoroutine %lld [running, task %lld %s]:\n", (long long)gp->goid,
		(long long)t->id, t->life->name);
	for (int i = 0; i < n; i++) {
		uintptr_t pc = (uintptr_t)pcs[i];
		uintptr_t look = i == 0 && exact0 ? pc : pc - 1;
		struct pcsym s;
		module_pc_symbol(look, &s);
		/* the offset of the pc itself, not of the byte looked up */
		uintptr_t off = s.off + (pc - look);
		if (s.func[0])
			bprintf(buf, size, len, "\t%s+%#lx (%s)\n", s.func, (unsigned long)off, s.obj[0] ? s.obj : "?");
		else
			bprintf(buf, size, len, "\t%s+%#lx\n", s.obj[0] ? s.obj : "?", (unsigned long)off);
	}
}

/* Prints a panic whole (one write where the fd allows) to the task's stderr,
 * remembers its first line, and ends the task with 2. */
_Noreturn static void task_panic(struct task *t, const char *head, void *const *pcs, int npcs, bool exact0)
{
	struct g *gp = getg();
	size_t size = 8192, len = 0;
	char *buf = malloc(size);
	char fallback[512];
	if (!buf) {
		buf = fallback;
		size = sizeof fallback;
	}
	task_count(t, (struct p *)NULL, panics, 1);
	bprintf(buf, size, &len, "%s", head);
	format_trace(buf, size, &len, t, gp, pcs, npcs, exact0);
	bprintf(buf, size, &len, "\n");
	task_output(t, t->stderr_fd, buf, len);
	if (buf != fallback)
		free(buf);
	task_end_self(t, 2, TASK_PANICKED, head);
}

GORT_EXPORT _Noreturn void gort_panic(const char *fmt, ...)
{
	struct task *t = curtask();
	char head[1024];
	int n = snprintf(head, sizeof head, "panic: ");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(head + n, sizeof head - (size_t)n, fmt, ap);
	va_end(ap);
	void *pcs[64];
	int npcs = backtrace(pcs, 64);
	if (!t) {
		write_all(2, head, strlen(head));
		write_all(2, "\n", 1);
		backtrace_symbols_fd(pcs, npcs, 2);
		abort();
	}
	atomic_fetch_add(&t->life->panicking, 1);
	/* the trace starts at the caller of the runtime */
	int skip = 0;
	while (skip < npcs - 1 && (pc_in_runtime((uintptr_t)pcs[skip]) || (!__start_gort_text && skip < 1)))
		skip++;
	task_panic(t, head, pcs + skip, npcs - skip, false);
}

/* ---- faults ---- */

/* What the fault handler saw, for sigpanic on the same thread. */
struct fault {
	int sig, code;
	uintptr_t addr, pc;
	bool overflow;
	int npcs;
	void *pcs[64];
};
static __thread struct fault fault_tls __attribute__((tls_model("initial-exec")));
static __thread bool in_sigpanic __attribute__((tls_model("initial-exec")));

static const char *signame(int sig)
{
	switch (sig) {
	case SIGSEGV: return "SIGSEGV: segmentation violation";
	case SIGBUS: return "SIGBUS: bus error";
	case SIGFPE: return "SIGFPE: floating-point exception";
	case SIGILL: return "SIGILL: illegal instruction";
	}
	return "signal";
}

/* The thread "returns" here from the fault handler, on the faulting goroutine's
 * stack (see task_fault). */
_Noreturn static void sigpanic(void)
{
	struct g *gp = getg();
	struct task *t = gp->task;
	in_sigpanic = true;
	struct fault f = fault_tls;
	atomic_fetch_add(&t->life->panicking, 1);
	in_sigpanic = false;
	const char *what;
	char whatbuf[96];
	if (f.overflow) {
		snprintf(whatbuf, sizeof whatbuf, "stack overflow (goroutine stack of %zu bytes exhausted)",
			 gstacksize(gp));
		what = whatbuf;
	} else if (f.sig == SIGSEGV) {
		what = f.addr < 4096 ? "invalid memory address or nil pointer dereference"
				     : "invalid memory address";
	} else if (f.sig == SIGBUS) {
		what = "unexpected fault address (bus error)";
	} else if (f.sig == SIGFPE) {
		what = f.code == FPE_INTDIV ? "integer divide by zero"
		       : f.code == FPE_INTOVF ? "integer overflow" : "floating-point exception";
	} else {
		what = "illegal instruction";
	}
	char head[256];
	snprintf(head, sizeof head, "panic: runtime error: %s\n[signal %s code=0x%x addr=0x%lx pc=0x%lx]", what,
		 signame(f.sig), (unsigned)f.code, (unsigned long)f.addr, (unsigned long)f.pc);
	task_panic(t, head, f.pcs, f.npcs, true);
}

bool task_fault(int sig, void *siginfo, void *uctx)
{
	siginfo_t *si = siginfo;
	ucontext_t *uc = uctx;
	struct g *gp = getg();
	if (!gp || !gp->m || gp == gp->m->g0 || gp->m->curg != gp || !gp->task || gp->m->locks || in_sigpanic)
		return false;
#if defined(__x86_64__)
	uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
	uintptr_t sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
	uintptr_t pc = (uintptr_t)uc->uc_mcontext.pc;
	uintptr_t sp = (uintptr_t)uc->uc_mcontext.sp;
#endif
	uintptr_t addr = (uintptr_t)si->si_addr;
	bool overflow = gstacksize(gp) &&
			((addr < gp->stacklo && addr >= gp->stacklo - 4096) || sp < gp->stacklo + 256);
	if (!overflow && (pc_in_runtime(pc) || (!__start_gort_text && !module_pc_loaded(pc))))
		return false;
	struct fault *f = &fault_tls;
	f->sig = sig;
	f->code = si->si_code;
	f->addr = addr;
	f->pc = pc;
	f->overflow = overflow;
	f->npcs = backtrace(f->pcs, 64);
	/* Drop the handler's own frames: the trace starts at the faulting pc. */
	for (int i = 0; i < f->npcs; i++)
		if ((uintptr_t)f->pcs[i] == pc) {
			memmove(f->pcs, f->pcs + i, (size_t)(f->npcs - i) * sizeof(void *));
			f->npcs -= i;
			break;
		}
	/* Into sigpanic on the goroutine's stack: right under the faulting frame
	 * (past the red zone), or, after an overflow, at the top of the stack. */
	uintptr_t nsp = overflow ? gp->stackhi - 1024 : sp - 256;
	nsp &= ~(uintptr_t)15;
#if defined(__SANITIZE_ADDRESS__)
	/* sigpanic's frames go where the abandoned ones' redzones are */
	if (overflow)
		__asan_unpoison_memory_region((void *)gp->stacklo, gp->stackhi - gp->stacklo);
#endif
#if defined(__x86_64__)
	nsp -= 8;
	*(uintptr_t *)nsp = 0; /* sigpanic's return address: none, the trace ends */
	uc->uc_mcontext.gregs[REG_RSP] = (greg_t)nsp;
	uc->uc_mcontext.gregs[REG_RIP] = (greg_t)(uintptr_t)sigpanic;
	uc->uc_mcontext.gregs[REG_RBP] = 0;
#elif defined(__aarch64__)
	uc->uc_mcontext.sp = nsp;
	uc->uc_mcontext.pc = (uintptr_t)sigpanic;
	uc->uc_mcontext.regs[29] = 0;
	uc->uc_mcontext.regs[30] = 0;
#endif
	return true;
}

/* ---- starting ---- */

/* The main goroutine of a task: the seed's runtime.main. */
static void task_main(void *arg)
{
	struct task *t = arg;
	struct task_life *l = t->life;
	struct module *m = l->mod;
	for (size_t i = 0; m && i < m->ninits; i++)
		m->inits[i]->fn();
	int code = t->main_fn(t->argc, t->argv);
	/* runningPanicDefers: let a goroutine printing a panic finish */
	for (int c = 0; c < 1000 && atomic_load(&l->panicking) && !atomic_load(&l->ending); c++)
		gosched();
	if (atomic_load(&l->panicking) && !atomic_load(&l->ending))
		task_block_forever(WAIT_PANIC); /* the panic will end the task */
	task_end_self(t, code, TASK_EXITED, NULL);
}

static struct task *task_alloc(const char *name)
{
	struct task *t = calloc(1, sizeof(*t) + sizeof(struct task_life));
	if (!t)
		return NULL;
	struct task_life *l = (struct task_life *)(t + 1);
	t->life = l;
	t->stdin_fd = t->stdout_fd = t->stderr_fd = -1;
	l->piperd = -1;
	pthread_mutex_init(&l->ringlock, NULL);
	snprintf(l->name, sizeof l->name, "%s", name && *name ? name : "task");
	if (task_pcount_init(t) < 0) {
		free(t);
		return NULL;
	}
	t->id = atomic_fetch_add(&taskidgen, 1) + 1;
	l->start_ns = nanotime();
	return t;
}

static int dup_fd(int fd)
{
	int r = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	return r < 0 ? -errno : r;
}

static void once_init(void)
{
	/* backtrace() loads the unwinder on first use: not in a signal handler */
	void *pcs[2];
	backtrace(pcs, 2);
}

int task_start(const struct task_spec *spec, struct task **ret, char *errbuf, size_t errlen)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, once_init);
	if (errbuf && errlen)
		errbuf[0] = '\0';
	if (!spec || spec->argc < 0 || (spec->argc > 0 && !spec->argv) || spec->max_goroutines < 0) {
		if (errbuf && errlen)
			snprintf(errbuf, errlen, "invalid task spec");
		return -EINVAL;
	}
	if (!runtime_started()) {
		if (errbuf && errlen)
			snprintf(errbuf, errlen, "the runtime is not running");
		return -EINVAL;
	}
	pthread_mutex_lock(&table_lock);
	bool shutting = shutting_down;
	pthread_mutex_unlock(&table_lock);
	if (shutting) {
		if (errbuf && errlen)
			snprintf(errbuf, errlen, "shutting down");
		return -EBUSY;
	}
	const char *name = spec->name ? spec->name : spec->argc > 0 ? spec->argv[0] : NULL;
	if (name && strrchr(name, '/'))
		name = strrchr(name, '/') + 1;
	struct task *t = task_alloc(name);
	if (!t)
		return -ENOMEM;
	struct task_life *l = t->life;
	int r = module_load(spec->fd, "task", l->name, "gort_main", &l->mod, errbuf, errlen);
	if (r < 0)
		goto out_free;
	t->main_fn = (int (*)(int, char **))module_sym(l->mod, "gort_main");
	r = -ENOMEM;
	t->argv = calloc((size_t)spec->argc + 1, sizeof(char *));
	if (!t->argv)
		goto out_free;
	for (int i = 0; i < spec->argc; i++) {
		t->argv[i] = strdup(spec->argv[i] ? spec->argv[i] : "");
		if (!t->argv[i])
			goto out_free;
		t->argc = i + 1;
	}

	/* stdio */
	r = spec->stdin_fd >= 0 ? dup_fd(spec->stdin_fd) : open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (r < 0) {
		r = r == -1 ? -errno : r;
		goto out_free;
	}
	t->stdin_fd = r;
	int pfd[2] = { -1, -1 };
	if (spec->stdout_fd < 0 || spec->stderr_fd < 0) {
		if (pipe2(pfd, O_CLOEXEC) < 0) {
			r = -errno;
			goto out_free;
		}
		l->piperd = pfd[0];
		l->pumped = true;
	}
	r = spec->stdout_fd >= 0 ? dup_fd(spec->stdout_fd) : dup_fd(pfd[1]);
	if (r < 0)
		goto out_pipe;
	t->stdout_fd = r;
	r = spec->stderr_fd >= 0 ? dup_fd(spec->stderr_fd) : pfd[1];
	if (r < 0)
		goto out_pipe;
	t->stderr_fd = r;
	if (spec->stderr_fd >= 0 && pfd[1] >= 0)
		close(pfd[1]);
	pfd[1] = -1;

	t->stacksize = spec->stack_size ? stack_round(spec->stack_size) : 0;
	t->max_goroutines = spec->max_goroutines;
	atomic_store(&t->nlive, 1);
	l->uid = spec->uid;
	atomic_store(&l->refs, 3);    /* the caller's, the table's, the running task's */
	atomic_store(&l->pending, l->pumped ? 2 : 1);

	pthread_mutex_lock(&table_lock);
	if (shutting_down) {
		pthread_mutex_unlock(&table_lock);
		r = -EBUSY;
		if (errbuf && errlen)
			snprintf(errbuf, errlen, "shutting down");
		goto out_free;
	}
	table_add(t);
	pthread_mutex_unlock(&table_lock);
	task_emit(GORT_EV_TASK_START, t);
	if (!newproc(task_main, t, t, t->stacksize, &r)) {
		pthread_mutex_lock(&table_lock);
		table_del(t);
		table_running--;
		pthread_mutex_unlock(&table_lock);
		if (errbuf && errlen)
			snprintf(errbuf, errlen, "cannot start its main goroutine: %s", strerror(-r));
		goto out_free;
	}
	atomic_store(&l->started, true);
	pump_start();
	if (l->pumped)
		pump_add(t);
	*ret = t;
	return 0;

out_pipe:
	if (pfd[1] >= 0)
		close(pfd[1]);
out_free:
	if (l->piperd >= 0)
		close(l->piperd);
	if (t->stdin_fd >= 0)
		close(t->stdin_fd);
	if (t->stdout_fd >= 0)
		close(t->stdout_fd);
	if (t->stderr_fd >= 0 && t->stderr_fd != t->stdout_fd)
		close(t->stderr_fd);
	task_free(t);
	return r;
}

void tasks_shutdown(void)
{
	pthread_mutex_lock(&table_lock);
	shutting_down = true;
	pthread_mutex_unlock(&table_lock);
	struct task **v;
	size_t n;
	while (task_list(&v, &n) < 0) {
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	for (size_t i = 0; i < n; i++)
		task_kill(v[i]);
	for (size_t i = 0; i < n; i++)
		task_wait(v[i], -1, NULL);
	task_list_free(v, n);
	plugin_unload_all();
	pump_stop();
	pthread_mutex_lock(&table_lock);
	shutting_down = false;
	pthread_mutex_unlock(&table_lock);
}

/* ---- gort_run ---- */

static pthread_mutex_t run_lock = PTHREAD_MUTEX_INITIALIZER;

GORT_EXPORT int gort_run(int (*main_fn)(int argc, char **argv), int argc, char **argv,
			 const struct gort_config *cfg)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, once_init);
	if (getg()) {
		errno = EDEADLK;
		return -1;
	}
	if (!main_fn) {
		errno = EINVAL;
		return -1;
	}
	if (pthread_mutex_trylock(&run_lock) != 0) {
		errno = EBUSY;
		return -1;
	}
	int r = runtime_start(cfg ? cfg->procs : 0, cfg ? cfg->stack_size : 0);
	if (r < 0) {
		pthread_mutex_unlock(&run_lock);
		errno = -r;
		return -1;
	}
	struct task *t = task_alloc(argc > 0 && argv && argv[0] ? argv[0] : "main");
	if (!t) {
		runtime_stop();
		pthread_mutex_unlock(&run_lock);
		errno = ENOMEM;
		return -1;
	}
	struct task_life *l = t->life;
	l->embedded = true;
	t->main_fn = main_fn;
	t->argc = argc;
	t->argv = argv; /* the caller's: task_free leaves it */
	t->stdin_fd = 0;
	t->stdout_fd = 1;
	t->stderr_fd = 2;
	atomic_store(&t->nlive, 1);
	atomic_store(&l->refs, 2); /* ours, the running task's */
	atomic_store(&l->pending, 1);
	embedded_task = t;
	task_emit(GORT_EV_TASK_START, t);
	if (!newproc(task_main, t, t, 0, &r)) {
		runtime_stop();
		embedded_task = NULL;
		task_free(t);
		pthread_mutex_unlock(&run_lock);
		errno = -r;
		return -1;
	}
	for (;;) {
		uint32_t seq = atomic_load(&l->seq);
		if (atomic_load(&l->done))
			break;
		if (atomic_exchange(&l->need_reaper, false)) {
			task_start_reaper(t);
			continue;
		}
		futexsleep(&l->seq, seq, -1);
	}
	runtime_stop();
	embedded_task = NULL;
	int code = t->exit_code;
	task_unref(t);
	pthread_mutex_unlock(&run_lock);
	return code;
}
