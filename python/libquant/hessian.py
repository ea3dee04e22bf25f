"""Calibration Hessian accumulation: H = (2/N) sum_n x_n x_n^T."""
import ctypes
import threading

import numpy as np

from . import _lib
from ._util import Handle, count_arg, ptr, use_ctx
from .errors import InvalidArgumentError, check

_L = _lib.lib


def _rows_view(X, cols):
    """X (n x cols, or cols for one sample) as float32 rows with unit
    element stride: returns (array, n, ldx). A float32 array whose rows are
    evenly spaced (e.g. a column slice of a wider matrix) is passed as is
    with its leading dimension; anything else is converted to C order."""
    a = np.asarray(X)
    if a.dtype.kind not in "fiu":
        raise TypeError("X: expected a real numeric array, got dtype %s" % a.dtype)
    if a.ndim == 1:
        a = a.reshape(1, -1)
    if a.ndim != 2:
        raise InvalidArgumentError("X must be samples x cols (2-D) or one sample (1-D), "
                                   "got shape %s" % (a.shape,))
    if a.shape[1] != cols:
        raise InvalidArgumentError("X has %d columns, the Hessian %d" % (a.shape[1], cols))
    if a.shape[0] == 0:
        raise InvalidArgumentError("X holds no sample")
    isz = 4
    if (a.dtype == np.float32 and a.dtype.isnative and a.flags.aligned
            and a.strides[1] == isz and a.strides[0] >= isz * cols and a.strides[0] % isz == 0):
        return a, a.shape[0], a.strides[0] // isz
    a = np.require(a, dtype=np.float32, requirements=["C", "A"])
    return a, a.shape[0], cols


class Hessian(Handle):
    """Running Hessian of a layer's inputs (lq_hessian), cols x cols,
    accumulated in double as GPTQ's running mean H = (2/N) sum x x^T.

        h = Hessian(cols)
        for X in batches:          # X: samples x cols activations
            h.add(X)
        H = h.matrix()             # cols x cols float32

    add() from several threads is serialised (one writer at a time).
    """

    _kind = "Hessian"

    def __init__(self, cols, ctx=None):
        cols = count_arg(cols, "cols", 1)
        out = ctypes.c_void_p()
        with use_ctx(ctx) as c:
            check(_L.lq_hessian_create(c, cols, ctypes.byref(out)), "lq_hessian_create")
        self._own(out.value, _L.lq_hessian_free)
        self._ctx = ctx
        self.cols = cols
        self._lock = threading.Lock()

    def add(self, X):
        """Add a batch X (samples x cols, or one sample of cols). NaN/Inf
        raise NotFiniteError and leave the accumulator unchanged. Returns
        self."""
        a, n, ldx = _rows_view(X, self.cols)
        with self._use() as p, use_ctx(self._ctx) as c, self._lock:
            check(_L.lq_hessian_add(c, p, ptr(a), n, ldx), "lq_hessian_add")
        return self

    @property
    def count(self):
        """Samples accumulated so far."""
        with self._use() as p:
            return _L.lq_hessian_count(p)

    def __len__(self):
        return self.count

    def matrix(self):
        """H as a cols x cols float32 array. InvalidArgumentError before the
        first sample; NotFiniteError if an entry exceeds the float range."""
        H = np.empty((self.cols, self.cols), dtype=np.float32)
        with self._use() as p, self._lock:
            check(_L.lq_hessian_get(p, ptr(H)), "lq_hessian_get")
        return H

    def __repr__(self):
        return "<libquant.Hessian %dx%d, %s samples>" % (
            self.cols, self.cols, "closed" if self.closed else self.count)
