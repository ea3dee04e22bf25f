/* libquant umbrella header: includes every module header. */
#ifndef QUANT_H
#define QUANT_H
#include "quant/core.h"
#include "quant/qtensor.h"
#include "quant/kernels.h"
#endif
