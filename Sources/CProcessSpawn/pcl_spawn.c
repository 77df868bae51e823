#define _GNU_SOURCE
#include "pcl_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <unistd.h>

int pcl_spawn(const char *path, char *const argv[], char *const envp[],
              const int *child_fds, int nfds, pid_t *pid_out) {
    if (nfds < 0 || nfds > 64) return EINVAL;
    int sources[64];
    int moved[64];
    int rc = 0;
    int first_free = 3 + nfds;

    // A source descriptor inside the target range 3..3+nfds-1 would be
    // clobbered by an earlier dup2; move such sources above the range first.
    for (int i = 0; i < nfds; i++) moved[i] = -1;
    for (int i = 0; i < nfds; i++) {
        sources[i] = child_fds[i];
        if (sources[i] < first_free) {
            int fd = fcntl(sources[i], F_DUPFD_CLOEXEC, first_free);
            if (fd < 0) { rc = errno; goto cleanup_moved; }
            moved[i] = fd;
            sources[i] = fd;
        }
    }

    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    if ((rc = posix_spawn_file_actions_init(&actions)) != 0) goto cleanup_moved;
    if ((rc = posix_spawnattr_init(&attr)) != 0) { posix_spawn_file_actions_destroy(&actions); goto cleanup_moved; }

    for (int i = 0; i < nfds && rc == 0; i++) {
        // dup2 onto a different number clears FD_CLOEXEC on the target.
        rc = posix_spawn_file_actions_adddup2(&actions, sources[i], 3 + i);
    }
    if (rc == 0) rc = posix_spawn_file_actions_addclosefrom_np(&actions, first_free);

    sigset_t defaults, empty;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGHUP);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGPIPE);
    sigaddset(&defaults, SIGCHLD);
    sigemptyset(&empty);
    if (rc == 0) rc = posix_spawnattr_setsigdefault(&attr, &defaults);
    if (rc == 0) rc = posix_spawnattr_setsigmask(&attr, &empty);
    if (rc == 0) rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    if (rc == 0) rc = posix_spawn(pid_out, path, &actions, &attr, argv, envp);

    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
cleanup_moved:
    for (int i = 0; i < nfds; i++) {
        if (moved[i] >= 0) close(moved[i]);
    }
    return rc;
}
