/* mt_api.h -- with MT_TEST_API, a test's malloc family is memtally's mt_ API
 * The sanitizer builds link the allocator as a plain library (no malloc
 * override), so tests written against malloc/free reach it through these
 * names; without MT_TEST_API this header changes nothing. */
#ifndef MT_TEST_MT_API_H
#define MT_TEST_MT_API_H
#ifdef MT_TEST_API
#include <stdlib.h>
#include "memtally.h"
#define malloc mt_malloc
#define calloc mt_calloc
#define realloc mt_realloc
#define free mt_free
#endif
#endif
