/* tests/test-io-nouring.c: all of test-io.c again with GORT_NO_URING=1: the epoll readiness fallback and the syscall handoff. */
#define IO_TEST_NOURING 1
#include "test-io.c"
