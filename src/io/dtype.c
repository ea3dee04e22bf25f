/* Element types of the tensor-file readers: sizes and names. */
#include "io/io_internal.h"

size_t lq_dtype_size(lq_dtype d)
{
    switch (d) {
    case LQ_DTYPE_F32:
    case LQ_DTYPE_I32:
    case LQ_DTYPE_U32: return 4;
    case LQ_DTYPE_F16:
    case LQ_DTYPE_BF16:
    case LQ_DTYPE_I16:
    case LQ_DTYPE_U16: return 2;
    case LQ_DTYPE_F64:
    case LQ_DTYPE_I64:
    case LQ_DTYPE_U64: return 8;
    case LQ_DTYPE_I8:
    case LQ_DTYPE_U8:
    case LQ_DTYPE_BOOL:
    case LQ_DTYPE_F8_E4M3:
    case LQ_DTYPE_F8_E5M2: return 1;
    case LQ_DTYPE_UNKNOWN: break;
    }
    return 0;
}

const char *lq_dtype_name(lq_dtype d)
{
    switch (d) {
    case LQ_DTYPE_F32: return "F32";
    case LQ_DTYPE_F16: return "F16";
    case LQ_DTYPE_BF16: return "BF16";
    case LQ_DTYPE_F64: return "F64";
    case LQ_DTYPE_I8: return "I8";
    case LQ_DTYPE_U8: return "U8";
    case LQ_DTYPE_I16: return "I16";
    case LQ_DTYPE_U16: return "U16";
    case LQ_DTYPE_I32: return "I32";
    case LQ_DTYPE_U32: return "U32";
    case LQ_DTYPE_I64: return "I64";
    case LQ_DTYPE_U64: return "U64";
    case LQ_DTYPE_BOOL: return "BOOL";
    case LQ_DTYPE_F8_E4M3: return "F8_E4M3";
    case LQ_DTYPE_F8_E5M2: return "F8_E5M2";
    case LQ_DTYPE_UNKNOWN: break;
    }
    return "unknown";
}
