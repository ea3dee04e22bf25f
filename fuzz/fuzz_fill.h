/* Section bytes from the fuzzer's input: p[i] = data[(start + i) % size]
 * for i < n, by whole copies of the input (a byte loop under coverage
 * instrumentation cost most of the per-input time of the format harnesses,
 * whose sections reach megabytes). Nothing is written when size is 0. */
#ifndef LQ_FUZZ_FILL_H
#define LQ_FUZZ_FILL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline void fuzz_fill_cyclic(uint8_t *p, size_t n, const uint8_t *data, size_t size,
                                    size_t start)
{
    if (!size) return;
    size_t off = start % size, done = 0;
    while (done < n) {
        size_t k = size - off < n - done ? size - off : n - done;
        memcpy(p + done, data + off, k);
        done += k;
        off = 0;
    }
}

#endif
