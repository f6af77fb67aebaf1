/* runtime/sysmon.h: the monitor thread's interface to the scheduler. */
#ifndef GORT_SYSMON_H
#define GORT_SYSMON_H

#include "runtime.h"

void sysmon_start(void);
void sysmon_stop(void);

/* execute() records when each P started its current G, for preemption. */
static inline void sysmon_note_execute(struct p *pp, struct g *gp)
{
	(void)pp;
	(void)gp;
}

#endif
