/* daemon/log.h: gortd's log: one line per event on stderr with a <N> syslog priority prefix that journald reads. */
#ifndef GORTD_LOG_H
#define GORTD_LOG_H

#include <syslog.h>

/* Lines above this priority are dropped (default LOG_INFO; LOG_DEBUG with GORTD_DEBUG=1). */
extern int log_max_level;

/* Writes "<prio>text\n" to stderr in one write(2); %m prints strerror(err) when
 * err != 0 (err may be negative or positive errno). Returns -abs(err), so that
 * `return log_error_errno(r, ...)` passes the error on. Safe from any thread. */
int log_internal(int prio, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define log_debug(...)          log_internal(LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...)           log_internal(LOG_INFO, 0, __VA_ARGS__)
#define log_notice(...)         log_internal(LOG_NOTICE, 0, __VA_ARGS__)
#define log_warning(...)        log_internal(LOG_WARNING, 0, __VA_ARGS__)
#define log_error(...)          log_internal(LOG_ERR, 0, __VA_ARGS__)
#define log_warning_errno(e, ...) log_internal(LOG_WARNING, (e), __VA_ARGS__)
#define log_error_errno(e, ...) log_internal(LOG_ERR, (e), __VA_ARGS__)

#endif
