/* gort.h: the public API for gort tasks and embedding programs (the contract in API.md). */
#ifndef GORT_H
#define GORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Every task exports this; its return value is the task's exit code. */
int gort_main(int argc, char **argv);

/* GORT_INIT(fn) registers `void fn(void)` to run on the task's main goroutine before
 * gort_main, in source order (Go's package init). The record carries its line so the
 * loader can restore source order whatever order the compiler emitted the records in. */
struct gort_init_record {
	void (*fn)(void);
	const char *file;
	unsigned line;
};
#define GORT_INIT(fn)                                                                   \
	static void fn(void);                                                           \
	__attribute__((used, section("gort_init"), aligned(sizeof(void *))))             \
	static const struct gort_init_record gort_init_record_##fn = { fn, __FILE__, __LINE__ }

/* goroutines */
typedef void (*gort_fn)(void *arg);
int64_t gort_go(gort_fn fn, void *arg);      /* start one in the caller's task; goid > 0, or -1 + errno */
void    gort_yield(void);                    /* runtime.Gosched */
_Noreturn void gort_exit(void);              /* runtime.Goexit: ends the calling goroutine only */
int64_t gort_id(void);                       /* goid of the caller */
int     gort_procs(void);                    /* number of Ps */
void    gort_lock_os_thread(void);
void    gort_unlock_os_thread(void);

/* the task */
_Noreturn void gort_task_exit(int code);     /* os.Exit for this task only */
_Noreturn void gort_panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int gort_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));  /* task's stdout */
int gort_eprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* task's stderr */

/* time */
int64_t gort_now(void);                      /* monotonic nanoseconds */
void    gort_sleep(int64_t ns);              /* parks the goroutine, not the thread */

/* channels: Go semantics; unbuffered when cap == 0; send on a closed channel panics the task */
typedef struct gort_chan gort_chan;
gort_chan *gort_chan_make(size_t elem_size, size_t cap); /* NULL + EINVAL: elem_size > UINT32_MAX or too big */
void   gort_chan_send(gort_chan *c, const void *elem);
bool   gort_chan_recv(gort_chan *c, void *elem);       /* false: closed and drained (elem zeroed) */
bool   gort_chan_trysend(gort_chan *c, const void *elem);
int    gort_chan_tryrecv(gort_chan *c, void *elem);    /* 1 got, 0 would block, -1 closed */
void   gort_chan_close(gort_chan *c);
void   gort_chan_free(gort_chan *c);                   /* unfreed channels go when the task ends */
size_t gort_chan_len(gort_chan *c);
size_t gort_chan_cap(gort_chan *c);

enum gort_select_dir { GORT_SEND, GORT_RECV };
typedef struct {
	gort_chan *chan;
	enum gort_select_dir dir;
	void *elem;
	bool ok;
} gort_select_case;
int gort_select(gort_select_case *cases, int n, bool block); /* index chosen; -1 if !block and none ready */

/* sync: zero-initialised is ready to use, like Go. The fields are the runtime's. */
typedef struct gort_mutex {
	uint32_t state;
	uint32_t sema;
} gort_mutex;
typedef struct gort_wg {
	uint64_t state; /* counter << 32 | waiters */
	uint32_t sema;
} gort_wg;
typedef struct gort_once {
	uint32_t done;
	gort_mutex m;
} gort_once;
#define GORT_MUTEX_INIT { 0, 0 }
#define GORT_WG_INIT    { 0, 0 }
#define GORT_ONCE_INIT  { 0, GORT_MUTEX_INIT }

void gort_mutex_lock(gort_mutex *m);
void gort_mutex_unlock(gort_mutex *m);
bool gort_mutex_trylock(gort_mutex *m);
void gort_wg_add(gort_wg *wg, int64_t n);
void gort_wg_done(gort_wg *wg);
void gort_wg_wait(gort_wg *wg);
void gort_once_do(gort_once *once, void (*fn)(void));

/* I/O: the POSIX call's arguments and return convention (-1 + errno); the goroutine
 * parks, the thread does not. io_uring where the kernel has it. */
ssize_t gort_read(int fd, void *buf, size_t n);
ssize_t gort_write(int fd, const void *buf, size_t n);
ssize_t gort_pread(int fd, void *buf, size_t n, off_t off);
ssize_t gort_pwrite(int fd, const void *buf, size_t n, off_t off);
ssize_t gort_recv(int fd, void *buf, size_t n, int flags);
ssize_t gort_send(int fd, const void *buf, size_t n, int flags);
int     gort_accept(int fd, struct sockaddr *addr, socklen_t *len);
int     gort_connect(int fd, const struct sockaddr *addr, socklen_t len);
int     gort_openat(int dirfd, const char *path, int flags, mode_t mode);
int     gort_close(int fd);
int     gort_fsync(int fd);
int     gort_poll(int fd, short events, int64_t timeout_ns); /* revents, 0 on timeout, -1 + errno */

/* any other call that may block: the P is handed to another M if the call lasts */
void gort_syscall_enter(void);
void gort_syscall_exit(void);

/* plugins */
void *gort_plugin_sym(const char *plugin, const char *symbol); /* NULL + errno if absent */

/* embedding: a program of your own, no daemon */
struct gort_config {
	int procs;         /* 0 = default: CPUs in the affinity mask, capped by cgroup cpu.max */
	size_t stack_size; /* 0 = default (64 KiB) */
};
/* Runs main_fn as the main goroutine of a task in this process, with the whole runtime
 * (Ps, Ms, sysmon, io) started for it; returns main_fn's exit code once the task has
 * ended. Callable again after it returns; not from inside a goroutine (-1 + EDEADLK). */
int gort_run(int (*main_fn)(int argc, char **argv), int argc, char **argv,
	     const struct gort_config *cfg);

#ifdef __cplusplus
}
#endif
#endif
