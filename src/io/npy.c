/*
 * .npy (NumPy format versions 1.0, 2.0, 3.0): magic "\x93NUMPY", version,
 * header length (u16 for 1.0, u32 after), then a Python dict literal
 * {'descr': '<f4', 'fortran_order': False, 'shape': (r, c), } padded with
 * spaces and a newline, then the raw data. The dict is parsed strictly:
 * exactly these three keys, each once; quoted strings without escapes;
 * shape a tuple of decimal integers. The data must be exactly numel * size
 * bytes. Little-endian f4 and f2 are readable; other dtypes are listed.
 */
#include "io/io_internal.h"

typedef struct pp {
    const uint8_t *p, *end;
} pp;

static void pws(pp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static bool pexpect(pp *j, uint8_t c)
{
    pws(j);
    if (j->p >= j->end || *j->p != c) return false;
    j->p++;
    return true;
}

/* 'text' or "text" without escapes, at most cap - 1 bytes, into out. */
static bool pstring(pp *j, char *out, size_t cap)
{
    pws(j);
    if (j->p >= j->end || (*j->p != '\'' && *j->p != '"')) return false;
    uint8_t q = *j->p++;
    size_t n = 0;
    while (j->p < j->end && *j->p != q) {
        if (*j->p == '\\' || *j->p < 0x20 || n + 1 >= cap) return false;
        out[n++] = (char)*j->p++;
    }
    if (j->p >= j->end) return false;
    j->p++;
    out[n] = 0;
    return true;
}

static bool pword(pp *j, const char *w)
{
    pws(j);
    size_t n = strlen(w);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n) != 0) return false;
    j->p += n;
    /* the word must end here */
    if (j->p < j->end && ((*j->p >= 'a' && *j->p <= 'z') || (*j->p >= 'A' && *j->p <= 'Z') ||
                          (*j->p >= '0' && *j->p <= '9') || *j->p == '_'))
        return false;
    return true;
}

static bool pdim(pp *j, size_t *v)
{
    pws(j);
    if (j->p >= j->end || *j->p < '0' || *j->p > '9') return false;
    size_t x = 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        size_t d = (size_t)(*j->p - '0');
        if (x > (SIZE_MAX - d) / 10) return false;
        x = x * 10 + d;
        j->p++;
    }
    *v = x;
    return true;
}

static lq_status descr_dtype(const char *s, lq_dtype *d)
{
    static const struct {
        const char *name;
        lq_dtype d;
    } map[] = {{"<f4", LQ_DTYPE_F32}, {"<f2", LQ_DTYPE_F16}, {"<f8", LQ_DTYPE_F64},
               {"|i1", LQ_DTYPE_I8},  {"|u1", LQ_DTYPE_U8},  {"|b1", LQ_DTYPE_BOOL},
               {"<i2", LQ_DTYPE_I16}, {"<u2", LQ_DTYPE_U16}, {"<i4", LQ_DTYPE_I32},
               {"<u4", LQ_DTYPE_U32}, {"<i8", LQ_DTYPE_I64}, {"<u8", LQ_DTYPE_U64}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(s, map[i].name)) {
            *d = map[i].d;
            return LQ_OK;
        }
    return LQ_ERR_UNSUPPORTED; /* big-endian, complex, structured, strings... */
}

static lq_status parse_dict(pp *j, lq_tf_entry *e, int *fortran)
{
    int seen_descr = 0, seen_fortran = 0, seen_shape = 0;
    lq_status st = LQ_OK, descr_st = LQ_OK;
    char key[32], val[64];
    if (!pexpect(j, '{')) return LQ_ERR_CORRUPT;
    for (;;) {
        pws(j);
        if (j->p < j->end && *j->p == '}') {
            j->p++;
            break;
        }
        if (!pstring(j, key, sizeof key) || !pexpect(j, ':')) return LQ_ERR_CORRUPT;
        if (!strcmp(key, "descr") && !seen_descr) {
            seen_descr = 1;
            if (!pstring(j, val, sizeof val)) return LQ_ERR_CORRUPT;
            descr_st = descr_dtype(val, &e->dtype);
        } else if (!strcmp(key, "fortran_order") && !seen_fortran) {
            seen_fortran = 1;
            if (pword(j, "True"))
                *fortran = 1;
            else if (pword(j, "False"))
                *fortran = 0;
            else
                return LQ_ERR_CORRUPT;
        } else if (!strcmp(key, "shape") && !seen_shape) {
            seen_shape = 1;
            if (!pexpect(j, '(')) return LQ_ERR_CORRUPT;
            e->ndim = 0;
            for (;;) {
                pws(j);
                if (j->p < j->end && *j->p == ')') {
                    j->p++;
                    break;
                }
                size_t d;
                if (!pdim(j, &d)) return LQ_ERR_CORRUPT;
                if (e->ndim == LQ_TFILE_MAX_DIMS)
                    st = LQ_ERR_UNSUPPORTED;
                else
                    e->shape[e->ndim++] = d;
                pws(j);
                if (j->p < j->end && *j->p == ',')
                    j->p++;
                else if (!(j->p < j->end && *j->p == ')'))
                    return LQ_ERR_CORRUPT;
            }
        } else {
            return LQ_ERR_CORRUPT;
        }
        pws(j);
        if (j->p < j->end && *j->p == ',')
            j->p++;
        else if (!(j->p < j->end && *j->p == '}'))
            return LQ_ERR_CORRUPT;
    }
    pws(j);
    if (j->p != j->end) return LQ_ERR_CORRUPT;
    if (!seen_descr || !seen_fortran || !seen_shape) return LQ_ERR_CORRUPT;
    if (st != LQ_OK) return st;
    return descr_st;
}

lq_status lq_npy_parse(lq_ctx *ctx, lq_tfile *f)
{
    const uint8_t *d = f->blob->data;
    size_t size = f->blob->size, start, hlen;
    if (size < 10 || memcmp(d, "\x93NUMPY", 6) != 0) return LQ_ERR_CORRUPT;
    uint8_t major = d[6], minor = d[7];
    if (minor != 0 || major == 0) return LQ_ERR_CORRUPT;
    if (major == 1) {
        hlen = lq_rd16(d + 8);
        start = 10;
    } else if (major == 2 || major == 3) {
        if (size < 12) return LQ_ERR_CORRUPT;
        hlen = lq_rd32(d + 8);
        start = 12;
    } else {
        return LQ_ERR_UNSUPPORTED;
    }
    if (hlen > LQ_NPY_MAX_HEADER || hlen > size - start) return LQ_ERR_CORRUPT;
    lq_tf_entry e;
    memset(&e, 0, sizeof e);
    int fortran = 0;
    pp j = {d + start, d + start + hlen};
    lq_status st = parse_dict(&j, &e, &fortran);
    if (st != LQ_OK) return st;
    size_t numel = 1, nb;
    for (size_t k = 0; k < e.ndim; k++)
        if (!lq_mul_ok(numel, e.shape[k], &numel)) return LQ_ERR_CORRUPT;
    if (fortran && e.ndim > 1) return LQ_ERR_UNSUPPORTED;
    if (!lq_mul_ok(numel, lq_dtype_size(e.dtype), &nb) || nb != size - start - hlen)
        return LQ_ERR_CORRUPT;
    e.numel = numel;
    e.data = d + start + hlen;
    e.nbytes = nb;
    f->strings = lq_alloc(ctx, 1);
    f->e = lq_alloc_array(ctx, 1, sizeof *f->e);
    if (!f->strings || !f->e) return LQ_ERR_NO_MEMORY;
    f->strings[0] = 0;
    e.name = f->strings;
    f->e[0] = e;
    f->n = 1;
    return LQ_OK;
}
