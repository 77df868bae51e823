#ifndef CEPOLL_H
#define CEPOLL_H
// epoll and accept4, which Swift's Glibc module does not export. No
// _GNU_SOURCE here: it changes glibc's struct definitions (fd_set) against
// the ones Swift's Glibc module was built with, which the thin-LTO build of
// scripts/release-build refuses. accept4 is wrapped in cepoll.c instead.
#include <sys/epoll.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
int cepoll_accept(int fd);
#endif
