/* A Llama model (model.h) as a GGUF file that llama.cpp loads
 * (general.architecture "llama"): the quantized linear layers as ggml Q
 * blocks that dequantize to exactly libquant's W_hat (src/io/gguf.h), the
 * float tensors as F32 (or F16), the hyper-parameters and the llama2.c
 * tokenizer as metadata, tensor names in llama.cpp's convention. See
 * docs/formats.md section 4. */
#ifndef LQ_GGUF_EXPORT_H
#define LQ_GGUF_EXPORT_H

#include "model.h"
#include "tokenizer.h"

typedef struct lq_gguf_export_opts {
    int float_f16;           /* 2-D float tensors (embedding, classifier, float layers) as F16
                              * (rounded); 1-D tensors (norms) stay F32. 0: all F32 (exact) */
    int float_fallback;      /* quantized layers with no exact GGUF type are written as their
                              * W_hat in float instead of failing the export */
    const char *name;        /* general.name (NULL: "libquant") */
    const char *const *meta; /* nmeta extra string pairs (key, value): meta[2i], meta[2i+1] */
    size_t nmeta;
} lq_gguf_export_opts;

/* Write m with tokenizer tok (its vocabulary must be m's) to path. q and k
 * rows go back from libquant's rotate-half order to the interleaved order
 * llama.cpp's Llama graph expects (the permutation llama.cpp's converter
 * applies to Hugging Face checkpoints; exact: rows move whole). On error
 * prints the reason (prefixed by path) on stderr, returns the status and
 * leaves no file at path (the output is renamed into place at the end).
 * Errors: UNSUPPORTED (a tensor with no exact GGUF type and no fallback),
 * INVALID_ARG, OUT_OF_RANGE (F16 overflow), IO, NO_MEMORY. */
lq_status lq_llama_save_gguf(lq_ctx *ctx, const lq_llama *m, const lq_tokenizer *tok,
                             const char *path, const lq_gguf_export_opts *o);

#endif
