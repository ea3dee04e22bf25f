/* Sequential calibration (GPTQ's procedure): the model is quantized block
 * by block in forward order; within a block the layer groups go in the
 * order the forward pass uses them (q/k/v, o, gate/up, down), and each
 * group's Hessian H = 2/N X^T X comes from the inputs X it actually sees
 * with everything before it already quantized. With fp_inputs the
 * Hessians come from the float model instead (every layer calibrated on
 * float activations, as per-layer tools do). */
#ifndef LQ_CALIB_H
#define LQ_CALIB_H

#include "calib_act.h"
#include "eval.h"
#include "model.h"

typedef struct lq_calib_layer {
    char name[96];
    size_t rows, cols;
    double bpw, rel_err, proxy, seconds;
    /* with activation quantization in the calibration (m->actq set): the
     * relative objective sum ||W x - W_hat x~||^2 / sum ||W x||^2 over the
     * calibration inputs of the layer (x float, x~ quantized), from the
     * accumulated statistics; NAN otherwise */
    double act_obj;
    int quantized;
} lq_calib_layer;

/* Block-wise fine-tuning figures of one block (calib.c, --finetune-steps):
 * the relative block-output error sum ||Y_q - Y_fp||^2 / sum ||Y_fp||^2
 * over the calibration tokens before and after tuning. */
typedef struct lq_calib_block {
    double loss_before, loss_after, seconds;
    unsigned steps; /* Adam steps taken (0: block not tuned) */
    unsigned best;  /* the step whose parameters were kept (0: the untuned ones) */
} lq_calib_block;

typedef struct lq_calib_opts {
    lq_method method;
    /* Block-wise fine-tuning (AQLM's procedure): after a block's layers
     * are quantized, finetune_steps full-batch Adam steps (learning rate
     * finetune_lr) on the continuous parameters of every quantized layer
     * of the block jointly, so that the block's output on the calibration
     * inputs matches the fp32 block's output on the same inputs (MSE);
     * the parameters of the step with the lowest loss are kept. 0: off. */
    unsigned finetune_steps;
    double finetune_lr;
    lq_calib_block *blocks; /* optional output, n_layers entries */
    int fp_inputs;          /* Hessians from the float model's activations */
    /* With m->actq set (activations and/or KV cache quantized during the
     * calibration: the stream is then the quantized model's at inference),
     * act_correct = 1 quantizes each layer's corrected target
     * W' = W + W (C - H~)(H~ + lambda I)^-1 under H~ (C = sum x x~^T,
     * H~ = sum x~ x~^T, x the float input of the group, x~ what
     * lq_actq_input makes of it), minimising sum ||W x - W_hat x~||^2;
     * act_correct = 0 keeps W and the float inputs' Hessian (the stream
     * only). Incompatible with fp_inputs and finetune_steps. */
    int act_correct;
    /* damping of the correction's solve as a fraction of mean diag(H~)
     * (lambda above); 0: the method's engine.percdamp. Larger values shrink
     * the correction towards W (infinity: W under H~). */
    double act_damp;
    const char *exclude; /* comma-separated substrings of layer names left in float */
    int progress;        /* 1: progress on stderr */
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

/* Fine-tune block `layer` of m (its quantized layers hold q and still their
 * float weights w) on the block inputs X (the calibration stream, chunk by
 * chunk as c, positions from 0): steps Adam steps at learning rate lr on
 * every quantized layer's continuous parameters (quant/finetune.h) against
 * the relative MSE to the fp32 block's output on X. Codes are not changed.
 * Fills *rep. Errors: INVALID_ARG, NO_MEMORY, those of the library. */
lq_status lq_calib_finetune_block(lq_ctx *ctx, lq_llama *m, size_t layer, const float *X,
                                  const lq_chunks *c, unsigned steps, double lr,
                                  lq_calib_block *rep);

/* 1 when `name` matches one of the comma-separated substrings of `list`. */
int lq_calib_excluded(const char *list, const char *name);

#endif
