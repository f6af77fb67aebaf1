/* daemon/events.c: gortd's lifecycle event streams (gortctl events, gortctl trace): the history ring, per-request streams polled from the server loop. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>

#include "gort_plugin.h"
#include "gortd.h"
#include "log.h"
#include "task.h"
#include "trace.h"
#include "util.h"

/*
 * The runtime's collector (runtime/trace.c) keeps the most recent events in a
 * history ring, on for the daemon's whole life so that `gortctl events` can
 * show what just happened. A stream is a reader of that ring with its own
 * cursor: the server loop polls every stream each EVENTS_POLL_NS, and sends
 * what is new as one EventsReply per EVENTS_BATCH events.
 *
 * A client that reads slowly never slows anything but itself: once its
 * connection has EVENTS_OUT_HIGH bytes queued, its stream is not read until
 * the queue drains, the ring moves on without it, and the next reply says
 * how many events it missed. The collector never waits for a stream.
 */

#define EVENTS_HISTORY   65536
#define EVENTS_BATCH     2048
#define EVENTS_POLL_NS   (20 * 1000000LL)
#define EVENTS_OUT_HIGH  (4u << 20)
#define EVENTS_MAX_MS    (3600u * 1000u)
#define EVENTS_STREAMS_MAX 64

struct stream {
	struct stream *next;
	struct conn *conn;
	uint64_t id;
	int64_t task;
	int64_t deadline;        /* nanotime; 0: none */
	uint64_t cursor;
	uint64_t missed;
};

static struct stream *streams;
static unsigned nstreams;
static int timer_fd = -1;
static bool history_on;     /* kept for the daemon's life */
static bool history_all;    /* ... with every event (GORTD_EVENT_DETAIL=goroutines) */
static bool history_streams; /* with no history kept: on while a stream is open */
static bool streams_detail; /* a listener of every event held while streams are open */
static struct trace_event batch[EVENTS_BATCH];

static int64_t mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t unix_offset(void)
{
	struct timespec rt, mt;
	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_MONOTONIC, &mt);
	return ((int64_t)rt.tv_sec - mt.tv_sec) * 1000000000 + (rt.tv_nsec - mt.tv_nsec);
}

static void timer_set(bool on)
{
	if (timer_fd < 0)
		return;
	struct itimerspec its = { 0 };
	if (on) {
		its.it_value.tv_nsec = EVENTS_POLL_NS;
		its.it_interval.tv_nsec = EVENTS_POLL_NS;
	}
	timerfd_settime(timer_fd, 0, &its, NULL);
}

int events_init(void)
{
	timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (timer_fd < 0)
		return log_error_errno(errno, "timerfd_create: %m");
	/* GORTD_EVENT_HISTORY=N: keep N events (0: none; the scheduler then
	 * writes events only while a client streams them or a plugin listens) */
	uint32_t n = EVENTS_HISTORY;
	const char *env = getenv("GORTD_EVENT_HISTORY");
	if (env && *env) {
		char *end;
		unsigned long v = strtoul(env, &end, 10);
		if (*end || v > (1u << 24))
			log_warning("GORTD_EVENT_HISTORY=%s is not a number of events up to 16777216; keeping %u",
				    env, n);
		else
			n = (uint32_t)v;
	}
	if (n == 0) {
		log_info("lifecycle events: no history kept (GORTD_EVENT_HISTORY=0)");
		return timer_fd;
	}
	/* GORTD_EVENT_DETAIL=goroutines: the history keeps goroutine events too,
	 * always (the scheduler's hooks then write on every switch: see
	 * docs/OBSERVABILITY.md for the cost); tasks (the default): task starts
	 * and exits and samples, and goroutine events while a stream is open. */
	const char *detail = getenv("GORTD_EVENT_DETAIL");
	if (detail && *detail && strcmp(detail, "tasks") != 0 && strcmp(detail, "goroutines") != 0)
		log_warning("GORTD_EVENT_DETAIL=%s is neither tasks nor goroutines; keeping tasks", detail);
	history_all = detail && strcmp(detail, "goroutines") == 0;
	int r = trace_history_enable(n, history_all);
	if (r < 0)
		return log_error_errno(r, "lifecycle events: %m");
	history_on = true;
	log_info("lifecycle events: the last %u kept, %s", n,
		 history_all ? "goroutine events included" : "goroutine events while a stream is open");
	return timer_fd;
}

void events_fini(void)
{
	while (streams) {
		struct stream *s = streams;
		streams = s->next;
		free(s);
	}
	nstreams = 0;
	if (history_on || history_streams)
		trace_history_disable();
	if (streams_detail)
		trace_release();
	history_on = history_streams = streams_detail = false;
	if (timer_fd >= 0)
		close(timer_fd);
	timer_fd = -1;
}

unsigned events_streams(void)
{
	return nstreams;
}

static void fill_event(Gort__V1__Event *m, const struct trace_event *e)
{
	gort__v1__event__init(m);
	m->kind = e->kind;
	m->time_ns = e->time;
	m->task_id = e->task > 0 ? (uint64_t)e->task : 0;
	m->goid = e->goid;
	m->arg = e->arg;
	m->proc = e->proc;
	m->m = e->m;
	m->reason = e->reason;
	m->wait = (char *)(e->kind == GORT_EV_GO_STOP && e->reason == GORT_STOP_PARKED
				   ? waitreason_string((enum waitreason)e->wait)
				   : "");
	m->entry = (char *)e->entry;
}

/* Whether the stream wants e: a task's own events, and the drops (which may
 * have been its events). */
static bool wanted(int64_t task, const struct trace_event *e)
{
	return task == 0 || e->task == task || e->kind == TRACE_EV_DROPPED;
}

/* Sends one reply with events v[0..n) (those wanted), missed, end. */
static int send_batch(struct conn *c, uint64_t id, int64_t task, struct trace_event *v, int n,
		      uint64_t missed, bool end)
{
	static Gort__V1__Event msgs[EVENTS_BATCH];
	static Gort__V1__Event *ptrs[EVENTS_BATCH];
	size_t k = 0;
	for (int i = 0; i < n; i++) {
		if (!wanted(task, &v[i]))
			continue;
		/* a task name cut at TRACE_ENTRY_MAX may end inside a UTF-8
		 * sequence, and a proto3 string must be valid UTF-8 */
		for (char *p = v[i].entry; *p; p++)
			if ((unsigned char)*p >= 0x80)
				*p = '?';
		fill_event(&msgs[k], &v[i]);
		ptrs[k] = &msgs[k];
		k++;
	}
	if (k == 0 && missed == 0 && !end)
		return 0;
	Gort__V1__EventsReply er = GORT__V1__EVENTS_REPLY__INIT;
	er.n_events = k;
	er.events = ptrs;
	er.missed = missed;
	er.end = end;
	er.unix_offset_ns = unix_offset();
	Gort__V1__Reply reply = GORT__V1__REPLY__INIT;
	reply.id = id;
	reply.body_case = GORT__V1__REPLY__BODY_EVENTS;
	reply.events = &er;
	return conn_reply(c, &reply);
}

/* Sends what is new for s: true while s goes on, false once it is over (or
 * its connection failed). */
static bool stream_pump(struct stream *s, bool final)
{
	for (;;) {
		if (conn_pending_bytes(s->conn) >= EVENTS_OUT_HIGH)
			return true; /* a slow reader: the ring moves on, it will be told */
		uint64_t missed = 0;
		int n = trace_history_read(&s->cursor, batch, EVENTS_BATCH, &missed);
		if (n < 0)
			return false;
		s->missed += missed;
		if (n == 0 && s->missed == 0)
			break;
		if (send_batch(s->conn, s->id, s->task, batch, n, s->missed, false) < 0)
			return false;
		s->missed = 0;
		if (n < EVENTS_BATCH)
			break;
	}
	if (final)
		send_batch(s->conn, s->id, s->task, NULL, 0, 0, true);
	return !final;
}

/* No stream left: stop polling; a ring that was on only for streams goes. */
static void streams_idle(void)
{
	timer_set(false);
	if (history_streams)
		trace_history_disable();
	if (streams_detail)
		trace_release();
	history_streams = streams_detail = false;
}

void events_poll(void)
{
	uint64_t ticks;
	if (timer_fd >= 0)
		(void)!read(timer_fd, &ticks, sizeof ticks);
	int64_t now = mono_now();
	for (struct stream **sp = &streams; *sp;) {
		struct stream *s = *sp;
		bool over = s->deadline && now >= s->deadline;
		if (!stream_pump(s, over)) {
			*sp = s->next;
			free(s);
			nstreams--;
			continue;
		}
		sp = &s->next;
	}
	if (!streams)
		streams_idle();
}

void events_conn_closed(struct conn *c)
{
	for (struct stream **sp = &streams; *sp;) {
		struct stream *s = *sp;
		if (s->conn == c) {
			*sp = s->next;
			free(s);
			nstreams--;
			continue;
		}
		sp = &s->next;
	}
	if (!streams)
		streams_idle();
}

void events_start(struct conn *c, uint64_t id, const Gort__V1__EventsRequest *r)
{
	if (!history_on && !r->follow) {
		conn_reply_error(c, id, ENODEV,
				 "this gortd keeps no history of events (GORTD_EVENT_HISTORY=0): use --follow");
		return;
	}
	if (!r->follow && (r->duration_ms || r->live_only)) {
		conn_reply_error(c, id, EINVAL, "%s needs follow (a stream)",
				 r->duration_ms ? "a duration" : "live_only");
		return;
	}
	if (r->duration_ms > EVENTS_MAX_MS) {
		conn_reply_error(c, id, EINVAL, "duration %llu ms is longer than an hour",
				 (unsigned long long)r->duration_ms);
		return;
	}
	if (r->task_id) {
		struct task *t = r->task_id <= INT64_MAX ? task_find((int64_t)r->task_id) : NULL;
		if (!t) {
			conn_reply_error(c, id, ENOENT, "no task %llu (see gortctl tasks)",
					 (unsigned long long)r->task_id);
			return;
		}
		task_unref(t);
	}
	if (r->follow && nstreams >= EVENTS_STREAMS_MAX) {
		conn_reply_error(c, id, EBUSY, "%u event streams are open already", nstreams);
		return;
	}
	if (r->follow && !history_on && !history_streams) {
		/* events are written from now on, for the streams only */
		int e = trace_history_enable(EVENTS_HISTORY, true);
		if (e < 0) {
			conn_reply_error(c, id, -e, "cannot keep events: %s", strerror(-e));
			return;
		}
		history_streams = true;
	} else if (r->follow && history_on && !history_all && !streams_detail) {
		/* goroutine events, from now on, while streams are open */
		int e = trace_acquire();
		if (e < 0) {
			conn_reply_error(c, id, -e, "cannot trace: %s", strerror(-e));
			return;
		}
		streams_detail = true;
	}
	/* what was written before this request is delivered before we read */
	trace_flush();
	struct stream s0 = {
		.conn = c,
		.id = id,
		.task = (int64_t)r->task_id,
		.cursor = r->live_only ? trace_history_now() : 0,
	};
	if (!r->follow) {
		stream_pump(&s0, true);
		return;
	}
	struct stream *s = calloc(1, sizeof(*s));
	if (!s) {
		conn_reply_error(c, id, ENOMEM, "out of memory");
		return;
	}
	*s = s0;
	if (r->duration_ms)
		s->deadline = mono_now() + (int64_t)r->duration_ms * 1000000;
	if (!stream_pump(s, false)) {
		free(s);
		if (!streams)
			streams_idle();
		return;
	}
	s->next = streams;
	streams = s;
	nstreams++;
	timer_set(true);
}
