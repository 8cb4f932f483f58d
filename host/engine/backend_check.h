/* backend_check.h: the device-memory discipline checker (host/backend_check.c), a testing mode turned
 * on by LOGITLENS_DEVICE_CHECK=1: wraps an opened CPU backend so that host code touching "device"
 * memory faults and ops given host pointers or short buffers fail. */
#ifndef LL_BACKEND_CHECK_H
#define LL_BACKEND_CHECK_H

#include "ll_backend.h"

/* Replaces be's op table by the checking one (be keeps its inner backend inside). One at a time. */
ll_status ll_backend_check_wrap(ll_backend *be, ll_err *err);

#endif
