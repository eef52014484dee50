// What Swift cannot reach by itself: a cache prefetch hint (Swift has no intrinsic for
// one) and glibc's <malloc.h> (the Glibc module does not export it).
#ifndef PERSONA_MEMORY_H
#define PERSONA_MEMORY_H

#if defined(__linux__)
#include <malloc.h>
#endif

// Folding touches state of users spread over gigabytes; asking for the cache lines of the
// next events' users ahead of time lets their memory misses overlap instead of queueing.
static inline __attribute__((always_inline)) void persona_prefetch(const void *address) {
    __builtin_prefetch(address, 1, 3);
}

#endif
