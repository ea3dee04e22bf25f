/* Shared body of fuzz_safetensors.c and fuzz_npy.c. */
#include "fuzz_common.h"

static void fuzz_tfile(const uint8_t *data, size_t size, lq_tfile_kind kind)
{
    /* exact-size copy: ASan catches any read past the end */
    uint8_t *c = malloc(size ? size : 1);
    if (!c) return;
    memcpy(c, data, size);
    lq_tfile *f = NULL;
    if (lq_tfile_open_memory(fuzz_ctx(), c, size, kind, &f) == LQ_OK) {
        for (size_t i = 0; i < lq_tfile_count(f); i++) {
            lq_tensor_info in;
            if (lq_tfile_info(f, i, &in) != LQ_OK) abort();
            size_t idx;
            if (lq_tfile_find(f, in.name, &idx) != LQ_OK || idx != i) abort();
            int flt =
                in.dtype == LQ_DTYPE_F32 || in.dtype == LQ_DTYPE_F16 || in.dtype == LQ_DTYPE_BF16;
            if (!flt) continue;           /* only float tensors are tied to their byte range */
            if (in.numel > size) abort(); /* cannot exceed the input */
            float *v = malloc((in.numel ? in.numel : 1) * sizeof *v);
            if (!v) abort();
            lq_status st = lq_tfile_read_f32(f, i, v, in.numel);
            if (st != LQ_OK && st != LQ_ERR_UNSUPPORTED) abort();
            free(v);
        }
        lq_tfile_close(f);
    }
    free(c);
}
