#define _GNU_SOURCE
#include <sys/socket.h>
#include "cepoll.h"

int cepoll_accept(int fd) { return accept4(fd, 0, 0, SOCK_NONBLOCK); }
