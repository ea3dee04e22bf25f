/* Chunks of text and perplexity / KL evaluation. */
#include "eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "json.h"

void lq_chunks_free(lq_chunks *c)
{
    if (!c) return;
    free(c->tok);
    free(c->off);
    free(c->len);
    memset(c, 0, sizeof *c);
}

static int push_chunk(lq_chunks *c, size_t *cap, size_t *tcap, const int *ids, size_t n)
{
    if (c->n == *cap) {
        size_t nc = *cap ? 2 * *cap : 64;
        size_t *no = realloc(c->off, nc * sizeof *no);
        if (!no) return -1;
        c->off = no;
        size_t *nl = realloc(c->len, nc * sizeof *nl);
        if (!nl) return -1;
        c->len = nl;
        *cap = nc;
    }
    size_t used = c->n ? c->off[c->n - 1] + c->len[c->n - 1] : 0;
    if (used + n > *tcap) {
        size_t nc = *tcap ? *tcap : 4096;
        while (nc < used + n) nc *= 2;
        int *nt = realloc(c->tok, nc * sizeof *nt);
        if (!nt) return -1;
        c->tok = nt;
        *tcap = nc;
    }
    memcpy(c->tok + used, ids, n * sizeof *ids);
    c->off[c->n] = used;
    c->len[c->n] = n;
    c->n++;
    return 0;
}

static int starts_doc(const char *p, size_t n)
{
    return (n >= 16 && !memcmp(p, "Once upon a time", 16)) ||
           (n >= 10 && !memcmp(p, "Once there", 10));
}

lq_status lq_chunks_make(const lq_tokenizer *t, const char *text, size_t n, lq_protocol p,
                         size_t seq_len, size_t max_chunks, lq_chunks *out)
{
    if (!t || !text || !out || seq_len < 2) return LQ_ERR_INVALID_ARG;
    if (n == 0 || !lq_utf8_valid(text, n)) return LQ_ERR_INVALID_ARG;
    lq_chunks c = {0};
    size_t cap = 0, tcap = 0;
    lq_status st = LQ_OK;
    int *buf = malloc(seq_len * sizeof *buf);
    if (!buf) return LQ_ERR_NO_MEMORY;
    if (p == LQ_PROTO_STREAM) {
        int *ids;
        size_t nids;
        if ((st = lq_tok_encode(t, text, n, 0, &ids, &nids)) != LQ_OK) goto out;
        for (size_t i = 0; i < nids && (!max_chunks || c.n < max_chunks); i += seq_len - 1) {
            size_t k = nids - i < seq_len - 1 ? nids - i : seq_len - 1;
            buf[0] = LQ_TOK_BOS;
            memcpy(buf + 1, ids + i, k * sizeof *buf);
            if (push_chunk(&c, &cap, &tcap, buf, k + 1)) {
                st = LQ_ERR_NO_MEMORY;
                break;
            }
        }
        free(ids);
    } else {
        /* paragraphs: maximal runs of non-blank lines */
        char *doc = malloc(n + 1);
        size_t dl = 0;
        int in_doc = 1; /* the text before the first start is a document too */
        if (!doc) {
            st = LQ_ERR_NO_MEMORY;
            goto out;
        }
        size_t i = 0;
        for (;;) {
            while (i < n && text[i] == '\n') i++;
            size_t a = i;
            /* a paragraph ends at "\n\n" or at the end of the text */
            while (i < n && !(text[i] == '\n' && (i + 1 >= n || text[i + 1] == '\n'))) i++;
            size_t b = i;
            while (a < b && (text[a] == ' ' || text[a] == '\t' || text[a] == '\r')) a++;
            while (b > a && (text[b - 1] == ' ' || text[b - 1] == '\t' || text[b - 1] == '\r')) b--;
            int last = a >= n;
            if (last || starts_doc(text + a, b - a)) {
                if (in_doc && dl > 0) {
                    int *ids;
                    size_t nids;
                    if ((st = lq_tok_encode(t, doc, dl, 1, &ids, &nids)) != LQ_OK) break;
                    int bad = push_chunk(&c, &cap, &tcap, ids, nids < seq_len ? nids : seq_len);
                    free(ids);
                    if (bad) {
                        st = LQ_ERR_NO_MEMORY;
                        break;
                    }
                    if (max_chunks && c.n >= max_chunks) break;
                }
                if (last) break;
                in_doc = 1;
                dl = 0;
            }
            if (in_doc && b > a) {
                if (dl) doc[dl++] = '\n';
                memcpy(doc + dl, text + a, b - a);
                dl += b - a;
            }
        }
        free(doc);
    }
out:
    free(buf);
    size_t scored = 0;
    for (size_t i = 0; i < c.n; i++) scored += c.len[i] - 1;
    if (st == LQ_OK && scored == 0) st = LQ_ERR_INVALID_ARG;
    if (st != LQ_OK) {
        lq_chunks_free(&c);
        return st;
    }
    *out = c;
    return LQ_OK;
}

/* log-softmax of logits into lp (double), returns the argmax */
static size_t log_softmax(const float *z, size_t n, double *lp)
{
    size_t am = 0;
    for (size_t i = 1; i < n; i++)
        if (z[i] > z[am]) am = i;
    double mx = z[am], s = 0;
    for (size_t i = 0; i < n; i++) s += exp((double)z[i] - mx);
    double lse = mx + log(s);
    for (size_t i = 0; i < n; i++) lp[i] = (double)z[i] - lse;
    return am;
}

lq_status lq_eval_run(lq_ctx *ctx, const lq_llama *m, const lq_llama *ref, const lq_run_opts *o,
                      const lq_chunks *c, lq_eval_result *r)
{
    if (!m || !o || !c || !r) return LQ_ERR_INVALID_ARG;
    size_t V = m->cfg.vocab, T = m->cfg.seq_len;
    if (ref && (ref->cfg.vocab != V)) return LQ_ERR_INVALID_ARG;
    lq_llama_state *s = NULL, *rs = NULL;
    float *lg = malloc(T * V * sizeof *lg), *rlg = ref ? malloc(T * V * sizeof *rlg) : NULL;
    double *lp = malloc(V * sizeof *lp), *rlp = malloc(V * sizeof *rlp);
    lq_status st = LQ_ERR_NO_MEMORY;
    if (!lg || !lp || !rlp || (ref && !rlg)) goto out;
    if ((st = lq_llama_state_create(m, T, &s)) != LQ_OK) goto out;
    if (ref && (st = lq_llama_state_create(ref, T, &rs)) != LQ_OK) goto out;
    const lq_run_opts ro = {LQ_KERNEL_EXACT, 1};
    double nll = 0, kl = 0, secs = 0, cpu = 0;
    size_t ntok = 0, agree = 0;
    for (size_t i = 0; i < c->n; i++) {
        const int *tk = c->tok + c->off[i];
        size_t len = c->len[i];
        if (len > T || len < 2) {
            st = LQ_ERR_INVALID_ARG;
            goto out;
        }
        double t0 = lq_cli_now(), c0 = lq_cli_cpu_now();
        if ((st = lq_llama_forward(ctx, m, s, o, tk, len, 0, lg)) != LQ_OK) goto out;
        secs += lq_cli_now() - t0;
        cpu += lq_cli_cpu_now() - c0;
        if (ref && (st = lq_llama_forward(ctx, ref, rs, &ro, tk, len, 0, rlg)) != LQ_OK) goto out;
        for (size_t p = 0; p + 1 < len; p++) {
            size_t am = log_softmax(lg + p * V, V, lp);
            nll -= lp[tk[p + 1]];
            if (ref) {
                size_t ram = log_softmax(rlg + p * V, V, rlp);
                double d = 0;
                for (size_t v = 0; v < V; v++) d += exp(rlp[v]) * (rlp[v] - lp[v]);
                kl += d;
                agree += am == ram;
            }
            ntok++;
        }
    }
    r->chunks = c->n;
    r->tokens = ntok;
    r->nll = nll / (double)ntok;
    r->ppl = exp(r->nll);
    r->kl = ref ? kl / (double)ntok : NAN;
    r->top1 = ref ? (double)agree / (double)ntok : NAN;
    r->seconds = secs;
    r->cpu_seconds = cpu;
    st = LQ_OK;
out:
    lq_llama_state_free(s);
    lq_llama_state_free(rs);
    free(lg);
    free(rlg);
    free(lp);
    free(rlp);
    return st;
}

char *lq_text_load(const char *path, size_t *n)
{
    char *txt = lq_read_file(path, n);
    if (!txt) {
        fprintf(stderr, "error: %s: cannot read (missing, unreadable or over 64 MiB)\n", path);
        return NULL;
    }
    if (*n == 0) {
        fprintf(stderr, "error: %s: the text is empty\n", path);
        free(txt);
        return NULL;
    }
    if (!lq_utf8_valid(txt, *n)) {
        fprintf(stderr, "error: %s: not valid UTF-8 text\n", path);
        free(txt);
        return NULL;
    }
    return txt;
}
