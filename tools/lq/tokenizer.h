/* The llama2.c tokenizer (tokenizer.bin): a sentencepiece BPE vocabulary
 * with scores and byte fallback. Encoding follows llama2.c's run.c: a
 * dummy-prefix space, the text split into UTF-8 code points (a code point
 * not in the vocabulary becomes its bytes as <0xXX> tokens), then the
 * adjacent pair whose merge has the highest score is merged (leftmost on a
 * tie) until no pair merges. Implemented with a heap over the pairs, so a
 * whole file encodes in O(n log n) with the same result as the quadratic
 * reference loop. */
#ifndef LQ_TOKENIZER_H
#define LQ_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "quant.h"

#define LQ_TOK_BOS 1
#define LQ_TOK_EOS 2

typedef struct lq_tokenizer lq_tokenizer;

/* Load a tokenizer.bin for a model of `vocab` tokens (the file's token
 * count must equal it). Errors: IO, CORRUPT (truncated, lengths or scores
 * out of range, no byte-fallback tokens), INVALID_ARG (vocab mismatch),
 * NO_MEMORY. */
lq_status lq_tok_load(const char *path, size_t vocab, lq_tokenizer **out);
void lq_tok_free(lq_tokenizer *t);
size_t lq_tok_vocab(const lq_tokenizer *t);

/* Encode n bytes of UTF-8 text (checked: invalid UTF-8 gives INVALID_ARG),
 * with the dummy prefix when the text is not empty, into *ids (malloc'ed,
 * caller frees) and *nids. Prepends BOS when bos is set. */
lq_status lq_tok_encode(const lq_tokenizer *t, const char *text, size_t n, int bos, int **ids,
                        size_t *nids);

/* The text of token `id` after token `prev` (llama2.c's decode: the space
 * after BOS is dropped, <0xXX> gives the byte). Writes at most cap bytes
 * into buf (NUL-terminated) and returns the length, or 0 for a bad id. */
size_t lq_tok_piece(const lq_tokenizer *t, int prev, int id, char *buf, size_t cap);

/* The stored text of token id (*len bytes, NUL-terminated; llama2.c's
 * form: spaces as ' ', BOS/EOS as "\n<s>\n" / "\n</s>\n") and its score;
 * NULL / 0 for a bad id. */
const char *lq_tok_text(const lq_tokenizer *t, size_t id, size_t *len);
float lq_tok_score(const lq_tokenizer *t, size_t id);

/* 1 when the n bytes are valid UTF-8 (no overlong forms, no surrogates). */
int lq_utf8_valid(const char *s, size_t n);

#endif
