/*
 * safetensors: an 8-byte little-endian header length N, N bytes of JSON
 * (an object: tensor name -> {"dtype", "shape", "data_offsets"}, plus an
 * optional "__metadata__" object of strings), then the data buffer.
 *
 * The JSON parser accepts exactly that schema and nothing else: strict
 * grammar (RFC 8259 strings with escapes and UTF-8 validation, unsigned
 * integers without sign, fraction or leading zeros), every key exactly once,
 * no unknown keys, bounded header size. It runs twice over the header:
 * pass 1 counts tensors, pass 2 stores them, so allocation is exact.
 */
#include <stdio.h>
#include <stdlib.h>

#include "io/io_internal.h"

typedef struct jp {
    const uint8_t *p, *end;
} jp;

static void ws(jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static bool expect(jp *j, uint8_t c)
{
    ws(j);
    if (j->p >= j->end || *j->p != c) return false;
    j->p++;
    return true;
}

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool hex4(jp *j, uint32_t *v)
{
    if (j->end - j->p < 4) return false;
    uint32_t x = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(j->p[i]);
        if (h < 0) return false;
        x = x * 16 + (uint32_t)h;
    }
    j->p += 4;
    *v = x;
    return true;
}

/* Length of a valid UTF-8 sequence at p (1..4), or 0 if invalid. */
static size_t utf8_len(const uint8_t *p, const uint8_t *end)
{
    uint8_t c = p[0];
    size_t n;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 0;
    if ((size_t)(end - p) < n) return 0;
    if (p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF) return 0;
    return n;
}

static size_t put_utf8(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        if (out) out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        if (out) {
            out[0] = (char)(0xC0 | (cp >> 6));
            out[1] = (char)(0x80 | (cp & 0x3F));
        }
        return 2;
    }
    if (cp < 0x10000) {
        if (out) {
            out[0] = (char)(0xE0 | (cp >> 12));
            out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
            out[2] = (char)(0x80 | (cp & 0x3F));
        }
        return 3;
    }
    if (out) {
        out[0] = (char)(0xF0 | (cp >> 18));
        out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[3] = (char)(0x80 | (cp & 0x3F));
    }
    return 4;
}

/* Parse a JSON string; decode it into out (room for the raw length + 1,
 * NUL-terminated) unless out is NULL. *len gets the decoded length. A
 * decoded NUL is rejected (names are C strings). */
static bool jstring(jp *j, char *out, size_t *len)
{
    if (!expect(j, '"')) return false;
    size_t n = 0;
    while (j->p < j->end) {
        uint8_t c = *j->p;
        if (c == '"') {
            j->p++;
            if (out) out[n] = 0;
            *len = n;
            return true;
        }
        if (c < 0x20) return false;
        if (c == '\\') {
            j->p++;
            if (j->p >= j->end) return false;
            uint8_t e = *j->p++;
            uint32_t cp;
            switch (e) {
            case '"': cp = '"'; break;
            case '\\': cp = '\\'; break;
            case '/': cp = '/'; break;
            case 'b': cp = '\b'; break;
            case 'f': cp = '\f'; break;
            case 'n': cp = '\n'; break;
            case 'r': cp = '\r'; break;
            case 't': cp = '\t'; break;
            case 'u':
                if (!hex4(j, &cp)) return false;
                if (cp >= 0xDC00 && cp <= 0xDFFF) return false; /* lone low surrogate */
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    uint32_t lo;
                    if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u') return false;
                    j->p += 2;
                    if (!hex4(j, &lo) || lo < 0xDC00 || lo > 0xDFFF) return false;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                if (cp == 0) return false;
                break;
            default: return false;
            }
            n += put_utf8(out ? out + n : NULL, cp);
            continue;
        }
        size_t k = utf8_len(j->p, j->end);
        if (k == 0) return false;
        if (out) memcpy(out + n, j->p, k);
        n += k;
        j->p += k;
    }
    return false;
}

static bool juint(jp *j, uint64_t *v)
{
    ws(j);
    if (j->p >= j->end || *j->p < '0' || *j->p > '9') return false;
    if (*j->p == '0' && j->end - j->p > 1 && j->p[1] >= '0' && j->p[1] <= '9') return false;
    uint64_t x = 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        uint64_t d = (uint64_t)(*j->p - '0');
        if (x > (UINT64_MAX - d) / 10) return false;
        x = x * 10 + d;
        j->p++;
    }
    if (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E')) return false;
    *v = x;
    return true;
}

static lq_dtype dtype_from(const char *s)
{
    static const struct {
        const char *name;
        lq_dtype d;
    } map[] = {
        {"F32", LQ_DTYPE_F32},   {"F16", LQ_DTYPE_F16},         {"BF16", LQ_DTYPE_BF16},
        {"F64", LQ_DTYPE_F64},   {"I8", LQ_DTYPE_I8},           {"U8", LQ_DTYPE_U8},
        {"I16", LQ_DTYPE_I16},   {"U16", LQ_DTYPE_U16},         {"I32", LQ_DTYPE_I32},
        {"U32", LQ_DTYPE_U32},   {"I64", LQ_DTYPE_I64},         {"U64", LQ_DTYPE_U64},
        {"BOOL", LQ_DTYPE_BOOL}, {"F8_E4M3", LQ_DTYPE_F8_E4M3}, {"F8_E5M2", LQ_DTYPE_F8_E5M2}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(s, map[i].name)) return map[i].d;
    return LQ_DTYPE_UNKNOWN;
}

/* {"k": "v", ...} with string values only. scratch: room for any string. */
static lq_status parse_metadata(jp *j, char *scratch)
{
    size_t len;
    if (!expect(j, '{')) return LQ_ERR_CORRUPT;
    ws(j);
    if (j->p < j->end && *j->p == '}') {
        j->p++;
        return LQ_OK;
    }
    for (;;) {
        if (!jstring(j, scratch, &len) || !expect(j, ':') || !jstring(j, scratch, &len))
            return LQ_ERR_CORRUPT;
        ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == '}') {
            j->p++;
            return LQ_OK;
        }
        return LQ_ERR_CORRUPT;
    }
}

/* {"dtype": "F32", "shape": [..], "data_offsets": [b, e]} in any order. */
static lq_status parse_tensor(jp *j, char *scratch, lq_tf_entry *e, uint64_t *begin, uint64_t *end)
{
    int seen_dtype = 0, seen_shape = 0, seen_off = 0;
    size_t len;
    if (!expect(j, '{')) return LQ_ERR_CORRUPT;
    for (;;) {
        if (!jstring(j, scratch, &len) || !expect(j, ':')) return LQ_ERR_CORRUPT;
        if (!strcmp(scratch, "dtype") && !seen_dtype) {
            seen_dtype = 1;
            if (!jstring(j, scratch, &len)) return LQ_ERR_CORRUPT;
            e->dtype = dtype_from(scratch);
        } else if (!strcmp(scratch, "shape") && !seen_shape) {
            seen_shape = 1;
            if (!expect(j, '[')) return LQ_ERR_CORRUPT;
            e->ndim = 0;
            ws(j);
            if (j->p < j->end && *j->p == ']') {
                j->p++;
            } else {
                for (;;) {
                    uint64_t d;
                    if (!juint(j, &d)) return LQ_ERR_CORRUPT;
                    if (e->ndim == LQ_TFILE_MAX_DIMS) return LQ_ERR_UNSUPPORTED;
                    if (d > SIZE_MAX) return LQ_ERR_CORRUPT;
                    e->shape[e->ndim++] = (size_t)d;
                    ws(j);
                    if (j->p < j->end && *j->p == ',') {
                        j->p++;
                        continue;
                    }
                    if (!expect(j, ']')) return LQ_ERR_CORRUPT;
                    break;
                }
            }
        } else if (!strcmp(scratch, "data_offsets") && !seen_off) {
            seen_off = 1;
            if (!expect(j, '[') || !juint(j, begin) || !expect(j, ',') || !juint(j, end) ||
                !expect(j, ']'))
                return LQ_ERR_CORRUPT;
        } else {
            return LQ_ERR_CORRUPT; /* unknown or repeated key */
        }
        ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (!expect(j, '}')) return LQ_ERR_CORRUPT;
        break;
    }
    return seen_dtype && seen_shape && seen_off ? LQ_OK : LQ_ERR_CORRUPT;
}

typedef struct range {
    uint64_t b, e;
} range;

static int cmp_range(const void *a, const void *b)
{
    const range *x = a, *y = b;
    return (x->b > y->b) - (x->b < y->b);
}

/* One pass over the header. store == 0: count tensors into *count (names
 * decoded into scratch). store == 1: fill f->e and f->strings. */
static lq_status parse_pass(lq_tfile *f, const uint8_t *hdr, size_t hlen, const uint8_t *data,
                            uint64_t dlen, char *scratch, int store, size_t *count, range *rg)
{
    jp j = {hdr, hdr + hlen};
    size_t n = 0, soff = 0;
    int seen_meta = 0;
    lq_status st;
    if (!expect(&j, '{')) return LQ_ERR_CORRUPT;
    ws(&j);
    if (j.p < j.end && *j.p == '}') {
        j.p++;
    } else {
        for (;;) {
            size_t len;
            char *key = store ? f->strings + soff : scratch;
            if (!jstring(&j, key, &len) || !expect(&j, ':')) return LQ_ERR_CORRUPT;
            if (!strcmp(key, "__metadata__")) {
                if (seen_meta) return LQ_ERR_CORRUPT;
                seen_meta = 1;
                st = parse_metadata(&j, scratch);
                if (st != LQ_OK) return st;
            } else {
                lq_tf_entry tmp;
                memset(&tmp, 0, sizeof tmp);
                uint64_t b, e;
                st = parse_tensor(&j, scratch, &tmp, &b, &e);
                if (st != LQ_OK) return st;
                size_t numel = 1;
                for (size_t k = 0; k < tmp.ndim; k++)
                    if (!lq_mul_ok(numel, tmp.shape[k], &numel)) return LQ_ERR_CORRUPT;
                tmp.numel = numel;
                if (b > e || e > dlen) return LQ_ERR_CORRUPT;
                size_t es = lq_dtype_size(tmp.dtype), nb;
                if (es && (!lq_mul_ok(numel, es, &nb) || (uint64_t)nb != e - b))
                    return LQ_ERR_CORRUPT;
                if (store) {
                    if (n >= f->n) return LQ_ERR_CORRUPT; /* cannot happen: same input */
                    tmp.name = key;
                    tmp.data = data + b;
                    tmp.nbytes = (size_t)(e - b);
                    f->e[n] = tmp;
                    rg[n] = (range){b, e};
                    soff += len + 1;
                }
                n++;
            }
            ws(&j);
            if (j.p < j.end && *j.p == ',') {
                j.p++;
                continue;
            }
            if (!expect(&j, '}')) return LQ_ERR_CORRUPT;
            break;
        }
    }
    ws(&j);
    if (j.p != j.end) return LQ_ERR_CORRUPT; /* trailing garbage */
    *count = n;
    return LQ_OK;
}

lq_status lq_safetensors_parse(lq_ctx *ctx, lq_tfile *f)
{
    const uint8_t *d = f->blob->data;
    size_t size = f->blob->size;
    if (size < 8) return LQ_ERR_CORRUPT;
    uint64_t hlen = lq_rd64(d);
    if (hlen < 2 || hlen > LQ_SAFETENSORS_MAX_HEADER || hlen > size - 8) return LQ_ERR_CORRUPT;
    const uint8_t *hdr = d + 8, *data = d + 8 + hlen;
    if (hdr[0] != '{') return LQ_ERR_CORRUPT; /* the format requires it */
    uint64_t dlen = size - 8 - hlen;
    f->strings = lq_alloc(ctx, (size_t)hlen + 1);
    if (!f->strings) return LQ_ERR_NO_MEMORY;
    size_t n;
    lq_status st = parse_pass(f, hdr, (size_t)hlen, data, dlen, f->strings, 0, &n, NULL);
    if (st != LQ_OK) return st;
    /* Pass 2 needs a scratch buffer apart from the string table. */
    char *scratch = lq_alloc(ctx, (size_t)hlen + 1);
    f->e = lq_calloc_array(ctx, n ? n : 1, sizeof *f->e);
    range *rg = lq_alloc_array(ctx, n ? n : 1, sizeof *rg);
    if (!scratch || !f->e || !rg) {
        lq_free(ctx, scratch);
        lq_free(ctx, rg);
        return LQ_ERR_NO_MEMORY;
    }
    f->n = n;
    size_t n2;
    st = parse_pass(f, hdr, (size_t)hlen, data, dlen, scratch, 1, &n2, rg);
    lq_free(ctx, scratch);
    if (st == LQ_OK && n2 != n) st = LQ_ERR_CORRUPT;
    if (st == LQ_OK && n > 1) {
        /* Byte ranges of non-empty tensors may not overlap. */
        qsort(rg, n, sizeof *rg, cmp_range);
        uint64_t prev = 0;
        for (size_t i = 0; i < n; i++) {
            if (rg[i].b == rg[i].e) continue;
            if (rg[i].b < prev) st = LQ_ERR_CORRUPT;
            prev = rg[i].e;
        }
    }
    lq_free(ctx, rg);
    return st;
}

/* ---- writer ------------------------------------------------------------------------ */

static bool name_ok(const char *s)
{
    const uint8_t *p = (const uint8_t *)s, *end = p + strlen(s);
    while (p < end) {
        size_t k = utf8_len(p, end);
        if (!k) return false;
        p += k;
    }
    return !!strcmp(s, "__metadata__");
}

static size_t json_escape(char *out, const char *s)
{
    size_t n = 0;
    for (const uint8_t *p = (const uint8_t *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            out[n++] = '\\';
            out[n++] = (char)*p;
        } else if (*p < 0x20) {
            n += (size_t)sprintf(out + n, "\\u%04x", *p);
        } else {
            out[n++] = (char)*p;
        }
    }
    return n;
}

static bool desc_numel(const lq_tensor_desc *t, size_t *numel)
{
    size_t n = 1;
    *numel = 0; /* defined on every path (gcc 13 -Wmaybe-uninitialized) */
    if (t->ndim > LQ_TFILE_MAX_DIMS) return false;
    for (size_t k = 0; k < t->ndim; k++)
        if (!lq_mul_ok(n, t->shape[k], &n)) return false;
    *numel = n;
    return true;
}

/* Convert and write n floats as dtype, in chunks. */
static int write_values(FILE *fp, const float *x, size_t n, lq_dtype dt)
{
    uint8_t buf[4096];
    size_t es = lq_dtype_size(dt), per = sizeof buf / es;
    while (n) {
        size_t k = n < per ? n : per;
        for (size_t i = 0; i < k; i++) {
            if (dt == LQ_DTYPE_F32)
                lq_wr32(buf + 4 * i, lq_f32_bits(x[i]));
            else if (dt == LQ_DTYPE_F16)
                lq_wr16(buf + 2 * i, lq_f32_to_f16(x[i]));
            else
                lq_wr16(buf + 2 * i, lq_f32_to_bf16(x[i]));
        }
        if (fwrite(buf, es, k, fp) != k) return -1;
        x += k;
        n -= k;
    }
    return 0;
}

static bool float_dtype(lq_dtype d)
{
    return d == LQ_DTYPE_F32 || d == LQ_DTYPE_F16 || d == LQ_DTYPE_BF16;
}

lq_status lq_safetensors_write(lq_ctx *ctx, const char *path, const lq_tensor_desc *t, size_t n)
{
    if (!path || (!t && n)) return LQ_ERR_INVALID_ARG;
    if (!lq_ctx_resolve(ctx)) return LQ_ERR_NO_MEMORY;
    size_t cap = 64, numel = 0, nb = 0;
    for (size_t i = 0; i < n; i++) {
        if (!t[i].name || !name_ok(t[i].name) || !float_dtype(t[i].dtype) ||
            !desc_numel(&t[i], &numel) || (numel && !t[i].data) ||
            !lq_mul_ok(numel, lq_dtype_size(t[i].dtype), &nb))
            return LQ_ERR_INVALID_ARG;
        for (size_t k = 0; k < i; k++)
            if (!strcmp(t[k].name, t[i].name)) return LQ_ERR_INVALID_ARG;
        size_t len = strlen(t[i].name), add;
        if (!lq_mul_ok(len, 6, &add) || !lq_add_ok(add, 128 + 24 * LQ_TFILE_MAX_DIMS, &add) ||
            !lq_add_ok(cap, add, &cap))
            return LQ_ERR_INVALID_ARG;
    }
    char *h = lq_alloc(ctx, cap);
    if (!h) return LQ_ERR_NO_MEMORY;
    size_t pos = 0;
    uint64_t off = 0;
    h[pos++] = '{';
    for (size_t i = 0; i < n; i++) {
        (void)desc_numel(&t[i], &numel); /* checked above */
        uint64_t bytes = (uint64_t)numel * lq_dtype_size(t[i].dtype);
        if (i) h[pos++] = ',';
        h[pos++] = '"';
        pos += json_escape(h + pos, t[i].name);
        pos +=
            (size_t)sprintf(h + pos, "\":{\"dtype\":\"%s\",\"shape\":[", lq_dtype_name(t[i].dtype));
        for (size_t k = 0; k < t[i].ndim; k++)
            pos += (size_t)sprintf(h + pos, "%s%zu", k ? "," : "", t[i].shape[k]);
        pos += (size_t)sprintf(h + pos, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                               (unsigned long long)(off + bytes));
        off += bytes;
    }
    h[pos++] = '}';
    while (pos % 8) h[pos++] = ' '; /* the data buffer starts 8-byte aligned */
    lq_status st = LQ_OK;
    FILE *fp = fopen(path, "wb");
    uint8_t len8[8];
    lq_wr64(len8, pos);
    if (!fp || fwrite(len8, 1, 8, fp) != 8 || fwrite(h, 1, pos, fp) != pos) st = LQ_ERR_IO;
    for (size_t i = 0; st == LQ_OK && i < n; i++) {
        (void)desc_numel(&t[i], &numel); /* checked above */
        if (write_values(fp, t[i].data, numel, t[i].dtype) != 0) st = LQ_ERR_IO;
    }
    if (fp && fclose(fp) != 0) st = LQ_ERR_IO;
    if (st != LQ_OK && fp) remove(path);
    lq_free(ctx, h);
    return st;
}

lq_status lq_npy_write(lq_ctx *ctx, const char *path, const lq_tensor_desc *t)
{
    size_t numel;
    if (!path || !t || (t->dtype != LQ_DTYPE_F32 && t->dtype != LQ_DTYPE_F16) ||
        !desc_numel(t, &numel) || (numel && !t->data))
        return LQ_ERR_INVALID_ARG;
    (void)ctx;
    char h[512];
    int len = snprintf(h, sizeof h, "{'descr': '<%s', 'fortran_order': False, 'shape': (",
                       t->dtype == LQ_DTYPE_F32 ? "f4" : "f2");
    for (size_t k = 0; k < t->ndim; k++)
        len += snprintf(h + len, sizeof h - (size_t)len, "%zu, ", t->shape[k]);
    if (t->ndim > 1)
        len -= 2; /* "(3, 4)" but "(3,)" */
    else if (t->ndim == 1)
        len -= 1;
    len += snprintf(h + len, sizeof h - (size_t)len, "), }");
    size_t total = 10 + (size_t)len + 1;
    size_t padded = (total + 63) / 64 * 64;
    size_t hlen = padded - 10;
    memset(h + len, ' ', hlen - (size_t)len - 1);
    h[hlen - 1] = '\n';
    uint8_t pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0, 0};
    lq_wr16(pre + 8, (uint16_t)hlen);
    lq_status st = LQ_OK;
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(pre, 1, 10, fp) != 10 || fwrite(h, 1, hlen, fp) != hlen ||
        write_values(fp, t->data, numel, t->dtype) != 0)
        st = LQ_ERR_IO;
    if (fp && fclose(fp) != 0) st = LQ_ERR_IO;
    if (st != LQ_OK && fp) remove(path);
    return st;
}
