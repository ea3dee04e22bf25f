"""libquant from Python: a thin ctypes binding over the C library's public
API (include/quant/*.h), with numpy arrays in and out.

    import numpy as np, libquant as lq
    W = np.random.default_rng(0).standard_normal((256, 512)).astype(np.float32)
    q = lq.quantize(W, method="int", bits=4, group=128)
    y = q.matvec(np.ones(512, np.float32))

The shared library is found through $LIBQUANT_LIBRARY (a path to
libquant.so), else pkg-config's libdir of quant.pc, else
ctypes.util.find_library('quant'). Whole models (quantize_model,
eval_model) run the `lq` program of that library. See python/README.md.
"""
from . import _lib
from .context import (Context, Simd, default_threads, machine_info, simd_detected, simd_name,
                      version)
from .errors import (CorruptError, InvalidArgumentError, LibquantError, LibquantIOError,
                     NoMemoryError, NotFiniteError, NotPositiveDefiniteError, OutOfRangeError,
                     Status, UnsupportedError, status_str)
from .hessian import Hessian
from .lqt import LqtFile, LqtWriter, Section, TensorEntry, save
from .methods import MethodKind, defaults, methods, options
from .model import EvalResult, ModelReport, eval_model, lq_program, quantize_model
from .qtensor import Format, Mode, QTensor, QuantReport, format_name, load, proxy_loss, quantize
from .tfile import TensorFile

__version__ = "0.1.0"

#: Path of the shared library actually loaded.
library_path = _lib.path
#: Limits of the supported input range (quant/core.h).
MAX_ABS_WEIGHT = 2.0**40
MAX_ABS_HESSIAN = 2.0**80
MAX_ABS_ACTIVATION = 2.0**64

__all__ = [
    "Context", "CorruptError", "EvalResult", "ModelReport", "eval_model", "lq_program",
    "quantize_model", "Format", "Hessian", "InvalidArgumentError", "LibquantError",
    "LibquantIOError", "LqtFile", "LqtWriter", "MethodKind", "Mode", "NoMemoryError",
    "NotFiniteError", "NotPositiveDefiniteError", "OutOfRangeError", "QTensor", "QuantReport",
    "Section", "Simd", "Status", "TensorEntry", "TensorFile", "UnsupportedError",
    "default_threads", "defaults", "format_name", "library_path", "load", "machine_info",
    "methods", "options", "proxy_loss", "quantize", "save", "simd_detected", "simd_name",
    "status_str", "version",
]
