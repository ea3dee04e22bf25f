/* GGUF export (src/io/gguf.h, tools/lq/gguf_export.c, lq export --gguf).
 *
 * Everything written is read back by an independent GGUF reader and
 * dequantizer defined in this file from the published specification
 * (ggml's docs/gguf.md: header, typed metadata, tensor infos, alignment)
 * and ggml's block definitions (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0: layouts and
 * the formulas x = (q - 8) d, x = q d + m, ...), sharing no code with the
 * writer. The exported blocks must dequantize to lq_dequantize's W_hat bit
 * for bit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "gguf_export.h"
#include "io/gguf.h"
#include "json.h"
#include "model.h"
#include "test_common.h"
#include "tokenizer.h"

#define DATA LQ_TEST_DATA "/realmodel/"
#define MODEL DATA "tinystories_d64_l5.bin"
#define TOK DATA "tok512.bin"

/* ===== an independent GGUF reader (from the specification) ============================ */

enum { /* gguf_metadata_value_type */
       V_U8,
       V_I8,
       V_U16,
       V_I16,
       V_U32,
       V_I32,
       V_F32,
       V_BOOL,
       V_STR,
       V_ARR,
       V_U64,
       V_I64,
       V_F64
};
/* ggml_type values and sizes: (elements per block, bytes per block) */
enum { G_F32 = 0, G_F16 = 1, G_Q4_0 = 2, G_Q4_1 = 3, G_Q5_0 = 6, G_Q5_1 = 7, G_Q8_0 = 8 };
static const struct {
    uint32_t type, blck, size;
} g_sizes[] = {{G_F32, 1, 4},    {G_F16, 1, 2},    {G_Q4_0, 32, 18}, {G_Q4_1, 32, 20},
               {G_Q5_0, 32, 22}, {G_Q5_1, 32, 24}, {G_Q8_0, 32, 34}};

typedef struct rd {
    const uint8_t *p;
    size_t n, pos;
    int bad;
} rd;

static uint64_t rd_le(rd *r, size_t k)
{
    if (r->bad || r->n - r->pos < k) {
        r->bad = 1;
        return 0;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < k; i++) v |= (uint64_t)r->p[r->pos + i] << (8 * i);
    r->pos += k;
    return v;
}

static const uint8_t *rd_bytes(rd *r, uint64_t k)
{
    if (r->bad || k > r->n - r->pos) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *q = r->p + r->pos;
    r->pos += (size_t)k;
    return q;
}

static size_t scalar_bytes(uint32_t t)
{
    switch (t) {
    case V_U8:
    case V_I8:
    case V_BOOL: return 1;
    case V_U16:
    case V_I16: return 2;
    case V_U32:
    case V_I32:
    case V_F32: return 4;
    case V_U64:
    case V_I64:
    case V_F64: return 8;
    default: return 0;
    }
}

static void skip_value(rd *r, uint32_t t, int depth)
{
    if (t == V_STR) {
        rd_bytes(r, rd_le(r, 8));
    } else if (t == V_ARR) {
        uint32_t et = (uint32_t)rd_le(r, 4);
        uint64_t n = rd_le(r, 8);
        if (depth > 3) r->bad = 1;
        for (uint64_t i = 0; i < n && !r->bad; i++) skip_value(r, et, depth + 1);
    } else if (t == V_BOOL) {
        if (rd_le(r, 1) > 1) r->bad = 1; /* 0 or 1 only */
    } else if (scalar_bytes(t)) {
        rd_bytes(r, scalar_bytes(t));
    } else {
        r->bad = 1;
    }
}

typedef struct gkv {
    const char *key;
    size_t klen;
    uint32_t type, atype; /* atype, an: arrays */
    uint64_t an;
    size_t vpos; /* the value (arrays: the first element) */
} gkv;

typedef struct gti {
    char name[65];
    uint32_t ndim, type;
    uint64_t ne[4], offset, nbytes;
} gti;

typedef struct gfile {
    uint8_t *buf;
    size_t size;
    uint64_t nkv, nt, alignment, data;
    gkv *kv;
    gti *ti;
} gfile;

static int key_valid(const char *k, size_t n)
{
    if (n == 0 || n > 65535) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        int seg = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
        if (c == '.' ? (i == 0 || i == n - 1 || k[i - 1] == '.') : !seg) return 0;
    }
    return 1;
}

static const gkv *kv_find(const gfile *g, const char *key)
{
    for (uint64_t i = 0; i < g->nkv; i++)
        if (g->kv[i].klen == strlen(key) && !memcmp(g->kv[i].key, key, g->kv[i].klen))
            return &g->kv[i];
    return NULL;
}

/* Parse a whole file; 0 or -1 (and a reason in why). */
static int gguf_parse(const char *path, gfile *g, char *why, size_t cap)
{
    memset(g, 0, sizeof *g);
    FILE *f = fopen(path, "rb");
    if (!f) return snprintf(why, cap, "cannot open"), -1;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    g->buf = malloc((size_t)sz + 1);
    g->size = (size_t)sz;
    if (fread(g->buf, 1, g->size, f) != g->size) g->size = 0;
    fclose(f);
    rd r = {g->buf, g->size, 0, 0};
    const uint8_t *magic = rd_bytes(&r, 4);
    if (!magic || memcmp(magic, "\x47\x47\x55\x46", 4)) return snprintf(why, cap, "magic"), -1;
    if (rd_le(&r, 4) != 3) return snprintf(why, cap, "version"), -1;
    g->nt = rd_le(&r, 8);
    g->nkv = rd_le(&r, 8);
    if (r.bad || g->nt > g->size || g->nkv > g->size) return snprintf(why, cap, "counts"), -1;
    g->kv = calloc(g->nkv + 1, sizeof *g->kv);
    g->ti = calloc(g->nt + 1, sizeof *g->ti);
    for (uint64_t i = 0; i < g->nkv && !r.bad; i++) {
        gkv *kv = &g->kv[i];
        kv->klen = (size_t)rd_le(&r, 8);
        kv->key = (const char *)rd_bytes(&r, kv->klen);
        kv->type = (uint32_t)rd_le(&r, 4);
        if (r.bad || !key_valid(kv->key, kv->klen))
            return snprintf(why, cap, "key %llu", (unsigned long long)i), -1;
        for (uint64_t j = 0; j < i; j++)
            if (g->kv[j].klen == kv->klen && !memcmp(g->kv[j].key, kv->key, kv->klen))
                return snprintf(why, cap, "duplicate key"), -1;
        if (kv->type == V_ARR) {
            size_t at = r.pos;
            kv->atype = (uint32_t)rd_le(&r, 4);
            kv->an = rd_le(&r, 8);
            kv->vpos = r.pos;
            r.pos = at;
        } else {
            kv->vpos = r.pos;
        }
        skip_value(&r, kv->type, 0);
    }
    if (r.bad) return snprintf(why, cap, "metadata"), -1;
    g->alignment = 32; /* the specification's default */
    const gkv *al = kv_find(g, "general.alignment");
    if (al) {
        rd v = {g->buf, g->size, al->vpos, 0};
        g->alignment = al->type == V_U32 ? rd_le(&v, 4) : 0;
        if (g->alignment == 0 || g->alignment % 8) return snprintf(why, cap, "alignment"), -1;
    }
    for (uint64_t i = 0; i < g->nt && !r.bad; i++) {
        gti *t = &g->ti[i];
        uint64_t nl = rd_le(&r, 8);
        const uint8_t *nm = rd_bytes(&r, nl);
        if (r.bad || nl == 0 || nl > 64) return snprintf(why, cap, "tensor name"), -1;
        memcpy(t->name, nm, (size_t)nl);
        t->ndim = (uint32_t)rd_le(&r, 4);
        if (t->ndim < 1 || t->ndim > 4) return snprintf(why, cap, "n_dims"), -1;
        for (uint32_t d = 0; d < t->ndim; d++) t->ne[d] = rd_le(&r, 8);
        t->type = (uint32_t)rd_le(&r, 4);
        t->offset = rd_le(&r, 8);
        size_t k = 0;
        while (k < sizeof g_sizes / sizeof g_sizes[0] && g_sizes[k].type != t->type) k++;
        if (k == sizeof g_sizes / sizeof g_sizes[0])
            return snprintf(why, cap, "type %u", t->type), -1;
        if (t->ne[0] % g_sizes[k].blck) return snprintf(why, cap, "ne0 vs block"), -1;
        t->nbytes = t->ne[0] / g_sizes[k].blck * g_sizes[k].size;
        for (uint32_t d = 1; d < t->ndim; d++) t->nbytes *= t->ne[d];
        if (t->offset % g->alignment)
            return snprintf(why, cap, "%s: offset unaligned", t->name), -1;
        for (uint64_t j = 0; j < i; j++)
            if (!strcmp(g->ti[j].name, t->name)) return snprintf(why, cap, "duplicate tensor"), -1;
    }
    if (r.bad) return snprintf(why, cap, "tensor infos"), -1;
    /* the data section starts at the next multiple of the alignment */
    g->data = (r.pos + g->alignment - 1) / g->alignment * g->alignment;
    for (size_t p = r.pos; p < g->data && p < g->size; p++)
        if (g->buf[p]) return snprintf(why, cap, "padding not zero"), -1;
    for (uint64_t i = 0; i < g->nt; i++) {
        const gti *a = &g->ti[i];
        if (g->data > g->size || a->offset > g->size - g->data ||
            a->nbytes > g->size - g->data - a->offset)
            return snprintf(why, cap, "%s: data beyond the file", a->name), -1;
        for (uint64_t j = 0; j < i; j++) {
            const gti *b = &g->ti[j];
            if (a->offset < b->offset + b->nbytes && b->offset < a->offset + a->nbytes)
                return snprintf(why, cap, "tensors overlap"), -1;
        }
    }
    return 0;
}

static void gguf_free(gfile *g)
{
    free(g->buf);
    free(g->kv);
    free(g->ti);
}

static const gti *ti_find(const gfile *g, const char *name)
{
    for (uint64_t i = 0; i < g->nt; i++)
        if (!strcmp(g->ti[i].name, name)) return &g->ti[i];
    return NULL;
}

static uint32_t kv_u32(const gfile *g, const char *key)
{
    const gkv *kv = kv_find(g, key);
    ck_assert_msg(kv && kv->type == V_U32, "%s: not a u32", key);
    rd v = {g->buf, g->size, kv->vpos, 0};
    return (uint32_t)rd_le(&v, 4);
}

static float kv_f32(const gfile *g, const char *key)
{
    const gkv *kv = kv_find(g, key);
    ck_assert_msg(kv && kv->type == V_F32, "%s: not a f32", key);
    rd v = {g->buf, g->size, kv->vpos, 0};
    uint32_t u = (uint32_t)rd_le(&v, 4);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* String value (or element i of a string array) compared to s. */
static int kv_str_eq(const gfile *g, const char *key, long i, const char *s)
{
    const gkv *kv = kv_find(g, key);
    ck_assert_ptr_nonnull(kv);
    rd v = {g->buf, g->size, kv->vpos, 0};
    if (i < 0) {
        ck_assert_uint_eq(kv->type, V_STR);
    } else {
        ck_assert_msg(kv->type == V_ARR && kv->atype == V_STR && (uint64_t)i < kv->an, "%s", key);
        for (long k = 0; k < i; k++) skip_value(&v, V_STR, 0);
    }
    uint64_t n = rd_le(&v, 8);
    const uint8_t *p = rd_bytes(&v, n);
    return p && n == strlen(s) && !memcmp(p, s, (size_t)n);
}

/* Element i of a 4-byte array (f32 or i32) as raw bits. */
static uint32_t kv_arr32(const gfile *g, const char *key, uint32_t atype, uint64_t i)
{
    const gkv *kv = kv_find(g, key);
    ck_assert_msg(kv && kv->type == V_ARR && kv->atype == atype && i < kv->an, "%s", key);
    rd v = {g->buf, g->size, kv->vpos + 4 * (size_t)i, 0};
    return (uint32_t)rd_le(&v, 4);
}

/* ===== an independent dequantizer (ggml's block formulas) ============================== */

static float half(const uint8_t *p)
{
    unsigned h = p[0] | (unsigned)p[1] << 8, e = (h >> 10) & 31, m = h & 1023;
    float v = e == 0    ? ldexpf((float)m, -24)
              : e == 31 ? NAN
                        : ldexpf((float)(1024 + m), (int)e - 25);
    return h & 0x8000 ? -v : v;
}

/* The float values of tensor t (ne0 * ne1 values, row-major) into y. */
static void dequant(const gfile *g, const gti *t, float *y)
{
    const uint8_t *p = g->buf + g->data + t->offset;
    size_t n = (size_t)t->ne[0] * (t->ndim > 1 ? (size_t)t->ne[1] : 1);
    if (t->type == G_F32) {
        for (size_t i = 0; i < n; i++) {
            uint32_t u =
                p[4 * i] | p[4 * i + 1] << 8 | p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24;
            memcpy(&y[i], &u, 4);
        }
        return;
    }
    if (t->type == G_F16) {
        for (size_t i = 0; i < n; i++) y[i] = half(p + 2 * i);
        return;
    }
    for (size_t b = 0; b < n / 32; b++, y += 32) {
        float d = half(p), m = 0;
        const uint8_t *q;
        uint32_t qh = 0;
        switch (t->type) {
        case G_Q4_0: /* d, qs[16]; element j: low nibble of qs[j], j + 16: high nibble */
            q = p + 2;
            for (int j = 0; j < 16; j++) {
                y[j] = (float)((q[j] & 15) - 8) * d;
                y[j + 16] = (float)((q[j] >> 4) - 8) * d;
            }
            p += 18;
            break;
        case G_Q4_1: /* d, m, qs[16]; x = q d + m */
            m = half(p + 2);
            q = p + 4;
            for (int j = 0; j < 16; j++) {
                y[j] = (float)(q[j] & 15) * d + m;
                y[j + 16] = (float)(q[j] >> 4) * d + m;
            }
            p += 20;
            break;
        case G_Q5_0: /* d, qh (u32: bit j = 5th bit of element j), qs[16] */
        case G_Q5_1: /* d, m, qh, qs[16]; x = q d + m */
            if (t->type == G_Q5_1) m = half(p + 2);
            q = p + (t->type == G_Q5_1 ? 4 : 2);
            qh = q[0] | q[1] << 8 | q[2] << 16 | (uint32_t)q[3] << 24;
            q += 4;
            for (int j = 0; j < 16; j++) {
                int lo = (q[j] & 15) | (int)((qh >> j) & 1) << 4;
                int hi = (q[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
                if (t->type == G_Q5_0) {
                    y[j] = (float)(lo - 16) * d;
                    y[j + 16] = (float)(hi - 16) * d;
                } else {
                    y[j] = (float)lo * d + m;
                    y[j + 16] = (float)hi * d + m;
                }
            }
            p += t->type == G_Q5_1 ? 24 : 22;
            break;
        case G_Q8_0: /* d, qs[32] int8; x = qs d */
            for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)p[2 + j] * d;
            p += 34;
            break;
        default: ck_abort_msg("type %u", t->type);
        }
    }
}

/* ===== helpers ============================================================================ */

static int bits_equal(const float *a, const float *b, size_t n, size_t *where)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], 4)) {
            *where = i;
            return 0;
        }
    return 1;
}

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

static void part_absent(const char *path)
{
    char p[300];
    snprintf(p, sizeof p, "%s.part", path);
    ck_assert_msg(!exists(path) && !exists(p), "%s or its .part exists", path);
}

static char g_dir[64];

static void make_dir(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/lq_test_gguf.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(g_dir));
}

static void remove_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* The llama q/k permutation of the specification (tensor_data_layout "Meta AI
 * original pth": weights.reshape(n_head, 2, rows / n_head / 2, cols)
 * .swapaxes(1, 2)): output row h*hd + 2i + j is input row h*hd + j*hd/2 + i. */
static void permute_rows(const float *in, float *out, size_t rows, size_t cols, size_t heads)
{
    size_t hd = rows / heads;
    for (size_t h = 0; h < heads; h++)
        for (size_t i = 0; i < hd / 2; i++)
            for (size_t j = 0; j < 2; j++)
                memcpy(out + (h * hd + 2 * i + j) * cols, in + (h * hd + j * hd / 2 + i) * cols,
                       cols * sizeof *out);
}

typedef struct gtype {
    const char *name;
    unsigned bits;
    int symmetric;
    uint32_t type;
} gtype;
static const gtype g_types[] = {{"q4_0", 4, 1, G_Q4_0},
                                {"q4_1", 4, 0, G_Q4_1},
                                {"q5_0", 5, 1, G_Q5_0},
                                {"q5_1", 5, 0, G_Q5_1},
                                {"q8_0", 8, 1, G_Q8_0}};

static lq_method int_method(const gtype *t, int gguf_exact)
{
    lq_method m;
    ck_assert_int_eq(lq_method_init(&m, LQ_METHOD_INT), LQ_OK);
    m.u.int_.bits = t->bits;
    m.u.int_.symmetric = t->symmetric;
    m.u.int_.group = 32;
    m.u.int_.gguf_exact = gguf_exact;
    return m;
}

/* One tensor through lq_ggml_from_int into a GGUF file, read back by the
 * independent reader and dequantized: equal to lq_dequantize bit for bit. */
static void check_one_tensor(const lq_qtensor *q, uint32_t want_type, const char *what)
{
    size_t rows, cols;
    lq_qtensor_shape(q, &rows, &cols);
    lq_ggml_type type;
    char why[256] = "";
    ck_assert_msg(lq_ggml_exact_type(q, &type, why, sizeof why) == LQ_OK, "%s: %s", what, why);
    ck_assert_msg((uint32_t)type == want_type, "%s: type %d, want %u", what, type, want_type);
    size_t nb = lq_ggml_row_bytes(type, cols) * rows;
    uint8_t *blocks = malloc(nb);
    ck_assert_int_eq(lq_ggml_from_int(q, type, NULL, blocks, nb), LQ_OK);
    char path[128];
    snprintf(path, sizeof path, "%s/one.gguf", g_dir);
    lq_gguf_writer *w;
    ck_assert_int_eq(lq_gguf_writer_open(NULL, path, 32, &w), LQ_OK);
    ck_assert_int_eq(lq_gguf_kv_str(w, "general.architecture", "test"), LQ_OK);
    uint64_t ne[2] = {cols, rows};
    size_t n1;
    float ones[3] = {1, 2, 3};
    uint64_t ne1 = 3;
    ck_assert_int_eq(lq_gguf_add_tensor(w, "pad", 1, &ne1, LQ_GGML_F32, &n1), LQ_OK);
    ck_assert_int_eq(lq_gguf_add_tensor(w, "w", 2, ne, type, &n1), LQ_OK);
    ck_assert_uint_eq(n1, nb);
    uint8_t pad[12];
    ck_assert_int_eq(lq_ggml_from_f32(ones, 1, 3, LQ_GGML_F32, NULL, pad, 12), LQ_OK);
    ck_assert_int_eq(lq_gguf_write_data(w, pad, 12), LQ_OK);
    ck_assert_int_eq(lq_gguf_write_data(w, blocks, nb), LQ_OK);
    ck_assert_int_eq(lq_gguf_writer_finish(w), LQ_OK);
    gfile g;
    ck_assert_msg(gguf_parse(path, &g, why, sizeof why) == 0, "%s: %s", what, why);
    const gti *t = ti_find(&g, "w");
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(t->type, want_type);
    ck_assert_uint_eq(t->ne[0], cols);
    ck_assert_uint_eq(t->ne[1], rows);
    ck_assert_uint_eq(t->offset % 32, 0);
    float *got = malloc(rows * cols * sizeof *got), *ref = malloc(rows * cols * sizeof *ref);
    dequant(&g, t, got);
    ck_assert_int_eq(lq_dequantize(NULL, q, ref), LQ_OK);
    size_t at = 0;
    ck_assert_msg(bits_equal(got, ref, rows * cols, &at), "%s: element %zu: %.9g vs W_hat %.9g",
                  what, at, (double)got[at], (double)ref[at]);
    gguf_free(&g);
    free(got);
    free(ref);
    free(blocks);
    unlink(path);
}

/* ===== tests =============================================================================== */

/* Every type, through RTN and GPTQ, with MSE clipping, act-order with static
 * groups, and weight scales from tiny (subnormal half scales) to large. */
START_TEST(blocks_dequantize_to_w_hat)
{
    make_dir();
    const size_t rows = 24, cols = 96;
    float *W = malloc(rows * cols * sizeof *W), *H = malloc(cols * cols * sizeof *H);
    lq_test_correlated_layer(rows, cols, 256, 11, W, H);
    const float mags[] = {1.0f, 1e-6f, 3e2f};
    for (size_t ti = 0; ti < sizeof g_types / sizeof g_types[0]; ti++)
        for (int cfg = 0; cfg < 4; cfg++)
            for (size_t mi = 0; mi < 3; mi++) {
                const gtype *gt = &g_types[ti];
                lq_method m = int_method(gt, 1);
                m.u.int_.mse_clip = cfg == 2;
                m.engine.act_order = m.engine.static_groups = cfg == 3;
                float *Ws = malloc(rows * cols * sizeof *Ws);
                for (size_t i = 0; i < rows * cols; i++) Ws[i] = W[i] * mags[mi];
                for (size_t c = 0; c < cols; c++) Ws[5 * cols + c] = 0.0f; /* an all-zero row */
                lq_qtensor *q;
                ck_assert_int_eq(lq_quantize(NULL, Ws, rows, cols, cfg ? H : NULL, &m, &q, NULL),
                                 LQ_OK);
                char what[96];
                snprintf(what, sizeof what, "%s cfg %d scale %g", gt->name, cfg, (double)mags[mi]);
                check_one_tensor(q, gt->type, what);
                lq_qtensor_free(q);
                free(Ws);
            }
    /* symmetric 4/5/8-bit INT in groups of 32 needs no option: fp16 scales and zeros 2^(bits-1) */
    for (size_t ti = 0; ti < sizeof g_types / sizeof g_types[0]; ti++) {
        if (!g_types[ti].symmetric) continue;
        lq_method m = int_method(&g_types[ti], 0);
        lq_qtensor *q;
        ck_assert_int_eq(lq_quantize(NULL, W, rows, cols, H, &m, &q, NULL), LQ_OK);
        check_one_tensor(q, g_types[ti].type, g_types[ti].name);
        lq_qtensor_free(q);
    }
    free(W);
    free(H);
    remove_dir();
}
END_TEST

/* Weights whose grid needs a scale beyond the half range: OUT_OF_RANGE. */
START_TEST(gguf_exact_out_of_range)
{
    const size_t rows = 4, cols = 64;
    float W[4 * 64];
    lq_test_fill_gaussian(W, rows * cols, 1.0f, 9);
    W[70] = 1e7f; /* row 1, group 0: a scale of at least 2e7 / 255 */
    for (size_t ti = 0; ti < sizeof g_types / sizeof g_types[0]; ti++) {
        lq_method m = int_method(&g_types[ti], 1);
        lq_qtensor *q = (lq_qtensor *)&m; /* must stay untouched */
        ck_assert_int_eq(lq_quantize(NULL, W, rows, cols, NULL, &m, &q, NULL), LQ_ERR_OUT_OF_RANGE);
        ck_assert_ptr_eq(q, (lq_qtensor *)&m);
    }
    /* an offset beyond 65504 with a scale inside: -zero * scale for q4_1 */
    for (size_t i = 0; i < rows * cols; i++) W[i] = -1e5f - (float)(i % 7) * 100.0f;
    lq_method m = int_method(&g_types[1], 1);
    lq_qtensor *q = NULL;
    ck_assert_int_eq(lq_quantize(NULL, W, rows, cols, NULL, &m, &q, NULL), LQ_ERR_OUT_OF_RANGE);
    ck_assert_ptr_null(q);
}
END_TEST

/* gguf_exact keeps the grid close to the unconstrained one: the mean
 * squared error of RTN grows by a few percent at most. */
START_TEST(gguf_exact_costs_little)
{
    const size_t rows = 64, cols = 256;
    float *W = malloc(rows * cols * sizeof *W), *Wh = malloc(rows * cols * sizeof *Wh);
    lq_test_fill_gaussian(W, rows * cols, 0.02f, 5);
    for (size_t ti = 0; ti < sizeof g_types / sizeof g_types[0]; ti++) {
        double e[2];
        for (int ex = 0; ex < 2; ex++) {
            lq_method m = int_method(&g_types[ti], ex);
            lq_qtensor *q;
            ck_assert_int_eq(lq_quantize(NULL, W, rows, cols, NULL, &m, &q, Wh), LQ_OK);
            e[ex] = 0;
            for (size_t i = 0; i < rows * cols; i++)
                e[ex] += (double)(W[i] - Wh[i]) * (W[i] - Wh[i]);
            lq_qtensor_free(q);
        }
        ck_assert_msg(e[1] <= 1.05 * e[0], "%s: %g vs %g", g_types[ti].name, e[1], e[0]);
    }
    free(W);
    free(Wh);
}
END_TEST

static void expect_refusal(const lq_qtensor *q, const char *needle)
{
    lq_ggml_type type;
    char why[256] = "";
    ck_assert_int_eq(lq_ggml_exact_type(q, &type, why, sizeof why), LQ_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(why, needle), "reason '%s' lacks '%s'", why, needle);
    uint8_t buf[64];
    ck_assert_int_eq(lq_ggml_from_int(q, LQ_GGML_Q4_0, NULL, buf, sizeof buf), LQ_ERR_UNSUPPORTED);
}

static lq_qtensor *quantize_with(const lq_method *m, const float *W, size_t rows, size_t cols,
                                 const float *H)
{
    lq_qtensor *q = NULL;
    ck_assert_int_eq(lq_quantize(NULL, W, rows, cols, H, m, &q, NULL), LQ_OK);
    return q;
}

START_TEST(inexact_tensors_are_refused_with_reasons)
{
    const size_t rows = 16, cols = 96;
    float *W = malloc(rows * cols * sizeof *W), *H = malloc(cols * cols * sizeof *H);
    lq_test_correlated_layer(rows, cols, 256, 3, W, H);
    lq_method m = int_method(&g_types[0], 0);
    lq_qtensor *q;
    m.u.int_.bits = 3;
    q = quantize_with(&m, W, rows, cols, NULL);
    expect_refusal(q, "3-bit INT has no GGUF type");
    lq_qtensor_free(q);
    m = int_method(&g_types[0], 1);
    m.u.int_.group = 48;
    q = quantize_with(&m, W, rows, cols, NULL);
    expect_refusal(q, "group 48");
    lq_qtensor_free(q);
    m = int_method(&g_types[0], 1);
    q = quantize_with(&m, W, rows, 80, NULL); /* 80 columns: the last group is short */
    expect_refusal(q, "multiple of 32");
    lq_qtensor_free(q);
    m = int_method(&g_types[0], 1);
    m.engine.act_order = 1; /* without static groups: stored columns are permuted */
    q = quantize_with(&m, W, rows, cols, H);
    expect_refusal(q, "permuted");
    lq_qtensor_free(q);
    /* tiny weights without gguf_exact: scales below the normal half range stay float */
    float *Wt = malloc(rows * cols * sizeof *Wt);
    for (size_t i = 0; i < rows * cols; i++) Wt[i] = W[i] * 1e-6f;
    m = int_method(&g_types[0], 0);
    q = quantize_with(&m, Wt, rows, cols, NULL);
    expect_refusal(q, "is not a half");
    lq_qtensor_free(q);
    free(Wt);
    /* asymmetric 8 bits: no Q8_1 dequantization */
    m = int_method(&g_types[4], 1);
    m.u.int_.symmetric = 0;
    q = quantize_with(&m, W, rows, cols, NULL);
    expect_refusal(q, "8-bit INT with zero points");
    lq_qtensor_free(q);
    /* asymmetric 4 bits without gguf_exact: some -zero * scale needs more than 11 bits */
    m = int_method(&g_types[1], 0);
    q = quantize_with(&m, W, rows, cols, NULL);
    expect_refusal(q, "offset -zero * scale");
    lq_qtensor_free(q);
    /* the other formats have no GGUF type */
    lq_method o;
    const lq_method_kind kinds[] = {LQ_METHOD_NESTQUANT, LQ_METHOD_GPTVQ, LQ_METHOD_BCQ,
                                    LQ_METHOD_AQLM};
    const char *names[] = {"e8 format", "vq format", "bcq format", "aq format"};
    for (size_t k = 0; k < 4; k++) {
        ck_assert_int_eq(lq_method_init(&o, kinds[k]), LQ_OK);
        if (kinds[k] == LQ_METHOD_AQLM) {
            o.u.aqlm.n_codebooks = 1;
            o.u.aqlm.code_bits = 4;
            o.u.aqlm.beam = 2;
            o.u.aqlm.rounds = 1;
            o.u.aqlm.kmeans_iters = 2;
        }
        q = quantize_with(&o, W, rows, cols, NULL);
        expect_refusal(q, names[k]);
        lq_qtensor_free(q);
    }
    free(W);
    free(H);
}
END_TEST

START_TEST(writer_rejects_bad_input_and_leaves_no_file)
{
    make_dir();
    char path[128];
    snprintf(path, sizeof path, "%s/bad.gguf", g_dir);
    lq_gguf_writer *w;
    ck_assert_int_eq(lq_gguf_writer_open(NULL, path, 12, &w), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_gguf_writer_open(NULL, path, 32, &w), LQ_OK);
    const char *bad_keys[] = {"", "General.name", "a..b", ".a", "a.", "a-b", "a b"};
    for (size_t i = 0; i < sizeof bad_keys / sizeof bad_keys[0]; i++)
        ck_assert_int_eq(lq_gguf_kv_u32(w, bad_keys[i], 1), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_gguf_kv_u32(w, "general.alignment", 64), LQ_ERR_INVALID_ARG); /* taken */
    ck_assert_int_eq(lq_gguf_kv_str(w, "a.b", "x"), LQ_OK);
    ck_assert_int_eq(lq_gguf_kv_f32(w, "a.b", 1), LQ_ERR_INVALID_ARG);
    uint64_t ne[2] = {48, 2}, ok[2] = {64, 2};
    char long_name[80];
    memset(long_name, 'x', 64);
    long_name[64] = 0;
    ck_assert_int_eq(lq_gguf_add_tensor(w, long_name, 2, ok, LQ_GGML_F32, NULL),
                     LQ_ERR_INVALID_ARG);
    long_name[63] = 0; /* 63 bytes: the longest name ggml keeps */
    ck_assert_int_eq(lq_gguf_add_tensor(w, long_name, 2, ok, LQ_GGML_F32, NULL), LQ_OK);
    ck_assert_int_eq(lq_gguf_add_tensor(w, long_name, 2, ok, LQ_GGML_F32, NULL),
                     LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_gguf_add_tensor(w, "q", 2, ne, LQ_GGML_Q4_0, NULL), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_gguf_add_tensor(w, "z", 5, ok, LQ_GGML_F32, NULL), LQ_ERR_INVALID_ARG);
    ck_assert_int_eq(lq_gguf_add_tensor(w, "z", 2, ok, (lq_ggml_type)4, NULL), LQ_ERR_INVALID_ARG);
    size_t nb;
    ck_assert_int_eq(lq_gguf_add_tensor(w, "q", 2, ok, LQ_GGML_Q4_0, &nb), LQ_OK);
    ck_assert_uint_eq(nb, 2 * 2 * 18);
    float x[128] = {0};
    ck_assert_int_eq(lq_gguf_write_data(w, x, 100), LQ_ERR_INVALID_ARG); /* size mismatch */
    ck_assert_int_eq(lq_gguf_write_data(w, x, 512), LQ_OK);
    ck_assert_int_eq(lq_gguf_kv_u32(w, "late.key", 1), LQ_ERR_INVALID_ARG); /* header written */
    /* the second tensor's data is missing: finish fails and removes the file */
    ck_assert_int_eq(lq_gguf_writer_finish(w), LQ_ERR_INVALID_ARG);
    part_absent(path);
    /* abort removes it too */
    ck_assert_int_eq(lq_gguf_writer_open(NULL, path, 32, &w), LQ_OK);
    ck_assert_int_eq(lq_gguf_add_tensor(w, "a", 2, ok, LQ_GGML_F32, NULL), LQ_OK);
    ck_assert_int_eq(lq_gguf_write_data(w, x, 512), LQ_OK);
    lq_gguf_writer_abort(w);
    part_absent(path);
    /* a file with metadata and no tensor is valid */
    ck_assert_int_eq(lq_gguf_writer_open(NULL, path, 64, &w), LQ_OK);
    ck_assert_int_eq(lq_gguf_kv_bool(w, "x.flag", 1), LQ_OK);
    const char *s[2] = {"ab", ""};
    size_t l[2] = {2, 0};
    ck_assert_int_eq(lq_gguf_kv_arr_str(w, "x.list", s, l, 2), LQ_OK);
    ck_assert_int_eq(lq_gguf_writer_finish(w), LQ_OK);
    gfile g;
    char why[128];
    ck_assert_msg(gguf_parse(path, &g, why, sizeof why) == 0, "%s", why);
    ck_assert_uint_eq(g.nt, 0);
    ck_assert_uint_eq(g.nkv, 3);
    ck_assert_uint_eq(g.alignment, 64);
    ck_assert(kv_str_eq(&g, "x.list", 0, "ab") && kv_str_eq(&g, "x.list", 1, ""));
    gguf_free(&g);
    remove_dir();
}
END_TEST

/* The writer under allocation failure: NO_MEMORY, everything freed, no file. */
static lq_status write_small(lq_ctx *ctx, void *arg)
{
    const char *path = arg;
    lq_gguf_writer *w;
    lq_status st = lq_gguf_writer_open(ctx, path, 32, &w);
    if (st != LQ_OK) return st;
    uint64_t ne[2] = {32, 3};
    float x[96] = {0};
    const char *s[1] = {"tok"};
    size_t l[1] = {3};
    float sc[1] = {0.5f};
    if ((st = lq_gguf_kv_str(w, "general.architecture", "llama")) != LQ_OK ||
        (st = lq_gguf_kv_arr_str(w, "tokenizer.ggml.tokens", s, l, 1)) != LQ_OK ||
        (st = lq_gguf_kv_arr_f32(w, "tokenizer.ggml.scores", sc, 1)) != LQ_OK ||
        (st = lq_gguf_add_tensor(w, "a", 2, ne, LQ_GGML_F32, NULL)) != LQ_OK ||
        (st = lq_gguf_add_tensor(w, "b", 1, ne, LQ_GGML_F32, NULL)) != LQ_OK ||
        (st = lq_gguf_write_data(w, x, sizeof x)) != LQ_OK ||
        (st = lq_gguf_write_data(w, x, 128)) != LQ_OK) {
        lq_gguf_writer_abort(w);
        part_absent(path);
        return st;
    }
    return lq_gguf_writer_finish(w);
}

START_TEST(writer_survives_allocation_failures)
{
    make_dir();
    char path[128];
    snprintf(path, sizeof path, "%s/oom.gguf", g_dir);
    ck_assert_uint_gt(lq_test_alloc_sweep(write_small, path, 1), 3);
    gfile g;
    char why[128];
    ck_assert_msg(gguf_parse(path, &g, why, sizeof why) == 0, "%s", why);
    ck_assert_uint_eq(g.nt, 2);
    gguf_free(&g);
    remove_dir();
}
END_TEST

/* ---- the model ----------------------------------------------------------------------- */

/* The real model with every linear layer quantized (RTN, a few through GPTQ
 * with a synthetic Hessian), the types cycling over the five GGUF types;
 * *types receives each layer's expected ggml type. */
static lq_llama *quantized_model(uint32_t types[][LQ_LIN_COUNT])
{
    lq_llama *m = NULL;
    ck_assert_int_eq(lq_llama_load(NULL, MODEL, &m), LQ_OK);
    for (size_t l = 0; l < m->cfg.n_layers; l++)
        for (int k = 0; k < LQ_LIN_COUNT; k++) {
            lq_linear *li = lq_llama_lin(m, l, (lq_lin)k);
            const gtype *gt = &g_types[(l * LQ_LIN_COUNT + (size_t)k) % 5];
            lq_method me = int_method(gt, 1);
            float *H = NULL;
            if ((l + (size_t)k) % 3 == 0) {
                float *Wd = malloc(li->cols * sizeof *Wd);
                H = malloc(li->cols * li->cols * sizeof *H);
                lq_test_correlated_layer(1, li->cols, 128, 7 + l, Wd, H);
                free(Wd);
            }
            ck_assert_int_eq(lq_quantize(NULL, li->w, li->rows, li->cols, H, &me, &li->q, NULL),
                             LQ_OK);
            free(H);
            types[l][k] = gt->type;
        }
    return m;
}

static const char *const g_blk[LQ_LIN_COUNT] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                                "ffn_gate", "ffn_up", "ffn_down"};

/* t holds exactly ref (rows x cols), rows re-interleaved for q/k heads. */
static void expect_tensor(const gfile *g, const char *name, uint32_t type, const float *ref,
                          size_t rows, size_t cols, size_t heads)
{
    const gti *t = ti_find(g, name);
    ck_assert_msg(t != NULL, "%s missing", name);
    ck_assert_msg(t->type == type, "%s: type %u, want %u", name, t->type, type);
    ck_assert_uint_eq(t->ne[0], cols);
    ck_assert_uint_eq(t->ndim, rows == 1 ? 1 : 2);
    if (rows > 1) ck_assert_uint_eq(t->ne[1], rows);
    float *got = malloc(rows * cols * sizeof *got), *want = malloc(rows * cols * sizeof *want);
    dequant(g, t, got);
    if (heads)
        permute_rows(ref, want, rows, cols, heads);
    else
        memcpy(want, ref, rows * cols * sizeof *want);
    size_t at = 0;
    ck_assert_msg(bits_equal(got, want, rows * cols, &at), "%s: element %zu: %.9g vs %.9g", name,
                  at, (double)got[at], (double)want[at]);
    free(got);
    free(want);
}

START_TEST(model_export_is_exact_and_loadable)
{
    make_dir();
    uint32_t types[5][LQ_LIN_COUNT];
    lq_llama *q = quantized_model(types);
    char lqt[128], out[128], why[128];
    snprintf(lqt, sizeof lqt, "%s/m.lqt", g_dir);
    snprintf(out, sizeof out, "%s/m.gguf", g_dir);
    ck_assert_int_eq(lq_llama_save(NULL, q, lqt, NULL, 0), LQ_OK);
    lq_llama_free(q);
    lq_llama *m = NULL; /* what lq export reads: the model back from the .lqt */
    ck_assert_int_eq(lq_llama_load(NULL, lqt, &m), LQ_OK);
    lq_tokenizer *tok = NULL;
    ck_assert_int_eq(lq_tok_load(TOK, 512, &tok), LQ_OK);
    const char *meta[2] = {"libquant.method", "int"};
    lq_gguf_export_opts eo = {0, 0, "tinystories", meta, 1};
    ck_assert_int_eq(lq_llama_save_gguf(NULL, m, tok, out, &eo), LQ_OK);
    gfile g;
    ck_assert_msg(gguf_parse(out, &g, why, sizeof why) == 0, "%s", why);
    const lq_llama_config *c = &m->cfg;
    /* metadata llama.cpp reads for a Llama model */
    ck_assert(kv_str_eq(&g, "general.architecture", -1, "llama"));
    ck_assert(kv_str_eq(&g, "general.name", -1, "tinystories"));
    ck_assert(kv_str_eq(&g, "libquant.method", -1, "int"));
    ck_assert_uint_eq(kv_u32(&g, "general.alignment"), 32);
    ck_assert_uint_eq(kv_u32(&g, "general.quantization_version"), 2);
    ck_assert_uint_eq(kv_u32(&g, "llama.context_length"), c->seq_len);
    ck_assert_uint_eq(kv_u32(&g, "llama.embedding_length"), 64);
    ck_assert_uint_eq(kv_u32(&g, "llama.block_count"), 5);
    ck_assert_uint_eq(kv_u32(&g, "llama.feed_forward_length"), 192);
    ck_assert_uint_eq(kv_u32(&g, "llama.attention.head_count"), 8);
    ck_assert_uint_eq(kv_u32(&g, "llama.attention.head_count_kv"), 4);
    ck_assert_uint_eq(kv_u32(&g, "llama.rope.dimension_count"), 8);
    ck_assert(kv_f32(&g, "llama.attention.layer_norm_rms_epsilon") == c->norm_eps);
    ck_assert(kv_f32(&g, "llama.rope.freq_base") == 10000.0f);
    /* the vocabulary: sentencepiece texts, scores, types, special ids */
    ck_assert(kv_str_eq(&g, "tokenizer.ggml.model", -1, "llama"));
    ck_assert_uint_eq(kv_find(&g, "tokenizer.ggml.tokens")->an, 512);
    ck_assert(kv_str_eq(&g, "tokenizer.ggml.tokens", 0, "<unk>"));
    ck_assert(kv_str_eq(&g, "tokenizer.ggml.tokens", 1, "<s>"));
    ck_assert(kv_str_eq(&g, "tokenizer.ggml.tokens", 2, "</s>"));
    ck_assert(kv_str_eq(&g, "tokenizer.ggml.tokens", 13, "<0x0A>"));
    ck_assert(kv_str_eq(&g, "tokenizer.ggml.tokens", 259, "\xe2\x96\x81t")); /* " t" */
    ck_assert(kv_str_eq(&g, "tokenizer.ggml.tokens", 265, "\xe2\x96\x81the"));
    const int32_t want_type[] = {2, 3, 3, 6, 6};
    const uint64_t at[] = {0, 1, 2, 3, 258};
    for (size_t i = 0; i < 5; i++)
        ck_assert_int_eq((int32_t)kv_arr32(&g, "tokenizer.ggml.token_type", V_I32, at[i]),
                         want_type[i]);
    ck_assert_int_eq((int32_t)kv_arr32(&g, "tokenizer.ggml.token_type", V_I32, 300), 1);
    for (uint64_t i = 0; i < 512; i++) {
        uint32_t u = kv_arr32(&g, "tokenizer.ggml.scores", V_F32, i);
        float f, s = lq_tok_score(tok, i);
        memcpy(&f, &u, 4);
        ck_assert(f == s);
    }
    ck_assert_uint_eq(kv_u32(&g, "tokenizer.ggml.bos_token_id"), 1);
    ck_assert_uint_eq(kv_u32(&g, "tokenizer.ggml.eos_token_id"), 2);
    /* tensors: names, shapes, types; every value as W_hat / the float weights */
    ck_assert_uint_eq(g.nt, 2 + 5 * 9); /* tied: no output.weight */
    ck_assert_ptr_null(ti_find(&g, "output.weight"));
    expect_tensor(&g, "token_embd.weight", G_F32, m->embed, c->vocab, c->dim, 0);
    expect_tensor(&g, "output_norm.weight", G_F32, m->norm_final, 1, c->dim, 0);
    char name[64];
    for (size_t l = 0; l < c->n_layers; l++) {
        snprintf(name, sizeof name, "blk.%zu.attn_norm.weight", l);
        expect_tensor(&g, name, G_F32, m->norm_att + l * c->dim, 1, c->dim, 0);
        snprintf(name, sizeof name, "blk.%zu.ffn_norm.weight", l);
        expect_tensor(&g, name, G_F32, m->norm_ffn + l * c->dim, 1, c->dim, 0);
        for (int k = 0; k < LQ_LIN_COUNT; k++) {
            const lq_linear *li = lq_llama_lin(m, l, (lq_lin)k);
            float *wh = malloc(li->rows * li->cols * sizeof *wh);
            ck_assert_int_eq(lq_dequantize(NULL, li->q, wh), LQ_OK);
            snprintf(name, sizeof name, "blk.%zu.%s.weight", l, g_blk[k]);
            size_t heads = k == LQ_LIN_Q ? c->n_heads : k == LQ_LIN_K ? c->n_kv_heads : 0;
            expect_tensor(&g, name, types[l][k], wh, li->rows, li->cols, heads);
            free(wh);
        }
    }
    gguf_free(&g);
    lq_tok_free(tok);
    lq_llama_free(m);
    remove_dir();
}
END_TEST

/* The float model: q/k rows in the GGUF are the llama2.c checkpoint's own
 * (interleaved) rows, read here from the file without the loader. --f16
 * writes the 2-D tensors as the nearest halves, norms stay F32. */
START_TEST(float_export_restores_checkpoint_rows)
{
    make_dir();
    lq_llama *m = NULL;
    ck_assert_int_eq(lq_llama_load(NULL, MODEL, &m), LQ_OK);
    lq_tokenizer *tok = NULL;
    ck_assert_int_eq(lq_tok_load(TOK, 512, &tok), LQ_OK);
    char out[128], why[128];
    snprintf(out, sizeof out, "%s/f.gguf", g_dir);
    ck_assert_int_eq(lq_llama_save_gguf(NULL, m, tok, out, NULL), LQ_OK);
    gfile g;
    ck_assert_msg(gguf_parse(out, &g, why, sizeof why) == 0, "%s", why);
    ck_assert_uint_eq(kv_u32(&g, "general.file_type"), 0); /* ALL_F32 */
    ck_assert_ptr_null(kv_find(&g, "general.quantization_version"));
    size_t n;
    char *raw = lq_read_file(MODEL, &n);
    ck_assert_ptr_nonnull(raw);
    int32_t h[7];
    memcpy(h, raw, sizeof h);
    size_t dim = (size_t)h[0], L = (size_t)h[2], kvd = (size_t)h[4] * (dim / (size_t)h[3]);
    float *p = malloc(n - 28); /* the float arrays after the 7-int header */
    memcpy(p, raw + 28, n - 28);
    const float *wq = p + (size_t)abs(h[5]) * dim + L * dim, *wk = wq + L * dim * dim;
    char name[64];
    float *got = malloc(dim * dim * sizeof *got);
    for (size_t l = 0; l < L; l++) {
        snprintf(name, sizeof name, "blk.%zu.attn_q.weight", l);
        dequant(&g, ti_find(&g, name), got);
        ck_assert_int_eq(memcmp(got, wq + l * dim * dim, dim * dim * 4), 0);
        snprintf(name, sizeof name, "blk.%zu.attn_k.weight", l);
        dequant(&g, ti_find(&g, name), got);
        ck_assert_int_eq(memcmp(got, wk + l * kvd * dim, kvd * dim * 4), 0);
    }
    gguf_free(&g);
    lq_gguf_export_opts eo = {1, 0, NULL, NULL, 0};
    ck_assert_int_eq(lq_llama_save_gguf(NULL, m, tok, out, &eo), LQ_OK);
    ck_assert_msg(gguf_parse(out, &g, why, sizeof why) == 0, "%s", why);
    ck_assert_uint_eq(kv_u32(&g, "general.file_type"), 1); /* MOSTLY_F16 */
    ck_assert_uint_eq(ti_find(&g, "blk.0.attn_norm.weight")->type, G_F32);
    const gti *t = ti_find(&g, "blk.2.ffn_down.weight");
    ck_assert_uint_eq(t->type, G_F16);
    const lq_linear *li = lq_llama_lin(m, 2, LQ_LIN_DOWN);
    float *v = malloc(li->rows * li->cols * sizeof *v);
    dequant(&g, t, v);
    for (size_t i = 0; i < li->rows * li->cols; i++) {
        float x = li->w[i], e = fabsf(v[i] - x);
        ck_assert_msg(e <= ldexpf(fabsf(x), -11) + 0x1p-25f, "%zu: %g vs %g", i, (double)v[i],
                      (double)x);
    }
    free(v);
    gguf_free(&g);
    free(got);
    free(p);
    free(raw);
    lq_tok_free(tok);
    lq_llama_free(m);
    remove_dir();
}
END_TEST

/* A layer with no GGUF type fails the export (no file) unless the fallback
 * writes its W_hat as F32 (q_proj: re-interleaved like the others). */
START_TEST(unexportable_layer_refused_or_dequantized)
{
    make_dir();
    uint32_t types[5][LQ_LIN_COUNT];
    lq_llama *m = quantized_model(types);
    lq_linear *li = lq_llama_lin(m, 1, LQ_LIN_Q);
    lq_qtensor_free(li->q);
    lq_method b;
    ck_assert_int_eq(lq_method_init(&b, LQ_METHOD_BCQ), LQ_OK);
    ck_assert_int_eq(lq_quantize(NULL, li->w, li->rows, li->cols, NULL, &b, &li->q, NULL), LQ_OK);
    lq_tokenizer *tok = NULL;
    ck_assert_int_eq(lq_tok_load(TOK, 512, &tok), LQ_OK);
    char out[128], why[128];
    snprintf(out, sizeof out, "%s/u.gguf", g_dir);
    ck_assert_int_eq(lq_llama_save_gguf(NULL, m, tok, out, NULL), LQ_ERR_UNSUPPORTED);
    part_absent(out);
    lq_gguf_export_opts eo = {0, 1, NULL, NULL, 0};
    ck_assert_int_eq(lq_llama_save_gguf(NULL, m, tok, out, &eo), LQ_OK);
    gfile g;
    ck_assert_msg(gguf_parse(out, &g, why, sizeof why) == 0, "%s", why);
    float *wh = malloc(li->rows * li->cols * sizeof *wh);
    ck_assert_int_eq(lq_dequantize(NULL, li->q, wh), LQ_OK);
    expect_tensor(&g, "blk.1.attn_q.weight", G_F32, wh, li->rows, li->cols, m->cfg.n_heads);
    const lq_linear *k = lq_llama_lin(m, 1, LQ_LIN_K);
    ck_assert_int_eq(lq_dequantize(NULL, k->q, wh), LQ_OK);
    expect_tensor(&g, "blk.1.attn_k.weight", types[1][LQ_LIN_K], wh, k->rows, k->cols,
                  m->cfg.n_kv_heads);
    free(wh);
    gguf_free(&g);
    /* a tokenizer of another vocabulary is refused */
    m->cfg.vocab = 511;
    ck_assert_int_eq(lq_llama_save_gguf(NULL, m, tok, out, &eo), LQ_ERR_INVALID_ARG);
    m->cfg.vocab = 512;
    lq_tok_free(tok);
    lq_llama_free(m);
    remove_dir();
}
END_TEST

static int run_export(const char *in, const char *out, int with_tok)
{
    char a0[] = "export", a1[] = "--gguf", a2[] = "--tokenizer", a3[] = TOK;
    char *argv[7] = {a0, a1, a2, a3, (char *)in, (char *)out, NULL};
    if (!with_tok) {
        char *v[5] = {a0, a1, (char *)in, (char *)out, NULL};
        return lq_cmd_export(4, v);
    }
    return lq_cmd_export(6, argv);
}

/* lq export on damaged input: an error and no output file. */
START_TEST(cli_truncated_or_corrupt_input_leaves_no_output)
{
    make_dir();
    uint32_t types[5][LQ_LIN_COUNT];
    lq_llama *m = quantized_model(types);
    char lqt[128], bad[128], out[128], why[128];
    snprintf(lqt, sizeof lqt, "%s/m.lqt", g_dir);
    snprintf(bad, sizeof bad, "%s/bad.lqt", g_dir);
    snprintf(out, sizeof out, "%s/o.gguf", g_dir);
    ck_assert_int_eq(lq_llama_save(NULL, m, lqt, NULL, 0), LQ_OK);
    lq_llama_free(m);
    size_t n;
    char *raw = lq_read_file(lqt, &n);
    ck_assert_ptr_nonnull(raw);
    const size_t cuts[] = {0, 10, 64, n / 3, n / 2, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        FILE *f = fopen(bad, "wb");
        ck_assert_uint_eq(fwrite(raw, 1, cuts[i], f), cuts[i]);
        fclose(f);
        ck_assert_int_ne(run_export(bad, out, 1), 0);
        part_absent(out);
    }
    /* flipped bytes in the middle of the tensor data: checksums catch them */
    for (size_t i = 1; i < 4; i++) {
        raw[i * n / 4] ^= 0x40;
        FILE *f = fopen(bad, "wb");
        ck_assert_uint_eq(fwrite(raw, 1, n, f), n);
        fclose(f);
        raw[i * n / 4] ^= 0x40;
        ck_assert_int_ne(run_export(bad, out, 1), 0);
        part_absent(out);
    }
    ck_assert_int_ne(run_export(lqt, out, 0), 0); /* no tokenizer */
    part_absent(out);
    ck_assert_int_eq(run_export(lqt, out, 1), 0);
    gfile g;
    ck_assert_msg(gguf_parse(out, &g, why, sizeof why) == 0, "%s", why);
    ck_assert_uint_eq(g.nt, 47);
    gguf_free(&g);
    ck_assert_int_ne(run_export(lqt, lqt, 1), 0); /* never over its input */
    free(raw);
    remove_dir();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gguf");
    TCase *tc = tcase_create("gguf");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, blocks_dequantize_to_w_hat);
    tcase_add_test(tc, gguf_exact_costs_little);
    tcase_add_test(tc, gguf_exact_out_of_range);
    tcase_add_test(tc, inexact_tensors_are_refused_with_reasons);
    tcase_add_test(tc, writer_rejects_bad_input_and_leaves_no_file);
    tcase_add_test(tc, writer_survives_allocation_failures);
    tcase_add_test(tc, model_export_is_exact_and_loadable);
    tcase_add_test(tc, float_export_restores_checkpoint_rows);
    tcase_add_test(tc, unexportable_layer_refused_or_dequantized);
    tcase_add_test(tc, cli_truncated_or_corrupt_input_leaves_no_output);
    suite_add_tcase(s, tc);
    return lq_test_run(s);
}
