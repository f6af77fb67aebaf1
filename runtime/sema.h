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
 * ready; it never returns from semacquire (execute() discards it). A ghost
 * takes each one's place (sema.c). */
void semcancel_task(struct task *t, struct gqueue *ret);
/* mutex_waiter_gone (sync.c): a waiter of the gort_mutex whose sema is at
 * addr was woken, and took the count, after its task ended (a ghost): it
 * plays the woken waiter's part and leaves. Returns the release the caller
 * must make on addr next: 0 none, 1 semrelease(addr, false), 2 with handoff
 * (returned, not made: a row of ghosts is then relayed in a loop, not by
 * recursion). */
int mutex_waiter_gone(uint32_t *addr);

#endif
