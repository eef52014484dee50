// libprotobuf-c on its own, the codec benchmark's peer: what Wire's pack and unpack cost
// without any Swift around them.
#ifndef PERSONA_CODEC_BASELINE_H
#define PERSONA_CODEC_BASELINE_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
    /// Seconds per `get_packed_size` + `pack` into a fresh buffer of the unpacked tree.
    double pack_seconds;
    /// Seconds per `persona__v1__append_request__unpack` (default allocator) + `free_unpacked`.
    double unpack_seconds;
    /// Bytes the raw pack wrote (equal to the input's length when the codecs agree).
    size_t packed_bytes;
} persona_codec_baseline;

/// Times raw libprotobuf-c on an encoded AppendRequest, `iterations` times each after one
/// warm-up. Returns 0, or -1 when the bytes do not decode.
int persona_codec_baseline_run(const uint8_t *bytes, size_t length, int iterations, persona_codec_baseline *out);

#endif
