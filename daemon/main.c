/* daemon/main.c: gortd, the daemon that hosts gort tasks: parse_argv, run, main. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "gortd.h"
#include "log.h"
#include "proto/wire.h"
#include "runtime.h"
#include "task.h"

const char *arg_socket;
int arg_procs;
uid_t *arg_allow_uids;
size_t arg_n_allow_uids;
gid_t *arg_allow_gids;
size_t arg_n_allow_gids;
bool arg_foreground;
static const char *arg_run;  /* --run FILE.so */
static int arg_run_argc;     /* its arguments (after --) */
static char **arg_run_argv;

static void help(void)
{
	printf("Usage: gortd [OPTIONS]\n"
	       "       gortd --run FILE.so [-- ARGS...]\n\n"
	       "Hosts gort tasks: submit them with gortctl.\n\n"
	       "  --socket PATH       listen on PATH (default: the socket from systemd, else\n"
	       "                      /run/gort/gortd.sock as root, $XDG_RUNTIME_DIR/gort/gortd.sock\n"
	       "                      otherwise; $GORT_SOCKET overrides)\n"
	       "  --procs N           number of Ps (default: CPUs available)\n"
	       "  --allow-uid UID     also let this user submit, kill and load plugins (repeatable)\n"
	       "  --allow-group GID   also let members of this group do so (repeatable)\n"
	       "  --foreground        do not detach (implied under systemd)\n"
	       "  --run FILE.so       run one task in the foreground, no socket; exit with its code\n"
	       "  -h, --help          this text\n");
}

static int parse_id(const char *s, bool group, unsigned *ret)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (*s && *end == '\0' && errno == 0 && v < (unsigned long)(uid_t)-1) {
		*ret = (unsigned)v;
		return 0;
	}
	if (group) {
		struct group *gr = getgrnam(s);
		if (gr) {
			*ret = gr->gr_gid;
			return 0;
		}
	} else {
		struct passwd *pw = getpwnam(s);
		if (pw) {
			*ret = pw->pw_uid;
			return 0;
		}
	}
	return -ENOENT;
}

static int push_id(unsigned **v, size_t *n, unsigned id)
{
	unsigned *nv = realloc(*v, (*n + 1) * sizeof(**v));
	if (!nv)
		return -ENOMEM;
	nv[(*n)++] = id;
	*v = nv;
	return 0;
}

/* Returns 1 to go on, 0 to exit successfully (--help), -EINVAL on a usage error
 * (already reported). */
static int parse_argv(int argc, char **argv)
{
	enum { ARG_SOCKET = 0x100, ARG_PROCS, ARG_ALLOW_UID, ARG_ALLOW_GROUP, ARG_FOREGROUND, ARG_RUN };
	static const struct option options[] = {
		{ "socket", required_argument, NULL, ARG_SOCKET },
		{ "procs", required_argument, NULL, ARG_PROCS },
		{ "allow-uid", required_argument, NULL, ARG_ALLOW_UID },
		{ "allow-group", required_argument, NULL, ARG_ALLOW_GROUP },
		{ "foreground", no_argument, NULL, ARG_FOREGROUND },
		{ "run", required_argument, NULL, ARG_RUN },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	int c;
	unsigned id;
	char *end;
	while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		switch (c) {
		case 'h':
			help();
			return 0;
		case ARG_SOCKET:
			if (!*optarg) {
				fprintf(stderr, "gortd: --socket needs a path\n");
				return -EINVAL;
			}
			arg_socket = optarg;
			break;
		case ARG_PROCS: {
			long v = strtol(optarg, &end, 10);
			if (*end || v < 1 || v > 1024) {
				fprintf(stderr, "gortd: --procs %s: want a number from 1 to 1024\n", optarg);
				return -EINVAL;
			}
			arg_procs = (int)v;
			break;
		}
		case ARG_ALLOW_UID:
		case ARG_ALLOW_GROUP: {
			bool group = c == ARG_ALLOW_GROUP;
			if (parse_id(optarg, group, &id) < 0) {
				fprintf(stderr, "gortd: --allow-%s %s: no such %s\n", group ? "group" : "uid", optarg,
					group ? "group" : "user");
				return -EINVAL;
			}
			int r = group ? push_id((unsigned **)&arg_allow_gids, &arg_n_allow_gids, id)
				      : push_id((unsigned **)&arg_allow_uids, &arg_n_allow_uids, id);
			if (r < 0)
				return r;
			break;
		}
		case ARG_FOREGROUND:
			arg_foreground = true;
			break;
		case ARG_RUN:
			arg_run = optarg;
			break;
		default:
			fprintf(stderr, "Try 'gortd --help'.\n");
			return -EINVAL;
		}
	}
	if (optind < argc && !arg_run) {
		fprintf(stderr, "gortd: unexpected argument '%s'; try 'gortd --help'\n", argv[optind]);
		return -EINVAL;
	}
	arg_run_argc = argc - optind;
	arg_run_argv = argv + optind;
	return 1;
}

/* ==== gortd --run FILE.so [-- ARGS...] ====
 * Owned by the tasks issue (runtime/task.c): one task in the foreground, no
 * socket, the process exits with the task's code. Replace freely. */
static int run_task_file(void)
{
	int fd = open(arg_run, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "gortd: %s: %s\n", arg_run, strerror(errno));
		return 1;
	}
	_cleanup_free_ char **argv = calloc((size_t)arg_run_argc + 2, sizeof(char *));
	if (!argv) {
		close(fd);
		return 1;
	}
	const char *base = strrchr(arg_run, '/');
	argv[0] = (char *)(base ? base + 1 : arg_run);
	for (int i = 0; i < arg_run_argc; i++)
		argv[i + 1] = arg_run_argv[i];
	int r = runtime_start(arg_procs, 0);
	if (r < 0) {
		close(fd);
		fprintf(stderr, "gortd: starting the runtime: %s\n", strerror(-r));
		return 1;
	}
	struct task_spec spec = TASK_SPEC_INIT;
	spec.fd = fd;
	spec.argc = arg_run_argc + 1;
	spec.argv = argv;
	spec.stdin_fd = 0;
	spec.stdout_fd = 1;
	spec.stderr_fd = 2;
	spec.uid = getuid();
	struct task *t = NULL;
	char err[512] = "";
	r = task_start(&spec, &t, err, sizeof err);
	close(fd);
	int code = 1;
	if (r < 0)
		fprintf(stderr, "gortd: %s: %s\n", arg_run, err[0] ? err : strerror(-r));
	else if (task_wait(t, -1, &code) < 0)
		code = 1;
	task_unref(t);
	tasks_shutdown();
	runtime_stop();
	return code;
}
/* ==== end of --run ==== */

/* Without --foreground and outside systemd, gortd detaches: the parent exits
 * 0 once the child serves (1 if it fails first), the child loses its
 * controlling terminal. stderr stays where it was unless it is a terminal. */
static int daemonize(int *ret_ready_fd)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return log_error_errno(errno, "pipe2: %m");
	pid_t pid = fork();
	if (pid < 0)
		return log_error_errno(errno, "fork: %m");
	if (pid > 0) {
		close(p[1]);
		char c;
		ssize_t n;
		do
			n = read(p[0], &c, 1);
		while (n < 0 && errno == EINTR);
		_exit(n == 1 ? EXIT_SUCCESS : EXIT_FAILURE);
	}
	close(p[0]);
	if (setsid() < 0)
		return log_error_errno(errno, "setsid: %m");
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		if (isatty(STDERR_FILENO))
			dup2(null, STDERR_FILENO);
		close(null);
	}
	if (chdir("/") < 0)
		return log_error_errno(errno, "chdir /: %m");
	*ret_ready_fd = p[1];
	return 0;
}

static void raise_nofile(void)
{
	/* A thousand clients need a thousand fds; select() is never used. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max > (1u << 20) ? (1u << 20) : rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warning_errno(errno, "raise RLIMIT_NOFILE: %m");
	}
}

static int run_daemon(void)
{
	int fd = -1, ready_fd = -1, r;
	bool from_systemd = false;
	char path[108];
	const char *unlink_path = NULL;

	if (!arg_socket) {
		r = server_listen_systemd(&fd);
		if (r < 0)
			return r;
		from_systemd = r > 0;
		if (from_systemd)
			log_info("listening on the socket from systemd");
	}
	if (!from_systemd) {
		if (arg_socket) {
			if (strlen(arg_socket) >= sizeof path)
				return log_error_errno(ENAMETOOLONG, "--socket %s: %m", arg_socket);
			strcpy(path, arg_socket);
		} else if ((r = wire_default_socket(path, sizeof path)) < 0) {
			return log_error_errno(r, "no socket: pass --socket PATH or set XDG_RUNTIME_DIR");
		}
		r = server_listen_path(path, &fd);
		if (r < 0)
			return r;
		unlink_path = path;
		log_info("listening on %s", path);
	}

	if (!arg_foreground && !from_systemd && !getenv("NOTIFY_SOCKET") && !getenv("INVOCATION_ID")) {
		r = daemonize(&ready_fd);
		if (r < 0) {
			close(fd);
			return r;
		}
	}

	r = runtime_start(arg_procs, 0);
	if (r < 0) {
		close(fd);
		return log_error_errno(r, "starting the runtime: %m");
	}
	r = server_run(fd, unlink_path, ready_fd);
	runtime_stop();
	return r;
}

static int run(int argc, char **argv)
{
	int r = parse_argv(argc, argv);
	if (r <= 0)
		return r < 0 ? 2 : 0;
	if (arg_run)
		return run_task_file();

	const char *dbg = getenv("GORTD_DEBUG");
	if (dbg && *dbg == '1')
		log_max_level = LOG_DEBUG;
	/* A task writing to a client that went away gets EPIPE, not the daemon's
	 * death. The signals the server takes through its signalfd are blocked
	 * before any thread exists, so every thread inherits the mask. */
	signal(SIGPIPE, SIG_IGN);
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	raise_nofile();
	r = run_daemon();
	return r < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	return run(argc, argv);
}
