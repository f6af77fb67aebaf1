/* runtime/sema.h: goroutine semaphores keyed by address (Go's semacquire/semrelease). */
#ifndef GORT_SEMA_H
#define GORT_SEMA_H

#include "runtime.h"

/* semacquire: wait until *addr > 0, then decrement it. lifo: queue at the head
 * (a waiter that already waited, as Go's mutex in starvation mode does). */
void semacquire(uint32_t *addr, bool lifo, enum waitreason reason);
/* semrelease: increment *addr and wake one waiter, if any. handoff: the woken
 * waiter runs next on this P, taking the count directly. */
void semrelease(uint32_t *addr, bool handoff);
/* semcancel_task: takes every waiter that belongs to task t off the table and
 * queues its goroutine (still waiting) on ret, for the ending task's reaper to
 * ready; it never returns from semacquire (execute() discards it). */
void semcancel_task(struct task *t, struct gqueue *ret);

#endif
