/* backend_check.h: the device-memory discipline checker (host/backend_check.c), a testing mode turned
 * on by LOGITLENS_DEVICE_CHECK=1: wraps an opened CPU backend so that host code touching "device"
 * memory faults and ops given host pointers or short buffers fail. */
#ifndef LL_BACKEND_CHECK_H
#define LL_BACKEND_CHECK_H

#include "ll_backend.h"

/* Replaces be's op table by the checking one (be keeps its inner backend inside). One at a time. */
ll_status ll_backend_check_wrap(ll_backend *be, ll_err *err);

/* For communicators over a checked backend (host/dist/comm_check.c): whether [p, p + bytes) lies inside one
 * device buffer from alloc (be->err says why not), as NCCL needs; and ll_backend_check_open(be, 1) lets
 * host code (the MPI library) read and write device memory until ll_backend_check_open(be, 0). On a
 * backend that is not checked: always 1, and open does nothing. */
int ll_backend_check_devbuf(ll_backend *be, const char *op, const char *arg, const void *p, size_t bytes);
void ll_backend_check_open(ll_backend *be, int open);

#endif
