// mt_cxx.cpp -- a multithreaded C++ program whose objects are deleted by other threads
// Producers build maps, strings and vectors; consumers check and delete them.
// Prints a checksum that does not depend on the allocator or the schedule.
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

struct Item {
  std::string name;
  std::vector<long> values;
  std::map<int, std::string> tags;
};

static std::mutex mu;
static std::condition_variable cv;
static std::deque<Item *> queue;
static int producers_left;

static void produce(int id, int count) {
  for (int i = 0; i < count; i++) {
    Item *it = new Item;
    it->name = "item-" + std::to_string(id) + "-" + std::to_string(i);
    for (int k = 0; k < (i % 50) + 1; k++) it->values.push_back((long)id * 1000003 + i * 31 + k);
    for (int k = 0; k < i % 7; k++) it->tags[k] = std::string(k * 10 + 1, (char)('a' + k));
    std::lock_guard<std::mutex> g(mu);
    queue.push_back(it);
    cv.notify_one();
  }
  std::lock_guard<std::mutex> g(mu);
  producers_left--;
  cv.notify_all();
}

static std::atomic<unsigned long long> checksum{0};
static std::atomic<long> consumed{0};

static void consume() {
  for (;;) {
    Item *it;
    {
      std::unique_lock<std::mutex> l(mu);
      cv.wait(l, [] { return !queue.empty() || producers_left == 0; });
      if (queue.empty()) return;
      it = queue.front();
      queue.pop_front();
    }
    unsigned long long h = it->name.size();
    for (long v : it->values) h += (unsigned long long)v;
    for (auto &kv : it->tags) h += kv.first * kv.second.size();
    checksum += h;
    consumed++;
    delete it;  // freed by a thread other than the one that allocated it
  }
}

int main() {
  const int P = 4, C = 3, N = 20000;
  producers_left = P;
  std::vector<std::thread> ts;
  for (int i = 0; i < P; i++) ts.emplace_back(produce, i, N);
  for (int i = 0; i < C; i++) ts.emplace_back(consume);
  for (auto &t : ts) t.join();
  std::printf("consumed %ld checksum %llu\n", consumed.load(), checksum.load());
  return 0;
}
