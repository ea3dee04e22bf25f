"""quantize(), the QTensor it returns, and the proxy loss."""
import collections
import ctypes
import enum

import numpy as np

from . import _lib, methods
from ._util import Handle, as_f32, fspath_bytes, name_bytes, ptr, use_ctx
from .errors import InvalidArgumentError, check

_L = _lib.lib


class Format(enum.IntEnum):
    """lq_format values (stable: stored in .lqt files)."""
    INT = 1
    E8 = 2
    VQ = 3
    BCQ = 4
    AQ = 5


class Mode(enum.IntEnum):
    """lq_kernel_mode: EXACT (float activations, equals dequantize-then-GEMV
    up to float rounding) or FAST (int8 activations or int8 tables; relative
    error about 1e-2 of |W| |x| per output)."""
    EXACT = 0
    FAST = 1


QuantReport = collections.namedtuple(
    "QuantReport", "damping proxy_loss dead_columns overloads")
QuantReport.__doc__ = """Report of a quantization run (lq_quant_report):
damping actually added to diag(H), proxy loss tr((W - W_hat) H (W - W_hat)^T)
(||W - W_hat||^2 without H), columns with H_jj == 0, NestQuant overloads."""


def format_name(fmt):
    """Name of a packed format ('int', 'e8', 'vq', 'bcq', 'aq'; 'unknown')."""
    return _L.lq_format_name(int(fmt)).decode()


def _mode(mode):
    if isinstance(mode, Mode):
        return mode
    if isinstance(mode, str):
        try:
            return Mode[mode.strip().upper()]
        except KeyError:
            pass
    raise InvalidArgumentError("mode must be 'exact' or 'fast', not %r" % (mode,))


class QTensor(Handle):
    """A packed, quantized weight matrix (an lq_qtensor), rows x cols
    (out_features x in_features). Made by quantize() or load(); freed by
    close(), a with-block, or garbage collection.

    Products run on the codes with the tensor's context (the one it was
    quantized or loaded with; pass ctx= to use another). A tensor may be
    used from several threads at once.
    """

    _kind = "QTensor"

    def __init__(self, *args, **kwargs):
        raise TypeError("QTensor objects come from libquant.quantize() or libquant.load()")

    @classmethod
    def _wrap(cls, p, ctx, report=None, method=None, options=None, name=None):
        self = object.__new__(cls)
        self._own(p, _L.lq_qtensor_free)
        self._ctx = ctx
        rows, cols = ctypes.c_size_t(), ctypes.c_size_t()
        fmt = ctypes.c_int()
        bpw = ctypes.c_double()
        check(_L.lq_qtensor_shape(p, ctypes.byref(rows), ctypes.byref(cols)), "lq_qtensor_shape")
        check(_L.lq_qtensor_format(p, ctypes.byref(fmt)), "lq_qtensor_format")
        check(_L.lq_qtensor_bits_per_weight(p, ctypes.byref(bpw)), "lq_qtensor_bits_per_weight")
        self._shape = (rows.value, cols.value)
        self._format = Format(fmt.value)
        self._bpw = bpw.value
        self.report = report
        self.method = method
        self.options = options
        self.name = name
        return self

    # ---- facts ------------------------------------------------------------
    @property
    def shape(self):
        """(rows, cols)."""
        return self._shape

    @property
    def rows(self):
        return self._shape[0]

    @property
    def cols(self):
        return self._shape[1]

    @property
    def format(self):
        """Packed format name: 'int', 'e8', 'vq', 'bcq' or 'aq'."""
        return format_name(self._format)

    @property
    def format_id(self):
        """Packed format as a Format."""
        return self._format

    @property
    def bits_per_weight(self):
        """Bits per weight, every piece of side information counted."""
        return self._bpw

    @property
    def ctx(self):
        """The Context products run with by default (None: the default one)."""
        return self._ctx

    def __repr__(self):
        state = " closed" if self.closed else ""
        return "<libquant.QTensor %dx%d %s %.3f bits/weight%s>" % (
            self._shape[0], self._shape[1], self.format, self._bpw, state)

    # ---- compute ------------------------------------------------------------
    def _pick_ctx(self, ctx):
        return self._ctx if ctx is None else ctx

    def dequantize(self, ctx=None):
        """W_hat (rows x cols float32)."""
        out = np.empty(self._shape, dtype=np.float32)
        with self._use() as p, use_ctx(self._pick_ctx(ctx)) as c:
            check(_L.lq_dequantize(c, p, ptr(out)), "lq_dequantize")
        return out

    def matmul(self, X, mode="exact", ctx=None):
        """Y = X W^T on the codes: X is batch x cols, Y batch x rows
        (float32). mode 'exact' or 'fast' (lq_matmul_ex)."""
        X = as_f32(X, "X", 2)
        if X.shape[1] != self._shape[1]:
            raise InvalidArgumentError("X has %d columns, the tensor %d (X is batch x cols)"
                                       % (X.shape[1], self._shape[1]))
        m = _mode(mode)
        Y = np.empty((X.shape[0], self._shape[0]), dtype=np.float32)
        with self._use() as p, use_ctx(self._pick_ctx(ctx)) as c:
            check(_L.lq_matmul_ex(c, p, ptr(X), X.shape[0], ptr(Y), int(m)), "lq_matmul_ex")
        return Y

    def matvec(self, x, mode="exact", ctx=None):
        """y = W x on the codes: x has cols entries, y rows (float32)."""
        x = as_f32(x, "x", 1)
        if x.shape[0] != self._shape[1]:
            raise InvalidArgumentError("x has %d entries, the tensor %d columns"
                                       % (x.shape[0], self._shape[1]))
        return self.matmul(x.reshape(1, -1), mode, ctx).reshape(-1)

    def __matmul__(self, x):
        """W @ x: x of shape (cols,) gives (rows,); (cols, n) gives (rows, n)."""
        a = np.asarray(x)
        if a.ndim == 1:
            return self.matvec(a)
        if a.ndim == 2:
            return self.matmul(a.T).T
        return NotImplemented

    def prepare(self, ctx=None):
        """Build the kernel layout now (otherwise built on the first product)."""
        with self._use() as p, use_ctx(self._pick_ctx(ctx)) as c:
            check(_L.lq_qtensor_prepare(c, p), "lq_qtensor_prepare")
        return self

    # ---- files --------------------------------------------------------------
    def save(self, path, name="tensor", ctx=None):
        """Write a .lqt file holding this tensor alone under `name`
        (LqtWriter writes several). The file appears atomically."""
        with self._use() as p, use_ctx(self._pick_ctx(ctx)) as c:
            check(_L.lq_qtensor_save(c, p, name_bytes(name), fspath_bytes(path)),
                  "lq_qtensor_save")

    @classmethod
    def load(cls, path, name=None, mmap=False, copy=False, verify=True, ctx=None):
        """Read one tensor of a .lqt file: `name`, or the only one when
        name is None. mmap: map the file instead of reading it; copy: the
        tensor owns copies of its sections; verify=False skips the section
        checksums (the structure is still validated)."""
        flags = ((_lib.LQT_MMAP if mmap else 0) | (_lib.LQT_COPY if copy else 0)
                 | (0 if verify else _lib.LQT_SKIP_DATA_CRC))
        nb = None if name is None else name_bytes(name)
        out = ctypes.c_void_p()
        with use_ctx(ctx) as c:
            check(_L.lq_qtensor_load(c, fspath_bytes(path), nb, flags, ctypes.byref(out)),
                  "lq_qtensor_load")
        return cls._wrap(out.value, ctx, name=name)


load = QTensor.load


def _hessian_arg(H, cols):
    if H is None:
        return None
    H = as_f32(H, "H", 2)
    if H.shape != (cols, cols):
        raise InvalidArgumentError("H must be cols x cols = (%d, %d), got %s"
                                   % (cols, cols, H.shape))
    return H


def quantize(W, H=None, method="int", *, ctx=None, **options):
    """Quantize a weight matrix and return its QTensor.

    W        rows x cols (out_features x in_features, as nn.Linear.weight);
             converted to C-contiguous float32.
    H        optional cols x cols Hessian (e.g. Hessian.matrix()); None gives
             plain MSE (engine methods then round to nearest).
    method   'int' (GPTQ / RTN on a uniform grid), 'nestquant', 'gptvq',
             'gptqt', 'bcq', 'aqlm'.
    ctx      a Context, or None for the default one.
    options  fields of lq_engine_opts (rtn, percdamp, act_order,
             static_groups, block_size) and of the method's options struct,
             by their C names, e.g. bits=3, group=64 for 'int'
             (libquant.options(method) lists them, libquant.defaults(method)
             gives the defaults).

    The result carries .report (a QuantReport), .method and .options (every
    option as used). Raises LibquantError subclasses: NotFiniteError (NaN or
    Inf in W or H), OutOfRangeError, NotPositiveDefiniteError,
    InvalidArgumentError (also for shapes checked before the call), and
    TypeError for an unknown option.
    """
    m = methods.build(method, options)
    W = as_f32(W, "W", 2)
    rows, cols = W.shape
    Hc = _hessian_arg(H, cols)
    out = ctypes.c_void_p()
    rep = _lib.QuantReport()
    with use_ctx(ctx) as c:
        check(_L.lq_quantize_ex(c, ptr(W), rows, cols, ptr(Hc), ctypes.byref(m),
                                ctypes.byref(out), None, ctypes.byref(rep)), "lq_quantize")
    report = QuantReport(rep.damping, rep.proxy_loss, rep.dead_columns, rep.overloads)
    return QTensor._wrap(out.value, ctx, report, methods.MethodKind(m.kind).name.lower(),
                         methods.describe(m))


def proxy_loss(W, W_hat, H=None, ctx=None):
    """tr((W - W_hat) H (W - W_hat)^T) in double (H None: squared Frobenius
    norm of W - W_hat). W_hat may be a QTensor (it is dequantized)."""
    W = as_f32(W, "W", 2)
    if isinstance(W_hat, QTensor):
        W_hat = W_hat.dequantize(ctx)
    W_hat = as_f32(W_hat, "W_hat", 2)
    if W_hat.shape != W.shape:
        raise InvalidArgumentError("W_hat has shape %s, W %s" % (W_hat.shape, W.shape))
    Hc = _hessian_arg(H, W.shape[1])
    loss = ctypes.c_double()
    with use_ctx(ctx) as c:
        check(_L.lq_proxy_loss(c, ptr(W), ptr(W_hat), W.shape[0], W.shape[1], ptr(Hc),
                               ctypes.byref(loss)), "lq_proxy_loss")
    return loss.value
