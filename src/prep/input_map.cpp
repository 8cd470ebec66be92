#include "bluewhale/prep/input_map.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>

#include "bluewhale/core/error.h"
#include "prep/decompress.h"

namespace bluewhale {
namespace {

constexpr std::size_t kPage = 4096;

// The mappings the SIGBUS handler may repair. A fixed table of atomics: the handler must not lock.
constexpr int kSlots = 256;
struct Slot {
  std::atomic<uintptr_t> begin{0}, end{0};  // [begin, end): the mapping, whole pages; begin 0 = free
  std::atomic<bool> shrunk{false};
};
Slot g_slots[kSlots];
std::mutex g_slots_mu;  // taking and freeing slots
struct sigaction g_previous;

void on_sigbus(int sig, siginfo_t* info, void* context) {
  const auto a = reinterpret_cast<uintptr_t>(info->si_addr);
  for (Slot& s : g_slots) {
    const uintptr_t b = s.begin.load(std::memory_order_acquire), e = s.end.load(std::memory_order_acquire);
    if (b == 0 || a < b || a >= e) continue;
    // The file ends before this page now. Zero pages in place of the rest of the mapping let the faulting
    // load (and every later one) complete; the reader sees the mark and fails with IoError. (mmap is not
    // on POSIX's list of async-signal-safe functions, but on Linux it is the bare system call, which is.)
    const uintptr_t page = a & ~uintptr_t{kPage - 1};
    void* r = mmap(reinterpret_cast<void*>(page), e - page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (r == MAP_FAILED) break;
    s.shrunk.store(true, std::memory_order_release);
    return;
  }
  // Not one of ours: what would have happened without this handler.
  if (g_previous.sa_flags & SA_SIGINFO) {
    if (g_previous.sa_sigaction) {
      g_previous.sa_sigaction(sig, info, context);
      return;
    }
  } else if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN) {
    g_previous.sa_handler(sig);
    return;
  }
  signal(sig, SIG_DFL);  // the access faults again on return and ends the process as it would have
}

void install_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &g_previous);
  });
}

int take_slot(uintptr_t begin, uintptr_t end) {
  std::lock_guard lk(g_slots_mu);
  for (int k = 0; k < kSlots; ++k) {
    if (g_slots[k].begin.load(std::memory_order_relaxed) != 0) continue;
    g_slots[k].shrunk.store(false, std::memory_order_relaxed);
    g_slots[k].end.store(end, std::memory_order_release);
    g_slots[k].begin.store(begin, std::memory_order_release);
    return k;
  }
  return -1;
}

void free_slot(int k) {
  std::lock_guard lk(g_slots_mu);
  g_slots[k].begin.store(0, std::memory_order_release);
  g_slots[k].end.store(0, std::memory_order_release);
}

}  // namespace

namespace {

// Nanoseconds per page to first touch the first `bytes` of a new mapping, one load per page.
double first_touch_ns(const char* p, std::size_t bytes) {
  const auto t0 = std::chrono::steady_clock::now();
  unsigned sum = 0;
  for (std::size_t off = 0; off < bytes; off += kPage) sum += static_cast<unsigned char>(*static_cast<const volatile char*>(p + off));
  const auto t1 = std::chrono::steady_clock::now();
  static_cast<void>(sum);
  return std::chrono::duration<double, std::nano>(t1 - t0).count() / static_cast<double>(bytes / kPage);
}

}  // namespace

InputMaps::InputMaps(const std::vector<std::string>& files, const std::string& compression, int64_t max_bytes,
                     double touch_limit_ns)
    : files_(files), maps_(files.size()), touch_ns_(files.size(), -1.0) {
  for (std::size_t i = 0; i < files.size(); ++i) {
    const std::string& path = files[i];
    if (text::open_byte_source(path, compression)->compression() != text::Compression::kNone) continue;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    BW_CHECK(fd >= 0, IoError, "cannot open input file '", path, "': ", std::strerror(errno));
    struct stat st;
    const bool regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
    const auto size = regular ? static_cast<std::size_t>(st.st_size) : 0;
    if (regular && mapped_bytes_ + st.st_size <= max_bytes) {
      void* p = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p != MAP_FAILED) {
        const auto b = reinterpret_cast<uintptr_t>(p);
        install_handler();
        int slot = take_slot(b, b + ((size + kPage - 1) & ~(kPage - 1)));
        // Probed once guarded: a file that shrinks under the probe reads zero pages, and read() then
        // finds it shorter.
        if (slot >= 0 && size >= kProbeBytes) {
          touch_ns_[i] = first_touch_ns(static_cast<const char*>(p), kProbeBytes);
          if (!(touch_ns_[i] <= touch_limit_ns)) {
            free_slot(slot);
            slot = -1;
          }
        }
        if (slot >= 0) {
          maps_[i] = Map{p, size, slot};
          mapped_bytes_ += st.st_size;
        } else {
          munmap(p, size);  // unguarded, or dearer than reading: read() instead
        }
      }
    }
    ::close(fd);
  }
}

InputMaps::~InputMaps() {
  for (Map& m : maps_) {
    if (!m.addr) continue;
    free_slot(m.slot);
    munmap(m.addr, m.size);
  }
}

InputMaps::View InputMaps::view(std::size_t i) const {
  BW_ASSERT(i < maps_.size(), "InputMaps::view: no file ", i);
  const Map& m = maps_[i];
  return m.addr ? View{static_cast<const char*>(m.addr), m.size} : View{};
}

bool InputMaps::shrunk(std::size_t i) const {
  BW_ASSERT(i < maps_.size(), "InputMaps::shrunk: no file ", i);
  const Map& m = maps_[i];
  return m.addr && g_slots[m.slot].shrunk.load(std::memory_order_acquire);
}

void InputMaps::check(std::size_t i) const {
  if (!shrunk(i)) return;
  struct stat st;
  const std::string now = stat(files_[i].c_str(), &st) == 0 ? str_cat(st.st_size, " bytes now") : "gone now";
  BW_THROW(IoError, "input file '", files_[i], "' shrank while it was being read (", maps_[i].size,
           " bytes when prep started, ", now, "): another program rewrote or truncated it");
}

void InputMaps::check_all() const {
  for (std::size_t i = 0; i < maps_.size(); ++i) check(i);
}

}  // namespace bluewhale
