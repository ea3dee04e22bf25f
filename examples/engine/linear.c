/*
 * How an inference engine embeds libquant's products: a linear layer that
 * is either float or packed codes, loaded by name from a .lqt file (a
 * complete model written by `lq quantize --calib-text ... MODEL OUT.lqt`
 * holds both kinds), prepared once, then applied to a batch of activations.
 * The engine keeps its own model code; libquant only does y = W x.
 *
 *   cc linear.c $(pkg-config --cflags --libs quant) -o linear
 *   ./linear model.lqt model.layers.0.mlp.up_proj.weight   # a layer of a model
 *   ./linear                                               # a layer made here
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <quant.h>

typedef struct linear {
    size_t rows, cols;
    lq_qtensor *q; /* codes, or NULL */
    float *w;      /* float weights when the layer was left unquantized */
} linear;

/* Load layer `name` from an open file: packed or float. */
static lq_status linear_load(lq_ctx *ctx, const lq_lqt *f, const char *name, linear *l)
{
    size_t idx;
    lq_lqt_info in;
    lq_status st = lq_lqt_find(f, name, &idx);
    if (st == LQ_OK) st = lq_lqt_info_get(f, idx, &in);
    if (st != LQ_OK) return st;
    memset(l, 0, sizeof *l);
    l->rows = in.rows;
    l->cols = in.cols;
    if (in.format == LQ_LQT_FORMAT_F32) {
        if (!(l->w = malloc(in.rows * in.cols * sizeof *l->w))) return LQ_ERR_NO_MEMORY;
        return lq_lqt_read_f32(f, idx, l->w, in.rows * in.cols);
    }
    /* zero copy from the mapping; the repack into the kernel layout happens
     * here, not on the first token */
    st = lq_lqt_load(ctx, f, idx, 0, &l->q);
    if (st == LQ_OK) st = lq_qtensor_prepare(ctx, l->q);
    return st;
}

/* Y (batch x rows) = X (batch x cols) W^T. */
static lq_status linear_apply(lq_ctx *ctx, const linear *l, const float *X, size_t batch, float *Y,
                              lq_kernel_mode mode)
{
    if (l->q) return lq_matmul_ex(ctx, l->q, X, batch, Y, mode);
    for (size_t t = 0; t < batch; t++)
        for (size_t r = 0; r < l->rows; r++) {
            float s = 0;
            for (size_t c = 0; c < l->cols; c++) s += l->w[r * l->cols + c] * X[t * l->cols + c];
            Y[t * l->rows + r] = s;
        }
    return LQ_OK;
}

static void linear_free(linear *l)
{
    lq_qtensor_free(l->q);
    free(l->w);
}

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        lq_status st_ = (x);                                                                       \
        if (st_ != LQ_OK) {                                                                        \
            fprintf(stderr, "%s: %s\n", #x, lq_status_str(st_));                                   \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

int main(int argc, char **argv)
{
    lq_ctx *ctx;
    CHECK(lq_ctx_create(NULL, &ctx));
    const char *path = argc > 1 ? argv[1] : "linear_example.lqt",
               *name = argc > 2 ? argv[2] : "layer";
    if (argc < 2) { /* make a 4-bit GPTQ layer to load */
        size_t rows = 96, cols = 256;
        float *W = malloc(rows * cols * sizeof *W);
        for (size_t i = 0; i < rows * cols; i++) W[i] = sinf(0.37f * (float)i) * 0.05f;
        lq_method m;
        lq_method_init(&m, LQ_METHOD_INT);
        lq_qtensor *q;
        CHECK(lq_quantize(ctx, W, rows, cols, NULL, &m, &q, NULL));
        CHECK(lq_qtensor_save(ctx, q, name, path));
        lq_qtensor_free(q);
        free(W);
    }
    lq_lqt *f;
    CHECK(lq_lqt_open(ctx, path, LQ_LQT_MMAP, &f));
    linear l;
    CHECK(linear_load(ctx, f, name, &l));
    lq_lqt_close(f); /* loaded tensors keep the mapping alive */
    size_t batch = 8;
    float *X = malloc(batch * l.cols * sizeof *X), *Y = malloc(batch * l.rows * sizeof *Y),
          *Yf = malloc(batch * l.rows * sizeof *Yf), *Wd = malloc(l.rows * l.cols * sizeof *Wd);
    for (size_t i = 0; i < batch * l.cols; i++) X[i] = cosf(0.11f * (float)i);
    CHECK(linear_apply(ctx, &l, X, batch, Y, LQ_KERNEL_EXACT));
    CHECK(linear_apply(ctx, &l, X, batch, Yf, LQ_KERNEL_FAST));
    /* the products equal the dequantized weights times X */
    if (l.q)
        CHECK(lq_dequantize(ctx, l.q, Wd));
    else
        memcpy(Wd, l.w, l.rows * l.cols * sizeof *Wd);
    double err = 0, errf = 0, mag = 0;
    for (size_t t = 0; t < batch; t++)
        for (size_t r = 0; r < l.rows; r++) {
            double s = 0;
            for (size_t c = 0; c < l.cols; c++) s += (double)Wd[r * l.cols + c] * X[t * l.cols + c];
            err = fmax(err, fabs(s - Y[t * l.rows + r]));
            errf = fmax(errf, fabs(s - Yf[t * l.rows + r]));
            mag = fmax(mag, fabs(s));
        }
    printf("%s: %zu x %zu %s, batch %zu: max |error| EXACT %.2e, FAST %.2e (max |y| %.3f)\n", name,
           l.rows, l.cols, l.q ? "codes" : "float", batch, err, errf, mag);
    int bad = err > 1e-4 * (mag + 1);
    linear_free(&l);
    free(X);
    free(Y);
    free(Yf);
    free(Wd);
    lq_ctx_destroy(ctx);
    if (argc < 2) remove(path);
    return bad;
}
