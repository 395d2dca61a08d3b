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
#ifdef __cplusplus
}
#endif

#endif
