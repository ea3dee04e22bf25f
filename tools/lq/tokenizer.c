/* llama2.c tokenizer: load, encode (heap-based BPE), decode. */
#include "tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lq_tokenizer {
    size_t vocab;
    unsigned max_len;
    char **str; /* vocab strings, NUL-terminated (lengths below) */
    unsigned *len;
    float *score;
    int *table; /* open-addressing hash: token id or -1 */
    size_t table_mask;
    int byte_id[256]; /* <0xXX> token of each byte */
};

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static int lookup(const lq_tokenizer *t, const char *s, size_t n)
{
    size_t i = (size_t)hash_bytes(s, n) & t->table_mask;
    for (;;) {
        int id = t->table[i];
        if (id < 0) return -1;
        if (t->len[id] == n && !memcmp(t->str[id], s, n)) return id;
        i = (i + 1) & t->table_mask;
    }
}

void lq_tok_free(lq_tokenizer *t)
{
    if (!t) return;
    if (t->str)
        for (size_t i = 0; i < t->vocab; i++) free(t->str[i]);
    free(t->str);
    free(t->len);
    free(t->score);
    free(t->table);
    free(t);
}

size_t lq_tok_vocab(const lq_tokenizer *t) { return t ? t->vocab : 0; }

const char *lq_tok_text(const lq_tokenizer *t, size_t id, size_t *len)
{
    if (!t || id >= t->vocab) return NULL;
    if (len) *len = t->len[id];
    return t->str[id];
}

float lq_tok_score(const lq_tokenizer *t, size_t id)
{
    return t && id < t->vocab ? t->score[id] : 0.0f;
}

static int read_exact(FILE *f, void *p, size_t n) { return fread(p, 1, n, f) == n; }

lq_status lq_tok_load(const char *path, size_t vocab, lq_tokenizer **out)
{
    if (!path || !out || vocab == 0 || vocab > (1u << 24)) return LQ_ERR_INVALID_ARG;
    FILE *f = fopen(path, "rb");
    if (!f) return LQ_ERR_IO;
    lq_status st = LQ_ERR_NO_MEMORY;
    lq_tokenizer *t = calloc(1, sizeof *t);
    if (!t) goto fail;
    t->vocab = vocab;
    t->str = calloc(vocab, sizeof *t->str);
    t->len = calloc(vocab, sizeof *t->len);
    t->score = calloc(vocab, sizeof *t->score);
    size_t tsize = 16;
    while (tsize < 2 * vocab) tsize *= 2;
    t->table = malloc(tsize * sizeof *t->table);
    if (!t->str || !t->len || !t->score || !t->table) goto fail;
    t->table_mask = tsize - 1;
    for (size_t i = 0; i < tsize; i++) t->table[i] = -1;
    int32_t maxlen;
    st = LQ_ERR_CORRUPT;
    if (!read_exact(f, &maxlen, 4) || maxlen < 1 || maxlen > 4096) goto fail;
    t->max_len = (unsigned)maxlen;
    for (size_t i = 0; i < vocab; i++) {
        float sc;
        int32_t n;
        if (!read_exact(f, &sc, 4) || !read_exact(f, &n, 4)) goto fail;
        if (!isfinite(sc) || n < 0 || n > maxlen) goto fail;
        t->score[i] = sc;
        t->len[i] = (unsigned)n;
        t->str[i] = malloc((size_t)n + 1);
        if (!t->str[i]) {
            st = LQ_ERR_NO_MEMORY;
            goto fail;
        }
        if (!read_exact(f, t->str[i], (size_t)n)) goto fail;
        t->str[i][n] = 0;
        /* first occurrence wins, as a linear search would find it */
        if (lookup(t, t->str[i], (size_t)n) < 0) {
            size_t h = (size_t)hash_bytes(t->str[i], (size_t)n) & t->table_mask;
            while (t->table[h] >= 0) h = (h + 1) & t->table_mask;
            t->table[h] = (int)i;
        }
    }
    /* the file must end here: a longer file belongs to a larger vocabulary */
    if (fgetc(f) != EOF) {
        st = LQ_ERR_INVALID_ARG;
        goto fail;
    }
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_id[b] = lookup(t, name, 6);
        if (t->byte_id[b] < 0) goto fail; /* byte fallback is required */
    }
    fclose(f);
    *out = t;
    return LQ_OK;
fail:
    /* a short file for this vocabulary is a mismatch, not only corruption */
    if (st == LQ_ERR_CORRUPT && feof(f)) st = LQ_ERR_INVALID_ARG;
    fclose(f);
    lq_tok_free(t);
    return st;
}

int lq_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        size_t k;
        unsigned cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            k = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            k = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i <= k) return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((p[i + j] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (p[i + j] & 0x3F);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += k + 1;
    }
    return 1;
}

/* ---- BPE merges with a heap of candidate pairs ---------------------------------- */

typedef struct node {
    int id;
    long prev, next; /* -1 at the ends */
    int alive;
} node;

typedef struct cand {
    float score;
    long left;    /* node index (original order, so ties go leftmost) */
    int lid, rid; /* ids when pushed: stale entries are skipped */
    int merged;
} cand;

static int cand_before(const cand *a, const cand *b)
{
    if (a->score != b->score) return a->score > b->score;
    return a->left < b->left;
}

typedef struct heap {
    cand *v;
    size_t n, cap;
} heap;

static int heap_push(heap *h, cand c)
{
    if (h->n == h->cap) {
        size_t nc = h->cap ? 2 * h->cap : 64;
        cand *nv = realloc(h->v, nc * sizeof *nv);
        if (!nv) return -1;
        h->v = nv;
        h->cap = nc;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_before(&c, &h->v[p])) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = c;
    return 0;
}

static cand heap_pop(heap *h)
{
    cand top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const cand *best = &last;
        if (l < h->n && cand_before(&h->v[l], best)) {
            m = l;
            best = &h->v[l];
        }
        if (r < h->n && cand_before(&h->v[r], best)) m = r;
        if (m == i) break;
        h->v[i] = h->v[m];
        i = m;
    }
    if (h->n) h->v[i] = last;
    return top;
}

/* Push the pair starting at node a (if it merges into a vocabulary token). */
static int push_pair(const lq_tokenizer *t, heap *h, const node *nd, long a, char *buf)
{
    long b = nd[a].next;
    if (a < 0 || b < 0) return 0;
    int la = nd[a].id, rb = nd[b].id;
    size_t n1 = t->len[la], n2 = t->len[rb];
    memcpy(buf, t->str[la], n1);
    memcpy(buf + n1, t->str[rb], n2);
    int m = lookup(t, buf, n1 + n2);
    if (m < 0) return 0;
    cand c = {t->score[m], a, la, rb, m};
    return heap_push(h, c);
}

lq_status lq_tok_encode(const lq_tokenizer *t, const char *text, size_t n, int bos, int **ids,
                        size_t *nids)
{
    if (!t || (!text && n) || !ids || !nids) return LQ_ERR_INVALID_ARG;
    if (!lq_utf8_valid(text, n)) return LQ_ERR_INVALID_ARG;
    size_t cap = n + 2;
    node *nd = malloc(cap * sizeof *nd);
    char *buf = malloc(2 * (size_t)t->max_len + 8);
    heap h = {0};
    int *res = NULL;
    lq_status st = LQ_ERR_NO_MEMORY;
    if (!nd || !buf) goto out;
    long cnt = 0;
    if (n > 0) {
        int sp = lookup(t, " ", 1);
        if (sp >= 0) {
            nd[0] = (node){sp, -1, -1, 1};
            cnt = 1;
        }
    }
    for (size_t i = 0; i < n;) {
        size_t k = 1;
        while (i + k < n && k < 4 && ((unsigned char)text[i + k] & 0xC0) == 0x80) k++;
        int id = lookup(t, text + i, k);
        if (id >= 0) {
            nd[cnt] = (node){id, cnt - 1, -1, 1};
            cnt++;
        } else {
            for (size_t j = 0; j < k; j++) {
                nd[cnt] = (node){t->byte_id[(unsigned char)text[i + j]], cnt - 1, -1, 1};
                cnt++;
            }
        }
        i += k;
    }
    for (long i = 0; i + 1 < cnt; i++) nd[i].next = i + 1;
    for (long i = 0; i + 1 < cnt; i++)
        if (push_pair(t, &h, nd, i, buf)) goto out;
    while (h.n) {
        cand c = heap_pop(&h);
        long a = c.left, b = nd[a].next;
        if (!nd[a].alive || b < 0 || nd[a].id != c.lid || nd[b].id != c.rid) continue;
        nd[a].id = c.merged;
        nd[b].alive = 0;
        nd[a].next = nd[b].next;
        if (nd[b].next >= 0) nd[nd[b].next].prev = a;
        if (nd[a].prev >= 0 && push_pair(t, &h, nd, nd[a].prev, buf)) goto out;
        if (push_pair(t, &h, nd, a, buf)) goto out;
    }
    res = malloc(((size_t)cnt + 1) * sizeof *res);
    if (!res) goto out;
    size_t m = 0;
    if (bos) res[m++] = LQ_TOK_BOS;
    for (long i = cnt > 0 ? 0 : -1; i >= 0; i = nd[i].next) res[m++] = nd[i].id;
    *ids = res;
    *nids = m;
    res = NULL;
    st = LQ_OK;
out:
    free(res);
    free(nd);
    free(buf);
    free(h.v);
    return st;
}

size_t lq_tok_piece(const lq_tokenizer *t, int prev, int id, char *buf, size_t cap)
{
    if (!t || !buf || cap < 2 || id < 0 || (size_t)id >= t->vocab) return 0;
    const char *p = t->str[id];
    size_t n = t->len[id];
    if (prev == LQ_TOK_BOS && n > 0 && p[0] == ' ') {
        p++;
        n--;
    }
    unsigned byte;
    char tail;
    if (n == 6 && sscanf(p, "<0x%2X%c", &byte, &tail) == 2 && tail == '>') {
        buf[0] = (char)byte;
        buf[1] = 0;
        return 1;
    }
    if (n >= cap) n = cap - 1;
    memcpy(buf, p, n);
    buf[n] = 0;
    return n;
}
