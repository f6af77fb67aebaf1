/* runtime/task.c: tasks, the goroutines' owners: the seed's runtime.main per task, exit, panic, stdio, gort_run. */
#include <execinfo.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "runtime.h"

/*
 * A task is what the seed calls a program: its main goroutine runs the task's
 * main function and, when that returns, the task ends with its value, whatever
 * its other goroutines are doing (runtime.main calls exit). gort_run hosts one
 * task in the caller's process; the daemon hosts many.
 */

static _Atomic int64_t taskidgen;

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

/* A P's own slot: a plain increment, published with a relaxed store. */
static inline void pcount_bump(int64_t *c)
{
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
}

void task_gocreated(struct task *t, struct p *pp)
{
	if (pp)
		pcount_bump(&t->pcount[pp->id].created);
	else
		__atomic_fetch_add(&t->pcount[gomaxprocs].created, 1, __ATOMIC_RELAXED);
}

/* Called by goexit0 (on g0, holding pp) for every goroutine of t that ends. */
void task_goexit(struct task *t, struct p *pp)
{
	pcount_bump(&t->pcount[pp->id].ended);
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

int task_may_spawn(struct task *t)
{
	if (t && atomic_load_explicit(&t->exited, memory_order_relaxed))
		return -ECANCELED;
	return 0;
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

/* task_exit: the task ends with code (the first call wins); whoever waits for
 * it is woken. This function can't fail. */
void task_exit(struct task *t, int code)
{
	bool was = atomic_exchange(&t->exited, true);
	if (was)
		return;
	t->exit_code = code;
	notewakeup(&t->done);
}

static void task_vwrite(int fd, const char *prefix, const char *fmt, va_list ap)
{
	char buf[1024];
	int n = 0;
	if (prefix)
		n = snprintf(buf, sizeof buf, "%s", prefix);
	int m = vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
	if (m < 0)
		m = 0;
	size_t len = (size_t)n + (size_t)m;
	if (len > sizeof buf - 2)
		len = sizeof buf - 2;
	buf[len++] = '\n';
	(void)!write(fd, buf, len);
}

static void task_fatal(struct task *t, const char *msg)
{
	dprintf(t->stderr_fd, "fatal error: %s\n", msg);
	task_exit(t, 2);
}

/* The task gort_run hosts: Go's checkdead applies to it as to a Go program. */
static struct task *embedded_task;

void task_checkdead(void)
{
	struct task *t = embedded_task;
	if (!t || atomic_load(&t->exited))
		return;
	if (task_ngoroutines(t) == 0)
		task_fatal(t, "no goroutines (main called gort_exit) - deadlock!");
	else
		task_fatal(t, "all goroutines are asleep - deadlock!");
}

static struct task *curtask(void)
{
	struct g *gp = getg();
	return gp && gp != gp->m->g0 ? gp->task : NULL;
}

_Noreturn static void task_park_forever(void)
{
	for (;;)
		gopark(NULL, NULL, WAIT_TASK_EXIT);
}

GORT_EXPORT _Noreturn void gort_task_exit(int code)
{
	struct task *t = curtask();
	if (!t)
		exit(code);
	task_exit(t, code);
	task_park_forever();
}

GORT_EXPORT _Noreturn void gort_panic(const char *fmt, ...)
{
	struct task *t = curtask();
	int fd = t ? t->stderr_fd : 2;
	va_list ap;
	va_start(ap, fmt);
	task_vwrite(fd, "panic: ", fmt, ap);
	va_end(ap);
	struct g *gp = getg();
	dprintf(fd, "\ngoroutine %lld [running]:\n", (long long)(gp && gp->m ? gp->goid : 0));
	void *pcs[64];
	int n = backtrace(pcs, 64);
	backtrace_symbols_fd(pcs, n, fd);
	if (!t)
		abort();
	task_exit(t, 2);
	task_park_forever();
}

GORT_EXPORT int gort_printf(const char *fmt, ...)
{
	struct task *t = curtask();
	va_list ap;
	va_start(ap, fmt);
	int r = vdprintf(t ? t->stdout_fd : 1, fmt, ap);
	va_end(ap);
	return r;
}

GORT_EXPORT int gort_eprintf(const char *fmt, ...)
{
	struct task *t = curtask();
	va_list ap;
	va_start(ap, fmt);
	int r = vdprintf(t ? t->stderr_fd : 2, fmt, ap);
	va_end(ap);
	return r;
}

/* The main goroutine of a task: the seed's runtime.main. */
static void task_main(void *arg)
{
	struct task *t = arg;
	int code = t->main_fn(t->argc, t->argv);
	task_exit(t, code);
}

static pthread_mutex_t run_lock = PTHREAD_MUTEX_INITIALIZER;

GORT_EXPORT int gort_run(int (*main_fn)(int argc, char **argv), int argc, char **argv,
			 const struct gort_config *cfg)
{
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
	struct task t = {
		.id = atomic_fetch_add(&taskidgen, 1) + 1,
		.main_fn = main_fn,
		.argc = argc,
		.argv = argv,
		.stdout_fd = 1,
		.stderr_fd = 2,
	};
	r = task_pcount_init(&t);
	embedded_task = &t;
	if (r < 0 || !newproc(task_main, &t, &t, 0, &r)) {
		runtime_stop();
		embedded_task = NULL;
		task_pcount_fini(&t);
		pthread_mutex_unlock(&run_lock);
		errno = -r;
		return -1;
	}
	notesleep(&t.done);
	runtime_stop();
	embedded_task = NULL;
	task_pcount_fini(&t);
	task_free_objs(&t);
	pthread_mutex_unlock(&run_lock);
	return t.exit_code;
}
