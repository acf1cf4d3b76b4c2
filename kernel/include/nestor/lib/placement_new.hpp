// Placement new without the C++ library. A hosted build (unit tests) already has <new>,
// whose declaration must not be repeated.
#pragma once

#if __STDC_HOSTED__
#include <new>
#else
inline void* operator new(__SIZE_TYPE__, void* where) noexcept { return where; }
inline void operator delete(void*, void*) noexcept {}
#endif
