/* client/gortctl.c: gortctl, the command line of gortd: submit, wait, kill, tasks, ps, logs, plugins, stats, events, trace. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
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
	       "  ps [TASK]             goroutines: state, wait reason and for how long, M/P,\n"
	       "                        parent, entry (Go's goroutine dump as a table)\n"
	       "  logs TASK             the task's last output\n"
	       "  plugin load FILE.so | plugin unload NAME | plugin list\n"
	       "  stats [--watch SECONDS] [--prometheus]\n"
	       "                        Go's schedtrace, sysmon, io and per-task figures\n"
	       "  top                   a live view of Ps, Ms and tasks (q quits)\n"
	       "  events [--task TASK] [--follow] [--json]\n"
	       "                        goroutine and task lifecycle events: what gortd kept,\n"
	       "                        then (--follow) as they happen, until Ctrl-C\n"
	       "  trace --duration SECONDS -o FILE.json\n"
	       "                        record the events for SECONDS as Chrome Trace Event JSON\n"
	       "                        (open it in https://ui.perfetto.dev or chrome://tracing)\n\n"
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
	/* Go's goroutine dump, one line each: "goroutine 7 [chan receive, 2
	 * minutes]" becomes GOID 7, STATE waiting, WAIT chan receive, FOR 2m00s */
	printf("%-8s %-6s %-9s %-23s %9s %4s %3s %8s  %s\n", "GOID", "TASK", "STATE", "WAIT", "FOR", "M", "P",
	       "PARENT", "ENTRY");
	for (size_t i = 0; i < ps->n_goroutines; i++) {
		const Gort__V1__GoroutineInfo *g = ps->goroutines[i];
		char since[32], task[24], m[24] = "-", p[16] = "-", parent[24] = "-";
		fmt_duration(since, sizeof since, g->state_ns);
		if (g->task_id)
			snprintf(task, sizeof task, "%" PRIu64, g->task_id);
		else
			snprintf(task, sizeof task, "-");
		if (g->m >= 0 && (strcmp(g->state, "running") == 0 || strcmp(g->state, "syscall") == 0))
			snprintf(m, sizeof m, "%" PRId64, g->m);
		if (g->p >= 0 && strcmp(g->state, "running") == 0)
			snprintf(p, sizeof p, "%d", g->p);
		if (g->parent_goid)
			snprintf(parent, sizeof parent, "%" PRId64, g->parent_goid);
		printf("%-8" PRId64 " %-6s %-9s %-23s %9s %4s %3s %8s  %s\n", g->goid, task, g->state,
		       *g->wait_reason ? g->wait_reason : "-", since, m, p, parent, g->entry);
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
	/* Go's schedtrace with scheddetail=1: a line per P and per M */
	for (size_t i = 0; i < st->n_procs; i++) {
		const Gort__V1__ProcInfo *p = st->procs[i];
		printf("  P%d: status=%s schedtick=%" PRIu64 " syscalltick=%" PRIu64 " m=%" PRId64
		       " runqsize=%d gfreecnt=%d curg=%" PRId64 "\n",
		       p->id, p->status, p->schedtick, p->syscalltick, p->m, p->runqueue, p->gfree, p->goid);
	}
	for (size_t i = 0; i < st->n_threads; i++) {
		const Gort__V1__ThreadInfo *m = st->threads[i];
		printf("  M%" PRId64 ": tid=%d p=%d curg=%" PRId64 " spinning=%s blocked=%s syscall=%s locked=%s\n", m->id,
		       m->tid, m->p, m->goid, m->spinning ? "true" : "false", m->idle ? "true" : "false",
		       m->syscall ? "true" : "false", m->locked ? "true" : "false");
	}
	if (st->n_tasks) {
		printf("\n");
		print_task_header();
		for (size_t i = 0; i < st->n_tasks; i++)
			print_task_row(st->tasks[i]);
		/* per task: goroutines by state, lifetime counts, CPU time, switches, io */
		printf("\n%-6s %8s %8s %8s %8s %10s %10s %10s %12s %10s %6s\n", "ID", "RUNNABLE", "RUNNING", "WAITING",
		       "SYSCALL", "CREATED", "ENDED", "CPU", "SWITCHES", "IO", "PANICS");
		for (size_t i = 0; i < st->n_tasks; i++) {
			const Gort__V1__TaskInfo *t = st->tasks[i];
			const Gort__V1__GoroutineStates *g = t->states;
			char cpu[32];
			fmt_duration(cpu, sizeof cpu, t->cpu_ns);
			printf("%-6" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %10" PRIu64 " %10" PRIu64
			       " %10s %12" PRIu64 " %10" PRIu64 " %6" PRIu64 "\n",
			       t->id, g ? g->runnable : 0, g ? g->running : 0, g ? g->waiting : 0, g ? g->syscall : 0,
			       t->goroutines_created, t->goroutines_ended, cpu, t->switches, t->io_requests, t->panics);
		}
	}
}

/* ---- Prometheus text exposition format 0.0.4 ----
 * Every metric has # HELP and # TYPE, base units (seconds), counters end in
 * _total, label values are escaped (\\, \", \n); per-P series carry p="N",
 * per-task series task="ID" and name="NAME". node_exporter's textfile
 * collector reads it as is (gortctl stats --prometheus > gort.prom.$$ && mv). */

static void prom_escape(const char *s)
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

static void prom_head(const char *name, const char *type, const char *help)
{
	printf("# HELP gort_%s %s\n# TYPE gort_%s %s\n", name, help, name, type);
}

static void prom(const char *name, const char *type, const char *help, double v)
{
	prom_head(name, type, help);
	printf("gort_%s %.17g\n", name, v);
}

static void prom_task_labels(const Gort__V1__TaskInfo *t)
{
	printf("{task=\"%" PRIu64 "\",name=\"", t->id);
	prom_escape(t->name);
	putchar('"');
}

/* One per-task metric: a sample per task, value(task). */
static void prom_tasks(const Gort__V1__StatsReply *st, const char *name, const char *type, const char *help,
		       double (*value)(const Gort__V1__TaskInfo *t))
{
	prom_head(name, type, help);
	for (size_t i = 0; i < st->n_tasks; i++) {
		printf("gort_%s", name);
		prom_task_labels(st->tasks[i]);
		printf("} %.17g\n", value(st->tasks[i]));
	}
}

static double task_live(const Gort__V1__TaskInfo *t) { return (double)t->goroutines; }
static double task_created(const Gort__V1__TaskInfo *t) { return (double)t->goroutines_created; }
static double task_ended(const Gort__V1__TaskInfo *t) { return (double)t->goroutines_ended; }
static double task_cpu(const Gort__V1__TaskInfo *t) { return (double)t->cpu_ns / 1e9; }
static double task_switches(const Gort__V1__TaskInfo *t) { return (double)t->switches; }
static double task_io(const Gort__V1__TaskInfo *t) { return (double)t->io_requests; }
static double task_panics(const Gort__V1__TaskInfo *t) { return (double)t->panics; }
static double task_start(const Gort__V1__TaskInfo *t) { return (double)t->started_unix_ns / 1e9; }
static double task_running(const Gort__V1__TaskInfo *t) { return strcmp(t->state, "running") == 0; }

/* One per-P metric. */
static void prom_procs(const Gort__V1__StatsReply *st, const char *name, const char *type, const char *help,
		       double (*value)(const Gort__V1__ProcInfo *p))
{
	prom_head(name, type, help);
	for (size_t i = 0; i < st->n_procs; i++)
		printf("gort_%s{p=\"%d\"} %.17g\n", name, st->procs[i]->id, value(st->procs[i]));
}

static double p_runq(const Gort__V1__ProcInfo *p) { return p->runqueue; }
static double p_ticks(const Gort__V1__ProcInfo *p) { return (double)p->schedtick; }
static double p_syscalls(const Gort__V1__ProcInfo *p) { return (double)p->syscalltick; }
static double p_idle(const Gort__V1__ProcInfo *p) { return strcmp(p->status, "idle") == 0; }

static void print_stats_prometheus(const Gort__V1__StatsReply *st)
{
	const Gort__V1__SchedStats *s = st->sched;
	if (s) {
		prom("uptime_seconds", "gauge", "Seconds since gortd started.", (double)s->uptime_ns / 1e9);
		prom("sched_gomaxprocs", "gauge", "Number of Ps.", s->gomaxprocs);
		prom("sched_idleprocs", "gauge", "Ps with nothing to run.", s->idleprocs);
		prom("sched_threads", "gauge", "Ms (OS threads) alive.", s->threads);
		prom("sched_spinning_threads", "gauge", "Ms looking for work.", s->spinningthreads);
		prom("sched_idle_threads", "gauge", "Ms parked idle.", s->idlethreads);
		prom("sched_syscall_threads", "gauge", "Ms in system calls.", s->syscallthreads);
		prom("sched_global_runqueue", "gauge", "Goroutines on the global run queue.", s->runqueue);
		prom("goroutines", "gauge", "Goroutines alive.", (double)s->goroutines);
		if (st->n_procs == 0 && s->n_local_runq) {
			prom_head("sched_local_runqueue", "gauge", "Goroutines on a P's local run queue.");
			for (size_t i = 0; i < s->n_local_runq; i++)
				printf("gort_sched_local_runqueue{p=\"%zu\"} %d\n", i, s->local_runq[i]);
		}
	}
	if (st->n_procs) {
		prom_procs(st, "sched_local_runqueue", "gauge", "Goroutines on a P's local run queue (runnext included).",
			   p_runq);
		prom_procs(st, "p_idle", "gauge", "1 if the P is on the idle list.", p_idle);
		prom_procs(st, "p_schedticks_total", "counter", "Scheduler rounds of the P.", p_ticks);
		prom_procs(st, "p_syscalls_total", "counter", "System calls made on the P.", p_syscalls);
	}
	const Gort__V1__SysmonStats *y = st->sysmon;
	if (y) {
		prom("sysmon_rounds_total", "counter", "sysmon rounds.", (double)y->rounds);
		prom("sysmon_idle_rounds_total", "counter", "sysmon rounds with nothing to do.", (double)y->idle_rounds);
		prom("sysmon_delay_seconds", "gauge", "The sleep sysmon chose last.", (double)y->delay_us / 1e6);
		prom("sysmon_deep_sleeps_total", "counter", "sysmon sleeps until kicked (every P idle).",
		     (double)y->deep_sleeps);
		prom("sysmon_kicks_total", "counter", "Deep sleeps ended by work coming back.", (double)y->kicks);
		prom("sysmon_retakes_total", "counter", "Ps retaken from Ms in system calls.", (double)y->retakes);
		prom("sysmon_syscall_handoffs_total", "counter", "Retaken Ps handed straight to another M.",
		     (double)y->syscall_handoffs);
		prom("sysmon_syscall_exits_slow_total", "counter", "System call exits that found their P gone.",
		     (double)y->syscall_exits_slow);
		prom("sysmon_preempt_requested_total", "counter", "Time slice overruns flagged for preemption.",
		     (double)y->preempt_requested);
		prom("sysmon_preempt_cooperative_total", "counter", "Preemptions taken at a runtime call.",
		     (double)y->preempt_cooperative);
		prom("sysmon_preempt_signal_total", "counter", "Preemptions taken by signal at a safe point.",
		     (double)y->preempt_signal);
		prom("sysmon_preempt_signals_sent_total", "counter", "Preemption signals sent.",
		     (double)y->preempt_signals_sent);
		prom("sysmon_preempt_deferred_total", "counter", "Preemption signals that found no safe point.",
		     (double)y->preempt_deferred);
		prom("sysmon_scavenged_total", "counter", "Dead goroutine stacks returned to the kernel.",
		     (double)y->scavenged);
	}
	const Gort__V1__IoStats *io = st->io;
	if (io) {
		prom_head("io_mode", "gauge", "The io path in use (1 for the mode label).");
		printf("gort_io_mode{mode=\"");
		prom_escape(io->mode);
		printf("\"} 1\n");
		prom("io_submitted_total", "counter", "Requests handed to io_uring.", (double)io->submitted);
		prom("io_enters_total", "counter", "io_uring_enter calls that submitted them.", (double)io->enters);
		prom("io_completions_total", "counter", "io completions reaped.", (double)io->completions);
		prom("io_fallbacks_total", "counter", "Calls served by the readiness poller or the syscall handoff.",
		     (double)io->fallbacks);
		prom("io_fdwaits_total", "counter", "Parks on epoll readiness.", (double)io->fdwaits);
		prom("io_cancels_total", "counter", "io cancellations issued.", (double)io->cancels);
		prom("io_resubmits_total", "counter", "Requests retried after a cancellation nobody asked for.",
		     (double)io->resubmits);
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
		prom_tasks(st, "task_running", "gauge", "1 while the task runs, 0 once it has ended.", task_running);
		prom_tasks(st, "task_start_time_seconds", "gauge", "When the task started (Unix time).", task_start);
		prom_tasks(st, "task_goroutines", "gauge", "Goroutines alive in the task.", task_live);
		prom_head("task_goroutines_by_state", "gauge", "The task's goroutines by state.");
		for (size_t i = 0; i < st->n_tasks; i++) {
			const Gort__V1__GoroutineStates *g = st->tasks[i]->states;
			if (!g)
				continue;
			const char *names[] = { "runnable", "running", "waiting", "syscall" };
			uint64_t v[] = { g->runnable, g->running, g->waiting, g->syscall };
			for (int k = 0; k < 4; k++) {
				printf("gort_task_goroutines_by_state");
				prom_task_labels(st->tasks[i]);
				printf(",state=\"%s\"} %" PRIu64 "\n", names[k], v[k]);
			}
		}
		prom_tasks(st, "task_goroutines_created_total", "counter", "Goroutines the task created.", task_created);
		prom_tasks(st, "task_goroutines_ended_total", "counter", "Goroutines of the task that ended.",
			   task_ended);
		prom_tasks(st, "task_cpu_seconds_total", "counter",
			   "Time the task's goroutines ran (run slices; system calls excluded).", task_cpu);
		prom_tasks(st, "task_switches_total", "counter", "Run slices of the task's goroutines that ended.",
			   task_switches);
		prom_tasks(st, "task_io_requests_total", "counter", "io calls made by the task's goroutines.", task_io);
		prom_tasks(st, "task_panics_total", "counter", "Panics in the task.", task_panics);
	}
}

/* ---- top: a live view, refreshed each second ----
 * Plain ANSI escapes on the alternate screen, the terminal in raw mode (no echo,
 * no line buffering, no signal keys: Ctrl-C arrives as a byte) and restored on
 * every way out: q, Ctrl-C, SIGTERM/SIGHUP, the daemon going away. SIGWINCH
 * redraws at the new size. */

static struct termios top_saved;
static bool top_raw;
static int top_pipe[2] = { -1, -1 };

static void top_signal(int sig)
{
	int saved = errno;
	char c = sig == SIGWINCH ? 'w' : 'q';
	(void)!write(top_pipe[1], &c, 1);
	errno = saved;
}

static void top_restore(void)
{
	if (!top_raw)
		return;
	/* cursor back, main screen back, then the saved modes */
	fputs("\033[?25h\033[?1049l", stdout);
	fflush(stdout);
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &top_saved);
	top_raw = false;
}

static int top_enter(void)
{
	if (tcgetattr(STDIN_FILENO, &top_saved) < 0)
		return -errno;
	struct termios raw = top_saved;
	raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO | ISIG | IEXTEN);
	raw.c_iflag &= ~(tcflag_t)(IXON | ICRNL);
	raw.c_cc[VMIN] = 0;
	raw.c_cc[VTIME] = 0;
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) < 0)
		return -errno;
	top_raw = true;
	atexit(top_restore);
	fputs("\033[?1049h\033[?25l", stdout);
	return 0;
}

/* The screen being drawn: lines cut at the terminal's width, at most its height. */
struct top_screen {
	int rows, cols, row;
};

static void top_line(struct top_screen *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void top_line(struct top_screen *s, const char *fmt, ...)
{
	if (s->row >= s->rows)
		return;
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	/* \033[K clears what an older, longer line left */
	printf("\033[%d;1H%.*s\033[K", s->row + 1, s->cols, buf);
	s->row++;
}

/* What the previous frame saw, for rates. */
struct top_prev {
	int64_t when;
	size_t n;
	uint64_t *ids;
	int64_t *cpu;
	uint64_t *switches, *io;
};

static void top_prev_free(struct top_prev *p)
{
	free(p->ids);
	free(p->cpu);
	free(p->switches);
	free(p->io);
	memset(p, 0, sizeof(*p));
}

static bool top_prev_find(const struct top_prev *p, uint64_t id, size_t *ret)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->ids[i] == id) {
			*ret = i;
			return true;
		}
	return false;
}

static void top_draw(const Gort__V1__StatsReply *st, struct top_prev *prev, int64_t now)
{
	struct winsize ws;
	struct top_screen s = { .rows = 24, .cols = 80 };
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0) {
		s.rows = ws.ws_row;
		s.cols = ws.ws_col < 511 ? ws.ws_col : 511;
	}
	double dt = prev->when ? (double)(now - prev->when) / 1e9 : 0;
	const Gort__V1__SchedStats *sc = st->sched;
	const Gort__V1__SysmonStats *y = st->sysmon;
	const Gort__V1__IoStats *io = st->io;
	const Gort__V1__DaemonStats *d = st->daemon;
	char up[32] = "?", clock[16] = "";
	if (sc)
		fmt_duration(up, sizeof up, sc->uptime_ns);
	time_t t = time(NULL);
	struct tm tm;
	if (localtime_r(&t, &tm))
		strftime(clock, sizeof clock, "%H:%M:%S", &tm);
	printf("\033[H");
	top_line(&s, "gortctl top - %s  gortd pid %u, up %s, %u tasks running, %u clients   (q: quit)", clock,
		 d ? d->pid : 0, up, d ? d->tasks_running : 0, d ? d->connections : 0);
	if (sc)
		top_line(&s, "Sched: %d procs (%d idle), %d threads (%d spinning, %d idle, %d in syscalls), "
			     "%" PRId64 " goroutines, global runqueue %d",
			 sc->gomaxprocs, sc->idleprocs, sc->threads, sc->spinningthreads, sc->idlethreads,
			 sc->syscallthreads, sc->goroutines, sc->runqueue);
	if (y)
		top_line(&s, "Sysmon: rounds %" PRIu64 ", delay %" PRId64 "us, retakes %" PRIu64 ", preempt %" PRIu64
			     " (coop %" PRIu64 ", signal %" PRIu64 ", deferred %" PRIu64 ")",
			 y->rounds, y->delay_us, y->retakes, y->preempt_requested, y->preempt_cooperative,
			 y->preempt_signal, y->preempt_deferred);
	if (io)
		top_line(&s, "IO: %s, submitted %" PRIu64 ", completions %" PRIu64 ", fallbacks %" PRIu64
			     ", in flight %" PRId64,
			 io->mode, io->submitted, io->completions, io->fallbacks, io->inflight);
	top_line(&s, "%s", "");
	printf("\033[7m");
	top_line(&s, "%-5s %-8s %5s %6s %10s %12s %10s", "PROC", "STATUS", "M", "RUNQ", "GOROUTINE", "SCHEDTICK",
		 "SYSCALLS");
	printf("\033[0m");
	for (size_t i = 0; i < st->n_procs; i++) {
		const Gort__V1__ProcInfo *p = st->procs[i];
		char m[24] = "-", g[24] = "-";
		if (p->m >= 0)
			snprintf(m, sizeof m, "M%" PRId64, p->m);
		if (p->goid)
			snprintf(g, sizeof g, "%" PRId64, p->goid);
		top_line(&s, "P%-4d %-8s %5s %6d %10s %12" PRIu64 " %10" PRIu64, p->id, p->status, m, p->runqueue, g,
			 p->schedtick, p->syscalltick);
	}
	top_line(&s, "%s", "");
	printf("\033[7m");
	top_line(&s, "%-5s %8s %5s %10s %-10s", "M", "TID", "P", "GOROUTINE", "STATE");
	printf("\033[0m");
	for (size_t i = 0; i < st->n_threads; i++) {
		const Gort__V1__ThreadInfo *m = st->threads[i];
		char p[16] = "-", g[24] = "-";
		if (m->p >= 0)
			snprintf(p, sizeof p, "P%d", m->p);
		if (m->goid)
			snprintf(g, sizeof g, "%" PRId64, m->goid);
		const char *state = m->syscall ? "syscall" : m->spinning ? "spinning" : m->idle ? "idle" :
				    m->goid ? "running" : m->p >= 0 ? "scheduling" : "no P";
		top_line(&s, "M%-4" PRId64 " %8d %5s %10s %-10s%s", m->id, m->tid, p, g, state, m->locked ? " locked" : "");
	}
	top_line(&s, "%s", "");
	printf("\033[7m");
	top_line(&s, "%-6s %-16s %-9s %6s %6s %6s %6s %6s %10s %6s %9s %8s", "TASK", "NAME", "STATE", "GORS", "RUN",
		 "RUNQ", "WAIT", "SYSC", "CPU", "CPU%", "SWITCH/s", "IO/s");
	printf("\033[0m");
	struct top_prev next = { .when = now, .n = st->n_tasks };
	next.ids = calloc(st->n_tasks + 1, sizeof(*next.ids));
	next.cpu = calloc(st->n_tasks + 1, sizeof(*next.cpu));
	next.switches = calloc(st->n_tasks + 1, sizeof(*next.switches));
	next.io = calloc(st->n_tasks + 1, sizeof(*next.io));
	bool keep = next.ids && next.cpu && next.switches && next.io;
	for (size_t i = 0; i < st->n_tasks; i++) {
		const Gort__V1__TaskInfo *tk = st->tasks[i];
		const Gort__V1__GoroutineStates *g = tk->states;
		char cpu[32], pct[16] = "-", sw[24] = "-", ios[24] = "-";
		fmt_duration(cpu, sizeof cpu, tk->cpu_ns);
		size_t k;
		if (dt > 0 && top_prev_find(prev, tk->id, &k)) {
			snprintf(pct, sizeof pct, "%.0f", (double)(tk->cpu_ns - prev->cpu[k]) / 1e9 / dt * 100);
			snprintf(sw, sizeof sw, "%.0f", (double)(tk->switches - prev->switches[k]) / dt);
			snprintf(ios, sizeof ios, "%.0f", (double)(tk->io_requests - prev->io[k]) / dt);
		}
		if (keep) {
			next.ids[i] = tk->id;
			next.cpu[i] = tk->cpu_ns;
			next.switches[i] = tk->switches;
			next.io[i] = tk->io_requests;
		}
		top_line(&s, "%-6" PRIu64 " %-16.16s %-9s %6" PRId64 " %6" PRIu64 " %6" PRIu64 " %6" PRIu64 " %6" PRIu64
			     " %10s %6s %9s %8s",
			 tk->id, tk->name, tk->state, tk->goroutines, g ? g->running : 0, g ? g->runnable : 0,
			 g ? g->waiting : 0, g ? g->syscall : 0, cpu, pct, sw, ios);
	}
	/* what is left of the screen is cleared */
	printf("\033[J");
	fflush(stdout);
	top_prev_free(prev);
	if (keep)
		*prev = next;
	else
		top_prev_free(&next);
}

static int cmd_top(int argc, char **argv)
{
	(void)argv;
	if (argc != 1)
		return usage("top takes no arguments");
	if (arg_json)
		return usage("top: --json does not apply (use stats --json)");
	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
		fprintf(stderr, "gortctl: top needs a terminal (for a snapshot: gortctl stats)\n");
		return EXIT_USAGE;
	}
	struct gortclient *c = connect_or_explain();
	if (!c)
		return EXIT_DAEMON;
	if (pipe2(top_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		fprintf(stderr, "gortctl: top: %s\n", strerror(errno));
		gortclient_free(c);
		return EXIT_DAEMON;
	}
	struct sigaction sa = { .sa_handler = top_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGWINCH, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	int r = top_enter();
	if (r < 0) {
		fprintf(stderr, "gortctl: top: cannot set up the terminal: %s\n", strerror(-r));
		gortclient_free(c);
		return EXIT_DAEMON;
	}
	struct top_prev prev = { 0 };
	int ret = EXIT_OK;
	Gort__V1__Reply *last = NULL;
	int64_t next = 0;
	for (bool quit = false; !quit;) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		int64_t now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
		if (now >= next) {
			Gort__V1__StatsRequest sr = GORT__V1__STATS_REQUEST__INIT;
			Gort__V1__Request req = GORT__V1__REQUEST__INIT;
			req.body_case = GORT__V1__REQUEST__BODY_STATS;
			req.stats = &sr;
			Gort__V1__Reply *reply = NULL;
			if (gortclient_call(c, &req, NULL, 0, &reply) < 0) {
				top_restore();
				fail(c, "top");
				ret = EXIT_DAEMON;
				break;
			}
			if (last)
				gort__v1__reply__free_unpacked(last, NULL);
			last = reply;
			if (last->body_case == GORT__V1__REPLY__BODY_STATS)
				top_draw(last->stats, &prev, now);
			next = now + 1000000000;
		}
		struct pollfd p[2] = { { .fd = STDIN_FILENO, .events = POLLIN }, { .fd = top_pipe[0], .events = POLLIN } };
		int wait = (int)((next - now) / 1000000) + 1;
		if (poll(p, 2, wait) < 0 && errno != EINTR)
			break;
		if (p[0].revents & (POLLHUP | POLLERR | POLLNVAL))
			quit = true;
		if (p[0].revents & POLLIN) {
			char keys[64];
			ssize_t n = read(STDIN_FILENO, keys, sizeof keys);
			if (n == 0)
				quit = true;
			for (ssize_t i = 0; i < n; i++)
				if (keys[i] == 'q' || keys[i] == 'Q' || keys[i] == 3 /* Ctrl-C */ || keys[i] == 4)
					quit = true;
		}
		if (p[1].revents & POLLIN) {
			char sig[16];
			ssize_t n;
			while ((n = read(top_pipe[0], sig, sizeof sig)) > 0)
				for (ssize_t i = 0; i < n; i++) {
					if (sig[i] == 'q')
						quit = true;
					else if (last && last->body_case == GORT__V1__REPLY__BODY_STATS)
						printf("\033[2J"), top_draw(last->stats, &prev, prev.when);
				}
		}
	}
	top_restore();
	if (last)
		gort__v1__reply__free_unpacked(last, NULL);
	top_prev_free(&prev);
	gortclient_free(c);
	return ret;
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

/* ---- the observability commands: events, trace ---- */

/* Event kinds on the wire (Event.kind: gort_plugin.h's enum gort_event_kind, plus the daemon's own). */
enum { EV_GO_CREATE = 1, EV_GO_START, EV_GO_STOP, EV_GO_UNBLOCK, EV_GO_END, EV_TASK_START, EV_TASK_EXIT,
       EV_PROC_START, EV_PROC_STOP, EV_DROPPED = 64, EV_SAMPLE = 65 };

static const char *ev_kind_name(uint32_t k)
{
	static const char *const names[] = { "?", "go-create", "go-start", "go-stop", "go-unblock", "go-end",
					     "task-start", "task-exit", "proc-start", "proc-stop" };
	if (k == EV_DROPPED)
		return "dropped";
	if (k == EV_SAMPLE)
		return "sample";
	return k < sizeof names / sizeof names[0] ? names[k] : "?";
}

static const char *ev_stop_name(uint32_t r)
{
	static const char *const names[] = { "?", "yield", "preempted", "parked", "syscall" };
	return r < sizeof names / sizeof names[0] ? names[r] : "?";
}

static const char *ev_exit_name(uint32_t r)
{
	static const char *const names[] = { "running", "exited", "panicked", "killed" };
	return r < sizeof names / sizeof names[0] ? names[r] : "?";
}

/* s as a JSON string (quotes included). */
static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static void print_event_json(const Gort__V1__Event *e, int64_t unix_offset)
{
	printf("{\"time_ns\":%" PRId64 ",\"unix_ns\":%" PRId64 ",\"kind\":\"%s\",\"task\":%" PRIu64
	       ",\"goid\":%" PRId64 ",\"proc\":%d,\"m\":%d",
	       e->time_ns, e->time_ns + unix_offset, ev_kind_name(e->kind), e->task_id, e->goid, e->proc, e->m);
	switch (e->kind) {
	case EV_GO_CREATE:
		printf(",\"parent\":%" PRId64 ",\"entry\":", e->arg);
		json_str(stdout, e->entry);
		break;
	case EV_GO_START:
		printf(",\"entry\":");
		json_str(stdout, e->entry);
		break;
	case EV_GO_STOP:
		printf(",\"reason\":\"%s\"", ev_stop_name(e->reason));
		if (*e->wait) {
			printf(",\"wait\":");
			json_str(stdout, e->wait);
		}
		break;
	case EV_GO_UNBLOCK:
		printf(",\"by\":%" PRId64, e->arg);
		break;
	case EV_TASK_START:
	case EV_TASK_EXIT:
		printf(",\"name\":");
		json_str(stdout, e->entry);
		if (e->kind == EV_TASK_EXIT)
			printf(",\"status\":\"%s\",\"code\":%" PRId64, ev_exit_name(e->reason), e->arg);
		break;
	case EV_DROPPED:
		printf(",\"count\":%" PRId64, e->arg);
		break;
	case EV_SAMPLE:
		printf(",\"goroutines\":%" PRId64 ",\"runqueue\":%" PRId64 ",\"idleprocs\":%u", e->arg, e->goid,
		       e->reason);
		break;
	}
	printf("}\n");
}

static void print_event_text(const Gort__V1__Event *e, int64_t unix_offset)
{
	int64_t wall = e->time_ns + unix_offset;
	time_t sec = (time_t)(wall / 1000000000);
	struct tm tm;
	localtime_r(&sec, &tm);
	char ts[32], where[32] = "", task[32] = "";
	strftime(ts, sizeof ts, "%H:%M:%S", &tm);
	if (e->proc >= 0)
		snprintf(where, sizeof where, "P%d", e->proc);
	if (e->m >= 0 && e->kind != EV_SAMPLE)
		snprintf(where + strlen(where), sizeof where - strlen(where), "%sM%d", *where ? "/" : "", e->m);
	if (e->task_id)
		snprintf(task, sizeof task, "task %" PRIu64, e->task_id);
	printf("%s.%06lld %-9s %-10s ", ts, (long long)(wall % 1000000000 / 1000), e->kind == EV_SAMPLE ? "" : where,
	       task);
	switch (e->kind) {
	case EV_GO_CREATE:
		printf("G%" PRId64 " created by %s%" PRId64 ": %s\n", e->goid, e->arg ? "G" : "runtime ", e->arg, e->entry);
		break;
	case EV_GO_START:
		printf("G%" PRId64 " runs %s\n", e->goid, e->entry);
		break;
	case EV_GO_STOP:
		if (*e->wait)
			printf("G%" PRId64 " stops: %s (%s)\n", e->goid, ev_stop_name(e->reason), e->wait);
		else
			printf("G%" PRId64 " stops: %s\n", e->goid, ev_stop_name(e->reason));
		break;
	case EV_GO_UNBLOCK:
		if (e->arg)
			printf("G%" PRId64 " unblocked by G%" PRId64 "\n", e->goid, e->arg);
		else
			printf("G%" PRId64 " unblocked by the runtime\n", e->goid);
		break;
	case EV_GO_END:
		printf("G%" PRId64 " ends\n", e->goid);
		break;
	case EV_TASK_START:
		printf("%s starts\n", e->entry);
		break;
	case EV_TASK_EXIT:
		printf("%s %s, code %" PRId64 "\n", e->entry, ev_exit_name(e->reason), e->arg);
		break;
	case EV_PROC_START:
		printf("P%d starts on M%d\n", e->proc, e->m);
		break;
	case EV_PROC_STOP:
		printf("P%d stops\n", e->proc);
		break;
	case EV_DROPPED:
		if (e->proc >= 0)
			printf("%" PRId64 " events dropped: P%d's buffer was full\n", e->arg, e->proc);
		else
			printf("%" PRId64 " events dropped: the shared buffer was full\n", e->arg);
		break;
	case EV_SAMPLE:
		printf("sample: gomaxprocs=%d idleprocs=%u threads=%d runqueue=%" PRId64 " goroutines=%" PRId64 "\n",
		       e->proc, e->reason, e->m, e->goid, e->arg);
		break;
	default:
		printf("event %u\n", e->kind);
	}
}

/* Receives the replies to an events request: each batch to fn(reply, arg).
 * Returns 0 at the end of the stream (its last reply, or with allow_eof the
 * daemon going away), -EINTR on Ctrl-C, or a negative errno. */
static int events_receive(struct gortclient *c, uint64_t id, bool allow_eof,
			  void (*fn)(const Gort__V1__EventsReply *er, void *arg), void *arg)
{
	catch_interrupts();
	for (;;) {
		struct pollfd p[2] = { { .fd = gortclient_fd(c), .events = POLLIN },
				       { .fd = sigint_pipe[0], .events = POLLIN } };
		int n = poll(p, sigint_pipe[0] >= 0 ? 2 : 1, -1);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (sigint_pipe[0] >= 0 && (p[1].revents & POLLIN))
			return -EINTR;
		if (!p[0].revents)
			continue;
		Gort__V1__Reply *reply = NULL;
		int r = gortclient_recv_id(c, id, &reply);
		if (r == -ECONNRESET && allow_eof)
			return 0;
		if (r < 0)
			return r;
		bool end = true;
		if (reply->body_case == GORT__V1__REPLY__BODY_EVENTS) {
			fn(reply->events, arg);
			end = reply->events->end;
		}
		gort__v1__reply__free_unpacked(reply, NULL);
		fflush(stdout);
		if (end)
			return 0;
	}
}

static void events_show(const Gort__V1__EventsReply *er, void *arg)
{
	(void)arg;
	if (er->missed) {
		if (arg_json)
			printf("{\"kind\":\"missed\",\"count\":%" PRIu64 "}\n", er->missed);
		else
			printf("(%" PRIu64 " events missed: this client fell behind)\n", er->missed);
	}
	for (size_t i = 0; i < er->n_events; i++) {
		if (arg_json)
			print_event_json(er->events[i], er->unix_offset_ns);
		else
			print_event_text(er->events[i], er->unix_offset_ns);
	}
}

static int cmd_events(int argc, char **argv)
{
	Gort__V1__EventsRequest er = GORT__V1__EVENTS_REQUEST__INIT;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--follow") == 0 || strcmp(argv[i], "-f") == 0) {
			er.follow = true;
		} else if (strcmp(argv[i], "--json") == 0) {
			arg_json = true;
		} else if (strcmp(argv[i], "--task") == 0 || strncmp(argv[i], "--task=", 7) == 0) {
			const char *v = argv[i][6] == '=' ? argv[i] + 7 : (i + 1 < argc ? argv[++i] : NULL);
			if (!v)
				return usage("events: --task wants a TASK id");
			if (parse_task(v, &er.task_id))
				return EXIT_USAGE;
		} else {
			return usage("events: unknown argument '%s'", argv[i]);
		}
	}
	struct gortclient *c = connect_or_explain();
	if (!c)
		return EXIT_DAEMON;
	Gort__V1__Request req = GORT__V1__REQUEST__INIT;
	req.body_case = GORT__V1__REQUEST__BODY_EVENTS;
	req.events = &er;
	int64_t id = gortclient_send(c, &req, NULL, 0);
	int r = id < 0 ? (int)id : events_receive(c, (uint64_t)id, er.follow, events_show, NULL);
	if (r < 0 && r != -EINTR) {
		fail(c, "events");
		gortclient_free(c);
		return EXIT_DAEMON;
	}
	gortclient_free(c);
	return EXIT_OK;
}

/* ---- trace: Chrome Trace Event JSON ---- */

/* Tracks: pid 1 the Ps (tid = P), pid 2 the Ms (tid = M), pid 3 the tasks
 * (tid = task id), pid 4 the runtime (events without a P). */
enum { TRACK_P = 1, TRACK_M = 2, TRACK_TASK = 3, TRACK_RT = 4 };

struct open_slice {
	int pid, tid;
	int64_t goid;            /* running there now; 0: none */
};

struct taskspan {
	uint64_t id;
	int64_t start, end;      /* ns; 0: not seen */
	char name[64];
	char status[16];
};

struct tracer {
	FILE *f;
	bool first;
	int64_t t0, tlast;
	struct open_slice *open;
	size_t nopen, capopen;
	struct taskspan *tasks;
	size_t ntasks, captasks;
	struct gname {           /* goroutine names: goid -> entry */
		int64_t goid;
		char name[64];
	} *names;
	size_t nnames, capnames;
	uint32_t *nameidx;       /* open addressing over names: 2 * capnames slots, 0 empty, else index + 1 */
	uint64_t events, missed;
	bool oom;
};

static void tr_sep(struct tracer *t)
{
	fputs(t->first ? "\n" : ",\n", t->f);
	t->first = false;
}

static void tr_ts(struct tracer *t, int64_t ns)
{
	fprintf(t->f, "%.3f", (double)(ns - t->t0) / 1000.0);
}

/* Room for one more element in *v (n used of *cap, each size bytes, the
 * first allocation first elements); false (and t->oom) without memory. */
static bool tr_grow(struct tracer *t, void *v, size_t n, size_t *cap, size_t size, size_t first)
{
	if (n < *cap)
		return true;
	size_t c = *cap ? *cap * 2 : first;
	void *nv = realloc(*(void **)v, c * size);
	if (!nv) {
		t->oom = true;
		return false;
	}
	*(void **)v = nv;
	*cap = c;
	return true;
}

/* The name slot for goid in t->nameidx (mask: its size - 1): the slot holding
 * goid's entry, or the empty one where it would go. */
static uint32_t *tr_name_slot(struct tracer *t, int64_t goid, size_t mask)
{
	size_t h = (size_t)((uint64_t)goid * 0x9e3779b97f4a7c15ull >> 32) & mask;
	while (t->nameidx[h] && t->names[t->nameidx[h] - 1].goid != goid)
		h = (h + 1) & mask;
	return &t->nameidx[h];
}

static const char *tr_name(struct tracer *t, int64_t goid)
{
	if (!t->nameidx)
		return "";
	uint32_t i = *tr_name_slot(t, goid, 2 * t->capnames - 1);
	return i ? t->names[i - 1].name : "";
}

static void tr_set_name(struct tracer *t, int64_t goid, const char *entry)
{
	if (!*entry || *tr_name(t, goid))
		return;
	size_t cap = t->capnames;
	if (!tr_grow(t, &t->names, t->nnames, &t->capnames, sizeof(*t->names), 256))
		return;
	if (cap != t->capnames) { /* names grew: rebuild the index at twice its size */
		uint32_t *idx = calloc(2 * t->capnames, sizeof(*idx));
		if (!idx) {
			t->oom = true;
			t->capnames = cap; /* keep the old index consistent with its size */
			return;
		}
		free(t->nameidx);
		t->nameidx = idx;
		for (size_t i = 0; i < t->nnames; i++)
			*tr_name_slot(t, t->names[i].goid, 2 * t->capnames - 1) = (uint32_t)i + 1;
	}
	t->names[t->nnames].goid = goid;
	snprintf(t->names[t->nnames].name, sizeof t->names[0].name, "%s", entry);
	t->nnames++;
	*tr_name_slot(t, goid, 2 * t->capnames - 1) = (uint32_t)t->nnames;
}

static struct open_slice *tr_track(struct tracer *t, int pid, int tid)
{
	for (size_t i = 0; i < t->nopen; i++)
		if (t->open[i].pid == pid && t->open[i].tid == tid)
			return &t->open[i];
	if (!tr_grow(t, &t->open, t->nopen, &t->capopen, sizeof(*t->open), 16))
		return NULL;
	struct open_slice *s = &t->open[t->nopen++];
	*s = (struct open_slice){ .pid = pid, .tid = tid };
	/* the track's name */
	tr_sep(t);
	fprintf(t->f, "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":%d,\"args\":{\"name\":\"%s%d\"}}",
		pid, tid, pid == TRACK_P ? "P" : pid == TRACK_M ? "M" : pid == TRACK_TASK ? "task " : "runtime ", tid);
	tr_sep(t);
	fprintf(t->f, "{\"name\":\"thread_sort_index\",\"ph\":\"M\",\"pid\":%d,\"tid\":%d,\"args\":{\"sort_index\":%d}}",
		pid, tid, tid);
	return s;
}

static void tr_end(struct tracer *t, struct open_slice *s, int64_t ns)
{
	if (!s || !s->goid)
		return;
	tr_sep(t);
	fprintf(t->f, "{\"ph\":\"E\",\"pid\":%d,\"tid\":%d,\"ts\":", s->pid, s->tid);
	tr_ts(t, ns);
	fputc('}', t->f);
	s->goid = 0;
}

static void tr_begin(struct tracer *t, struct open_slice *s, int64_t ns, const Gort__V1__Event *e)
{
	if (!s)
		return;
	tr_end(t, s, ns); /* a stop that was dropped: never leave two open */
	const char *name = tr_name(t, e->goid);
	tr_sep(t);
	fprintf(t->f, "{\"name\":\"G%" PRId64 "%s", e->goid, *name ? " " : "");
	for (const char *p = name; *p; p++)
		if (*p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
			fputc(*p, t->f);
	fprintf(t->f, "\",\"cat\":\"goroutine\",\"ph\":\"B\",\"pid\":%d,\"tid\":%d,\"ts\":", s->pid, s->tid);
	tr_ts(t, ns);
	fprintf(t->f, ",\"args\":{\"goid\":%" PRId64 ",\"task\":%" PRIu64 "}}", e->goid, e->task_id);
	s->goid = e->goid;
}

static void tr_instant(struct tracer *t, int pid, int tid, int64_t ns, const char *name, const char *args)
{
	tr_sep(t);
	fprintf(t->f, "{\"name\":\"%s\",\"ph\":\"i\",\"s\":\"t\",\"pid\":%d,\"tid\":%d,\"ts\":", name, pid, tid);
	tr_ts(t, ns);
	fprintf(t->f, ",\"args\":{%s}}", args);
}

static struct taskspan *tr_task(struct tracer *t, uint64_t id)
{
	for (size_t i = 0; i < t->ntasks; i++)
		if (t->tasks[i].id == id)
			return &t->tasks[i];
	if (!tr_grow(t, &t->tasks, t->ntasks, &t->captasks, sizeof(*t->tasks), 16))
		return NULL;
	struct taskspan *s = &t->tasks[t->ntasks++];
	*s = (struct taskspan){ .id = id };
	return s;
}

static void tr_event(struct tracer *t, const Gort__V1__Event *e)
{
	int64_t ns = e->time_ns;
	if (!t->t0)
		t->t0 = ns;
	if (ns < t->tlast)
		ns = t->tlast; /* never backwards on a track */
	t->tlast = ns;
	t->events++;
	char args[160];
	if (e->task_id && e->kind != EV_TASK_START && e->kind != EV_TASK_EXIT) {
		struct taskspan *ts = tr_task(t, e->task_id);
		if (ts && !ts->start)
			ts->start = ns;
	}
	switch (e->kind) {
	case EV_GO_CREATE:
		tr_set_name(t, e->goid, e->entry);
		snprintf(args, sizeof args, "\"goid\":%" PRId64 ",\"parent\":%" PRId64 ",\"task\":%" PRIu64, e->goid,
			 e->arg, e->task_id);
		if (e->proc >= 0)
			tr_instant(t, TRACK_P, e->proc, ns, "go create", args);
		else
			tr_instant(t, TRACK_RT, 0, ns, "go create", args);
		break;
	case EV_GO_START:
		tr_set_name(t, e->goid, e->entry);
		if (e->proc >= 0)
			tr_begin(t, tr_track(t, TRACK_P, e->proc), ns, e);
		if (e->m >= 0)
			tr_begin(t, tr_track(t, TRACK_M, e->m), ns, e);
		break;
	case EV_GO_STOP:
	case EV_GO_END: {
		for (size_t i = 0; i < t->nopen; i++)
			if (t->open[i].goid == e->goid && t->open[i].pid != TRACK_TASK)
				tr_end(t, &t->open[i], ns);
		if (e->kind == EV_GO_STOP && e->reason != 1 && e->reason != 2) {
			snprintf(args, sizeof args, "\"goid\":%" PRId64 ",\"reason\":\"%s\",\"wait\":\"%s\"", e->goid,
				 ev_stop_name(e->reason), e->wait);
			if (e->proc >= 0)
				tr_instant(t, TRACK_P, e->proc, ns, e->reason == 4 ? "syscall" : "park", args);
		}
		break;
	}
	case EV_GO_UNBLOCK:
		snprintf(args, sizeof args, "\"goid\":%" PRId64 ",\"by\":%" PRId64, e->goid, e->arg);
		if (e->proc >= 0)
			tr_instant(t, TRACK_P, e->proc, ns, "unblock", args);
		else
			tr_instant(t, TRACK_RT, 0, ns, "unblock", args);
		break;
	case EV_TASK_START:
	case EV_TASK_EXIT: {
		struct taskspan *ts = tr_task(t, e->task_id);
		if (!ts)
			break;
		snprintf(ts->name, sizeof ts->name, "%s", e->entry);
		if (e->kind == EV_TASK_START) {
			ts->start = ns;
		} else {
			if (!ts->start)
				ts->start = t->t0;
			ts->end = ns;
			snprintf(ts->status, sizeof ts->status, "%s", ev_exit_name(e->reason));
		}
		break;
	}
	case EV_PROC_START:
	case EV_PROC_STOP:
		tr_track(t, TRACK_P, e->proc);
		snprintf(args, sizeof args, "\"m\":%d", e->m);
		tr_instant(t, TRACK_P, e->proc, ns, e->kind == EV_PROC_START ? "proc start" : "proc stop", args);
		break;
	case EV_DROPPED:
		snprintf(args, sizeof args, "\"count\":%" PRId64 ",\"proc\":%d", e->arg, e->proc);
		tr_sep(t);
		fprintf(t->f, "{\"name\":\"events dropped\",\"ph\":\"i\",\"s\":\"g\",\"pid\":%d,\"tid\":0,\"ts\":", TRACK_RT);
		tr_ts(t, ns);
		fprintf(t->f, ",\"args\":{%s}}", args);
		break;
	case EV_SAMPLE:
		tr_sep(t);
		fprintf(t->f, "{\"name\":\"scheduler\",\"ph\":\"C\",\"pid\":%d,\"ts\":", TRACK_P);
		tr_ts(t, ns);
		fprintf(t->f, ",\"args\":{\"goroutines\":%" PRId64 ",\"runqueue\":%" PRId64 ",\"idleprocs\":%u}}", e->arg,
			e->goid, e->reason);
		break;
	}
}

static void trace_batch(const Gort__V1__EventsReply *er, void *arg)
{
	struct tracer *t = arg;
	if (er->missed) {
		t->missed += er->missed;
		tr_sep(t);
		fprintf(t->f, "{\"name\":\"events missed\",\"ph\":\"i\",\"s\":\"g\",\"pid\":%d,\"tid\":0,\"ts\":", TRACK_RT);
		tr_ts(t, t->tlast ? t->tlast : t->t0);
		fprintf(t->f, ",\"args\":{\"count\":%" PRIu64 "}}", er->missed);
	}
	for (size_t i = 0; i < er->n_events; i++)
		tr_event(t, er->events[i]);
}

static int cmd_trace(int argc, char **argv)
{
	double seconds = 0;
	const char *out = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--duration") == 0 || strncmp(argv[i], "--duration=", 11) == 0) {
			const char *v = argv[i][10] == '=' ? argv[i] + 11 : (i + 1 < argc ? argv[++i] : NULL);
			char *end;
			seconds = v ? strtod(v, &end) : 0;
			if (!v || *end || !(seconds > 0) || seconds > 3600)
				return usage("trace: --duration wants SECONDS (at most 3600)");
		} else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) {
			out = argv[++i];
		} else {
			return usage("trace: unknown argument '%s'", argv[i]);
		}
	}
	if (seconds <= 0 || !out || !*out)
		return usage("trace: --duration SECONDS -o FILE.json");
	FILE *f = strcmp(out, "-") == 0 ? stdout : fopen(out, "we");
	if (!f) {
		fprintf(stderr, "gortctl: %s: %s\n", out, strerror(errno));
		return EXIT_DAEMON;
	}
	struct gortclient *c = connect_or_explain();
	if (!c) {
		if (f != stdout)
			fclose(f);
		return EXIT_DAEMON;
	}
	Gort__V1__EventsRequest er = GORT__V1__EVENTS_REQUEST__INIT;
	er.follow = true;
	er.live_only = true;
	er.duration_ms = (uint64_t)(seconds * 1000 + 0.5);
	if (er.duration_ms == 0)
		er.duration_ms = 1;
	Gort__V1__Request req = GORT__V1__REQUEST__INIT;
	req.body_case = GORT__V1__REQUEST__BODY_EVENTS;
	req.events = &er;
	struct tracer t = { .f = f, .first = true };
	fprintf(f, "{\"displayTimeUnit\":\"ns\",\"traceEvents\":[");
	static const char *const procs[] = { "", "Ps", "Ms", "tasks", "runtime" };
	for (int p = 1; p <= 4; p++) {
		tr_sep(&t);
		fprintf(f, "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%d,\"args\":{\"name\":\"%s\"}}", p, procs[p]);
		tr_sep(&t);
		fprintf(f, "{\"name\":\"process_sort_index\",\"ph\":\"M\",\"pid\":%d,\"args\":{\"sort_index\":%d}}", p, p);
	}
	int64_t id = gortclient_send(c, &req, NULL, 0);
	int r = id < 0 ? (int)id : events_receive(c, (uint64_t)id, false, trace_batch, &t);
	/* what is still open ends where the recording did */
	for (size_t i = 0; i < t.nopen; i++)
		tr_end(&t, &t.open[i], t.tlast);
	for (size_t i = 0; i < t.ntasks; i++) {
		struct taskspan *s = &t.tasks[i];
		int64_t start = s->start ? s->start : t.t0, end = s->end ? s->end : t.tlast;
		tr_sep(&t);
		fprintf(f, "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":%" PRIu64 ",\"args\":{\"name\":\"task %" PRIu64 "\"}}",
			TRACK_TASK, s->id, s->id);
		tr_sep(&t);
		fprintf(f, "{\"name\":\"task %" PRIu64 " ", s->id);
		for (const char *p = s->name; *p; p++)
			if (*p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
				fputc(*p, f);
		fprintf(f, "\",\"cat\":\"task\",\"ph\":\"X\",\"pid\":%d,\"tid\":%" PRIu64 ",\"ts\":", TRACK_TASK, s->id);
		tr_ts(&t, start);
		fprintf(f, ",\"dur\":%.3f,\"args\":{\"status\":\"%s\"}}", (double)(end - start) / 1000.0,
			*s->status ? s->status : "running");
	}
	fprintf(f, "\n],\"otherData\":{\"source\":\"gortd\",\"events\":%" PRIu64 ",\"missed\":%" PRIu64 "}}\n",
		t.events, t.missed);
	free(t.open);
	free(t.tasks);
	free(t.names);
	free(t.nameidx);
	bool werr = ferror(f) != 0;
	if (f != stdout)
		werr |= fclose(f) != 0;
	if (r < 0 && r != -EINTR) {
		fail(c, "trace");
		gortclient_free(c);
		return EXIT_DAEMON;
	}
	gortclient_free(c);
	if (werr || t.oom) {
		fprintf(stderr, "gortctl: trace: writing %s: %s\n", out, t.oom ? "out of memory" : strerror(errno));
		return EXIT_DAEMON;
	}
	if (f != stdout)
		fprintf(stderr, "gortctl: %" PRIu64 " events written to %s (open it in https://ui.perfetto.dev)\n",
			t.events, out);
	return EXIT_OK;
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
	/* top draws on a terminal: the remote side gets one (ours) */
	const char *cmd = NULL;
	for (int i = 0; i < argc && !cmd; i++) {
		if (strcmp(argv[i], "--socket") == 0)
			i++;
		else if (argv[i][0] != '-')
			cmd = argv[i];
	}
	bool tty = cmd && strcmp(cmd, "top") == 0 && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
	sv[n++] = tty ? "-t" : "-T";
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
		{ "trace", cmd_trace }, { "top", cmd_top },
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
