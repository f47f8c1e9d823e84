// floodgate/core/detail/huge_pages.hpp: an allocator whose big blocks sit on
// 2 MB pages.
//
// A table of many megabytes read at random (the keyed limiter's) pays a TLB
// miss on top of the cache miss when it lives on 4 KB pages. Linux backs
// memory with transparent huge pages in "always" mode by itself, but the
// usual setting is "madvise": only ranges marked MADV_HUGEPAGE get them.
//
// `HugePageAllocator` gives blocks of 2 MB or more 2 MB-aligned, rounded up to
// whole 2 MB pages, and marks them so. Where the kernel says no (no THP: the
// mark fails, or THP is "never") the block simply stays on ordinary pages: it
// is the same memory either way. Smaller blocks come from `operator new`, so
// small tables cost no more than they did.
//
// The only core header that includes a POSIX header (<sys/mman.h>, for
// madvise); tests/layering/check_layering.sh allows exactly this one.
#pragma once

#include <cstddef>
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
    const std::size_t rounded = (bytes + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
    void* block = std::aligned_alloc(kHugePageBytes, rounded);
    if (block == nullptr) throw std::bad_alloc();
#if defined(MADV_HUGEPAGE)
    (void)::madvise(block, rounded, MADV_HUGEPAGE);  // refused: ordinary pages, same memory
#endif
    return static_cast<T*>(block);
  }

  void deallocate(T* block, std::size_t n) noexcept {
    if (n * sizeof(T) < kHugePageBytes) {
      ::operator delete(block, std::align_val_t{alignof(T)});
    } else {
      std::free(block);
    }
  }

  friend bool operator==(const HugePageAllocator&, const HugePageAllocator&) noexcept { return true; }
};

}  // namespace floodgate::detail
