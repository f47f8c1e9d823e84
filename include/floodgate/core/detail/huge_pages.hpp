// floodgate/core/detail/huge_pages.hpp: an allocator whose big blocks sit on
// 2 MB pages.
//
// A table of many megabytes read at random (the keyed limiter's) pays a TLB
// miss on top of the cache miss when it lives on 4 KB pages. Linux backs
// memory with transparent huge pages in "always" mode by itself, but the
// usual setting is "madvise": only ranges marked MADV_HUGEPAGE get them.
//
// `HugePageAllocator` gives blocks of 2 MB or more 2 MB-aligned, rounded up to
// whole 2 MB pages, and marks them so. On Linux each such block is a fresh
// anonymous mapping, marked before anything touches it, so the first touch of
// each 2 MB faults in a huge page (memory from the heap may already be backed
// by 4 KB pages, which THP converts only later, if ever). Where the kernel
// says no (no THP: the mark fails, or THP is "never") the block simply stays
// on ordinary pages: it is the same memory either way. Smaller blocks come
// from `operator new`, so small tables cost no more than they did.
//
// The only core header that includes a POSIX header (<sys/mman.h>, for
// mmap and madvise); tests/layering/check_layering.sh allows exactly this one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <new>

#if defined(__linux__) && __has_include(<sys/mman.h>)
#include <sys/mman.h>
#endif

namespace floodgate::detail {

inline constexpr std::size_t kHugePageBytes = std::size_t{2} << 20;

template <class T>
struct HugePageAllocator {
  using value_type = T;

  HugePageAllocator() = default;
  template <class U>
  HugePageAllocator(const HugePageAllocator<U>&) noexcept {}

  T* allocate(std::size_t n) {
    if (n > std::numeric_limits<std::size_t>::max() / sizeof(T) - kHugePageBytes) throw std::bad_array_new_length();
    const std::size_t bytes = n * sizeof(T);
    if (bytes < kHugePageBytes) return static_cast<T*>(::operator new(bytes, std::align_val_t{alignof(T)}));
    const std::size_t rounded = round_up(bytes);
#if defined(MAP_ANONYMOUS)
    // Map one huge page more than needed and trim both ends to 2 MB alignment.
    void* mapped = ::mmap(nullptr, rounded + kHugePageBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mapped == MAP_FAILED) throw std::bad_alloc();
    auto* const start = static_cast<char*>(mapped);
    const std::size_t head = (kHugePageBytes - reinterpret_cast<std::uintptr_t>(start) % kHugePageBytes) % kHugePageBytes;
    if (head > 0) (void)::munmap(start, head);
    (void)::munmap(start + head + rounded, kHugePageBytes - head);
    void* block = start + head;
#else
    void* block = std::aligned_alloc(kHugePageBytes, rounded);
    if (block == nullptr) throw std::bad_alloc();
#endif
#if defined(MADV_HUGEPAGE)
    (void)::madvise(block, rounded, MADV_HUGEPAGE);  // refused: ordinary pages, same memory
#endif
    return static_cast<T*>(block);
  }

  void deallocate(T* block, std::size_t n) noexcept {
    if (n * sizeof(T) < kHugePageBytes) {
      ::operator delete(block, std::align_val_t{alignof(T)});
    } else {
#if defined(MAP_ANONYMOUS)
      (void)::munmap(block, round_up(n * sizeof(T)));
#else
      std::free(block);
#endif
    }
  }

  friend bool operator==(const HugePageAllocator&, const HugePageAllocator&) noexcept { return true; }

 private:
  static std::size_t round_up(std::size_t bytes) noexcept {
    return (bytes + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
  }
};

}  // namespace floodgate::detail
