/* daemon/util.h: scope-based cleanup for gortd's files (the runtime's own, when runtime.h is in scope). */
#ifndef GORTD_UTIL_H
#define GORTD_UTIL_H

#include <stdlib.h>
#include <unistd.h>

#ifndef _cleanup_
static inline void freep(void *p) { free(*(void **)p); }
static inline void closep(int *fd) { if (*fd >= 0) close(*fd); }
#define _cleanup_(f)     __attribute__((cleanup(f)))
#define _cleanup_free_   _cleanup_(freep)
#define _cleanup_close_  _cleanup_(closep)
#endif

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#endif

#endif
