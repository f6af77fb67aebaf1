/* runtime/os_linux.c: what the runtime asks Linux: the cgroup v2 CPU quota (cpu.max). */
#include <stdio.h>
#include <string.h>

#include "runtime.h"

int cgroup_cpu_limit_parse(const char *text)
{
	char quota[32];
	long long period = 0;
	if (sscanf(text, "%31s %lld", quota, &period) != 2 || period <= 0)
		return 0;
	if (strcmp(quota, "max") == 0)
		return 0;
	char *end;
	long long q = strtoll(quota, &end, 10);
	if (*end != '\0' || q <= 0)
		return 0;
	long long cpus = (q + period - 1) / period; /* 1.5 CPUs of quota still need 2 Ps */
	return cpus > 1024 ? 1024 : (int)cpus;
}

/* This process's cgroup v2: the cgroup2 mount point (from /proc/self/mountinfo)
 * and the path below it (the "0::" line of /proc/self/cgroup). */
static int cgroup2_where(char *mnt, size_t mntsize, char *rel, size_t relsize)
{
	char line[4096];
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -errno;
	mnt[0] = '\0';
	while (fgets(line, sizeof line, f)) {
		char *sep = strstr(line, " - ");
		char point[1024];
		if (!sep || strncmp(sep, " - cgroup2 ", 11) != 0)
			continue;
		if (sscanf(line, "%*s %*s %*s %*s %1023s", point) == 1) {
			snprintf(mnt, mntsize, "%s", point);
			break;
		}
	}
	fclose(f);
	if (!mnt[0])
		return -ENOENT;
	f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return -errno;
	int r = -ENOENT;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, "0::", 3) != 0)
			continue;
		line[strcspn(line, "\n")] = '\0';
		snprintf(rel, relsize, "%s", strcmp(line + 3, "/") == 0 ? "" : line + 3);
		r = 0;
		break;
	}
	fclose(f);
	return r;
}

/* The tightest cpu.max from this process's cgroup up to the root, in CPUs
 * (a parent's quota limits its children too); 0: no limit. */
int cgroup_cpu_limit(void)
{
	char mnt[1024], rel[4096];
	if (cgroup2_where(mnt, sizeof mnt, rel, sizeof rel) < 0)
		return 0;
	int best = 0;
	for (;;) {
		char path[5200], text[128];
		snprintf(path, sizeof path, "%s%s/cpu.max", mnt, rel);
		FILE *f = fopen(path, "re");
		if (f) {
			if (fgets(text, sizeof text, f)) {
				int lim = cgroup_cpu_limit_parse(text);
				if (lim > 0 && (best == 0 || lim < best))
					best = lim;
			}
			fclose(f);
		}
		char *slash = strrchr(rel, '/');
		if (!slash)
			break;
		*slash = '\0';
	}
	return best;
}
