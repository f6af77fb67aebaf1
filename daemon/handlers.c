/* daemon/handlers.c: gortd's request handlers: submit, wait, kill, tasks, ps, logs, plugins, stats. */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "gortd.h"
#include "log.h"
#include "module.h"
#include "proto/wire.h"
#include "stats.h"
#include "sysmon.h"
#include "task.h"
#include "trace.h"
#include "util.h"

/* ps lists at most this many goroutines (the reply says how many matched). */
#define PS_MAX 200000

bool handlers_needs_control(const Gort__V1__Request *req)
{
	switch (req->body_case) {
	case GORT__V1__REQUEST__BODY_SUBMIT:
	case GORT__V1__REQUEST__BODY_KILL:
	case GORT__V1__REQUEST__BODY_PLUGIN_LOAD:
	case GORT__V1__REQUEST__BODY_PLUGIN_UNLOAD:
		return true;
	default:
		return false;
	}
}

bool handlers_fds_ok(const Gort__V1__Request *req, unsigned nfds)
{
	switch (req->body_case) {
	case GORT__V1__REQUEST__BODY_SUBMIT:
		return nfds == (req->submit->stdio ? 4u : 1u);
	case GORT__V1__REQUEST__BODY_PLUGIN_LOAD:
		return nfds == 1;
	default:
		return nfds == 0;
	}
}

static void reply_send(struct conn *c, Gort__V1__Reply *reply)
{
	conn_reply(c, reply);
}

/* A binary must be a regular file (a memfd is one): reading a pipe or a
 * socket could block the server for as long as the client likes. */
static int check_binary(struct conn *c, uint64_t id, int fd, const char *file)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return conn_reply_error(c, id, errno, "%s: %s", file, strerror(errno)), -1;
	if (!S_ISREG(st.st_mode))
		return conn_reply_error(c, id, EINVAL,
					"%s: not a regular file (send the binary itself, not a pipe or a device)",
					file), -1;
	return 0;
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

/* Task times are gort_now() (monotonic); clients want wall-clock times. */
static int64_t mono_to_unix(int64_t mono)
{
	struct timespec rt, mt;
	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_MONOTONIC, &mt);
	int64_t off = ((int64_t)rt.tv_sec - mt.tv_sec) * 1000000000 + (rt.tv_nsec - mt.tv_nsec);
	return mono + off;
}

static int64_t mono_now(void)
{
	struct timespec mt;
	clock_gettime(CLOCK_MONOTONIC, &mt);
	return (int64_t)mt.tv_sec * 1000000000 + mt.tv_nsec;
}

static void fill_task_info(Gort__V1__TaskInfo *ti, const struct task_info *info)
{
	gort__v1__task_info__init(ti);
	ti->id = (uint64_t)info->id;
	ti->name = (char *)info->name;
	ti->state = (char *)task_status_string(info->status);
	ti->exit_code = info->exit_code;
	ti->goroutines = info->goroutines;
	ti->goroutines_created = (uint64_t)info->goroutines_created;
	ti->started_unix_ns = info->start_ns ? mono_to_unix(info->start_ns) : 0;
	int64_t end = info->end_ns ? info->end_ns : mono_now();
	ti->runtime_ns = info->start_ns ? end - info->start_ns : 0;
	ti->uid = (uint32_t)info->uid;
	ti->goroutines_ended = (uint64_t)info->goroutines_ended;
	ti->cpu_ns = info->cpu_ns;
	ti->switches = (uint64_t)info->switches;
	ti->io_requests = (uint64_t)info->io_requests;
	ti->panics = (uint64_t)info->panics;
}

/* ---- submit, wait, kill ---- */

static void handle_submit(struct conn *c, uint64_t id, const Gort__V1__SubmitRequest *s, const int *fds)
{
	const char *file = s->file && *s->file ? s->file : "binary";
	if (check_binary(c, id, fds[0], file) < 0)
		return;
	const char *name = s->name && *s->name ? s->name : base_name(file);
	_cleanup_free_ char **argv = calloc(s->n_args + 2, sizeof(char *));
	if (!argv) {
		conn_reply_error(c, id, ENOMEM, "out of memory");
		return;
	}
	argv[0] = (char *)name;
	for (size_t i = 0; i < s->n_args; i++)
		argv[i + 1] = s->args[i];

	struct task_spec spec = TASK_SPEC_INIT;
	spec.fd = fds[0];
	spec.argc = (int)s->n_args + 1;
	spec.argv = argv;
	spec.name = name;
	spec.stack_size = (size_t)s->stack_size;
	spec.uid = conn_peer(c)->uid;
	if (s->stdio) {
		spec.stdin_fd = fds[1];
		spec.stdout_fd = fds[2];
		spec.stderr_fd = fds[3];
	}
	if (s->stack_size > (1ULL << 30)) {
		conn_reply_error(c, id, EINVAL, "stack size %llu is larger than 1 GiB",
				 (unsigned long long)s->stack_size);
		return;
	}

	struct task *t = NULL;
	char err[512] = "";
	int r = task_start(&spec, &t, err, sizeof err);
	if (r < 0) {
		log_info("submit %s from uid %u refused: %s", file, (unsigned)spec.uid, err[0] ? err : strerror(-r));
		conn_reply_error(c, id, r, "%s: %s", file, err[0] ? err : strerror(-r));
		return;
	}
	server_stats.tasks_total++;
	log_info("task %lld %s: started by uid %u (pid %d)", (long long)task_id(t), name, (unsigned)spec.uid,
		 (int)conn_peer(c)->pid);

	Gort__V1__SubmitReply sr = GORT__V1__SUBMIT_REPLY__INIT;
	sr.task_id = (uint64_t)task_id(t);
	Gort__V1__Reply reply = GORT__V1__REPLY__INIT;
	reply.id = id;
	reply.body_case = GORT__V1__REPLY__BODY_SUBMIT;
	reply.submit = &sr;
	reply_send(c, &reply);
	if (s->wait) {
		r = conn_wait_task(c, id, t, true);
		if (r < 0) {
			task_kill(t);
			conn_reply_error(c, id, r, "cannot wait for task %lld: %s", (long long)task_id(t),
					 strerror(-r));
		}
	}
	task_unref(t);
}

static struct task *find_task(struct conn *c, uint64_t id, uint64_t task_id)
{
	struct task *t = task_id <= INT64_MAX ? task_find((int64_t)task_id) : NULL;
	if (!t)
		conn_reply_error(c, id, ENOENT, "no task %llu (see gortctl tasks)", (unsigned long long)task_id);
	return t;
}

static void handle_wait(struct conn *c, uint64_t id, const Gort__V1__WaitRequest *w)
{
	struct task *t = find_task(c, id, w->task_id);
	if (!t)
		return;
	int r = conn_wait_task(c, id, t, false);
	if (r < 0)
		conn_reply_error(c, id, r, "cannot wait for task %llu: %s", (unsigned long long)w->task_id,
				 r == -EAGAIN ? "too many waits on this connection" : strerror(-r));
	task_unref(t);
}

static void handle_kill(struct conn *c, uint64_t id, const Gort__V1__KillRequest *k)
{
	struct task *t = find_task(c, id, k->task_id);
	if (!t)
		return;
	int r = task_kill(t);
	if (r == -EALREADY) {
		struct task_info info;
		task_get_info(t, &info);
		conn_reply_error(c, id, EALREADY, "task %llu has already ended (%s, code %d)",
				 (unsigned long long)k->task_id, task_status_string(info.status), info.exit_code);
	} else if (r < 0) {
		conn_reply_error(c, id, r, "kill task %llu: %s", (unsigned long long)k->task_id, strerror(-r));
	} else {
		log_info("task %llu: killed by uid %u (pid %d)", (unsigned long long)k->task_id,
			 (unsigned)conn_peer(c)->uid, (int)conn_peer(c)->pid);
		Gort__V1__KillReply kr = GORT__V1__KILL_REPLY__INIT;
		Gort__V1__Reply reply = GORT__V1__REPLY__INIT;
		reply.id = id;
		reply.body_case = GORT__V1__REPLY__BODY_KILL;
		reply.kill = &kr;
		reply_send(c, &reply);
	}
	task_unref(t);
}

/* ---- tasks, ps, logs ---- */

/* The per-task figures of tasks and stats: infos, the message array pointing
 * into them. */
struct task_table {
	struct task **v;
	size_t n;
	struct task_info *infos;
	Gort__V1__TaskInfo *msgs;
	Gort__V1__TaskInfo **ptrs;
};

static void task_table_free(struct task_table *tt)
{
	if (tt->v)
		task_list_free(tt->v, tt->n);
	free(tt->infos);
	free(tt->msgs);
	free(tt->ptrs);
	memset(tt, 0, sizeof(*tt));
}

static int task_table_fill(struct task_table *tt)
{
	memset(tt, 0, sizeof(*tt));
	int r = task_list(&tt->v, &tt->n);
	if (r < 0)
		return r;
	tt->infos = calloc(tt->n ? tt->n : 1, sizeof(*tt->infos));
	tt->msgs = calloc(tt->n ? tt->n : 1, sizeof(*tt->msgs));
	tt->ptrs = calloc(tt->n ? tt->n : 1, sizeof(*tt->ptrs));
	if (!tt->infos || !tt->msgs || !tt->ptrs) {
		task_table_free(tt);
		return -ENOMEM;
	}
	for (size_t i = 0; i < tt->n; i++) {
		task_get_info(tt->v[i], &tt->infos[i]);
		fill_task_info(&tt->msgs[i], &tt->infos[i]);
		tt->ptrs[i] = &tt->msgs[i];
	}
	return 0;
}

static void handle_tasks(struct conn *c, uint64_t id)
{
	struct task_table tt;
	int r = task_table_fill(&tt);
	if (r < 0) {
		conn_reply_error(c, id, r, "tasks: %s", strerror(-r));
		return;
	}
	Gort__V1__TasksReply tr = GORT__V1__TASKS_REPLY__INIT;
	tr.n_tasks = tt.n;
	tr.tasks = tt.ptrs;
	Gort__V1__Reply reply = GORT__V1__REPLY__INIT;
	reply.id = id;
	reply.body_case = GORT__V1__REPLY__BODY_TASKS;
	reply.tasks = &tr;
	reply_send(c, &reply);
	task_table_free(&tt);
}

/* The entry of a goroutine as a symbol. Only for goroutines of the runtime or
 * of a task that is still running: a task that has ended may have its module
 * unloaded, and its symbol table with it. */
static void entry_name(gort_fn fn, bool safe, char *buf, size_t n)
{
	const char *own = task_entry_name(fn);
	if (own) {
		snprintf(buf, n, "%s", own);
	} else if (safe && fn) {
		module_pc_format((uintptr_t)fn, buf, n);
	} else {
		snprintf(buf, n, "%#lx", (unsigned long)(uintptr_t)fn);
	}
}

static void handle_ps(struct conn *c, uint64_t id, const Gort__V1__PsRequest *ps)
{
	struct task *only = NULL;
	if (ps->task_id) {
		only = find_task(c, id, ps->task_id);
		if (!only)
			return;
	}
	/* The task list first: a goroutine's task pointer is only compared with
	 * tasks we hold a reference to, never followed. */
	struct task_table tt;
	int r = task_table_fill(&tt);
	if (r < 0) {
		task_unref(only);
		conn_reply_error(c, id, r, "ps: %s", strerror(-r));
		return;
	}
	struct ginfo *gs = NULL;
	size_t ng = 0;
	r = goroutines_snapshot(&gs, &ng);
	if (r < 0) {
		task_unref(only);
		task_table_free(&tt);
		conn_reply_error(c, id, r, "ps: %s", strerror(-r));
		return;
	}
	size_t cap = ng < PS_MAX ? ng : PS_MAX;
	Gort__V1__GoroutineInfo *msgs = calloc(cap ? cap : 1, sizeof(*msgs));
	Gort__V1__GoroutineInfo **ptrs = calloc(cap ? cap : 1, sizeof(*ptrs));
	char (*entries)[96] = calloc(cap ? cap : 1, sizeof(*entries));
	if (!msgs || !ptrs || !entries) {
		conn_reply_error(c, id, ENOMEM, "ps: out of memory");
		goto out;
	}
	/* the snapshot's times are gclock()'s: the coarse clock, read after it */
	int64_t now = gclock_fresh();
	size_t n = 0, total = 0;
	for (size_t i = 0; i < ng; i++) {
		struct ginfo *g = &gs[i];
		int64_t tid = 0;
		struct task *owner = NULL;
		for (size_t j = 0; g->task && j < tt.n; j++)
			if (tt.v[j] == g->task) {
				tid = tt.infos[j].id;
				owner = tt.v[j];
			}
		if (g->task && tid == 0)
			continue; /* a task started after the list was taken */
		if (only && tid != task_id(only))
			continue;
		total++;
		if (n == cap)
			continue;
		Gort__V1__GoroutineInfo *m = &msgs[n];
		gort__v1__goroutine_info__init(m);
		m->goid = g->goid;
		m->task_id = (uint64_t)tid;
		m->state = (char *)gstatus_string(g->status);
		m->state_ns = g->since > 0 && g->since < now ? now - g->since : 0;
		if (g->status == G_WAITING) {
			m->wait_reason = (char *)waitreason_string((enum waitreason)g->waitreason);
			m->wait_ns = m->state_ns;
		}
		m->m = g->m;
		m->p = g->p;
		bool safe = !owner;
		if (owner) {
			struct task_info ti;
			task_get_info(owner, &ti);
			safe = ti.status == TASK_RUNNING;
		}
		entry_name(g->fn, safe, entries[n], sizeof entries[n]);
		m->entry = entries[n];
		m->parent_goid = g->parentgoid;
		ptrs[n] = m;
		n++;
	}
	Gort__V1__PsReply pr = GORT__V1__PS_REPLY__INIT;
	pr.n_goroutines = n;
	pr.goroutines = ptrs;
	pr.total = total;
	pr.truncated = n < total;
	Gort__V1__Reply reply = GORT__V1__REPLY__INIT;
	reply.id = id;
	reply.body_case = GORT__V1__REPLY__BODY_PS;
	reply.ps = &pr;
	reply_send(c, &reply);
out:
	free(msgs);
	free(ptrs);
	free(entries);
	free(gs);
	task_table_free(&tt);
	task_unref(only);
}

static void handle_logs(struct conn *c, uint64_t id, const Gort__V1__LogsRequest *l)
{
	struct task *t = find_task(c, id, l->task_id);
	if (!t)
		return;
	char *buf = NULL;
	size_t len = 0;
	uint64_t next = 0;
	int r = task_logs(t, 0, &buf, &len, &next);
	if (r < 0) {
		conn_reply_error(c, id, r, "logs of task %llu: %s", (unsigned long long)l->task_id, strerror(-r));
	} else {
		Gort__V1__LogsReply lr = GORT__V1__LOGS_REPLY__INIT;
		lr.output.data = (uint8_t *)buf;
		lr.output.len = len;
		lr.truncated = next > len;
		Gort__V1__Reply reply = GORT__V1__REPLY__INIT;
		reply.id = id;
		reply.body_case = GORT__V1__REPLY__BODY_LOGS;
		reply.logs = &lr;
		reply_send(c, &reply);
	}
	free(buf);
	task_unref(t);
}

/* ---- plugins ---- */

static void handle_plugin_load(struct conn *c, uint64_t id, const Gort__V1__PluginLoadRequest *pl,
			       const int *fds)
{
	const char *file = pl->file && *pl->file ? pl->file : "plugin";
	if (check_binary(c, id, fds[0], file) < 0)
		return;
	char name[64] = "", err[512] = "";
	int r = plugin_load(fds[0], name, sizeof name, err, sizeof err);
	if (r < 0) {
		conn_reply_error(c, id, r, "%s: %s", file, err[0] ? err : strerror(-r));
		return;
	}
	log_info("plugin %s: loaded from %s by uid %u", name, file, (unsigned)conn_peer(c)->uid);
	Gort__V1__PluginInfo pi = GORT__V1__PLUGIN_INFO__INIT;
	pi.name = name;
	pi.file = (char *)file;
	struct plugin_info *v = NULL;
	size_t n = 0;
	if (plugin_list(&v, &n) >= 0)
		for (size_t i = 0; i < n; i++)
			if (strcmp(v[i].name, name) == 0) {
				pi.version = v[i].version;
				pi.refs = (uint32_t)v[i].holders;
			}
	Gort__V1__Reply reply = GORT__V1__REPLY__INIT;
	reply.id = id;
	reply.body_case = GORT__V1__REPLY__BODY_PLUGIN_LOAD;
	reply.plugin_load = &pi;
	reply_send(c, &reply);
	free(v);
}

static void handle_plugin_unload(struct conn *c, uint64_t id, const Gort__V1__PluginUnloadRequest *pu)
{
	int r = plugin_unload(pu->name);
	if (r == -ENOENT) {
		conn_reply_error(c, id, ENOENT, "no plugin called \"%s\" (see gortctl plugin list)", pu->name);
		return;
	}
	if (r == -EBUSY) {
		conn_reply_error(c, id, EBUSY, "plugin %s is in use by a running task (it holds one of its symbols)",
				 pu->name);
		return;
	}
	if (r < 0) {
		conn_reply_error(c, id, r, "unload plugin %s: %s", pu->name, strerror(-r));
		return;
	}
	log_info("plugin %s: unloaded by uid %u", pu->name, (unsigned)conn_peer(c)->uid);
	Gort__V1__PluginUnloadReply ur = GORT__V1__PLUGIN_UNLOAD_REPLY__INIT;
	Gort__V1__Reply reply = GORT__V1__REPLY__INIT;
	reply.id = id;
	reply.body_case = GORT__V1__REPLY__BODY_PLUGIN_UNLOAD;
	reply.plugin_unload = &ur;
	reply_send(c, &reply);
}

static void handle_plugin_list(struct conn *c, uint64_t id)
{
	struct plugin_info *v = NULL;
	size_t n = 0;
	int r = plugin_list(&v, &n);
	if (r < 0) {
		conn_reply_error(c, id, r, "plugin list: %s", strerror(-r));
		return;
	}
	Gort__V1__PluginInfo *msgs = calloc(n ? n : 1, sizeof(*msgs));
	Gort__V1__PluginInfo **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
	if (!msgs || !ptrs) {
		conn_reply_error(c, id, ENOMEM, "plugin list: out of memory");
	} else {
		for (size_t i = 0; i < n; i++) {
			gort__v1__plugin_info__init(&msgs[i]);
			msgs[i].name = v[i].name;
			msgs[i].version = v[i].version;
			msgs[i].refs = (uint32_t)v[i].holders;
			ptrs[i] = &msgs[i];
		}
		Gort__V1__PluginListReply lr = GORT__V1__PLUGIN_LIST_REPLY__INIT;
		lr.n_plugins = n;
		lr.plugins = ptrs;
		Gort__V1__Reply reply = GORT__V1__REPLY__INIT;
		reply.id = id;
		reply.body_case = GORT__V1__REPLY__BODY_PLUGIN_LIST;
		reply.plugin_list = &lr;
		reply_send(c, &reply);
	}
	free(msgs);
	free(ptrs);
	free(v);
}

/* ---- stats ---- */

static void handle_stats(struct conn *c, uint64_t id)
{
	struct sched_stats ss;
	int32_t runq[1024];
	sched_stats_read(&ss, runq, (int)ARRAY_SIZE(runq));
	int nrunq = ss.gomaxprocs < (int)ARRAY_SIZE(runq) ? ss.gomaxprocs : (int)ARRAY_SIZE(runq);

	Gort__V1__SchedStats sm = GORT__V1__SCHED_STATS__INIT;
	sm.uptime_ns = mono_now() - server_stats.start_ns;
	sm.gomaxprocs = ss.gomaxprocs;
	sm.idleprocs = ss.idleprocs;
	sm.threads = ss.threads;
	sm.spinningthreads = ss.spinningthreads;
	sm.idlethreads = ss.idlethreads;
	sm.runqueue = ss.runqueue;
	sm.n_local_runq = (size_t)nrunq;
	sm.local_runq = runq;
	sm.goroutines = ss.goroutines;
	sm.syscallthreads = ss.syscallthreads;

	struct netpoll_stats ns;
	netpoll_stats_read(&ns);
	struct sysmon_stats ys;
	sysmon_stats_read(&ys);
	Gort__V1__SysmonStats ym = GORT__V1__SYSMON_STATS__INIT;
	ym.rounds = ys.rounds;
	ym.idle_rounds = ys.idle_rounds;
	ym.delay_us = ys.delay_ns / 1000;
	ym.retakes = ys.retakes;
	ym.preempt_requested = ys.preempt_requested;
	ym.preempt_cooperative = ys.preempt_cooperative;
	ym.preempt_signal = ys.preempt_async;
	ym.preempt_deferred = ys.preempt_deferred;
	ym.syscall_handoffs = ys.syscall_handoffs;
	ym.io_polls = ns.stalereaps;
	ym.io_completions = ns.completions;
	ym.deep_sleeps = ys.deep_sleeps;
	ym.kicks = ys.kicks;
	ym.syscall_exits_slow = ys.syscall_exits_slow;
	ym.preempt_signals_sent = ys.preempt_signals;
	ym.scavenged = ys.scavenged;

	Gort__V1__IoStats im = GORT__V1__IO_STATS__INIT;
	im.mode = (char *)netpoll_mode_string(ns.mode);
	im.fallback_ops = ns.fallback_ops;
	im.submitted = ns.submitted;
	im.enters = ns.enters;
	im.completions = ns.completions;
	im.fallbacks = ns.fallbacks;
	im.fdwaits = ns.fdwaits;
	im.cancels = ns.cancels;
	im.resubmits = ns.resubmits;
	im.stale_reaps = ns.stalereaps;
	im.inflight = ns.inflight;

	struct task_table tt;
	int r = task_table_fill(&tt);
	if (r < 0) {
		conn_reply_error(c, id, r, "stats: %s", strerror(-r));
		return;
	}
	uint32_t running = 0;
	for (size_t i = 0; i < tt.n; i++)
		running += tt.infos[i].status == TASK_RUNNING;

	/* per task: its goroutines by state (one walk of every G); every P and M */
	struct gstates *gst = calloc(tt.n ? tt.n : 1, sizeof(*gst));
	Gort__V1__GoroutineStates *gsm = calloc(tt.n ? tt.n : 1, sizeof(*gsm));
	struct pinfo *pv = NULL;
	struct minfo *mv = NULL;
	size_t np = 0, nm = 0;
	Gort__V1__ProcInfo *pm = NULL, **pp = NULL;
	Gort__V1__ThreadInfo *mm = NULL, **mp = NULL;
	if (!gst || !gsm || goroutines_by_task(tt.v, tt.n, gst) < 0 || procs_snapshot(&pv, &np, &mv, &nm) < 0 ||
	    !(pm = calloc(np ? np : 1, sizeof(*pm))) || !(pp = calloc(np ? np : 1, sizeof(*pp))) ||
	    !(mm = calloc(nm ? nm : 1, sizeof(*mm))) || !(mp = calloc(nm ? nm : 1, sizeof(*mp)))) {
		conn_reply_error(c, id, ENOMEM, "stats: out of memory");
		goto out;
	}
	for (size_t i = 0; i < tt.n; i++) {
		gort__v1__goroutine_states__init(&gsm[i]);
		gsm[i].runnable = (uint64_t)gst[i].runnable;
		gsm[i].running = (uint64_t)gst[i].running;
		gsm[i].waiting = (uint64_t)gst[i].waiting;
		gsm[i].syscall = (uint64_t)gst[i].syscall;
		tt.msgs[i].states = &gsm[i];
	}
	for (size_t i = 0; i < np; i++) {
		gort__v1__proc_info__init(&pm[i]);
		pm[i].id = pv[i].id;
		pm[i].status = (char *)pstatus_string(pv[i].status);
		pm[i].m = pv[i].m;
		pm[i].runqueue = pv[i].runqsize;
		pm[i].goid = pv[i].curg;
		pm[i].schedtick = pv[i].schedtick;
		pm[i].syscalltick = pv[i].syscalltick;
		pm[i].gfree = pv[i].gfreecnt;
		pp[i] = &pm[i];
	}
	for (size_t i = 0; i < nm; i++) {
		gort__v1__thread_info__init(&mm[i]);
		mm[i].id = mv[i].id;
		mm[i].tid = mv[i].procid;
		mm[i].p = mv[i].p;
		mm[i].goid = mv[i].curg;
		mm[i].spinning = mv[i].spinning;
		mm[i].idle = mv[i].idle;
		mm[i].syscall = mv[i].syscall;
		mm[i].locked = mv[i].locked;
		mp[i] = &mm[i];
	}

	Gort__V1__DaemonStats dm = GORT__V1__DAEMON_STATS__INIT;
	dm.pid = (uint32_t)getpid();
	dm.uptime_ns = sm.uptime_ns;
	dm.connections = server_stats.connections;
	dm.connections_total = server_stats.connections_total;
	dm.requests = server_stats.requests;
	dm.errors = server_stats.errors;
	dm.refused = server_stats.refused;
	dm.watchdog_pings = notify_watchdog_pings();
	dm.tasks_running = running;
	dm.tasks_total = server_stats.tasks_total;

	Gort__V1__StatsReply sr = GORT__V1__STATS_REPLY__INIT;
	sr.sched = &sm;
	sr.sysmon = &ym;
	sr.io = &im;
	sr.daemon = &dm;
	struct trace_stats tst;
	trace_stats_read(&tst);
	Gort__V1__TraceStats trm = GORT__V1__TRACE_STATS__INIT;
	trm.listeners = tst.listeners;
	trm.events = tst.events;
	trm.dropped = tst.dropped;
	trm.history = tst.history;
	trm.streams = events_streams();
	sr.trace = &trm;
	sr.n_tasks = tt.n;
	sr.tasks = tt.ptrs;
	sr.n_procs = np;
	sr.procs = pp;
	sr.n_threads = nm;
	sr.threads = mp;
	Gort__V1__Reply reply = GORT__V1__REPLY__INIT;
	reply.id = id;
	reply.body_case = GORT__V1__REPLY__BODY_STATS;
	reply.stats = &sr;
	reply_send(c, &reply);
out:
	free(gst);
	free(gsm);
	free(pv);
	free(mv);
	free(pm);
	free(pp);
	free(mm);
	free(mp);
	task_table_free(&tt);
}

void handlers_dispatch(struct conn *c, const Gort__V1__Request *req, const int *fds, unsigned nfds)
{
	(void)nfds;
	uint64_t id = req->id;
	log_debug("%s from uid %u (pid %d)", wire_request_name(req), (unsigned)conn_peer(c)->uid,
		  (int)conn_peer(c)->pid);
	switch (req->body_case) {
	case GORT__V1__REQUEST__BODY_SUBMIT:
		handle_submit(c, id, req->submit, fds);
		break;
	case GORT__V1__REQUEST__BODY_WAIT:
		handle_wait(c, id, req->wait);
		break;
	case GORT__V1__REQUEST__BODY_KILL:
		handle_kill(c, id, req->kill);
		break;
	case GORT__V1__REQUEST__BODY_TASKS:
		handle_tasks(c, id);
		break;
	case GORT__V1__REQUEST__BODY_PS:
		handle_ps(c, id, req->ps);
		break;
	case GORT__V1__REQUEST__BODY_LOGS:
		handle_logs(c, id, req->logs);
		break;
	case GORT__V1__REQUEST__BODY_PLUGIN_LOAD:
		handle_plugin_load(c, id, req->plugin_load, fds);
		break;
	case GORT__V1__REQUEST__BODY_PLUGIN_UNLOAD:
		handle_plugin_unload(c, id, req->plugin_unload);
		break;
	case GORT__V1__REQUEST__BODY_PLUGIN_LIST:
		handle_plugin_list(c, id);
		break;
	case GORT__V1__REQUEST__BODY_STATS:
		handle_stats(c, id);
		break;
	case GORT__V1__REQUEST__BODY_EVENTS:
		events_start(c, id, req->events);
		break;
	default:
		conn_reply_error(c, id, EOPNOTSUPP, "unknown request type");
		break;
	}
}
