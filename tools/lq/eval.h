/* Evaluation text cut into model-sized chunks, and perplexity / KL
 * divergence of a model on them (lq eval, lq demo, calibration). */
#ifndef LQ_EVAL_H
#define LQ_EVAL_H

#include "model.h"
#include "tokenizer.h"

/* How a text becomes chunks (docs/benchmarks.md, "Perplexity protocol"):
 * STREAM: the whole file is encoded once (dummy prefix at the start), then
 *   cut into consecutive pieces of seq_len - 1 tokens, each preceded by BOS
 *   (the last piece may be shorter);
 * DOCS: paragraphs are split at blank lines and stripped of surrounding
 *   blanks; a document starts at a paragraph beginning "Once upon a time" or
 *   "Once there" (the paragraphs before the first such start form a document
 *   too) and holds the paragraphs up to the next start, joined by "\n"; each
 *   is [BOS] + encode(document) cut to seq_len tokens. This is the protocol
 *   of student-d512's README: its figures (6.185754 for the d64 model, 6.134052
 *   for the student, first 64 documents, 15,885 tokens) are reproduced to
 *   1e-7. */
typedef enum { LQ_PROTO_STREAM = 0, LQ_PROTO_DOCS = 1 } lq_protocol;

typedef struct lq_chunks {
    int *tok; /* all tokens, chunk after chunk */
    size_t *off, *len;
    size_t n;
} lq_chunks;

/* Cut n bytes of text (UTF-8, not empty) into chunks of at most seq_len
 * tokens (max_chunks 0: all). Errors: INVALID_ARG (empty or invalid UTF-8
 * text, nothing to score), NO_MEMORY. */
lq_status lq_chunks_make(const lq_tokenizer *t, const char *text, size_t n, lq_protocol p,
                         size_t seq_len, size_t max_chunks, lq_chunks *out);
void lq_chunks_free(lq_chunks *c);

typedef struct lq_eval_result {
    size_t chunks, tokens;       /* tokens scored (every position after the first) */
    double nll, ppl;             /* mean negative log-likelihood (nats), exp(nll) */
    double kl, top1;             /* with a reference: mean KL(ref || model), argmax agreement */
    double seconds, cpu_seconds; /* forward passes of the model (not the reference) */
} lq_eval_result;

/* Score every chunk: one forward pass per chunk (all its tokens at once,
 * so the products run as lq_matmul on a batch). ref may be NULL. */
lq_status lq_eval_run(lq_ctx *ctx, const lq_llama *m, const lq_llama *ref, const lq_run_opts *o,
                      const lq_chunks *c, lq_eval_result *r);

/* Read a whole text file (UTF-8 checked, not empty); prints an error. */
char *lq_text_load(const char *path, size_t *n);

#endif
