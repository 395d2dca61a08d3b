// fault_new.cpp -- operator new when the OS refuses memory: std::bad_alloc, nothrow NULL, then memory again
// Run with fault_shim.so preloaded (see test_fault.c).
#include <cstdio>
#include <cstring>
#include <new>
#include <vector>

#include "check.h"
#include "fault_shim.h"
#include "memtally.h"

static int handler_calls;
static void give_up() {
  handler_calls++;
  std::set_new_handler(nullptr); // the next failure throws
}

int main() {
  if (fault_set == nullptr) {
    std::fprintf(stderr, "fault_new: run with fault_shim.so in LD_PRELOAD\n");
    return 2;
  }
  const size_t sizes[] = {48, 5000, 300000, 3u << 20};
  for (size_t size : sizes) {
    std::vector<char *> kept;
    kept.reserve(200000); // before the OS refuses memory
    fault_set(FAULT_ALWAYS, 0);
    int thrown = 0, null_nothrow = 0;
    for (int i = 0; i < 200000 && thrown < 3; i++) {
      try {
        char *p = new char[size];
        std::memset(p, 1, size);
        kept.push_back(p);
      } catch (const std::bad_alloc &) {
        thrown++;
      }
    }
    char *q = new (std::nothrow) char[size];
    if (q == nullptr) null_nothrow = 1;
    std::set_new_handler(give_up);
    int thrown_after_handler = 0;
    try {
      char *r = new char[size];
      delete[] r;
    } catch (const std::bad_alloc &) {
      thrown_after_handler = 1;
    }
    fault_set(FAULT_OFF, 0);
    CHECK(thrown == 3);
    CHECK(null_nothrow == 1);
    CHECK(thrown_after_handler == 1 && handler_calls >= 1);
    delete[] q;
    for (char *p : kept) delete[] p;
    char *ok = new char[size]; // memory is back
    CHECK(mt_owns(ok));
    delete[] ok;
    handler_calls = 0;
  }
  return check_summary("fault_new");
}
