/* daemon/auth.c: who the peer is (SO_PEERCRED, SO_PEERGROUPS) and whether it may control the daemon. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gortd.h"
#include "util.h"

int auth_peer(int fd, struct peer *ret)
{
	struct ucred uc;
	socklen_t len = sizeof uc;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
		return -errno;
	if (len != sizeof uc)
		return -EIO;
	struct peer p = { .pid = uc.pid, .uid = uc.uid, .gid = uc.gid };

	/* Supplementary groups as the peer had them at connect(). */
	len = sizeof p.groups;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, p.groups, &len) == 0) {
		p.ngroups = (int)(len / sizeof(gid_t));
		p.control = auth_may_control(&p);
	} else if (errno == ERANGE) {
		/* More groups than struct peer keeps: judge on the whole list. */
		_cleanup_free_ gid_t *all = malloc(len);
		if (!all)
			return -ENOMEM;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, all, &len) < 0)
			return -errno;
		size_t n = len / sizeof(gid_t);
		p.ngroups = PEER_GROUPS_MAX;
		memcpy(p.groups, all, sizeof p.groups);
		p.control = auth_may_control(&p);
		for (size_t i = 0; i < arg_n_allow_gids && !p.control; i++)
			for (size_t j = 0; j < n; j++)
				if (all[j] == arg_allow_gids[i])
					p.control = true;
	} else {
		return -errno;
	}
	*ret = p;
	return 0;
}

bool auth_may_control(const struct peer *p)
{
	if (p->uid == 0 || p->uid == geteuid())
		return true;
	for (size_t i = 0; i < arg_n_allow_uids; i++)
		if (arg_allow_uids[i] == p->uid)
			return true;
	for (size_t i = 0; i < arg_n_allow_gids; i++) {
		if (arg_allow_gids[i] == p->gid)
			return true;
		for (int j = 0; j < p->ngroups; j++)
			if (arg_allow_gids[i] == p->groups[j])
				return true;
	}
	return false;
}
