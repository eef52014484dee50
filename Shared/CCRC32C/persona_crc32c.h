// CRC-32C with the instruction x86-64 has for it (SSE4.2 `crc32`, the Castagnoli
// polynomial, 8 bytes per instruction): Swift has no intrinsic for it. The table-driven
// Swift version in Store covers other machines.
#ifndef PERSONA_CRC32C_H
#define PERSONA_CRC32C_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>

// The running register (not inverted): callers invert before and after, as the software version does.
__attribute__((target("sse4.2")))
static inline uint32_t persona_crc32c_hardware(uint32_t crc, const uint8_t *p, size_t n) {
    uint64_t c = crc;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        n -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (n > 0) {
        c32 = __builtin_ia32_crc32qi(c32, *p);
        p++;
        n--;
    }
    return c32;
}

// Whether this CPU has SSE4.2 (CPUID leaf 1, ECX bit 20).
static inline int persona_crc32c_hardware_available(void) {
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    return (c >> 20) & 1;
}
#else
static inline uint32_t persona_crc32c_hardware(uint32_t crc, const uint8_t *p, size_t n) {
    (void)p;
    (void)n;
    return crc;
}
static inline int persona_crc32c_hardware_available(void) { return 0; }
#endif

#endif
