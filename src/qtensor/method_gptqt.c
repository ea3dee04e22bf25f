/* LQ_METHOD_GPTQT (Guo, Lang, Ren 2024): per (row, group), a linear
 * n-bit grid whose scale is re-explored over candidate factors, the k
 * binary bases fitted to the grid levels the group uses (weighted by count
 * x importance), scale and origin merged into the bases so the stored
 * tensor is pure BCQ (LQ_FORMAT_BCQ with offsets). With H (and not rtn),
 * this runs inside the Hessian engine: each group is converted from the
 * current, GPTQ-updated weights with importance 1 / [H^-1]_jj, and the
 * error compensated column by column is the error of the final binary
 * value. See lq_gptqt_convert (include/quant/bcq.h) and docs/algorithms.md
 * for each choice and what the paper leaves open. */
#include "bcq/bcq_internal.h"
#include "qtensor/qtensor_internal.h"

lq_status lq_quantize_gptqt(lq_ctx *ctx, const float *W, size_t rows, size_t cols, const float *H,
                            const lq_method *m, lq_qtensor **out, float *W_hat,
                            lq_quant_report *rep)
{
    return lq_bcq_quantize_common(ctx, W, rows, cols, H, m, 1, out, W_hat, rep);
}
