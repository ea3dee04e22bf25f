/* A minimal libquant consumer built with pkg-config:
 *   cc main.c $(pkg-config --cflags --libs quant)
 * Quantizes a small random matrix to 4-bit INT (round to nearest) and checks
 * that the product on the codes matches the dequantized weight. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <quant.h>

int main(void)
{
    enum { R = 16, C = 64 };
    static float W[R * C], What[R * C], x[C], y[R];
    unsigned s = 1;
    for (int i = 0; i < R * C; i++)
        W[i] = (float)((s = s * 1103515245u + 12345u) >> 16) / 65536.0f - 0.5f;
    for (int i = 0; i < C; i++) x[i] = (float)i / C;

    lq_ctx *ctx = NULL;
    lq_status st = lq_ctx_create(NULL, &ctx);
    if (st != LQ_OK) return fprintf(stderr, "ctx: %s\n", lq_status_str(st)), 1;
    lq_method m;
    lq_method_init(&m, LQ_METHOD_INT);
    m.engine.rtn = 1;
    m.u.int_.group = 32;
    lq_qtensor *t = NULL;
    st = lq_quantize(ctx, W, R, C, NULL, &m, &t, What);
    if (st != LQ_OK) return fprintf(stderr, "quantize: %s\n", lq_status_str(st)), 1;
    st = lq_matvec(ctx, t, x, y);
    if (st != LQ_OK) return fprintf(stderr, "matvec: %s\n", lq_status_str(st)), 1;
    double bpw = 0, maxd = 0;
    lq_qtensor_bits_per_weight(t, &bpw);
    for (int r = 0; r < R; r++) {
        double ref = 0;
        for (int c = 0; c < C; c++) ref += (double)What[r * C + c] * x[c];
        if (fabs(ref - y[r]) > maxd) maxd = fabs(ref - y[r]);
    }
    printf("libquant %s: %d x %d INT4 at %.3f bits/weight, matvec max diff %.2e\n", lq_version(), R,
           C, bpw, maxd);
    lq_qtensor_free(t);
    lq_ctx_destroy(ctx);
    return maxd < 1e-4 ? 0 : 1;
}
