"""Float tensor files (safetensors, .npy) read through the library's
validating readers (lq_tfile)."""
import collections
import ctypes
import enum

import numpy as np

from . import _lib
from ._util import Handle, count_arg, fspath_bytes, name_str, ptr, use_ctx
from .errors import InvalidArgumentError, check

_L = _lib.lib


class TFileKind(enum.IntEnum):
    AUTO = 0
    SAFETENSORS = 1
    NPY = 2


FloatTensorInfo = collections.namedtuple("FloatTensorInfo", "index name dtype shape numel")


class TensorFile(Handle):
    """A safetensors or .npy file (kind 'auto' detects it). Lists tensors
    (name, dtype as safetensors spells it, shape) and reads F32/F16/BF16
    ones as float32 arrays (read()); other dtypes give UnsupportedError."""

    _kind = "TensorFile"

    def __init__(self, path, kind="auto", ctx=None):
        try:
            k = TFileKind[kind.upper()] if isinstance(kind, str) else TFileKind(kind)
        except (KeyError, ValueError):
            raise InvalidArgumentError("kind must be 'auto', 'safetensors' or 'npy'") from None
        out = ctypes.c_void_p()
        with use_ctx(ctx) as c:
            check(_L.lq_tfile_open(c, fspath_bytes(path), int(k), ctypes.byref(out)),
                  "lq_tfile_open")
        self._own(out.value, _L.lq_tfile_close)
        self.path = path
        with self._use() as p:
            self.kind = TFileKind(_L.lq_tfile_get_kind(p)).name.lower()
            self._infos = []
            for i in range(_L.lq_tfile_count(p)):
                ti = _lib.TensorInfo()
                check(_L.lq_tfile_info(p, i, ctypes.byref(ti)), "lq_tfile_info")
                self._infos.append(FloatTensorInfo(
                    i, name_str(ti.name), _L.lq_dtype_name(ti.dtype).decode(),
                    tuple(ti.shape[:ti.ndim]), ti.numel))
        self._by_name = {t.name: t.index for t in self._infos}

    def __len__(self):
        return len(self._infos)

    def __iter__(self):
        return iter(self._infos)

    def names(self):
        return [t.name for t in self._infos]

    def info(self, key):
        if isinstance(key, str):
            return self._infos[self._by_name[key]]
        i = count_arg(key, "index")
        if i >= len(self._infos):
            raise IndexError("tensor index %d out of range" % i)
        return self._infos[i]

    def read(self, key=0):
        """The tensor `key` (name or index) as a float32 array of its shape."""
        t = self.info(key)
        out = np.empty(t.shape, dtype=np.float32)
        with self._use() as p:
            check(_L.lq_tfile_read_f32(p, t.index, ptr(out), t.numel), "lq_tfile_read_f32")
        return out

    __getitem__ = read
