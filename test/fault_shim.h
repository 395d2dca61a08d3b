/* fault_shim.h -- how a test steers the preloaded fault shim (fault_shim.c) */
#ifndef MT_TEST_FAULT_SHIM_H
#define MT_TEST_FAULT_SHIM_H

enum { FAULT_OFF, FAULT_ALWAYS, FAULT_AFTER, FAULT_EVERY };

/* Weak, so a program can tell whether the shim is preloaded. */
#ifdef __cplusplus
extern "C" {
#endif
void fault_set(int mode, long n) __attribute__((weak));
long fault_failures(void) __attribute__((weak));
/* The calling thread's next munmap of under 1 MiB unmaps, then waits until
 * fault_release (the thread is caught between two steps of its caller);
 * fault_stalled says whether a thread waits there now. */
void fault_stall_next_munmap(void) __attribute__((weak));
int fault_stalled(void) __attribute__((weak));
void fault_release(void) __attribute__((weak));
#ifdef __cplusplus
}
#endif

#endif
