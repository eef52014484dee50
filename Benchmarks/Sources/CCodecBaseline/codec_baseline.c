#include "codec_baseline.h"

#include <stdlib.h>
#include <time.h>

#include "persona/v1/ingest.pb-c.h"

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int persona_codec_baseline_run(const uint8_t *bytes, size_t length, int iterations, persona_codec_baseline *out) {
    Persona__V1__AppendRequest *tree = persona__v1__append_request__unpack(NULL, length, bytes);
    if (tree == NULL) return -1;

    size_t written = 0;
    double start = 0;
    for (int i = -1; i < iterations; i++) {
        if (i == 0) start = now_seconds();
        size_t size = persona__v1__append_request__get_packed_size(tree);
        uint8_t *buffer = malloc(size);
        written = persona__v1__append_request__pack(tree, buffer);
        free(buffer);
    }
    out->pack_seconds = (now_seconds() - start) / iterations;
    out->packed_bytes = written;
    persona__v1__append_request__free_unpacked(tree, NULL);

    for (int i = -1; i < iterations; i++) {
        if (i == 0) start = now_seconds();
        Persona__V1__AppendRequest *r = persona__v1__append_request__unpack(NULL, length, bytes);
        if (r == NULL) return -1;
        persona__v1__append_request__free_unpacked(r, NULL);
    }
    out->unpack_seconds = (now_seconds() - start) / iterations;
    return 0;
}
