/* client/gortctl.c: gortctl, the command line of gortd: submit, wait, kill, tasks, ps, logs, plugins, stats. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gortclient.h"
#include "json.h"
#include "proto/wire.h"

/* Exit codes (API.md): 0 success, the task's code for submit --wait and wait,
 * 1 an error reported by the daemon (or no daemon), 2 a usage error. */
enum { EXIT_OK = 0, EXIT_DAEMON = 1, EXIT_USAGE = 2 };

static const char *arg_socket;
static bool arg_json;

static void help(void)
{
	printf("Usage: gortctl [-H [USER@]HOST] [--socket PATH] [--json] COMMAND\n\n"
	       "  submit [--wait] [--name NAME] [--stack-size BYTES] FILE.so [-- ARGS...]\n"
	       "                        run a task; prints its id (--wait: its output, its exit code)\n"
	       "  wait TASK             until the task ends; exits with its code\n"
	       "  kill TASK             end a task\n"
	       "  tasks                 list tasks\n"
	       "  ps [TASK]             list goroutines\n"
	       "  logs TASK             the task's last output\n"
	       "  plugin load FILE.so | plugin unload NAME | plugin list\n"
	       "  stats [--watch SECONDS] [--prometheus]\n"
	       "  events [--task TASK] [--follow]\n"
	       "  trace --duration SECONDS -o FILE.json\n\n"
	       "The socket: --socket, else $GORT_SOCKET, else /run/gort/gortd.sock as root,\n"
	       "$XDG_RUNTIME_DIR/gort/gortd.sock otherwise. -H runs the command on HOST over\n"
	       "ssh (its gortctl, its files).\n");
}

static int usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("gortctl: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("; try 'gortctl --help'\n", stderr);
	return EXIT_USAGE;
}

static int fail(struct gortclient *c, const char *what)
{
	if (what)
		fprintf(stderr, "gortctl: %s: %s\n", what, gortclient_error(c));
	else
		fprintf(stderr, "gortctl: %s\n", gortclient_error(c));
	return EXIT_DAEMON;
}

/* Connects, or says in one line what to do about it. */
static struct gortclient *connect_or_explain(void)
{
	char path[108];
	const char *p = arg_socket;
	if (!p) {
		int r = wire_default_socket(path, sizeof path);
		if (r < 0) {
			fprintf(stderr, "gortctl: no socket to connect to: pass --socket PATH, or set GORT_SOCKET "
					"or XDG_RUNTIME_DIR\n");
			return NULL;
		}
		p = path;
	}
	struct gortclient *c;
	int r = gortclient_connect(p, &c);
	if (r == 0)
		return c;
	switch (-r) {
	case ENOENT:
		fprintf(stderr, "gortctl: cannot connect to %s: no such file — is gortd running? try systemctl "
				"start gortd\n", p);
		break;
	case ECONNREFUSED:
		fprintf(stderr, "gortctl: cannot connect to %s: nobody is listening — gortd has stopped; try "
				"systemctl start gortd\n", p);
		break;
	case EACCES:
	case EPERM:
		fprintf(stderr, "gortctl: cannot connect to %s: permission denied — ask for access to the socket "
				"(its group), or use sudo\n", p);
		break;
	default:
		fprintf(stderr, "gortctl: cannot connect to %s: %s\n", p, strerror(-r));
	}
	return NULL;
}

static int parse_u64(const char *s, uint64_t *ret)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (!*s || *end || errno || *s == '-')
		return -EINVAL;
	*ret = v;
	return 0;
}

/* BYTES with an optional K, M or G suffix (powers of 1024). */
static int parse_size(const char *s, uint64_t *ret)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (!*s || errno || *s == '-' || end == s)
		return -EINVAL;
	unsigned shift = 0;
	if (*end == 'K' || *end == 'k')
		shift = 10, end++;
	else if (*end == 'M' || *end == 'm')
		shift = 20, end++;
	else if (*end == 'G' || *end == 'g')
		shift = 30, end++;
	if (*end == 'i' || *end == 'B')
		end += *end == 'i' ? (end[1] == 'B' ? 2 : 1) : 1;
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return -EINVAL;
	*ret = v << shift;
	return 0;
}

static int parse_task(const char *s, uint64_t *ret)
{
	if (parse_u64(s, ret) < 0 || *ret == 0)
		return usage("'%s' is not a task id", s);
	return 0;
}

static void fmt_duration(char *buf, size_t n, int64_t ns)
{
	if (ns < 0)
		ns = 0;
	if (ns < 1000000)
		snprintf(buf, n, "%lldus", (long long)(ns / 1000));
	else if (ns < 1000000000)
		snprintf(buf, n, "%.1fms", (double)ns / 1e6);
	else if (ns < 60 * 1000000000LL)
		snprintf(buf, n, "%.2fs", (double)ns / 1e9);
	else if (ns < 3600 * 1000000000LL)
		snprintf(buf, n, "%lldm%02llds", (long long)(ns / 60000000000LL), (long long)(ns / 1000000000 % 60));
	else
		snprintf(buf, n, "%lldh%02lldm", (long long)(ns / 3600000000000LL),
			 (long long)(ns / 60000000000LL % 60));
}

static void print_json_reply(const Gort__V1__Reply *reply, const ProtobufCMessage *body)
{
	(void)reply;
	json_print(stdout, body);
}

/* ---- submit, wait, kill ---- */

static int sigint_pipe[2] = { -1, -1 };

static void on_sigint(int sig)
{
	(void)sig;
	int saved = errno;
	(void)!write(sigint_pipe[1], "x", 1);
	errno = saved;
}

/* Waits for the TaskExit of request id; on Ctrl-C asks the daemon to kill
 * the task (a second Ctrl-C leaves at once: the daemon kills an attached
 * task whose client hangs up). */
/* Ctrl-C (and SIGTERM) from now on only writes to sigint_pipe: installed
 * before a submit --wait sends anything, so that an interrupt arriving while
 * the task starts is not lost (nor kills gortctl and leaves the task). */
static void catch_interrupts(void)
{
	if (sigint_pipe[0] >= 0 || pipe2(sigint_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return;
	struct sigaction sa = { .sa_handler = on_sigint };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

static int wait_exit_interruptible(struct gortclient *c, uint64_t id, uint64_t task_id, bool attached,
				   int *ret_code, char *status, size_t statuslen)
{
	catch_interrupts();
	int interrupts = 0;
	for (;;) {
		struct pollfd p[2] = { { .fd = gortclient_fd(c), .events = POLLIN },
				       { .fd = sigint_pipe[0], .events = POLLIN } };
		int n = poll(p, sigint_pipe[0] >= 0 ? 2 : 1, -1);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (sigint_pipe[0] >= 0 && (p[1].revents & POLLIN)) {
			char b[16];
			while (read(sigint_pipe[0], b, sizeof b) > 0)
				interrupts++;
			if (interrupts > 1 || !attached)
				return -EINTR;
			fprintf(stderr, "gortctl: interrupted: killing task %" PRIu64 " (Ctrl-C again to leave now)\n",
				task_id);
			Gort__V1__KillRequest kr = GORT__V1__KILL_REQUEST__INIT;
			kr.task_id = task_id;
			Gort__V1__Request req = GORT__V1__REQUEST__INIT;
			req.body_case = GORT__V1__REQUEST__BODY_KILL;
			req.kill = &kr;
			gortclient_send(c, &req, NULL, 0); /* its reply is kept and dropped */
			continue;
		}
		if (p[0].revents)
			return gortclient_wait_exit(c, id, ret_code, status, statuslen);
	}
}

static int cmd_submit(int argc, char **argv)
{
	struct gortclient_submit s = { .fd = -1 };
	int i;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--wait") == 0) {
			s.wait = true;
		} else if (strcmp(a, "--name") == 0 || strncmp(a, "--name=", 7) == 0) {
			s.name = a[6] == '=' ? a + 7 : (i + 1 < argc ? argv[++i] : NULL);
			if (!s.name || !*s.name)
				return usage("submit: --name needs a name");
		} else if (strcmp(a, "--stack-size") == 0 || strncmp(a, "--stack-size=", 13) == 0) {
			const char *v = a[12] == '=' ? a + 13 : (i + 1 < argc ? argv[++i] : NULL);
			if (!v || parse_size(v, &s.stack_size) < 0)
				return usage("submit: --stack-size wants BYTES (K, M, G suffixes allowed)");
		} else if (strcmp(a, "--") == 0) {
			return usage("submit: FILE.so comes before --");
		} else if (a[0] == '-' && a[1]) {
			return usage("submit: unknown option '%s'", a);
		} else {
			break;
		}
	}
	if (i >= argc)
		return usage("submit: which FILE.so?");
	s.file = argv[i++];
	if (i < argc && strcmp(argv[i], "--") == 0)
		i++;
	s.argc = argc - i;
	s.argv = argv + i;
	s.fd = open(s.file, O_RDONLY | O_CLOEXEC);
	if (s.fd < 0) {
		fprintf(stderr, "gortctl: %s: %s\n", s.file, strerror(errno));
		return EXIT_DAEMON;
	}
	if (s.wait) {
		catch_interrupts();
		s.stdio = true;
		s.stdio_fds[0] = STDIN_FILENO;
		s.stdio_fds[1] = STDOUT_FILENO;
		s.stdio_fds[2] = STDERR_FILENO;
	}
	struct gortclient *c = connect_or_explain();
	if (!c) {
		close(s.fd);
		return EXIT_DAEMON;
	}
	uint64_t task_id = 0;
	int64_t id = gortclient_submit(c, &s, &task_id);
	close(s.fd);
	if (id < 0) {
		fail(c, "submit");
		gortclient_free(c);
		return EXIT_DAEMON;
	}
	if (!s.wait) {
		if (arg_json)
			printf("{\"task_id\":%" PRIu64 "}\n", task_id);
		else
			printf("%" PRIu64 "\n", task_id);
		gortclient_free(c);
		return EXIT_OK;
	}
	int code = 0;
	char status[32] = "";
	int r = wait_exit_interruptible(c, (uint64_t)id, task_id, true, &code, status, sizeof status);
	if (r == -EINTR) {
		gortclient_free(c);
		return 130;
	}
	if (r < 0) {
		fail(c, "submit --wait");
		gortclient_free(c);
		return EXIT_DAEMON;
	}
	if (arg_json)
		printf("{\"task_id\":%" PRIu64 ",\"code\":%d,\"status\":\"%s\"}\n", task_id, code, status);
	else if (strcmp(status, "exited") != 0)
		fprintf(stderr, "gortctl: task %" PRIu64 " %s (code %d)\n", task_id, status, code);
	gortclient_free(c);
	return code & 0xff;
}

static int cmd_wait(int argc, char **argv)
{
	uint64_t task_id;
	if (argc != 2)
		return usage("wait: which TASK?");
	if (parse_task(argv[1], &task_id))
		return EXIT_USAGE;
	struct gortclient *c = connect_or_explain();
	if (!c)
		return EXIT_DAEMON;
	Gort__V1__WaitRequest wr = GORT__V1__WAIT_REQUEST__INIT;
	wr.task_id = task_id;
	Gort__V1__Request req = GORT__V1__REQUEST__INIT;
	req.body_case = GORT__V1__REQUEST__BODY_WAIT;
	req.wait = &wr;
	int64_t id = gortclient_send(c, &req, NULL, 0);
	int code = 0;
	char status[32] = "";
	int r = id < 0 ? (int)id : wait_exit_interruptible(c, (uint64_t)id, task_id, false, &code, status, sizeof status);
	if (r == -EINTR) {
		gortclient_free(c);
		return 130;
	}
	if (r < 0) {
		fail(c, NULL);
		gortclient_free(c);
		return EXIT_DAEMON;
	}
	if (arg_json)
		printf("{\"task_id\":%" PRIu64 ",\"code\":%d,\"status\":\"%s\"}\n", task_id, code, status);
	gortclient_free(c);
	return code & 0xff;
}

/* Sends one request whose reply is printed by show (or as JSON). */
static int simple_call(Gort__V1__Request *req, int (*show)(const Gort__V1__Reply *reply))
{
	struct gortclient *c = connect_or_explain();
	if (!c)
		return EXIT_DAEMON;
	Gort__V1__Reply *reply = NULL;
	int r = gortclient_call(c, req, NULL, 0, &reply);
	if (r < 0) {
		fail(c, NULL);
		gortclient_free(c);
		return EXIT_DAEMON;
	}
	r = show(reply);
	gort__v1__reply__free_unpacked(reply, NULL);
	gortclient_free(c);
	return r;
}

static int show_nothing(const Gort__V1__Reply *reply)
{
	if (arg_json)
		puts("{}");
	(void)reply;
	return EXIT_OK;
}

static int cmd_kill(int argc, char **argv)
{
	uint64_t task_id;
	if (argc != 2)
		return usage("kill: which TASK?");
	if (parse_task(argv[1], &task_id))
		return EXIT_USAGE;
	Gort__V1__KillRequest kr = GORT__V1__KILL_REQUEST__INIT;
	kr.task_id = task_id;
	Gort__V1__Request req = GORT__V1__REQUEST__INIT;
	req.body_case = GORT__V1__REQUEST__BODY_KILL;
	req.kill = &kr;
	return simple_call(&req, show_nothing);
}

/* ---- tasks, ps, logs ---- */

static void print_task_row(const Gort__V1__TaskInfo *t)
{
	char up[32], code[16];
	fmt_duration(up, sizeof up, t->runtime_ns);
	if (strcmp(t->state, "running") == 0)
		snprintf(code, sizeof code, "-");
	else
		snprintf(code, sizeof code, "%d", t->exit_code);
	printf("%-6" PRIu64 " %-20.20s %-9s %5s %10" PRId64 " %10" PRIu64 " %9s %6u\n", t->id, t->name, t->state,
	       code, t->goroutines, t->goroutines_created, up, t->uid);
}

static void print_task_header(void)
{
	printf("%-6s %-20s %-9s %5s %10s %10s %9s %6s\n", "ID", "NAME", "STATE", "CODE", "GOROUTINES", "CREATED",
	       "RUNTIME", "UID");
}

static int show_tasks(const Gort__V1__Reply *reply)
{
	if (reply->body_case != GORT__V1__REPLY__BODY_TASKS)
		return EXIT_DAEMON;
	if (arg_json) {
		print_json_reply(reply, &reply->tasks->base);
		return EXIT_OK;
	}
	print_task_header();
	for (size_t i = 0; i < reply->tasks->n_tasks; i++)
		print_task_row(reply->tasks->tasks[i]);
	return EXIT_OK;
}

static int cmd_tasks(int argc, char **argv)
{
	(void)argv;
	if (argc != 1)
		return usage("tasks takes no arguments");
	Gort__V1__TasksRequest tr = GORT__V1__TASKS_REQUEST__INIT;
	Gort__V1__Request req = GORT__V1__REQUEST__INIT;
	req.body_case = GORT__V1__REQUEST__BODY_TASKS;
	req.tasks = &tr;
	return simple_call(&req, show_tasks);
}

static int show_ps(const Gort__V1__Reply *reply)
{
	if (reply->body_case != GORT__V1__REPLY__BODY_PS)
		return EXIT_DAEMON;
	const Gort__V1__PsReply *ps = reply->ps;
	if (arg_json) {
		print_json_reply(reply, &ps->base);
		return EXIT_OK;
	}
	printf("%-8s %-6s %-9s %-22s %9s  %s\n", "GOID", "TASK", "STATE", "WAIT", "SINCE", "ENTRY");
	for (size_t i = 0; i < ps->n_goroutines; i++) {
		const Gort__V1__GoroutineInfo *g = ps->goroutines[i];
		char since[32] = "", task[24];
		if (*g->wait_reason)
			fmt_duration(since, sizeof since, g->wait_ns);
		if (g->task_id)
			snprintf(task, sizeof task, "%" PRIu64, g->task_id);
		else
			snprintf(task, sizeof task, "-");
		printf("%-8" PRId64 " %-6s %-9s %-22s %9s  %s\n", g->goid, task, g->state, g->wait_reason, since,
		       g->entry);
	}
	if (ps->truncated)
		printf("(%zu of %" PRIu64 " goroutines shown)\n", ps->n_goroutines, ps->total);
	return EXIT_OK;
}

static int cmd_ps(int argc, char **argv)
{
	Gort__V1__PsRequest pr = GORT__V1__PS_REQUEST__INIT;
	if (argc > 2)
		return usage("ps takes at most one TASK");
	if (argc == 2 && parse_task(argv[1], &pr.task_id))
		return EXIT_USAGE;
	Gort__V1__Request req = GORT__V1__REQUEST__INIT;
	req.body_case = GORT__V1__REQUEST__BODY_PS;
	req.ps = &pr;
	return simple_call(&req, show_ps);
}

static int show_logs(const Gort__V1__Reply *reply)
{
	if (reply->body_case != GORT__V1__REPLY__BODY_LOGS)
		return EXIT_DAEMON;
	if (arg_json) {
		print_json_reply(reply, &reply->logs->base);
		return EXIT_OK;
	}
	if (reply->logs->truncated)
		fputs("gortctl: (older output was dropped)\n", stderr);
	fwrite(reply->logs->output.data, 1, reply->logs->output.len, stdout);
	return EXIT_OK;
}

static int cmd_logs(int argc, char **argv)
{
	Gort__V1__LogsRequest lr = GORT__V1__LOGS_REQUEST__INIT;
	if (argc != 2)
		return usage("logs: which TASK?");
	if (parse_task(argv[1], &lr.task_id))
		return EXIT_USAGE;
	Gort__V1__Request req = GORT__V1__REQUEST__INIT;
	req.body_case = GORT__V1__REQUEST__BODY_LOGS;
	req.logs = &lr;
	return simple_call(&req, show_logs);
}

/* ---- plugins ---- */

static int show_plugin_list(const Gort__V1__Reply *reply)
{
	if (reply->body_case != GORT__V1__REPLY__BODY_PLUGIN_LIST)
		return EXIT_DAEMON;
	if (arg_json) {
		print_json_reply(reply, &reply->plugin_list->base);
		return EXIT_OK;
	}
	printf("%-24s %-12s %s\n", "NAME", "VERSION", "HOLDERS");
	for (size_t i = 0; i < reply->plugin_list->n_plugins; i++) {
		const Gort__V1__PluginInfo *p = reply->plugin_list->plugins[i];
		printf("%-24s %-12s %u\n", p->name, p->version, p->refs);
	}
	return EXIT_OK;
}

static int cmd_plugin(int argc, char **argv)
{
	if (argc < 2)
		return usage("plugin: load FILE.so, unload NAME or list?");
	Gort__V1__Request req = GORT__V1__REQUEST__INIT;
	if (strcmp(argv[1], "list") == 0) {
		if (argc != 2)
			return usage("plugin list takes no arguments");
		Gort__V1__PluginListRequest lr = GORT__V1__PLUGIN_LIST_REQUEST__INIT;
		req.body_case = GORT__V1__REQUEST__BODY_PLUGIN_LIST;
		req.plugin_list = &lr;
		return simple_call(&req, show_plugin_list);
	}
	if (strcmp(argv[1], "unload") == 0) {
		if (argc != 3 || !*argv[2])
			return usage("plugin unload: which NAME?");
		Gort__V1__PluginUnloadRequest ur = GORT__V1__PLUGIN_UNLOAD_REQUEST__INIT;
		ur.name = argv[2];
		req.body_case = GORT__V1__REQUEST__BODY_PLUGIN_UNLOAD;
		req.plugin_unload = &ur;
		return simple_call(&req, show_nothing);
	}
	if (strcmp(argv[1], "load") != 0)
		return usage("plugin: unknown subcommand '%s'", argv[1]);
	if (argc != 3)
		return usage("plugin load: which FILE.so?");
	int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "gortctl: %s: %s\n", argv[2], strerror(errno));
		return EXIT_DAEMON;
	}
	struct gortclient *c = connect_or_explain();
	if (!c) {
		close(fd);
		return EXIT_DAEMON;
	}
	Gort__V1__PluginLoadRequest lr = GORT__V1__PLUGIN_LOAD_REQUEST__INIT;
	lr.file = argv[2];
	req.body_case = GORT__V1__REQUEST__BODY_PLUGIN_LOAD;
	req.plugin_load = &lr;
	Gort__V1__Reply *reply = NULL;
	int r = gortclient_call(c, &req, &fd, 1, &reply);
	close(fd);
	if (r < 0) {
		fail(c, "plugin load");
		gortclient_free(c);
		return EXIT_DAEMON;
	}
	if (reply->body_case == GORT__V1__REPLY__BODY_PLUGIN_LOAD) {
		if (arg_json)
			json_print(stdout, &reply->plugin_load->base);
		else
			printf("%s\n", reply->plugin_load->name);
	}
	gort__v1__reply__free_unpacked(reply, NULL);
	gortclient_free(c);
	return EXIT_OK;
}

/* ---- stats ---- */

static void print_stats_text(const Gort__V1__StatsReply *st)
{
	const Gort__V1__SchedStats *s = st->sched;
	if (s) {
		/* Go's schedtrace line, as GODEBUG=schedtrace=1000 prints it. */
		printf("SCHED %" PRId64 "ms: gomaxprocs=%d idleprocs=%d threads=%d spinningthreads=%d "
		       "idlethreads=%d runqueue=%d [",
		       s->uptime_ns / 1000000, s->gomaxprocs, s->idleprocs, s->threads, s->spinningthreads,
		       s->idlethreads, s->runqueue);
		for (size_t i = 0; i < s->n_local_runq; i++)
			printf("%s%d", i ? " " : "", s->local_runq[i]);
		printf("]\n");
		printf("goroutines=%" PRId64 " syscallthreads=%d\n", s->goroutines, s->syscallthreads);
	}
	const Gort__V1__SysmonStats *y = st->sysmon;
	if (y) {
		printf("sysmon: rounds=%" PRIu64 " idle=%" PRIu64 " delay=%" PRId64 "us deepsleeps=%" PRIu64
		       " kicks=%" PRIu64 " retakes=%" PRIu64 " handoffs=%" PRIu64 " slowexits=%" PRIu64
		       " scavenged=%" PRIu64 "\n",
		       y->rounds, y->idle_rounds, y->delay_us, y->deep_sleeps, y->kicks, y->retakes, y->syscall_handoffs,
		       y->syscall_exits_slow, y->scavenged);
		printf("preempt: requested=%" PRIu64 " cooperative=%" PRIu64 " signals=%" PRIu64 " bysignal=%" PRIu64
		       " deferred=%" PRIu64 "\n",
		       y->preempt_requested, y->preempt_cooperative, y->preempt_signals_sent, y->preempt_signal,
		       y->preempt_deferred);
	}
	const Gort__V1__IoStats *io = st->io;
	if (io)
		printf("io: %s submitted=%" PRIu64 " enters=%" PRIu64 " completions=%" PRIu64 " fallbacks=%" PRIu64
		       " cancels=%" PRIu64 " sysmonreaps=%" PRIu64 " inflight=%" PRId64 "\n",
		       io->mode, io->submitted, io->enters, io->completions, io->fallbacks, io->cancels, io->stale_reaps,
		       io->inflight);
	const Gort__V1__DaemonStats *d = st->daemon;
	if (d)
		printf("gortd: pid=%u clients=%u (%" PRIu64 " total) requests=%" PRIu64 " errors=%" PRIu64
		       " refused=%" PRIu64 " watchdog_pings=%" PRIu64 " tasks: %u running, %" PRIu64 " started\n",
		       d->pid, d->connections, d->connections_total, d->requests, d->errors, d->refused,
		       d->watchdog_pings, d->tasks_running, d->tasks_total);
	if (st->n_tasks) {
		printf("\n");
		print_task_header();
		for (size_t i = 0; i < st->n_tasks; i++)
			print_task_row(st->tasks[i]);
	}
}

static void prom(const char *name, const char *type, const char *help, double v)
{
	printf("# HELP gort_%s %s\n# TYPE gort_%s %s\ngort_%s %.12g\n", name, help, name, type, name, v);
}

/* A label value per the text exposition format: \, " and newline escaped. */
static void prom_label(const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			printf("\\%c", *s);
		else if (*s == '\n')
			printf("\\n");
		else
			putchar(*s);
	}
}

static void print_stats_prometheus(const Gort__V1__StatsReply *st)
{
	const Gort__V1__SchedStats *s = st->sched;
	if (s) {
		prom("uptime_seconds", "gauge", "Seconds since gortd started.", s->uptime_ns / 1e9);
		prom("sched_gomaxprocs", "gauge", "Number of Ps.", s->gomaxprocs);
		prom("sched_idleprocs", "gauge", "Ps with nothing to run.", s->idleprocs);
		prom("sched_threads", "gauge", "Ms (OS threads) alive.", s->threads);
		prom("sched_spinning_threads", "gauge", "Ms looking for work.", s->spinningthreads);
		prom("sched_idle_threads", "gauge", "Ms parked idle.", s->idlethreads);
		prom("sched_syscall_threads", "gauge", "Ms in system calls.", s->syscallthreads);
		prom("sched_global_runqueue", "gauge", "Goroutines on the global run queue.", s->runqueue);
		prom("goroutines", "gauge", "Goroutines alive.", (double)s->goroutines);
		printf("# HELP gort_sched_local_runqueue Goroutines on a P's local run queue.\n"
		       "# TYPE gort_sched_local_runqueue gauge\n");
		for (size_t i = 0; i < s->n_local_runq; i++)
			printf("gort_sched_local_runqueue{p=\"%zu\"} %d\n", i, s->local_runq[i]);
	}
	const Gort__V1__SysmonStats *y = st->sysmon;
	if (y) {
		prom("sysmon_rounds_total", "counter", "sysmon rounds.", (double)y->rounds);
		prom("sysmon_idle_rounds_total", "counter", "sysmon rounds with nothing to do.", (double)y->idle_rounds);
		prom("sysmon_retakes_total", "counter", "Ps retaken from Ms in syscalls.", (double)y->retakes);
		prom("sysmon_preempt_requested_total", "counter", "Preemptions requested.", (double)y->preempt_requested);
		prom("sysmon_preempt_cooperative_total", "counter", "Preemptions taken at a runtime call.",
		     (double)y->preempt_cooperative);
		prom("sysmon_preempt_signal_total", "counter", "Preemptions taken by signal.", (double)y->preempt_signal);
		prom("sysmon_preempt_deferred_total", "counter", "Preemption signals that found no safe point.",
		     (double)y->preempt_deferred);
		prom("sysmon_syscall_handoffs_total", "counter", "Ps handed off from syscalls.",
		     (double)y->syscall_handoffs);
		prom("sysmon_deep_sleeps_total", "counter", "sysmon sleeps until kicked.", (double)y->deep_sleeps);
		prom("sysmon_preempt_signals_sent_total", "counter", "Preemption signals sent.",
		     (double)y->preempt_signals_sent);
		prom("sysmon_scavenged_total", "counter", "Dead goroutine stacks returned to the kernel.",
		     (double)y->scavenged);
	}
	const Gort__V1__IoStats *io = st->io;
	if (io) {
		printf("# HELP gort_io_mode The io path in use.\n# TYPE gort_io_mode gauge\ngort_io_mode{mode=\"");
		prom_label(io->mode);
		printf("\"} 1\n");
		prom("io_submitted_total", "counter", "Requests handed to io_uring.", (double)io->submitted);
		prom("io_completions_total", "counter", "io completions reaped.", (double)io->completions);
		prom("io_fallbacks_total", "counter", "Calls served by the fallback path.", (double)io->fallbacks);
		prom("io_cancels_total", "counter", "io cancellations issued.", (double)io->cancels);
		prom("io_sysmon_reaps_total", "counter", "Completions reaped by sysmon.", (double)io->stale_reaps);
		prom("io_inflight", "gauge", "io requests in flight.", (double)io->inflight);
	}
	const Gort__V1__DaemonStats *d = st->daemon;
	if (d) {
		prom("daemon_connections", "gauge", "Clients connected.", d->connections);
		prom("daemon_connections_total", "counter", "Clients ever connected.", (double)d->connections_total);
		prom("daemon_requests_total", "counter", "Requests received.", (double)d->requests);
		prom("daemon_errors_total", "counter", "Requests answered with an error.", (double)d->errors);
		prom("daemon_refused_total", "counter", "Requests refused by authorization.", (double)d->refused);
		prom("daemon_watchdog_pings_total", "counter", "systemd watchdog pings.", (double)d->watchdog_pings);
		prom("tasks_running", "gauge", "Tasks running.", d->tasks_running);
		prom("tasks_started_total", "counter", "Tasks started.", (double)d->tasks_total);
	}
	if (st->n_tasks) {
		printf("# HELP gort_task_goroutines Goroutines alive in a task.\n# TYPE gort_task_goroutines gauge\n");
		for (size_t i = 0; i < st->n_tasks; i++) {
			printf("gort_task_goroutines{task=\"%" PRIu64 "\",name=\"", st->tasks[i]->id);
			prom_label(st->tasks[i]->name);
			printf("\",state=\"%s\"} %" PRId64 "\n", st->tasks[i]->state, st->tasks[i]->goroutines);
		}
	}
}

static int cmd_stats(int argc, char **argv)
{
	bool prometheus = false;
	double watch = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--prometheus") == 0) {
			prometheus = true;
		} else if (strcmp(argv[i], "--watch") == 0 || strncmp(argv[i], "--watch=", 8) == 0) {
			const char *v = argv[i][7] == '=' ? argv[i] + 8 : (i + 1 < argc ? argv[++i] : NULL);
			char *end;
			watch = v ? strtod(v, &end) : 0;
			if (!v || *end || !(watch > 0) || watch > 86400)
				return usage("stats: --watch wants SECONDS (> 0)");
		} else {
			return usage("stats: unknown argument '%s'", argv[i]);
		}
	}
	if (prometheus && arg_json)
		return usage("stats: --json and --prometheus exclude each other");
	struct gortclient *c = connect_or_explain();
	if (!c)
		return EXIT_DAEMON;
	for (;;) {
		Gort__V1__StatsRequest sr = GORT__V1__STATS_REQUEST__INIT;
		Gort__V1__Request req = GORT__V1__REQUEST__INIT;
		req.body_case = GORT__V1__REQUEST__BODY_STATS;
		req.stats = &sr;
		Gort__V1__Reply *reply = NULL;
		if (gortclient_call(c, &req, NULL, 0, &reply) < 0) {
			fail(c, "stats");
			gortclient_free(c);
			return EXIT_DAEMON;
		}
		if (reply->body_case == GORT__V1__REPLY__BODY_STATS) {
			if (arg_json)
				json_print(stdout, &reply->stats->base);
			else if (prometheus)
				print_stats_prometheus(reply->stats);
			else
				print_stats_text(reply->stats);
		}
		gort__v1__reply__free_unpacked(reply, NULL);
		if (watch <= 0)
			break;
		if (!arg_json && !prometheus)
			putchar('\n');
		fflush(stdout);
		struct timespec ts = { (time_t)watch, (long)((watch - (double)(time_t)watch) * 1e9) };
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	gortclient_free(c);
	return EXIT_OK;
}

/* ---- the observability commands: parsed, not served yet ---- */

static int cmd_events(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		uint64_t t;
		if (strcmp(argv[i], "--follow") == 0)
			continue;
		if (strcmp(argv[i], "--task") == 0 && i + 1 < argc && parse_task(argv[i + 1], &t) == 0) {
			i++;
			continue;
		}
		return usage("events: unknown argument '%s'", argv[i]);
	}
	fprintf(stderr, "gortctl: events: this gortd does not stream lifecycle events yet\n");
	return EXIT_DAEMON;
}

static int cmd_trace(int argc, char **argv)
{
	bool duration = false, out = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--duration") == 0 && i + 1 < argc) {
			char *end;
			double d = strtod(argv[++i], &end);
			if (*end || !(d > 0))
				return usage("trace: --duration wants SECONDS");
			duration = true;
		} else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) {
			i++;
			out = true;
		} else {
			return usage("trace: unknown argument '%s'", argv[i]);
		}
	}
	if (!duration || !out)
		return usage("trace: --duration SECONDS -o FILE.json");
	fprintf(stderr, "gortctl: trace: this gortd does not record traces yet\n");
	return EXIT_DAEMON;
}

/* Single-quotes s for a POSIX shell (the remote side of ssh). */
static char *shell_quote(const char *s)
{
	size_t n = 3;
	for (const char *p = s; *p; p++)
		n += *p == '\'' ? 4 : 1;
	char *q = malloc(n), *o = q;
	if (!q)
		return NULL;
	*o++ = '\'';
	for (const char *p = s; *p; p++) {
		if (*p == '\'') {
			memcpy(o, "'\\''", 4);
			o += 4;
		} else {
			*o++ = *p;
		}
	}
	*o++ = '\'';
	*o = '\0';
	return q;
}

/* gortctl -H [USER@]HOST ...: the same command run by gortctl on HOST over ssh,
 * as systemctl -H does; paths (FILE.so, --socket) are the remote host's. ssh's
 * exit status is the remote gortctl's (255: ssh itself failed). */
static int run_remote(const char *host, int argc, char **argv)
{
	char **sv = calloc((size_t)argc + 8, sizeof(char *));
	if (!sv)
		return EXIT_DAEMON;
	int n = 0;
	sv[n++] = "ssh";
	sv[n++] = "-T";
	sv[n++] = "-o";
	sv[n++] = "BatchMode=yes";
	sv[n++] = "--";
	sv[n++] = (char *)host;
	sv[n++] = "gortctl";
	for (int i = 0; i < argc; i++)
		if (!(sv[n++] = shell_quote(argv[i])))
			return EXIT_DAEMON;
	sv[n] = NULL;
	execvp("ssh", sv);
	fprintf(stderr, "gortctl: -H %s: cannot run ssh: %s\n", host, strerror(errno));
	return EXIT_DAEMON;
}

static int run(int argc, char **argv)
{
	int i;
	/* -H first: everything else is for the remote gortctl */
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-H") == 0 || strcmp(argv[i], "--host") == 0) {
			if (i + 1 >= argc || !*argv[i + 1])
				return usage("-H needs [USER@]HOST");
			const char *host = argv[i + 1];
			char **rest = calloc((size_t)argc, sizeof(char *));
			int n = 0;
			for (int j = 1; j < argc; j++)
				if (j != i && j != i + 1)
					rest[n++] = argv[j];
			return run_remote(host, n, rest);
		}
		if (strcmp(argv[i], "--socket") == 0)
			i++;
	}
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--json") == 0) {
			arg_json = true;
		} else if (strcmp(a, "--socket") == 0 || strncmp(a, "--socket=", 9) == 0) {
			arg_socket = a[8] == '=' ? a + 9 : (i + 1 < argc ? argv[++i] : NULL);
			if (!arg_socket || !*arg_socket)
				return usage("--socket needs a path");
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			help();
			return EXIT_OK;
		} else if (a[0] == '-') {
			return usage("unknown option '%s'", a);
		} else {
			break;
		}
	}
	if (i >= argc)
		return usage("which command?");
	static const struct {
		const char *name;
		int (*fn)(int argc, char **argv);
	} cmds[] = {
		{ "submit", cmd_submit }, { "wait", cmd_wait }, { "kill", cmd_kill },
		{ "tasks", cmd_tasks }, { "ps", cmd_ps }, { "logs", cmd_logs },
		{ "plugin", cmd_plugin }, { "stats", cmd_stats }, { "events", cmd_events },
		{ "trace", cmd_trace },
	};
	for (size_t k = 0; k < sizeof cmds / sizeof cmds[0]; k++)
		if (strcmp(argv[i], cmds[k].name) == 0)
			return cmds[k].fn(argc - i, argv + i);
	return usage("unknown command '%s'", argv[i]);
}

int main(int argc, char **argv)
{
	/* A daemon that closed on us must give an error message, not SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	int r = run(argc, argv);
	/* A reader that went away (gortctl tasks | head) is not an error. */
	if (fflush(stdout) != 0 && r == EXIT_OK && errno != EPIPE) {
		fprintf(stderr, "gortctl: writing the output: %s\n", strerror(errno));
		r = EXIT_DAEMON;
	}
	return r;
}
