/* runtime/sysmon.c: the monitor thread (no P): retake, preemption requests, statistics. */
#include <pthread.h>

#include "sysmon.h"

/* Placeholder lifecycle until sysmon's rounds land (issue 4): nothing to do yet. */
void sysmon_start(void)
{
}

void sysmon_stop(void)
{
}
