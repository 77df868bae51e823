#ifndef CEPOLL_H
#define CEPOLL_H
// epoll and accept4, which Swift's Glibc module does not export.
#define _GNU_SOURCE
#include <sys/epoll.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
static inline int cepoll_accept(int fd) { return accept4(fd, 0, 0, SOCK_NONBLOCK); }
#endif
