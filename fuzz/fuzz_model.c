/* libFuzzer: the model inputs of the lq program (tools/lq): config.json and
 * index JSON (lq_json_parse), llama2.c checkpoints and tokenizer.bin files
 * (lq_llama_load / lq_tok_load on the bytes written to a file), and text
 * through the real tokenizer (UTF-8 check, heap BPE, chunking). The first
 * byte picks the target. Every input must give a status, never a crash or
 * a leak; loaded objects are used a little to reach their invariants. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eval.h"
#include "json.h"
#include "model.h"
#include "model_internal.h"
#include "tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static lq_tokenizer *g_tok;

static const char *tmp_path(void)
{
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "/tmp/lq_fuzz_model.%d", (int)getpid());
    return path;
}

static int write_file(const uint8_t *d, size_t n)
{
    FILE *f = fopen(tmp_path(), "wb");
    if (!f) return -1;
    int ok = fwrite(d, 1, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    if (!g_tok) {
        if (lq_tok_load(LQ_FUZZ_DATA "/realmodel/tok512.bin", 512, &g_tok) != LQ_OK) abort();
        lq_model_silent = 1; /* the loaders explain every refusal on stderr */
    }
    const uint8_t *d = data + 1;
    size_t n = size - 1;
    switch (data[0] % 4) {
    case 0: {
        lq_json *j = lq_json_parse((const char *)d, n);
        if (j) (void)lq_json_get(j, "hidden_size");
        lq_json_free(j);
        break;
    }
    case 1: { /* a llama2.c checkpoint */
        if (write_file(d, n)) break;
        lq_llama *m = NULL;
        if (lq_llama_load(NULL, tmp_path(), &m) == LQ_OK) {
            lq_llama_state *s;
            if (lq_llama_state_create(m, 2, &s) == LQ_OK) {
                int tok[2] = {0, (int)(m->cfg.vocab - 1)};
                float *lg = malloc(2 * m->cfg.vocab * sizeof *lg);
                if (lg && m->cfg.seq_len >= 2)
                    lq_llama_forward(NULL, m, s, &(lq_run_opts){0, 0}, tok, 2, 0, lg);
                free(lg);
                lq_llama_state_free(s);
            }
            lq_llama_free(m);
        }
        break;
    }
    case 2: { /* a tokenizer.bin of the vocabulary its size suggests */
        if (write_file(d, n)) break;
        for (size_t v = 1; v <= 300; v += 299) {
            lq_tokenizer *t = NULL;
            if (lq_tok_load(tmp_path(), v == 1 ? 256 : 259, &t) == LQ_OK) {
                int *ids;
                size_t nid;
                if (lq_tok_encode(t, "Once upon a time", 16, 1, &ids, &nid) == LQ_OK) free(ids);
                lq_tok_free(t);
            }
        }
        break;
    }
    default: { /* text */
        int *ids;
        size_t nid;
        if (lq_tok_encode(g_tok, (const char *)d, n, 1, &ids, &nid) == LQ_OK) {
            char buf[64];
            for (size_t i = 1; i < nid; i++)
                lq_tok_piece(g_tok, ids[i - 1], ids[i], buf, sizeof buf);
            free(ids);
        }
        lq_chunks c;
        if (lq_chunks_make(g_tok, (const char *)d, n, (lq_protocol)(n & 1), 16, 8, &c) == LQ_OK)
            lq_chunks_free(&c);
        break;
    }
    }
    unlink(tmp_path());
    return 0;
}
