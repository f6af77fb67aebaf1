/* daemon/notify.c: gortd's systemd integration: READY=1, STATUS=, WATCHDOG=1 only while the scheduler runs, STOPPING=1. */
#include <stdatomic.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>

#include "gortd.h"
#include "log.h"
#include "runtime.h"
#include "task.h"

/*
 * The watchdog must catch a wedged scheduler, not just a dead process: pinging
 * from the server thread alone would keep a daemon whose Ps are all stuck
 * alive forever. So a goroutine on the runtime (no task of its own) ticks a
 * counter every eighth of the watchdog period, and the server thread pings
 * WATCHDOG=1 at half the period only if the counter moved since the last
 * ping. With every P hogged by pure loops the ticker still runs as long as
 * sysmon preempts them; if nothing can get a P for half a period, the pings
 * stop and systemd restarts gortd (WatchdogSec= in gortd.service). Both the
 * server loop and the scheduler have to be alive for a ping.
 */

static _Atomic uint64_t ticks;
static uint64_t ticks_seen;
static int64_t tick_period_ns;
static _Atomic uint64_t pings;
static bool stalled;

static void ticker(void *arg)
{
	(void)arg;
	for (;;) {
		atomic_fetch_add_explicit(&ticks, 1, memory_order_relaxed);
		gort_sleep(tick_period_ns);
	}
}

int64_t notify_init(void)
{
	uint64_t usec = 0;
	int r = sd_watchdog_enabled(0, &usec);
	if (r < 0)
		log_warning_errno(r, "WATCHDOG_USEC: %m; no watchdog");
	if (r <= 0 || usec == 0)
		return 0;
	int64_t ping_ns = (int64_t)usec * 1000 / 2;
	tick_period_ns = (int64_t)usec * 1000 / 8;
	int err = 0;
	if (!newproc(ticker, NULL, NULL, 0, &err)) {
		log_error_errno(err, "watchdog ticker: %m; no watchdog");
		return 0;
	}
	log_info("watchdog: every %lld ms while the scheduler makes progress", (long long)(ping_ns / 1000000));
	return ping_ns;
}

static int status_line(char *buf, size_t n)
{
	return snprintf(buf, n, "STATUS=tasks: %lld running, goroutines: %lld, procs: %d, clients: %u",
			(long long)task_running_count(), (long long)task_goroutines_total(), gomaxprocs,
			server_stats.connections);
}

void notify_ready(void)
{
	char buf[256];
	int k = status_line(buf, sizeof buf);
	if (k > 0 && (size_t)k < sizeof buf - 16)
		snprintf(buf + k, sizeof buf - (size_t)k, "\nREADY=1");
	sd_notify(0, buf);
}

void notify_status(void)
{
	char buf[256];
	status_line(buf, sizeof buf);
	sd_notify(0, buf);
}

void notify_watchdog(void)
{
	uint64_t now = atomic_load_explicit(&ticks, memory_order_relaxed);
	if (now == ticks_seen) {
		if (!stalled)
			log_error("watchdog: the scheduler made no progress for %lld ms; not pinging",
				  (long long)(tick_period_ns * 4 / 1000000));
		stalled = true;
		return;
	}
	if (stalled)
		log_notice("watchdog: the scheduler runs again");
	stalled = false;
	ticks_seen = now;
	if (sd_notify(0, "WATCHDOG=1") > 0)
		atomic_fetch_add(&pings, 1);
}

void notify_stopping(void)
{
	sd_notify(0, "STOPPING=1\nSTATUS=stopping: ending tasks");
}

uint64_t notify_watchdog_pings(void)
{
	return atomic_load(&pings);
}
