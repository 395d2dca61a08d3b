// test_new.cpp -- every C++ operator new/delete form ends up in memtally
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "memtally.h"

static int failures, checks;
#define CHECK(c)                                                               \
  do {                                                                         \
    checks++;                                                                  \
    if (!(c)) {                                                                \
      failures++;                                                              \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c); \
    }                                                                          \
  } while (0)

struct alignas(256) Wide {
  char bytes[300];
};

static uint64_t allocs_now() {
  uint64_t a = 0, b = 0;
  mt_thread_counters(&a, &b);
  return a;
}

int main() {
  uint64_t a0 = allocs_now();
  int *one = new int(7);
  CHECK(mt_owns(one) && *one == 7);
  delete one;
  int *arr = new int[1000];
  CHECK(mt_owns(arr));
  delete[] arr;
  int *nt = new (std::nothrow) int[10];
  CHECK(nt && mt_owns(nt));
  delete[] nt;
  Wide *w = new Wide;
  CHECK(mt_owns(w) && reinterpret_cast<uintptr_t>(w) % 256 == 0);
  delete w;
  Wide *wa = new Wide[5];
  CHECK(mt_owns(wa) && reinterpret_cast<uintptr_t>(wa) % 256 == 0);
  delete[] wa;
  void *al = ::operator new(100, std::align_val_t(4096));
  CHECK(mt_owns(al) && reinterpret_cast<uintptr_t>(al) % 4096 == 0);
  ::operator delete(al, std::align_val_t(4096));
  void *aln = ::operator new(100, std::align_val_t(64), std::nothrow);
  CHECK(aln && mt_owns(aln));
  ::operator delete(aln, std::align_val_t(64), std::nothrow);
  void *sized = ::operator new(48);
  ::operator delete(sized, 48);
  {
    std::vector<std::string> v;
    for (int i = 0; i < 1000; i++) v.push_back(std::string(50 + i % 100, 'x'));
    CHECK(mt_owns(v.data()) && mt_owns(v[10].data()));
    auto sp = std::make_shared<std::vector<int>>(100, 3);
    CHECK(mt_owns(sp.get()));
  }
  CHECK(allocs_now() - a0 >= 1000 + 10);
  // failure: throws std::bad_alloc, nothrow form returns null
  bool threw = false;
  try {
    volatile size_t huge = SIZE_MAX / 2;
    char *p = new char[huge];
    p[0] = 1;
  } catch (const std::bad_alloc &) {
    threw = true;
  }
  CHECK(threw);
  volatile size_t huge2 = SIZE_MAX / 4;
  char *q = new (std::nothrow) char[huge2];
  CHECK(q == nullptr);
  // a new_handler that frees a reserve lets the retry succeed
  static char *reserve = static_cast<char *>(std::malloc(10));
  static int handler_calls = 0;
  std::set_new_handler([] {
    handler_calls++;
    std::free(reserve);
    std::set_new_handler(nullptr);
  });
  try {
    volatile size_t huge3 = SIZE_MAX / 2;
    char *p = new char[huge3];
    (void)p;
  } catch (const std::bad_alloc &) {
  }
  CHECK(handler_calls == 1);
  std::fprintf(stderr, "test_new: %d checks, %d failed\n", checks, failures);
  return failures ? 1 : 0;
}
