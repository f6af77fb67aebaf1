/* daemon/log.c: gortd's logging to stderr with <N> priority prefixes (journald's convention). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

int log_max_level = LOG_INFO;

int log_internal(int prio, int err, const char *fmt, ...)
{
	int e = err < 0 ? -err : err;
	if (prio > log_max_level)
		return -e;
	char buf[1024];
	int n = snprintf(buf, sizeof buf, "<%d>", prio);
	va_list ap;
	va_start(ap, fmt);
	errno = e; /* for %m */
	int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	size_t len = (size_t)n + (size_t)m;
	if (len > sizeof buf - 2)
		len = sizeof buf - 2;
	/* One line per event: a newline inside a message (a task name, a dlerror
	 * text) would let its tail pose as a line of its own. */
	for (size_t i = (size_t)n; i < len; i++)
		if (buf[i] == '\n' || buf[i] == '\r')
			buf[i] = ' ';
	buf[len++] = '\n';
	(void)!write(STDERR_FILENO, buf, len);
	errno = e;
	return -e;
}
