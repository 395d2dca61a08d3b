// widgets.cc -- C++ sites behind std::allocator and operator new, in templates and inlined code
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

struct Widget {
  long a, b, c;
  std::string label;
};

template <typename T> struct Pool {
  std::vector<T *> items;
  __attribute__((noinline)) T *make() {
    T *t = new T();
    items.push_back(t);
    return t;
  }
};

namespace app {
__attribute__((noinline)) std::vector<Widget> load_widgets(int n) {
  std::vector<Widget> v;
  for (int i = 0; i < n; i++) v.push_back(Widget{i, i, i, "widget"});
  return v;
}

__attribute__((noinline)) std::map<int, double> index_values(int n) {
  std::map<int, double> m;
  for (int i = 0; i < n; i++) m[i] = i * 0.5;
  return m;
}
}  // namespace app

int main() {
  auto w = app::load_widgets(50000);
  auto m = app::index_values(30000);
  Pool<Widget> pool;
  for (int i = 0; i < 20000; i++) pool.make();
  std::printf("%zu %zu %zu\n", w.size(), m.size(), pool.items.size());
  for (auto *p : pool.items) delete p;
  return 0;
}
