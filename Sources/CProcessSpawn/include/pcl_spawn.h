#ifndef PCL_SPAWN_H
#define PCL_SPAWN_H
#include <sys/types.h>

/// Starts `path` as a child process whose descriptors 3..3+nfds-1 are
/// `child_fds[0..nfds-1]` and which inherits no other descriptor above 2.
/// Signal dispositions the parent changed (SIGTERM/SIGHUP/SIGINT/SIGPIPE are
/// ignored by a NIO router so Dispatch can watch them) are reset to default
/// and the signal mask is cleared, so the child can be stopped normally.
///
/// Swift cannot call posix_spawn's file-action set-up safely in a
/// multi-threaded process without fcntl (variadic), hence this shim.
///
/// Returns 0 and sets *pid_out, or an errno value.
int pcl_spawn(const char *path, char *const argv[], char *const envp[],
              const int *child_fds, int nfds, pid_t *pid_out);

#endif
