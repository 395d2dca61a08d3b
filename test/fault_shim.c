/* fault_shim.c -- a preloaded library that makes anonymous mmap, mremap and madvise fail on demand,
 * and stalls a thread in munmap
 *
 * Preloaded ahead of libmemtally, its mmap/mremap/madvise are the ones
 * memtally calls. Mappings of files always go through. The test program
 * steers it with fault_set (found with a weak reference):
 *   FAULT_OFF      every call goes through
 *   FAULT_ALWAYS   every anonymous mapping fails (the OS refuses memory)
 *   FAULT_AFTER n  n more calls go through, then every one fails
 *   FAULT_EVERY n  every nth call fails
 * and with fault_stall_next_munmap a thread's next small munmap unmaps,
 * then waits for fault_release (a fork test catches memtally there).
 * Calls go to the kernel directly, never back into the C library (whose
 * wrappers are what this library replaces). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fault_shim.h"

static _Atomic int fault_mode = FAULT_OFF;
static _Atomic long fault_n, fault_calls, fault_failed;

__attribute__((visibility("default"))) void fault_set(int mode, long n) {
  atomic_store(&fault_calls, 0);
  atomic_store(&fault_n, n);
  atomic_store(&fault_mode, mode);
}

__attribute__((visibility("default"))) long fault_failures(void) { return atomic_load(&fault_failed); }

static int fault_now(void) {
  long k = atomic_fetch_add(&fault_calls, 1) + 1;
  int fail = 0;
  switch (atomic_load(&fault_mode)) {
  case FAULT_ALWAYS: fail = 1; break;
  case FAULT_AFTER: fail = k > atomic_load(&fault_n); break;
  case FAULT_EVERY: fail = atomic_load(&fault_n) > 0 && k % atomic_load(&fault_n) == 0; break;
  default: break;
  }
  if (fail) atomic_fetch_add(&fault_failed, 1);
  return fail;
}

__attribute__((visibility("default"))) void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  if ((flags & MAP_ANONYMOUS) && fault_now()) {
    errno = ENOMEM;
    return MAP_FAILED;
  }
  long r = syscall(SYS_mmap, addr, len, prot, flags, fd, off);
  return r == -1 ? MAP_FAILED : (void *)r;
}

__attribute__((visibility("default"))) void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...) {
  void *to = NULL;
  if (flags & MREMAP_FIXED) {
    va_list ap;
    va_start(ap, flags);
    to = va_arg(ap, void *);
    va_end(ap);
  }
  if (fault_now()) {
    errno = ENOMEM;
    return MAP_FAILED;
  }
  long r = syscall(SYS_mremap, old, old_len, new_len, flags, to);
  return r == -1 ? MAP_FAILED : (void *)r;
}

__attribute__((visibility("default"))) int madvise(void *addr, size_t len, int advice) {
  if (fault_now()) {
    errno = EAGAIN;
    return -1;
  }
  return (int)syscall(SYS_madvise, addr, len, advice);
}

static _Thread_local int stall_armed;
static _Atomic int stalled, released;

__attribute__((visibility("default"))) void fault_stall_next_munmap(void) {
  atomic_store(&released, 0);
  stall_armed = 1;
}
__attribute__((visibility("default"))) int fault_stalled(void) { return atomic_load(&stalled); }
__attribute__((visibility("default"))) void fault_release(void) { atomic_store(&released, 1); }

__attribute__((visibility("default"))) int munmap(void *addr, size_t len) {
  int r = (int)syscall(SYS_munmap, addr, len);
  if (stall_armed && len < ((size_t)1 << 20)) {
    stall_armed = 0;
    atomic_store(&stalled, 1);
    while (!atomic_load(&released)) usleep(1000);
    atomic_store(&stalled, 0);
  }
  return r;
}
