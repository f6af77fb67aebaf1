/* runtime/plugin.c: plugins: load and check the descriptor, per-plugin hook threads fed by lock-free queues, gort_plugin_sym. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>

#include "gort_plugin.h"
#include "module.h"
#include "task.h"
#include "trace.h"

/*
 * A plugin is loaded like a task (module.c) and described by its exported
 * `gort_plugin` descriptor. Its hooks never run on a scheduler thread: each
 * plugin has a thread of its own that drains a bounded queue of events and
 * takes a statistics sample every tick. Producers (the scheduler, tasks) push
 * with one CAS on a Vyukov ring and never wait: when a plugin falls behind, its
 * queue fills and its own events are dropped (counted), nobody else's, and no
 * goroutine is delayed. When no plugin listens, emitting is one load.
 *
 * Unloading: emitters find plugins through a small array of slots; an emitter
 * announces itself in the plugin's inflight count, then re-checks the slot. The
 * unloader empties the slot, then waits for inflight to drain, so no emitter
 * touches a plugin being freed. Hooks, init and fini of one plugin never run
 * concurrently: init on the loading thread before the hook thread starts, fini
 * on the hook thread after its last hook.
 *
 * Symbols: gort_plugin_sym records that the calling task holds the plugin;
 * holds end with the task. plugin_unload refuses (-EBUSY) while a running
 * task holds the plugin: a task may keep any pointer it got, so only its end
 * proves it no longer uses the plugin's code.
 */

#define PLUGIN_MAX     64
#define PLUGIN_ENTRY   64
#define PLUGIN_WAIT    32

int64_t plugin_tick_ns = 1000000000; /* tests shorten it */
uint32_t plugin_queue_size = 4096;   /* events queued per plugin; tests shrink it */

struct evslot {
	_Atomic uint64_t seq;
	struct gort_event ev;
	char entry[PLUGIN_ENTRY];
	char wait[PLUGIN_WAIT];
};

struct plugin {
	struct plugin *next;          /* load order, under plugins_lock */
	struct module *mod;
	const struct gort_plugin *desc;
	char name[64];
	char version[32];
	int slot;
	int64_t holders;              /* under plugins_lock */
	bool unloading;
	bool tracing;                 /* holds a trace listener (on_event): the collector feeds it */

	struct evslot *ring;
	uint32_t qsize;
	_Atomic uint64_t head;        /* next position producers claim */
	uint64_t tail;                /* the hook thread's */
	_Atomic uint32_t sleeping;    /* the hook thread waits on it */
	_Atomic int32_t inflight;     /* emitters touching this plugin */
	_Atomic bool stopping;
	_Atomic uint64_t events, dropped, ticks;
	pthread_t thread;
};

struct hold {
	struct hold *next;
	int64_t task;
	struct plugin *p;
};

static pthread_mutex_t plugins_lock = PTHREAD_MUTEX_INITIALIZER;
static struct plugin *plugins;       /* load order */
static struct hold *holds;
static struct plugin *_Atomic slots[PLUGIN_MAX];
_Atomic int32_t plugins_listening;   /* plugins with an on_event hook */

/* ---- the queue ---- */

static void push(struct plugin *p, const struct gort_event *ev, const char *entry, const char *wait)
{
	uint64_t pos = atomic_load_explicit(&p->head, memory_order_relaxed);
	struct evslot *s;
	for (;;) {
		s = &p->ring[pos % p->qsize];
		uint64_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
		int64_t diff = (int64_t)(seq - pos);
		if (diff == 0) {
			if (atomic_compare_exchange_weak_explicit(&p->head, &pos, pos + 1, memory_order_relaxed,
								  memory_order_relaxed))
				break;
		} else if (diff < 0) {
			atomic_fetch_add_explicit(&p->dropped, 1, memory_order_relaxed);
			return;
		} else {
			pos = atomic_load_explicit(&p->head, memory_order_relaxed);
		}
	}
	s->ev = *ev;
	s->ev.size = sizeof(struct gort_event);
	s->entry[0] = s->wait[0] = '\0';
	if (entry)
		snprintf(s->entry, sizeof s->entry, "%s", entry);
	if (wait)
		snprintf(s->wait, sizeof s->wait, "%s", wait);
	/* Sequentially consistent, as the hook thread's store to sleeping and its
	 * re-check of the queue: either it sees this event or we see it asleep. */
	atomic_store_explicit(&s->seq, pos + 1, memory_order_seq_cst);
	if (atomic_load_explicit(&p->sleeping, memory_order_seq_cst) &&
	    atomic_exchange(&p->sleeping, 0) == 1)
		futexwakeup(&p->sleeping, 1);
}

void plugin_emit(const struct gort_event *ev, const char *entry, const char *wait)
{
	if (atomic_load_explicit(&plugins_listening, memory_order_relaxed) == 0)
		return;
	for (int i = 0; i < PLUGIN_MAX; i++) {
		struct plugin *p = atomic_load_explicit(&slots[i], memory_order_acquire);
		if (!p || !p->desc->on_event)
			continue;
		atomic_fetch_add(&p->inflight, 1);
		if (atomic_load(&slots[i]) == p && !atomic_load(&p->stopping))
			push(p, ev, entry, wait);
		atomic_fetch_sub(&p->inflight, 1);
	}
}

/* ---- statistics samples ---- */

static void sample(struct gort_stats *st, int32_t *runq, int nrunq)
{
	memset(st, 0, sizeof(*st));
	st->size = sizeof(*st);
	st->time = nanotime();
	st->runq = runq;
	if (!runtime_started())
		return;
	lock(&sched.lock);
	st->gomaxprocs = gomaxprocs;
	st->idleprocs = atomic_load(&sched.npidle);
	st->threads = sched.nmlive;
	st->spinningthreads = atomic_load(&sched.nmspinning);
	st->idlethreads = sched.nmidle;
	st->runqueue = atomic_load(&sched.runqsize);
	int n = gomaxprocs < nrunq ? gomaxprocs : nrunq;
	for (int i = 0; i < n; i++)
		runq[i] = (int32_t)(atomic_load(&allp[i]->runqtail) - atomic_load(&allp[i]->runqhead));
	st->nprocs = (uint32_t)n;
	unlock(&sched.lock);
	st->tasks = task_running_count();
	st->goroutines = task_goroutines_total();
}

/* ---- the hook thread ---- */

/* Delivers the queued events; once the plugin is being unloaded, the rest are
 * dropped instead: an unload does not wait for a slow hook's backlog. */
static bool drain(struct plugin *p)
{
	bool any = false;
	for (;;) {
		struct evslot *s = &p->ring[p->tail % p->qsize];
		if (atomic_load_explicit(&s->seq, memory_order_acquire) != p->tail + 1)
			return any;
		s->ev.entry = s->entry[0] ? s->entry : NULL;
		s->ev.wait = s->wait[0] ? s->wait : NULL;
		if (atomic_load_explicit(&p->stopping, memory_order_relaxed)) {
			atomic_fetch_add_explicit(&p->dropped, 1, memory_order_relaxed);
		} else {
			p->desc->on_event(&s->ev);
			atomic_fetch_add_explicit(&p->events, 1, memory_order_relaxed);
		}
		atomic_store_explicit(&s->seq, p->tail + p->qsize, memory_order_release);
		p->tail++;
		any = true;
	}
}

static bool queue_empty(struct plugin *p)
{
	struct evslot *s = &p->ring[p->tail % p->qsize];
	return atomic_load_explicit(&s->seq, memory_order_seq_cst) != p->tail + 1;
}

static void *plugin_thread(void *arg)
{
	struct plugin *p = arg;
	char tname[16] = "gort-pl-";
	memcpy(tname + 8, p->name, strnlen(p->name, 7)); /* the kernel keeps 15 characters */
	prctl(PR_SET_NAME, tname);
	int64_t next = nanotime() + plugin_tick_ns;
	int32_t runq[256];
	for (;;) {
		if (p->desc->on_event)
			drain(p);
		int64_t now = nanotime();
		if (p->desc->on_tick && now >= next) {
			struct gort_stats st;
			sample(&st, runq, (int)ARRAY_SIZE(runq));
			p->desc->on_tick(&st);
			atomic_fetch_add_explicit(&p->ticks, 1, memory_order_relaxed);
			next = now + plugin_tick_ns;
		}
		if (atomic_load(&p->stopping) && atomic_load(&p->inflight) == 0 && queue_empty(p))
			break;
		atomic_store(&p->sleeping, 1);
		if (!queue_empty(p) || atomic_load(&p->stopping)) {
			atomic_store(&p->sleeping, 0);
			if (atomic_load(&p->stopping) && queue_empty(p))
				futexsleep(&p->sleeping, 0, 1000000); /* inflight emitters: brief */
			continue;
		}
		int64_t wait = p->desc->on_tick ? next - nanotime() : -1;
		if (wait != 0)
			futexsleep(&p->sleeping, 1, wait < 0 ? -1 : wait);
		atomic_store(&p->sleeping, 0);
	}
	if (p->desc->fini)
		p->desc->fini();
	return NULL;
}

/* ---- load, unload, list ---- */

static struct plugin *plugin_find_locked(const char *name)
{
	for (struct plugin *p = plugins; p; p = p->next)
		if (!p->unloading && strcmp(p->name, name) == 0)
			return p;
	return NULL;
}

static struct plugin *plugin_free(struct plugin *p)
{
	if (!p)
		return NULL;
	if (p->tracing)
		trace_release();
	module_unload(p->mod);
	free(p->ring);
	free(p);
	return NULL;
}

static bool name_ok(const char *s)
{
	size_t n = 0;
	for (; s[n]; n++)
		if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') || (s[n] >= '0' && s[n] <= '9') ||
		      s[n] == '-' || s[n] == '_' || s[n] == '.'))
			return false;
	return n > 0 && n < 64;
}

static int fail(int r, char *errbuf, size_t errlen, const char *msg)
{
	if (errbuf && errlen)
		snprintf(errbuf, errlen, "%s", msg);
	return r;
}

int plugin_load(int fd, char *ret_name, size_t namelen, char *errbuf, size_t errlen)
{
	struct plugin *p = calloc(1, sizeof(*p));
	if (!p)
		return fail(-ENOMEM, errbuf, errlen, "out of memory");
	p->slot = -1;
	int r = module_load(fd, "plugin", "plugin", "gort_plugin", &p->mod, errbuf, errlen);
	if (r < 0) {
		free(p);
		return r;
	}
	p->desc = module_sym(p->mod, "gort_plugin");
	const struct gort_plugin *d = p->desc;
	if (!d) {
		plugin_free(p);
		return fail(-ENOEXEC, errbuf, errlen, "no gort_plugin descriptor: define one with GORT_PLUGIN(...)");
	}
	if (d->abi != GORT_PLUGIN_ABI) {
		if (errbuf && errlen)
			snprintf(errbuf, errlen, "plugin ABI %u, this runtime speaks ABI %u (rebuild the plugin)",
				 d->abi, GORT_PLUGIN_ABI);
		plugin_free(p);
		return -ENOEXEC;
	}
	if (!d->name || !name_ok(d->name)) {
		plugin_free(p);
		return fail(-ENOEXEC, errbuf, errlen,
			    "plugin has no valid name (1-63 characters of [A-Za-z0-9._-])");
	}
	snprintf(p->name, sizeof p->name, "%s", d->name);
	snprintf(p->version, sizeof p->version, "%s", d->version ? d->version : "");
	p->qsize = plugin_queue_size ? plugin_queue_size : 1;
	p->ring = calloc(p->qsize, sizeof(*p->ring));
	if (!p->ring) {
		plugin_free(p);
		return fail(-ENOMEM, errbuf, errlen, "out of memory");
	}
	for (uint64_t i = 0; i < p->qsize; i++)
		atomic_init(&p->ring[i].seq, i);
	if (d->on_event) {
		/* the scheduler writes events from now on; the collector feeds them here */
		r = trace_acquire();
		if (r < 0) {
			plugin_free(p);
			return fail(r, errbuf, errlen, "cannot start the event collector");
		}
		p->tracing = true;
	}

	/* Reserve the name (a second load of the same plugin waits for nothing:
	 * it is refused), then init outside the lock: init may take its time. */
	pthread_mutex_lock(&plugins_lock);
	if (plugin_find_locked(p->name)) {
		pthread_mutex_unlock(&plugins_lock);
		if (errbuf && errlen)
			snprintf(errbuf, errlen, "a plugin called %s is already loaded", p->name);
		plugin_free(p);
		return -EEXIST;
	}
	for (int i = 0; i < PLUGIN_MAX; i++)
		if (!atomic_load(&slots[i])) {
			bool taken = false;
			for (struct plugin *q = plugins; q; q = q->next)
				taken |= q->slot == i;
			if (!taken) {
				p->slot = i;
				break;
			}
		}
	if (p->slot < 0) {
		pthread_mutex_unlock(&plugins_lock);
		plugin_free(p);
		return fail(-EMFILE, errbuf, errlen, "too many plugins loaded");
	}
	p->unloading = true; /* invisible to finds until init said yes */
	struct plugin **pp = &plugins;
	while (*pp)
		pp = &(*pp)->next;
	*pp = p;
	pthread_mutex_unlock(&plugins_lock);

	int ir = d->init ? d->init() : 0;
	if (ir == 0) {
		sigset_t all, old;
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		r = -pthread_create(&p->thread, NULL, plugin_thread, p);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (r < 0 && d->fini)
			d->fini();
	}
	pthread_mutex_lock(&plugins_lock);
	if (ir != 0 || r < 0) {
		for (pp = &plugins; *pp != p; pp = &(*pp)->next)
			;
		*pp = p->next;
		pthread_mutex_unlock(&plugins_lock);
		if (errbuf && errlen) {
			if (ir != 0)
				snprintf(errbuf, errlen, "plugin %s refused to load (init returned %d)", p->name, ir);
			else
				snprintf(errbuf, errlen, "plugin %s: cannot start its thread: %s", p->name, strerror(-r));
		}
		plugin_free(p);
		return ir != 0 ? -ECANCELED : r;
	}
	p->unloading = false;
	atomic_store(&slots[p->slot], p);
	if (d->on_event)
		atomic_fetch_add(&plugins_listening, 1);
	if (ret_name && namelen)
		snprintf(ret_name, namelen, "%s", p->name);
	pthread_mutex_unlock(&plugins_lock);
	return 0;
}

/* Stops p's hook thread (fini runs there) and frees p; p is out of every list. */
static void plugin_stop(struct plugin *p)
{
	atomic_store(&slots[p->slot], NULL);
	if (p->desc->on_event)
		atomic_fetch_sub(&plugins_listening, 1);
	while (atomic_load(&p->inflight) != 0)
		sched_yield();
	atomic_store(&p->stopping, true);
	atomic_store(&p->sleeping, 0);
	futexwakeup(&p->sleeping, 1);
	pthread_join(p->thread, NULL);
	plugin_free(p);
}

int plugin_unload(const char *name)
{
	pthread_mutex_lock(&plugins_lock);
	struct plugin *p = name ? plugin_find_locked(name) : NULL;
	if (!p) {
		pthread_mutex_unlock(&plugins_lock);
		return -ENOENT;
	}
	if (p->holders > 0) {
		pthread_mutex_unlock(&plugins_lock);
		return -EBUSY;
	}
	struct plugin **pp;
	for (pp = &plugins; *pp != p; pp = &(*pp)->next)
		;
	*pp = p->next;
	p->unloading = true;
	pthread_mutex_unlock(&plugins_lock);
	plugin_stop(p);
	return 0;
}

void plugin_unload_all(void)
{
	for (;;) {
		pthread_mutex_lock(&plugins_lock);
		struct plugin *p = plugins;
		while (p && p->unloading)
			p = p->next;
		char name[64] = "";
		bool busy = p && p->holders > 0;
		if (p)
			snprintf(name, sizeof name, "%s", p->name);
		pthread_mutex_unlock(&plugins_lock);
		if (!p)
			return;
		if (busy) {
			/* tasks holding it are ending (tasks_shutdown killed them) */
			struct timespec ts = { 0, 1000000 };
			nanosleep(&ts, NULL);
			continue;
		}
		plugin_unload(name);
	}
}

int plugin_list(struct plugin_info **ret, size_t *ret_n)
{
	pthread_mutex_lock(&plugins_lock);
	size_t n = 0;
	for (struct plugin *p = plugins; p; p = p->next)
		n += !p->unloading;
	struct plugin_info *v = calloc(n ? n : 1, sizeof(*v));
	if (!v) {
		pthread_mutex_unlock(&plugins_lock);
		return -ENOMEM;
	}
	size_t i = 0;
	for (struct plugin *p = plugins; p; p = p->next) {
		if (p->unloading)
			continue;
		snprintf(v[i].name, sizeof v[i].name, "%s", p->name);
		snprintf(v[i].version, sizeof v[i].version, "%s", p->version);
		v[i].holders = p->holders;
		v[i].events = atomic_load(&p->events);
		v[i].dropped = atomic_load(&p->dropped);
		v[i].ticks = atomic_load(&p->ticks);
		i++;
	}
	pthread_mutex_unlock(&plugins_lock);
	*ret = v;
	*ret_n = n;
	return 0;
}

/* ---- symbols for tasks ---- */

void plugin_release_task(int64_t task)
{
	pthread_mutex_lock(&plugins_lock);
	for (struct hold **hp = &holds; *hp;) {
		struct hold *h = *hp;
		if (h->task == task) {
			h->p->holders--;
			*hp = h->next;
			free(h);
		} else {
			hp = &h->next;
		}
	}
	pthread_mutex_unlock(&plugins_lock);
}

GORT_EXPORT void *gort_plugin_sym(const char *plugin, const char *symbol)
{
	preemptcheck();
	if (!plugin || !symbol) {
		errno = EINVAL;
		return NULL;
	}
	int64_t task = task_current_id();
	pthread_mutex_lock(&plugins_lock);
	struct plugin *p = plugin_find_locked(plugin);
	void *sym = p ? module_sym(p->mod, symbol) : NULL;
	if (!sym) {
		pthread_mutex_unlock(&plugins_lock);
		errno = ENOENT;
		return NULL;
	}
	if (task > 0) {
		bool held = false;
		for (struct hold *h = holds; h && !held; h = h->next)
			held = h->task == task && h->p == p;
		if (!held) {
			struct hold *h = malloc(sizeof(*h));
			if (!h) {
				pthread_mutex_unlock(&plugins_lock);
				errno = ENOMEM;
				return NULL;
			}
			*h = (struct hold){ .next = holds, .task = task, .p = p };
			holds = h;
			p->holders++;
		}
	}
	pthread_mutex_unlock(&plugins_lock);
	return sym;
}
