/* Pieces of model.c shared with model_lqt.c and calib.c. */
#ifndef LQ_MODEL_INTERNAL_H
#define LQ_MODEL_INTERNAL_H

#include "model.h"

/* 0 when c is a usable configuration, else -1 with the reason in why. */
int lq_llama_config_check(const lq_llama_config *c, char *why, size_t cap);
/* A model of configuration c, zeroed; linear weights allocated when
 * float_linears is set. */
lq_status lq_llama_alloc(const lq_llama_config *c, int float_linears, lq_llama **out);
/* 1 when every float array of m is finite. */
int lq_llama_finite(const lq_llama *m);
/* Permute q/k rows between llama2.c's interleaved and rotate-half order. */
int lq_llama_permute_qk(float *W, size_t heads, size_t hd, size_t cols, int inverse);
/* Complete-model .lqt reader (model_lqt.c). */
lq_status lq_llama_load_lqt(lq_ctx *ctx, const char *path, lq_llama **out);

/* Loader messages: to stderr unless lq_model_silent is set (the fuzzer). */
extern int lq_model_silent;
void lq_model_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
