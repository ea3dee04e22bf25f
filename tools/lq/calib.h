/* Sequential calibration (GPTQ's procedure): the model is quantized block
 * by block in forward order; within a block the layer groups go in the
 * order the forward pass uses them (q/k/v, o, gate/up, down), and each
 * group's Hessian H = 2/N X^T X comes from the inputs X it actually sees
 * with everything before it already quantized. With fp_inputs the
 * Hessians come from the float model instead (every layer calibrated on
 * float activations, as per-layer tools do). */
#ifndef LQ_CALIB_H
#define LQ_CALIB_H

#include "eval.h"
#include "model.h"

typedef struct lq_calib_layer {
    char name[96];
    size_t rows, cols;
    double bpw, rel_err, proxy, seconds;
    int quantized;
} lq_calib_layer;

typedef struct lq_calib_opts {
    lq_method method;
    int fp_inputs;           /* Hessians from the float model's activations */
    const char *exclude;     /* comma-separated substrings of layer names left in float */
    int progress;            /* 1: progress on stderr */
    /* optional: sees every Hessian before it is used */
    void (*on_hessian)(void *user, size_t layer, lq_lin_group g, const float *H, size_t cols);
    void *user;
} lq_calib_opts;

/* Quantize every linear layer of m (not excluded) in place: on success each
 * gets its qtensor and loses its float weights. calib holds the
 * calibration chunks (NULL: no Hessians, the methods run without one).
 * layers (n_layers x LQ_LIN_COUNT, may be NULL) receives per-layer figures.
 * Prints an error and returns its status on failure (m then holds a mix:
 * free it). */
lq_status lq_calibrate(lq_ctx *ctx, lq_llama *m, const lq_chunks *calib, const lq_calib_opts *o,
                       lq_calib_layer *layers);

/* 1 when `name` matches one of the comma-separated substrings of `list`. */
int lq_calib_excluded(const char *list, const char *name);

#endif
