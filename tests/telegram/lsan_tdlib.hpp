// LeakSanitizer: TDLib's own allocations (sqlite, thread-local destructors,
// its OpenSSL state) are still held when the process exits: TDLib never
// frees them, its threads outlive main. They are TDLib's, not floodgate's,
// so the sanitizer build ignores leaks whose stack passes through
// libtdjson; every other leak still fails the test. Include once per
// executable that loads real TDLib.
#pragma once

extern "C" const char* __lsan_default_suppressions() { return "leak:libtdjson.so\n"; }
