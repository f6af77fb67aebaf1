/* tests/test-task.c: check suite for runtime/task.c and runtime/module.c: loading, init order, the end of a task, panics, faults, kill, limits, stdio and logs. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "testlib.h"

#include "module.h"
#include "stats.h"
#include "task.h"

static char fixdir[PATH_MAX - 256];

/* Under valgrind (scripts/run-tests.sh sets GORT_VALGRIND), a fault made on
 * purpose (a write through NULL, past the stack) is also a memcheck error that
 * fails the run: those cases are left to the other builds there. */
static bool under_valgrind(void)
{
	return getenv("GORT_VALGRIND") != NULL;
}

/* A goroutine count: scaled, and under ThreadSanitizer, where every goroutine
 * is a fiber and fibers are capped at ~8k, at most 4000. */
static long gcount(long n)
{
	n = scaled(n);
#if defined(__SANITIZE_THREAD__)
	if (n > 4000)
		n = 4000;
#endif
	return n;
}

static void setup(void)
{
	char exe[PATH_MAX - 512];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	ck_assert_int_gt(n, 0);
	exe[n] = '\0';
	snprintf(fixdir, sizeof fixdir, "%s/fixtures", dirname(exe));
	signal(SIGPIPE, SIG_IGN);
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

/* The whole of a fixture, for patched copies. */
static char *fix_read(const char *name, size_t *ret_n)
{
	int fd = fix_open(name);
	struct stat st;
	ck_assert_int_eq(fstat(fd, &st), 0);
	char *buf = malloc((size_t)st.st_size);
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	*ret_n = (size_t)st.st_size;
	return buf;
}

static int mem_fd(const void *data, size_t n)
{
	int fd = memfd_create("bin", MFD_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, n), (ssize_t)n);
	return fd;
}

/* What a file descriptor (a memfd the task wrote to) holds, NUL-terminated. */
static char *fd_text(int fd)
{
	struct stat st;
	ck_assert_int_eq(fstat(fd, &st), 0);
	char *buf = calloc(1, (size_t)st.st_size + 1);
	ck_assert_ptr_nonnull(buf);
	if (st.st_size)
		ck_assert_int_eq(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
	return buf;
}

struct run {
	struct task *t;
	int out, err;
	int code;
	struct task_info info;
	char *outs, *errs;
};

/* Starts fixture fix with argv (NULL-terminated) and stdout/stderr to memfds. */
static void start_task(struct run *r, const char *fix, const char *const *argv, size_t stack, int maxg)
{
	memset(r, 0, sizeof(*r));
	struct task_spec spec = TASK_SPEC_INIT;
	spec.fd = fix_open(fix);
	while (argv && argv[spec.argc])
		spec.argc++;
	spec.argv = (char **)argv;
	r->out = memfd_create("out", MFD_CLOEXEC);
	r->err = memfd_create("err", MFD_CLOEXEC);
	spec.stdout_fd = r->out;
	spec.stderr_fd = r->err;
	spec.stack_size = stack;
	spec.max_goroutines = maxg;
	char err[256];
	int rc = task_start(&spec, &r->t, err, sizeof err);
	ck_assert_msg(rc == 0, "task_start %s: %s (%s)", fix, strerror(-rc), err);
	close(spec.fd);
}

/* Waits (up to secs) for r's task and collects its code, info and output. */
static void finish_task(struct run *r, int secs)
{
	int rc = task_wait(r->t, (int64_t)secs * 1000000000, &r->code);
	ck_assert_msg(rc == 0, "task %lld did not end within %d s", (long long)task_id(r->t), secs);
	task_get_info(r->t, &r->info);
	r->outs = fd_text(r->out);
	r->errs = fd_text(r->err);
	close(r->out);
	close(r->err);
	task_unref(r->t);
	r->t = NULL;
}

/* Waits until r's task has printed something (it got going). */
static void wait_output(struct run *r)
{
	for (int k = 0; k < 10000; k++) {
		struct stat st;
		fstat(r->out, &st);
		if (st.st_size > 0)
			return;
		usleep(1000);
	}
	ck_abort_msg("task %lld printed nothing", (long long)task_id(r->t));
}

static void run_done(struct run *r)
{
	free(r->outs);
	free(r->errs);
}

/* Goroutines that are not dead and belong to t (compared, not dereferenced). */
static size_t goroutines_of(struct task *t)
{
	struct ginfo *v;
	size_t n, k = 0;
	assert_ok(goroutines_snapshot(&v, &n));
	for (size_t i = 0; i < n; i++)
		k += v[i].task == t;
	free(v);
	return k;
}

/* ---- loading and running ---- */

START_TEST(test_hello)
{
	struct run r;
	start_task(&r, "task_hello.so", (const char *[]){ "hello", "42", "x", NULL }, 0, 0);
	finish_task(&r, 30);
	ck_assert_int_eq(r.code, 42);
	ck_assert_int_eq(r.info.status, TASK_EXITED);
	ck_assert_str_eq(r.info.name, "hello");
	ck_assert_msg(strcmp(r.outs, "hello from a task: hello 42 x\n") == 0, "stdout: %s", r.outs);
	ck_assert_str_eq(r.errs, "to stderr\n");
	ck_assert_int_eq(module_count(), 0);
	run_done(&r);
}
END_TEST

START_TEST(test_init_order)
{
	struct run r;
	start_task(&r, "task_init.so", NULL, 0, 0);
	finish_task(&r, 30);
	ck_assert_msg(r.code == 0, "init order: %s", r.outs);
	ck_assert_str_eq(r.outs, "a1 a2 a3 b1 b2 \n");
	run_done(&r);
}
END_TEST

/* Two instances of one binary at once, and two binaries with one DT_SONAME. */
START_TEST(test_independent_instances)
{
	const char *fixes[][2] = { { "task_globals.so", "task_globals.so" },
				   { "task_soname_a.so", "task_soname_b.so" } };
	for (int k = 0; k < 2; k++) {
		struct run a, b;
		start_task(&a, fixes[k][0], (const char *[]){ "a", "11", NULL }, 0, 0);
		start_task(&b, fixes[k][1], (const char *[]){ "b", "22", NULL }, 0, 0);
		finish_task(&a, 30);
		finish_task(&b, 30);
		ck_assert_msg(a.code == 11 && b.code == 22, "%s/%s: codes %d %d (99: a global was shared)",
			      fixes[k][0], fixes[k][1], a.code, b.code);
		run_done(&a);
		run_done(&b);
	}
	/* the same fd twice: each load reads it from the start */
	int fd = fix_open("task_globals.so");
	struct task *t1, *t2;
	struct task_spec spec = TASK_SPEC_INIT;
	spec.fd = fd;
	spec.argc = 2;
	spec.argv = (char *[]){ "g", "5", NULL };
	char err[256];
	assert_ok(task_start(&spec, &t1, err, sizeof err));
	spec.argv = (char *[]){ "g", "6", NULL };
	assert_ok(task_start(&spec, &t2, err, sizeof err));
	int c1, c2;
	assert_ok(task_wait(t1, 30000000000LL, &c1));
	assert_ok(task_wait(t2, 30000000000LL, &c2));
	ck_assert_int_eq(c1, 5);
	ck_assert_int_eq(c2, 6);
	task_unref(t1);
	task_unref(t2);
	close(fd);
}
END_TEST

/* Loads fd (consumed) and expects the rejection r with msg in the error text. */
static void expect_reject(int fd, int r, const char *msg)
{
	struct task_spec spec = TASK_SPEC_INIT;
	spec.fd = fd;
	struct task *t = NULL;
	char err[256] = "";
	int rc = task_start(&spec, &t, err, sizeof err);
	ck_assert_msg(rc == r && strstr(err, msg), "want %d \"%s\", got %d \"%s\"", r, msg, rc, err);
	ck_assert_ptr_null(t);
	if (fd >= 0)
		close(fd);
}

static int patched(const char *fix, size_t off, const void *bytes, size_t len)
{
	size_t n;
	char *img = fix_read(fix, &n);
	memcpy(img + off, bytes, len);
	int fd = mem_fd(img, n);
	free(img);
	return fd;
}

START_TEST(test_load_errors)
{
	int fds = test_fd_count();
	expect_reject(mem_fd("#!/bin/sh\necho hi\n", 18), -ENOEXEC, "not an ELF file");
	expect_reject(mem_fd("", 0), -ENOEXEC, "not an ELF file");
	size_t n;
	char *img = fix_read("task_hello.so", &n);
	expect_reject(mem_fd(img, 64), -ENOEXEC, "corrupt ELF file");
	expect_reject(mem_fd(img, 20), -ENOEXEC, "truncated ELF header");
	free(img);
	expect_reject(patched("task_hello.so", EI_CLASS, "\1", 1), -ENOEXEC, "wrong ELF class: 32-bit");
	expect_reject(patched("task_hello.so", EI_DATA, "\2", 1), -ENOEXEC, "wrong byte order");
#if defined(__x86_64__)
	uint16_t other = EM_AARCH64;
	const char *othername = "built for aarch64, this host is x86_64";
#else
	uint16_t other = EM_X86_64;
	const char *othername = "built for x86_64, this host is aarch64";
#endif
	expect_reject(patched("task_hello.so", offsetof(Elf64_Ehdr, e_machine), &other, 2), -ENOEXEC, othername);
	expect_reject(fix_open("exe_nopie"), -ENOEXEC, "not a shared object: an executable");
	expect_reject(fix_open("exe_pie"), -ENOEXEC, "position-independent executable");
	expect_reject(fix_open("task_reloc.o"), -ENOEXEC, "relocatable object");
	expect_reject(fix_open("task_execstack.so"), -ENOEXEC, "needs an executable stack");
	expect_reject(fix_open("task_nomain.so"), -ENOEXEC, "no gort_main");
	expect_reject(fix_open("task_undef.so"), -ENOEXEC, "undefined symbol: gort_no_such_function_anywhere");
	/* without section headers the entry is looked up after dlopen instead */
	Elf64_Ehdr noshdr = { 0 };
	img = fix_read("task_nomain.so", &n);
	memcpy(&noshdr, img, sizeof noshdr);
	free(img);
	noshdr.e_shoff = 0;
	noshdr.e_shnum = 0;
	noshdr.e_shstrndx = 0;
	expect_reject(patched("task_nomain.so", 0, &noshdr, sizeof noshdr), -ENOEXEC, "no gort_main");
	expect_reject(-1, -EBADF, "bad file descriptor");
	expect_reject(open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC), -EISDIR, "reading the binary");
	struct task_spec spec = TASK_SPEC_INIT;
	spec.fd = 0;
	spec.argc = -1;
	struct task *t = NULL;
	char err[128];
	ck_assert_int_eq(task_start(&spec, &t, err, sizeof err), -EINVAL);
	ck_assert_int_eq(task_start(NULL, &t, err, sizeof err), -EINVAL);
	ck_assert_int_eq(module_count(), 0);
	ck_assert_int_eq(test_fd_count(), fds);
}
END_TEST

/* The loads that must succeed in unusual ways: no section headers (no init
 * records either), a pipe instead of a file. */
START_TEST(test_load_unusual)
{
	size_t n;
	char *img = fix_read("task_hello.so", &n);
	Elf64_Ehdr eh;
	memcpy(&eh, img, sizeof eh);
	eh.e_shoff = 0;
	eh.e_shnum = 0;
	eh.e_shstrndx = 0;
	memcpy(img, &eh, sizeof eh);
	int fds[2];
	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	ck_assert_int_eq(fcntl(fds[1], F_SETPIPE_SZ, 1 << 20) >= (int)n, 1);
	ck_assert_int_eq(write(fds[1], img, n), (ssize_t)n);
	close(fds[1]);
	free(img);
	struct task_spec spec = TASK_SPEC_INIT;
	spec.fd = fds[0];
	spec.argc = 2;
	spec.argv = (char *[]){ "p", "9", NULL };
	struct task *t;
	char err[256];
	int rc = task_start(&spec, &t, err, sizeof err);
	ck_assert_msg(rc == 0, "%s", err);
	close(fds[0]);
	int code;
	assert_ok(task_wait(t, 30000000000LL, &code));
	ck_assert_int_eq(code, 9);
	task_unref(t);
}
END_TEST

/* ---- the end of a task ---- */

START_TEST(test_main_returns_while_parked)
{
	long n = gcount(10000);
	char num[32];
	snprintf(num, sizeof num, "%ld", n);
	struct run r;
	start_task(&r, "task_park.so", (const char *[]){ "park", num, NULL }, 0, 0);
	struct task *t = task_ref(r.t);
	finish_task(&r, 60);
	ck_assert_int_eq(r.code, 3);
	ck_assert_int_eq(r.info.status, TASK_EXITED);
	char want[64];
	snprintf(want, sizeof want, "parked %ld\n", n);
	ck_assert_msg(strcmp(r.outs, want) == 0, "stdout: %.300s", r.outs);
	ck_assert_int_eq(r.info.goroutines, 0);
	ck_assert_int_eq(r.info.goroutines_created, n + 1);
	ck_assert_int_eq(goroutines_of(t), 0);
	ck_assert_int_eq(module_count(), 0);
	task_unref(t);
	run_done(&r);
}
END_TEST

START_TEST(test_main_returns_while_spinning)
{
	struct run r;
	start_task(&r, "task_spin.so", (const char *[]){ "spin", "4", NULL }, 0, 0);
	finish_task(&r, 30);
	ck_assert_int_eq(r.code, 4);
	ck_assert_str_eq(r.outs, "spinning 4\n");
	ck_assert_int_eq(module_count(), 0);
	run_done(&r);
}
END_TEST

START_TEST(test_main_returns_while_accepting)
{
	long n = gcount(10000);
	char num[32];
	snprintf(num, sizeof num, "%ld", n);
	struct run r;
	start_task(&r, "task_accept.so", (const char *[]){ "acc", num, NULL }, 0, 0);
	finish_task(&r, 60);
	ck_assert_msg(r.code == 5, "code %d, stderr %s", r.code, r.errs);
	char want[64];
	snprintf(want, sizeof want, "accepting %ld\n", n);
	ck_assert_msg(strcmp(r.outs, want) == 0, "stdout: %.300s", r.outs);
	run_done(&r);
}
END_TEST

START_TEST(test_kill)
{
	struct {
		const char *fix;
		const char *argv[4];
	} cases[] = {
		{ "task_spin.so", { "spin", "3", "block", NULL } },
		{ "task_park.so", { "park", "900", "stay", NULL } },
		{ "task_accept.so", { "acc", "50", "stay", NULL } },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct run r;
		start_task(&r, cases[i].fix, cases[i].argv, 0, 0);
		wait_output(&r);
		ck_assert_int_eq(task_wait(r.t, 0, NULL), -ETIMEDOUT);
		assert_ok(task_kill(r.t));
		ck_assert_int_eq(task_kill(r.t), -EALREADY);
		finish_task(&r, 30);
		ck_assert_msg(r.info.status == TASK_KILLED && r.code == TASK_KILLED_CODE, "%s: status %s code %d",
			      cases[i].fix, task_status_string(r.info.status), r.code);
		ck_assert_msg(strstr(r.outs, "woken") == NULL, "%s: %s", cases[i].fix, r.outs);
		run_done(&r);
	}
	ck_assert_int_eq(module_count(), 0);
}
END_TEST

/* A task killed while its goroutines wait on a mutex or a wait group in memory
 * that outlives it (here the host's): the object is left as if they had never
 * waited -- no waiter count, no release left behind for a later waiter to take
 * (a reused wait group panicked "reused before previous Wait has returned"; a
 * mutex kept phantom waiters and a stray count, a false handoff in starvation
 * mode) -- and it keeps working. */
static gort_mutex shared_mu = GORT_MUTEX_INIT;
static gort_wg shared_wg = GORT_WG_INIT;
static _Atomic long shared_inside, shared_overlap, shared_rounds;

static void shared_locker(void *arg)
{
	(void)arg;
	for (int i = 0; i < 200; i++) {
		gort_mutex_lock(&shared_mu);
		if (atomic_fetch_add(&shared_inside, 1) != 0)
			atomic_fetch_add(&shared_overlap, 1);
		if (i % 50 == 0)
			usleep(1500); /* over 1 ms with waiters: starvation mode */
		atomic_fetch_sub(&shared_inside, 1);
		gort_mutex_unlock(&shared_mu);
		atomic_fetch_add(&shared_rounds, 1); /* after the unlock: the host reads the state next */
	}
}

static void kill_waiters_on(const char *kind, void *obj, int n)
{
	char addr[32], count[16];
	snprintf(addr, sizeof addr, "%lx", (unsigned long)(uintptr_t)obj);
	snprintf(count, sizeof count, "%d", n);
	const char *argv[] = { "syncwait", kind, addr, count, NULL };
	struct run r;
	start_task(&r, "task_syncwait.so", argv, 0, 0);
	wait_output(&r);
	assert_ok(task_kill(r.t));
	finish_task(&r, 30);
	ck_assert_msg(r.info.status == TASK_KILLED, "%s: status %s", kind, task_status_string(r.info.status));
	ck_assert_msg(strstr(r.outs, "woken") == NULL, "%s: %s", kind, r.outs);
	run_done(&r);
}

START_TEST(test_kill_waiters_on_shared_mutex_and_wg)
{
	/* the mutex: held by the host while 100 of the task's goroutines wait (a row of ghosts to relay) */
	gort_mutex_lock(&shared_mu);
	kill_waiters_on("mutex", &shared_mu, 100);
	gort_mutex_unlock(&shared_mu);
	ck_assert_msg(__atomic_load_n(&shared_mu.state, __ATOMIC_ACQUIRE) == 0 &&
			      __atomic_load_n(&shared_mu.sema, __ATOMIC_ACQUIRE) == 0,
		      "mutex state %#x sema %u", shared_mu.state, shared_mu.sema);
	/* and it still excludes, through normal and starvation mode */
	int n = 4, r;
	for (int i = 0; i < n; i++)
		ck_assert_ptr_nonnull(newproc(shared_locker, NULL, NULL, 0, &r));
	for (int k = 0; k < 60000 && atomic_load(&shared_rounds) < n * 200; k++)
		usleep(1000);
	ck_assert_int_eq(atomic_load(&shared_rounds), n * 200);
	ck_assert_int_eq(atomic_load(&shared_overlap), 0);
	ck_assert_msg(__atomic_load_n(&shared_mu.state, __ATOMIC_ACQUIRE) == 0 &&
			      __atomic_load_n(&shared_mu.sema, __ATOMIC_ACQUIRE) == 0,
		      "mutex state %#x sema %u", shared_mu.state, shared_mu.sema);

	/* the wait group: its counter held by the host while 5 goroutines wait */
	gort_wg_add(&shared_wg, 1);
	kill_waiters_on("wg", &shared_wg, 5);
	gort_wg_done(&shared_wg);
	ck_assert_msg(__atomic_load_n(&shared_wg.state, __ATOMIC_ACQUIRE) == 0 &&
			      __atomic_load_n(&shared_wg.sema, __ATOMIC_ACQUIRE) == 0,
		      "wg state %#llx sema %u", (unsigned long long)shared_wg.state, shared_wg.sema);

	/* but a wait on the task's own object leaves nothing behind: the next
	 * instance, likely loaded at the same address, waits and is released
	 * on its own wait group (a waiter left in the table for the first
	 * instance's took that release: the task never ended) */
	kill_waiters_on("ownwg", NULL, 5);
	const char *argv[] = { "syncwait", "ownwg-release", "0", "0", NULL };
	struct run next;
	start_task(&next, "task_syncwait.so", argv, 0, 0);
	finish_task(&next, 30);
	ck_assert_msg(next.code == 0 && strstr(next.outs, "released"), "code %d, output %s", next.code, next.outs);
	run_done(&next);
}
END_TEST

/* Every loaded module's code is registered for asynchronous preemption, however
 * many are loaded: with more than 64 tasks loaded at once (the old table's
 * size), a task spinning in pure loops is still stopped and killed. */
START_TEST(test_kill_spinning_with_many_modules_loaded)
{
	enum { NPARKED = 70 };
	static struct run parked[NPARKED];
	for (int i = 0; i < NPARKED; i++)
		start_task(&parked[i], "task_park.so", (const char *[]){ "park", "1", "stay", NULL }, 0, 0);
	ck_assert_int_ge(module_count(), NPARKED);
	struct run r;
	start_task(&r, "task_spin.so", (const char *[]){ "spin", "2", "block", NULL }, 0, 0);
	wait_output(&r);
	assert_ok(task_kill(r.t));
	finish_task(&r, 60);
	ck_assert_msg(r.info.status == TASK_KILLED && r.code == TASK_KILLED_CODE, "status %s code %d",
		      task_status_string(r.info.status), r.code);
	run_done(&r);
	for (int i = 0; i < NPARKED; i++) {
		assert_ok(task_kill(parked[i].t));
		finish_task(&parked[i], 60);
		ck_assert_int_eq(parked[i].code, TASK_KILLED_CODE);
		run_done(&parked[i]);
	}
	ck_assert_int_eq(module_count(), 0);
}
END_TEST

START_TEST(test_task_exit_from_goroutine)
{
	struct run r;
	start_task(&r, "task_panic.so", (const char *[]){ "x", "exit", NULL }, 0, 0);
	finish_task(&r, 30);
	ck_assert_int_eq(r.code, 5);
	ck_assert_int_eq(r.info.status, TASK_EXITED);
	run_done(&r);
}
END_TEST

/* gort_exit on the main goroutine: the task goes on with the others (Go's
 * Goexit in main), and when none is left it is a deadlock. */
START_TEST(test_main_goexit)
{
	struct run r;
	start_task(&r, "task_panic.so", (const char *[]){ "x", "goexit-live", NULL }, 0, 0);
	finish_task(&r, 30);
	ck_assert_int_eq(r.code, 6);
	ck_assert_int_eq(r.info.status, TASK_EXITED);
	run_done(&r);
	start_task(&r, "task_panic.so", (const char *[]){ "x", "goexit", NULL }, 0, 0);
	finish_task(&r, 30);
	ck_assert_int_eq(r.code, 2);
	ck_assert_int_eq(r.info.status, TASK_PANICKED);
	ck_assert_str_eq(r.errs, "fatal error: no goroutines (main called gort_exit) - deadlock!\n");
	ck_assert_str_eq(r.info.panic, "fatal error: no goroutines (main called gort_exit) - deadlock!");
	run_done(&r);
}
END_TEST

/* ---- panics and faults ---- */

START_TEST(test_panic)
{
	struct run r;
	start_task(&r, "task_panic.so", (const char *[]){ "pan", "panic", NULL }, 0, 0);
	finish_task(&r, 30);
	ck_assert_int_eq(r.code, 2);
	ck_assert_int_eq(r.info.status, TASK_PANICKED);
	ck_assert_str_eq(r.info.panic, "panic: boom 42");
	ck_assert_msg(strncmp(r.errs, "panic: boom 42\n\ngoroutine ", 26) == 0, "stderr: %s", r.errs);
	ck_assert_msg(strstr(r.errs, "[running, task ") && strstr(r.errs, "gort_main+0x") &&
			      strstr(r.errs, "(pan)"),
		      "trace: %s", r.errs);
	/* the runtime's own frames by name (its hidden functions too), down to goexit */
	ck_assert_msg(strstr(r.errs, "\ttask_main+0x") && strstr(r.errs, "\tgoexit+0x"), "trace: %s", r.errs);
	run_done(&r);
}
END_TEST

START_TEST(test_faults)
{
	struct {
		const char *mode, *want;
	} cases[] = {
		{ "segv", "panic: runtime error: invalid memory address or nil pointer dereference\n"
			  "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=" },
		{ "bus", "[signal SIGBUS: bus error" },
		{ "fpe", "panic: runtime error: integer divide by zero\n[signal SIGFPE" },
		{ "ill", "panic: runtime error: illegal instruction\n[signal SIGILL" },
		{ "overflow", "panic: runtime error: stack overflow" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		if (under_valgrind() && strcmp(cases[i].mode, "fpe") != 0 && strcmp(cases[i].mode, "ill") != 0)
			continue;
		struct run r;
		start_task(&r, "task_panic.so", (const char *[]){ "f", cases[i].mode, NULL }, 0, 0);
		finish_task(&r, 30);
		ck_assert_msg(r.code == 2 && r.info.status == TASK_PANICKED, "%s: code %d status %s", cases[i].mode,
			      r.code, task_status_string(r.info.status));
		ck_assert_msg(strstr(r.errs, cases[i].want) && strstr(r.errs, "\ngoroutine "), "%s: stderr %s",
			      cases[i].mode, r.errs);
		/* the faulting pc named by the task's own symbol table: a static function */
		if (strcmp(cases[i].mode, "segv") == 0)
			ck_assert_msg(strstr(r.errs, "\tdo_segv+0x") && strstr(r.errs, "(f)"), "trace: %s", r.errs);
		run_done(&r);
	}
	ck_assert_int_eq(module_count(), 0);
}
END_TEST

/* One task segfaults again and again while another computes: the second one's
 * answer is right, and the process is fine. */
START_TEST(test_fault_isolation)
{
	struct run c;
	start_task(&c, "task_compute.so", (const char *[]){ "compute", "300000", NULL }, 0, 0);
	int faults = 0;
	while (task_wait(c.t, 0, NULL) == -ETIMEDOUT || faults < 5) {
		struct run f;
		const char *mode = faults % 2 && !under_valgrind() ? "segv" : "fpe";
		start_task(&f, "task_panic.so", (const char *[]){ "f", mode, NULL }, 0, 0);
		finish_task(&f, 30);
		ck_assert_int_eq(f.code, 2);
		run_done(&f);
		faults++;
	}
	finish_task(&c, 60);
	ck_assert_int_eq(c.code, 0);
	ck_assert_str_eq(c.outs, "primes below 300000: 25997\n");
	run_done(&c);
}
END_TEST

/* A panic racing main's return: whoever wins, a panic that starts is printed
 * whole, and the exit code says who won. */
START_TEST(test_panic_races_main)
{
	const char *whole = "panic: from a goroutine: the whole message, printed before the task ends, "
			    "0123456789abcdef\n\ngoroutine ";
	int panics = 0, n = (int)scaled(200);
	for (int i = 0; i < n; i++) {
		struct run r;
		start_task(&r, "task_panic.so", (const char *[]){ "race", "race", NULL }, 0, 0);
		finish_task(&r, 30);
		if (strstr(r.errs, "panic:")) {
			ck_assert_msg(strstr(r.errs, whole) && strstr(r.errs, "\n\n"), "cut: %s", r.errs);
			panics++;
		} else {
			ck_assert_int_eq(r.code, 0);
		}
		ck_assert_msg(r.code == 0 || (r.code == 2 && r.info.status == TASK_PANICKED), "code %d", r.code);
		run_done(&r);
	}
	/* main waits for a panic in progress (runningPanicDefers): most runs panic */
	ck_assert_msg(panics > 0, "no run printed its panic");
}
END_TEST

/* ---- resources ---- */

static long count_maps(void)
{
	return test_count_lines("/proc/self/maps");
}


START_TEST(test_many_tasks_leak_nothing)
{
	long n = scaled(10000);
#if defined(__SANITIZE_THREAD__)
	n /= 5; /* 10,000 dlopens under ThreadSanitizer take a minute */
#endif
	long fds0 = 0, maps0 = 0, rss0 = 0, threads0 = 0;
	for (long i = 0; i < n + 200; i++) {
		if (i == 200) {
			fds0 = test_fd_count();
			maps0 = count_maps();
			threads0 = test_thread_count();
			rss0 = test_rss_kib();
		}
		struct task_spec spec = TASK_SPEC_INIT;
		static int fd = -1;
		if (fd < 0)
			fd = fix_open("task_hello.so");
		spec.fd = fd;
		spec.argc = 2;
		spec.argv = (char *[]){ "many", "3", NULL };
		int out = -1;
		if (i % 2 == 0) /* half with own fds, half through the pump */
			spec.stdout_fd = spec.stderr_fd = out = open("/dev/null", O_WRONLY | O_CLOEXEC);
		struct task *t;
		char err[256];
		int rc = task_start(&spec, &t, err, sizeof err);
		ck_assert_msg(rc == 0, "task %ld: %s", i, err);
		if (out >= 0)
			close(out);
		int code;
		assert_ok(task_wait(t, 30000000000LL, &code));
		ck_assert_int_eq(code, 3);
		assert_ok(task_forget(t));
		task_unref(t);
	}
	long fds = test_fd_count(), maps = count_maps(), rss = test_rss_kib(), threads = test_thread_count();
	ck_assert_msg(fds == fds0, "fds %ld -> %ld", fds0, fds);
#if defined(__SANITIZE_THREAD__)
	const long slack = 128; /* ThreadSanitizer maps shadow for new fibers' stacks as it goes */
#else
	/* valgrind maps memory of its own as it loads objects: a test in a fresh
	 * child (make valgrind forks each) saw 103 -> 112 */
	const long slack = under_valgrind() ? 32 : 8;
#endif
	/* an M started meanwhile (the scheduler starts one when load delays the
	 * others; Ms are kept, as Go's) brings its stack and guard and may bring
	 * a malloc arena (two more): seen at load 8, 2 threads and 9 mappings */
	long grown = threads > threads0 ? threads - threads0 : 0;
	ck_assert_msg(maps <= maps0 + slack + 5 * grown, "mappings %ld -> %ld (threads %ld -> %ld)", maps0, maps, threads0, threads);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
	/* (the sanitizers keep freed memory in quarantine, and shadow: RSS grows
	 * there; valgrind's own memory grows with every object loaded, and its
	 * freed blocks wait in its own queue) */
	if (!under_valgrind())
		ck_assert_msg(rss <= rss0 + 8 * 1024, "rss %ld KiB -> %ld KiB", rss0, rss);
#else
	(void)rss;
	(void)rss0;
#endif
	ck_assert_int_eq(module_count(), 0);
}
END_TEST

START_TEST(test_goroutine_limit)
{
	struct run r;
	start_task(&r, "task_limits.so", NULL, 0, 100);
	finish_task(&r, 30);
	ck_assert_msg(strcmp(r.outs, "spawned 99 then Resource temporarily unavailable\n") == 0, "%s", r.outs);
	ck_assert_int_eq(r.info.max_goroutines, 100);
	run_done(&r);
}
END_TEST

START_TEST(test_stack_size)
{
	struct run r;
	/* ~150 KiB of frames: too deep for the default 64 KiB, fine on 256 KiB */
	start_task(&r, "task_panic.so", (const char *[]){ "deep", "deep", "150", NULL }, 256 * 1024, 0);
	finish_task(&r, 30);
	ck_assert_msg(r.code == 0, "code %d: %s", r.code, r.errs);
	ck_assert_int_eq(r.info.stack_size, 256 * 1024);
	run_done(&r);
	if (under_valgrind())
		return;
	start_task(&r, "task_panic.so", (const char *[]){ "deep", "deep", "150", NULL }, 0, 0);
	finish_task(&r, 30);
	ck_assert_int_eq(r.code, 2);
	ck_assert_ptr_nonnull(strstr(r.errs, "stack overflow"));
	run_done(&r);
}
END_TEST

/* ---- stdio and logs ---- */

START_TEST(test_default_output_to_log)
{
	int logfd = memfd_create("log", MFD_CLOEXEC);
	task_set_log_fd(logfd);
	struct task_spec spec = TASK_SPEC_INIT;
	spec.fd = fix_open("task_hello.so");
	spec.argc = 2;
	spec.argv = (char *[]){ "logged", "1", NULL };
	struct task *t;
	char err[256];
	assert_ok(task_start(&spec, &t, err, sizeof err));
	close(spec.fd);
	int code;
	assert_ok(task_wait(t, 30000000000LL, &code));
	ck_assert_int_eq(code, 1);
	/* task_wait returns once the pump has drained the task's pipe */
	char *log = fd_text(logfd);
	char want[128];
	snprintf(want, sizeof want, "<6>[task %lld logged] hello from a task: logged 1\n", (long long)task_id(t));
	ck_assert_msg(strstr(log, want), "log: %s", log);
	snprintf(want, sizeof want, "<6>[task %lld logged] to stderr\n", (long long)task_id(t));
	ck_assert_msg(strstr(log, want), "log: %s", log);
	char *buf;
	size_t len;
	uint64_t next;
	assert_ok(task_logs(t, 0, &buf, &len, &next));
	ck_assert_int_eq(len, next);
	ck_assert_msg(len == strlen("hello from a task: logged 1\nto stderr\n") &&
			      memcmp(buf, "hello from a task: logged 1\nto stderr\n", len) == 0,
		      "ring: %.*s", (int)len, buf);
	free(buf);
	free(log);
	task_unref(t);
	task_set_log_fd(2);
	close(logfd);
}
END_TEST

START_TEST(test_log_ring_keeps_last_64k)
{
	int logfd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	task_set_log_fd(logfd);
	struct task_spec spec = TASK_SPEC_INIT;
	spec.fd = fix_open("task_output.so");
	spec.argc = 2;
	spec.argv = (char *[]){ "out", "1000", NULL }; /* 100,000 bytes */
	struct task *t;
	char err[256];
	assert_ok(task_start(&spec, &t, err, sizeof err));
	close(spec.fd);
	assert_ok(task_wait(t, 30000000000LL, NULL));
	char *buf;
	size_t len;
	uint64_t next;
	assert_ok(task_logs(t, 0, &buf, &len, &next));
	ck_assert_int_eq(next, 100000);
	ck_assert_int_eq(len, TASK_LOG_SIZE);
	/* the window ends with the last line, whole */
	ck_assert_int_eq(memcmp(buf + len - 100, "line 000999 ", 12), 0);
	free(buf);
	assert_ok(task_logs(t, next - 100, &buf, &len, &next));
	ck_assert_int_eq(len, 100);
	ck_assert_int_eq(memcmp(buf, "line 000999 ", 12), 0);
	free(buf);
	assert_ok(task_logs(t, next, &buf, &len, &next));
	ck_assert_int_eq(len, 0);
	free(buf);
	task_unref(t);
	task_set_log_fd(2);
	close(logfd);
}
END_TEST

/* A task's gort_read/gort_write/gort_poll on fds 0, 1, 2 use its own stdio
 * (task_fd), not the process's; gort_close leaves them open. */
START_TEST(test_raw_stdio_io)
{
	int in[2];
	ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
	struct run r;
	memset(&r, 0, sizeof r);
	struct task_spec spec = TASK_SPEC_INIT;
	spec.fd = fix_open("task_output.so");
	spec.argc = 3;
	spec.argv = (char *[]){ "output", "0", "raw", NULL };
	r.out = memfd_create("out", MFD_CLOEXEC);
	r.err = memfd_create("err", MFD_CLOEXEC);
	spec.stdin_fd = in[0];
	spec.stdout_fd = r.out;
	spec.stderr_fd = r.err;
	char err[256];
	int rc = task_start(&spec, &r.t, err, sizeof err);
	ck_assert_msg(rc == 0, "task_start: %s (%s)", strerror(-rc), err);
	close(spec.fd);
	ck_assert_int_eq(write(in[1], "ping\n", 5), 5);
	close(in[1]);
	finish_task(&r, 30);
	close(in[0]);
	ck_assert_int_eq(r.code, 0);
	ck_assert_str_eq(r.outs, "raw: ping\nstill\n");
	ck_assert_str_eq(r.errs, "raw err\n");
	run_done(&r);
}
END_TEST

/* ---- the table ---- */

START_TEST(test_find_list_forget)
{
	struct run r;
	start_task(&r, "task_park.so", (const char *[]){ "park", "10", "stay", NULL }, 0, 0);
	wait_output(&r);
	int64_t id = task_id(r.t);
	struct task *f = task_find(id);
	ck_assert_ptr_eq(f, r.t);
	task_unref(f);
	ck_assert_ptr_null(task_find(id + 1000));
	ck_assert_int_eq(task_forget(r.t), -EBUSY);
	struct task **v;
	size_t n;
	assert_ok(task_list(&v, &n));
	/* the newest, last; any others (tests run in one process under valgrind) ended */
	ck_assert_int_ge(n, 1);
	ck_assert_ptr_eq(v[n - 1], r.t);
	struct task_info info;
	task_get_info(v[n - 1], &info);
	ck_assert_int_eq(info.status, TASK_RUNNING);
	ck_assert_int_eq(info.goroutines, 11);
	for (size_t i = 0; i + 1 < n; i++) {
		task_get_info(v[i], &info);
		ck_assert_int_ne(info.status, TASK_RUNNING);
	}
	task_list_free(v, n);
	struct task *t = task_ref(r.t);
	assert_ok(task_kill(r.t));
	finish_task(&r, 30);
	assert_ok(task_forget(t));
	ck_assert_ptr_null(task_find(id));
	task_unref(t);
	run_done(&r);
}
END_TEST

START_TEST(test_shutdown_kills_everything)
{
	struct run a, b;
	start_task(&a, "task_spin.so", (const char *[]){ "spin", "2", "block", NULL }, 0, 0);
	start_task(&b, "task_park.so", (const char *[]){ "park", "100", "stay", NULL }, 0, 0);
	tasks_shutdown();
	finish_task(&a, 1);
	finish_task(&b, 1);
	ck_assert_int_eq(a.info.status, TASK_KILLED);
	ck_assert_int_eq(b.info.status, TASK_KILLED);
	run_done(&a);
	run_done(&b);
	/* and tasks start again afterwards */
	start_task(&a, "task_hello.so", NULL, 0, 0);
	finish_task(&a, 30);
	ck_assert_int_eq(a.code, 7);
	run_done(&a);
}
END_TEST

static Suite *task_suite(void)
{
	Suite *s = suite_create("task");
	TCase *tc = tcase_create("load");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_hello);
	tcase_add_test(tc, test_init_order);
	tcase_add_test(tc, test_independent_instances);
	tcase_add_test(tc, test_load_errors);
	tcase_add_test(tc, test_load_unusual);
	suite_add_tcase(s, tc);

	tc = tcase_create("end");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_main_returns_while_parked);
	tcase_add_test(tc, test_main_returns_while_spinning);
	tcase_add_test(tc, test_main_returns_while_accepting);
	tcase_add_test(tc, test_kill);
	tcase_add_test(tc, test_kill_waiters_on_shared_mutex_and_wg);
	tcase_add_test(tc, test_kill_spinning_with_many_modules_loaded);
	tcase_add_test(tc, test_task_exit_from_goroutine);
	tcase_add_test(tc, test_main_goexit);
	tcase_add_test(tc, test_panic);
	tcase_add_test(tc, test_faults);
	tcase_add_test(tc, test_fault_isolation);
	tcase_add_test(tc, test_panic_races_main);
	suite_add_tcase(s, tc);

	tc = tcase_create("resources");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_many_tasks_leak_nothing);
	tcase_add_test(tc, test_goroutine_limit);
	tcase_add_test(tc, test_stack_size);
	tcase_add_test(tc, test_default_output_to_log);
	tcase_add_test(tc, test_log_ring_keeps_last_64k);
	tcase_add_test(tc, test_raw_stdio_io);
	tcase_add_test(tc, test_find_list_forget);
	tcase_add_test(tc, test_shutdown_kills_everything);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return test_main(task_suite());
}
