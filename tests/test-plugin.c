/* tests/test-plugin.c: check suite for runtime/plugin.c: loading and its rejections, hooks seeing a known program's events, ticks, slow hooks, symbols for tasks and unload refusals. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>

#include "testlib.h"

#include "gort_plugin.h"
#include "module.h"
#include "task.h"

static char fixdir[PATH_MAX - 256];

static void setup(void)
{
	char exe[PATH_MAX - 512];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	ck_assert_int_gt(n, 0);
	exe[n] = '\0';
	snprintf(fixdir, sizeof fixdir, "%s/fixtures", dirname(exe));
	signal(SIGPIPE, SIG_IGN);
	plugin_tick_ns = 20 * 1000000;
	assert_ok(runtime_start(2, 0));
}

static void teardown(void)
{
	tasks_shutdown();
	runtime_stop();
}

static int fix_open(const char *name)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", fixdir, name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	return fd;
}

static int load(const char *fix, char *name, size_t namelen, char *err, size_t errlen)
{
	int fd = fix_open(fix);
	int r = plugin_load(fd, name, namelen, err, errlen);
	close(fd);
	return r;
}

static void load_ok(const char *fix, const char *want_name)
{
	char name[64], err[256];
	int r = load(fix, name, sizeof name, err, sizeof err);
	ck_assert_msg(r == 0, "plugin_load %s: %s (%s)", fix, strerror(-r), err);
	ck_assert_str_eq(name, want_name);
}

/* Runs fixture fix with argv and output to /dev/null; returns its exit code and id. */
static int run(const char *fix, const char *const *argv, int64_t *ret_id)
{
	struct task_spec spec = TASK_SPEC_INIT;
	spec.fd = fix_open(fix);
	while (argv && argv[spec.argc])
		spec.argc++;
	spec.argv = (char **)argv;
	spec.stdout_fd = spec.stderr_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	struct task *t;
	char err[256];
	int r = task_start(&spec, &t, err, sizeof err);
	ck_assert_msg(r == 0, "task_start %s: %s", fix, err);
	close(spec.fd);
	close(spec.stdout_fd);
	int code;
	assert_ok(task_wait(t, 60LL * 1000000000, &code));
	if (ret_id)
		*ret_id = task_id(t);
	task_unref(t);
	return code;
}

/* Waits until cond() holds, polling (hooks run on their own threads). */
#define EVENTUALLY(cond)                                                                     \
	do {                                                                                 \
		int _k;                                                                      \
		for (_k = 0; _k < 20000 && !(cond); _k++)                                    \
			usleep(1000);                                                        \
		ck_assert_msg(cond, "never: %s", #cond);                                     \
	} while (0)

static int64_t (*counter_events)(int64_t task, int kind);
static int (*counter_exit)(int64_t task, int *status);
static const char *(*counter_name)(int64_t task);

static void bind_counter(void)
{
	counter_events = (int64_t (*)(int64_t, int))gort_plugin_sym("counter", "counter_events");
	counter_exit = (int (*)(int64_t, int *))gort_plugin_sym("counter", "counter_exit");
	counter_name = (const char *(*)(int64_t))gort_plugin_sym("counter", "counter_name");
	ck_assert(counter_events && counter_exit && counter_name);
}

/* The hooks see a known program: a task, its main goroutine and 8 workers
 * created and ended, its exit code. */
START_TEST(test_hooks_see_a_known_program)
{
	load_ok("plugin_counter.so", "counter");
	bind_counter();
	int64_t id;
	ck_assert_int_eq(run("task_compute.so", (const char *[]){ "compute", "20000", NULL }, &id), 0);
	EVENTUALLY(counter_events(id, GORT_EV_TASK_EXIT) == 1);
	ck_assert_int_eq(counter_events(id, GORT_EV_TASK_START), 1);
	ck_assert_int_eq(counter_events(id, GORT_EV_GO_CREATE), 9);
	ck_assert_int_eq(counter_events(id, GORT_EV_GO_END), 9);
	ck_assert_str_eq(counter_name(id), "compute");
	int status;
	ck_assert_int_eq(counter_exit(id, &status), 0);
	ck_assert_int_eq(status, TASK_EXITED);
	/* a panicking one: the exit event says so */
	ck_assert_int_eq(run("task_panic.so", (const char *[]){ "p", "panic", NULL }, &id), 2);
	EVENTUALLY(counter_events(id, GORT_EV_TASK_EXIT) == 1);
	ck_assert_int_eq(counter_exit(id, &status), 2);
	ck_assert_int_eq(status, TASK_PANICKED);
	struct plugin_info *v;
	size_t n;
	assert_ok(plugin_list(&v, &n));
	ck_assert_int_eq(n, 1);
	ck_assert_str_eq(v[0].name, "counter");
	ck_assert_str_eq(v[0].version, "1.0");
	ck_assert_int_ge(v[0].events, 2 + 9 + 9 + 3);
	ck_assert_int_eq(v[0].dropped, 0);
	free(v);
	assert_ok(plugin_unload("counter"));
	assert_ok(plugin_list(&v, &n));
	ck_assert_int_eq(n, 0);
	free(v);
	ck_assert_int_eq(module_count(), 0);
}
END_TEST

/* The hooks see the scheduler's events of a known program: main and two
 * workers passing six values over an unbuffered channel, where every transfer
 * parks one side and unblocks it. */
START_TEST(test_hooks_see_scheduling_events)
{
	load_ok("plugin_counter.so", "counter");
	bind_counter();
	int64_t id;
	ck_assert_int_eq(run("task_trace.so", (const char *[]){ "tracer", "2", "3", NULL }, &id), 0);
	EVENTUALLY(counter_events(id, GORT_EV_TASK_EXIT) == 1);
	ck_assert_int_eq(counter_events(id, GORT_EV_TASK_START), 1);
	ck_assert_int_eq(counter_events(id, GORT_EV_GO_CREATE), 3);
	ck_assert_int_eq(counter_events(id, GORT_EV_GO_END), 3);
	ck_assert_int_ge(counter_events(id, GORT_EV_GO_UNBLOCK), 6);
	ck_assert_int_ge(counter_events(id, GORT_EV_GO_STOP), 6);
	/* every goroutine starts once, and again after each unblock */
	ck_assert_int_ge(counter_events(id, GORT_EV_GO_START), 3 + counter_events(id, GORT_EV_GO_UNBLOCK));
	ck_assert_int_eq(counter_events(id, GORT_EV_PROC_START), 0); /* not a task's event */
	ck_assert_str_eq(counter_name(id), "tracer");
	assert_ok(plugin_unload("counter"));
}
END_TEST

START_TEST(test_ticks)
{
	load_ok("plugin_counter.so", "counter");
	int64_t (*ticks)(void) = (int64_t (*)(void))gort_plugin_sym("counter", "counter_ticks");
	int64_t (*procs)(void) = (int64_t (*)(void))gort_plugin_sym("counter", "counter_gomaxprocs");
	ck_assert(ticks && procs);
	EVENTUALLY(ticks() >= 3);
	ck_assert_int_eq(procs(), 2);
	assert_ok(plugin_unload("counter"));
}
END_TEST

START_TEST(test_load_rejections)
{
	char name[64] = "untouched", err[256];
	ck_assert_int_eq(load("plugin_refuse.so", name, sizeof name, err, sizeof err), -ECANCELED);
	ck_assert_msg(strstr(err, "refused to load (init returned 7)"), "%s", err);
	ck_assert_int_eq(load("plugin_badabi.so", name, sizeof name, err, sizeof err), -ENOEXEC);
	ck_assert_msg(strstr(err, "plugin ABI 99, this runtime speaks ABI 1"), "%s", err);
	ck_assert_int_eq(load("plugin_noname.so", name, sizeof name, err, sizeof err), -ENOEXEC);
	ck_assert_msg(strstr(err, "no valid name"), "%s", err);
	ck_assert_int_eq(load("task_hello.so", name, sizeof name, err, sizeof err), -ENOEXEC);
	ck_assert_msg(strstr(err, "no gort_plugin"), "%s", err);
	ck_assert_int_eq(load("exe_pie", name, sizeof name, err, sizeof err), -ENOEXEC);
	ck_assert_msg(strstr(err, "position-independent executable (build the plugin"), "%s", err);
	ck_assert_int_eq(plugin_load(-1, name, sizeof name, err, sizeof err), -EBADF);
	ck_assert_str_eq(name, "untouched");
	load_ok("plugin_counter.so", "counter");
	ck_assert_int_eq(load("plugin_counter.so", name, sizeof name, err, sizeof err), -EEXIST);
	ck_assert_msg(strstr(err, "already loaded"), "%s", err);
	ck_assert_int_eq(plugin_unload("nope"), -ENOENT);
	ck_assert_int_eq(plugin_unload(NULL), -ENOENT);
	assert_ok(plugin_unload("counter"));
	ck_assert_int_eq(plugin_unload("counter"), -ENOENT);
	ck_assert_int_eq(module_count(), 0);
	errno = 0;
	ck_assert_ptr_null(gort_plugin_sym("counter", "counter_bump"));
	ck_assert_int_eq(errno, ENOENT);
}
END_TEST

/* A task holding a symbol keeps the plugin: unload is refused until it ends. */
START_TEST(test_unload_refused_while_held)
{
	load_ok("plugin_counter.so", "counter");
	struct task_spec spec = TASK_SPEC_INIT;
	spec.fd = fix_open("task_plugin_user.so");
	spec.argc = 2;
	spec.argv = (char *[]){ "user", "300", NULL };
	struct task *t;
	char err[256];
	assert_ok(task_start(&spec, &t, err, sizeof err));
	close(spec.fd);
	struct plugin_info *v;
	size_t n;
	for (;;) {
		assert_ok(plugin_list(&v, &n));
		int64_t holders = v[0].holders;
		free(v);
		if (holders == 1)
			break;
		ck_assert_int_eq(task_wait(t, 1000000, NULL), -ETIMEDOUT);
	}
	ck_assert_int_eq(plugin_unload("counter"), -EBUSY);
	int code;
	assert_ok(task_wait(t, 30LL * 1000000000, &code));
	ck_assert_int_eq(code, 1); /* its bump was the first */
	task_unref(t);
	assert_ok(plugin_list(&v, &n));
	ck_assert_int_eq(v[0].holders, 0);
	free(v);
	assert_ok(plugin_unload("counter"));
	/* and without the plugin, the task's lookups fail with ENOENT */
	ck_assert_int_eq(run("task_plugin_user.so", (const char *[]){ "user", NULL }, NULL), 100 + ENOENT);
}
END_TEST

/* A slow hook costs only its own plugin: tasks run at full speed, another
 * plugin sees every event, the slow one drops what its queue cannot hold. */
START_TEST(test_slow_hook_costs_only_itself)
{
	plugin_queue_size = 256;
	load_ok("plugin_slow.so", "slow");
	plugin_queue_size = 1 << 16;
	load_ok("plugin_counter.so", "counter");
	bind_counter();
	int64_t start = gort_now();
	int64_t id = 0;
	/* 5000 goroutines: 10,002 events, 200 s of the slow hook's time, and
	 * far more than its queue holds */
	char num[32];
	snprintf(num, sizeof num, "%ld", scaled(5000));
	ck_assert_int_eq(run("task_limits.so", (const char *[]){ "l", num, NULL }, NULL), 0);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(run("task_compute.so", (const char *[]){ "c", "1000", NULL }, &id), 0);
	int64_t took = gort_now() - start;
	ck_assert_msg(took < 20LL * 1000000000, "tasks took %lld ms", (long long)(took / 1000000));
	EVENTUALLY(counter_events(id, GORT_EV_TASK_EXIT) == 1);
	ck_assert_int_eq(counter_events(id, GORT_EV_GO_END), 9);
	struct plugin_info *v;
	size_t n;
	assert_ok(plugin_list(&v, &n));
	ck_assert_int_eq(n, 2);
	ck_assert_str_eq(v[0].name, "slow");
	ck_assert_msg(v[0].dropped > 0 && v[1].dropped == 0, "dropped: slow %llu, counter %llu",
		      (unsigned long long)v[0].dropped, (unsigned long long)v[1].dropped);
	free(v);
	/* unloading does not wait for the backlog */
	start = gort_now();
	assert_ok(plugin_unload("slow"));
	ck_assert_int_lt(gort_now() - start, 5LL * 1000000000);
	assert_ok(plugin_unload("counter"));
}
END_TEST

static Suite *plugin_suite(void)
{
	Suite *s = suite_create("plugin");
	TCase *tc = tcase_create("plugin");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_hooks_see_a_known_program);
	tcase_add_test(tc, test_hooks_see_scheduling_events);
	tcase_add_test(tc, test_ticks);
	tcase_add_test(tc, test_load_rejections);
	tcase_add_test(tc, test_unload_refused_while_held);
	tcase_add_test(tc, test_slow_hook_costs_only_itself);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_main(plugin_suite());
}
