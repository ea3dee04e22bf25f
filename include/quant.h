/* libquant umbrella header: includes every module header. */
#ifndef QUANT_H
#define QUANT_H
#include "quant/core.h"
#include "quant/qtensor.h"
#include "quant/kernels.h"
#include "quant/hessian.h"
#include "quant/lattice.h"
#include "quant/bcq.h"
#include "quant/vq.h"
#include "quant/mcq.h"
#include "quant/io.h"
#include "quant/finetune.h"
#endif
