#!/usr/bin/env python3
"""Calling libquant from Python with ctypes (no extension module, no numpy).

    python3 examples/python/quantize.py [path/to/libquant.so]

Quantizes a random 64 x 128 matrix to 4-bit INT with GPTQ under a random
Hessian, multiplies on the codes, and checks the product against the
dequantized weight. The struct mirrors follow include/quant/qtensor.h.
"""
import ctypes as C
import random
import sys

lib = C.CDLL(sys.argv[1] if len(sys.argv) > 1 else "libquant.so")

LQ_OK = 0
LQ_METHOD_INT = 1


class EngineOpts(C.Structure):
    _fields_ = [("rtn", C.c_int), ("percdamp", C.c_double), ("act_order", C.c_int),
                ("static_groups", C.c_int), ("block_size", C.c_size_t)]


class IntOpts(C.Structure):
    _fields_ = [("bits", C.c_uint), ("symmetric", C.c_int), ("group", C.c_size_t),
                ("mse_clip", C.c_int)]


class Method(C.Structure):
    # the options union is larger than IntOpts: reserve generously
    _fields_ = [("kind", C.c_int), ("engine", EngineOpts), ("int_", IntOpts),
                ("_rest", C.c_ubyte * 256)]


lib.lq_status_str.restype = C.c_char_p
lib.lq_version.restype = C.c_char_p
lib.lq_method_init.argtypes = [C.POINTER(Method), C.c_int]
fp = C.POINTER(C.c_float)
lib.lq_quantize.argtypes = [C.c_void_p, fp, C.c_size_t, C.c_size_t, fp, C.POINTER(Method),
                            C.POINTER(C.c_void_p), fp]
lib.lq_matvec.argtypes = [C.c_void_p, C.c_void_p, fp, fp]
lib.lq_qtensor_bits_per_weight.argtypes = [C.c_void_p, C.POINTER(C.c_double)]
lib.lq_qtensor_free.argtypes = [C.c_void_p]


def check(st, what):
    if st != LQ_OK:
        raise RuntimeError(f"{what}: {lib.lq_status_str(st).decode()}")


rows, cols, n = 64, 128, 256
rng = random.Random(7)
W = (C.c_float * (rows * cols))(*[rng.gauss(0, 0.02) for _ in range(rows * cols)])
# H = 2/n X^T X from correlated samples
X = [[rng.gauss(0, 1) for _ in range(cols)] for _ in range(n)]
for row in X:
    for j in range(1, cols):
        row[j] = 0.7 * row[j - 1] + 0.3 * row[j]
H = (C.c_float * (cols * cols))()
for i in range(cols):
    for j in range(i, cols):
        v = 2.0 / n * sum(x[i] * x[j] for x in X)
        H[i * cols + j] = H[j * cols + i] = v

m = Method()
check(lib.lq_method_init(C.byref(m), LQ_METHOD_INT), "method_init")
m.int_.bits = 4
q = C.c_void_p()
What = (C.c_float * (rows * cols))()
check(lib.lq_quantize(None, W, rows, cols, H, C.byref(m), C.byref(q), What), "quantize")
x = (C.c_float * cols)(*[rng.uniform(-1, 1) for _ in range(cols)])
y = (C.c_float * rows)()
check(lib.lq_matvec(None, q, x, y), "matvec")
bpw = C.c_double()
check(lib.lq_qtensor_bits_per_weight(q, C.byref(bpw)), "bits")
err = max(abs(sum(What[r * cols + c] * x[c] for c in range(cols)) - y[r]) for r in range(rows))
lib.lq_qtensor_free(q)
print(f"libquant {lib.lq_version().decode()} from Python: {rows}x{cols} INT4 GPTQ, "
      f"{bpw.value:.3f} bits/weight, matvec vs dequantized max diff {err:.2e}")
sys.exit(0 if err < 1e-3 else 1)
