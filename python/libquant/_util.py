"""Internal helpers: owned C handles and array checks."""
import contextlib
import numbers
import operator
import os
import threading
import weakref

import numpy as np

from .errors import InvalidArgumentError


class Handle:
    """Owns one C object and frees it exactly once: on close(), or when the
    Python object is collected, or at interpreter exit (weakref.finalize).
    close() waits for calls running on the object in other threads (ctypes
    releases the GIL during C calls), so a handle is never freed under a
    running call; after close() every use raises ValueError."""

    _kind = "object"

    def _own(self, ptr, free_fn):
        self._ptr = ptr
        self._users = 0
        self._closing = False
        self._cond = threading.Condition(threading.Lock())
        self._finalizer = weakref.finalize(self, free_fn, ptr)

    @contextlib.contextmanager
    def _use(self):
        """The C pointer, kept alive until the block ends."""
        with self._cond:
            if self._closing or not getattr(self, "_ptr", None):
                raise ValueError("%s is closed" % self._kind)
            self._users += 1
        try:
            yield self._ptr
        finally:
            with self._cond:
                self._users -= 1
                if self._users == 0:
                    self._cond.notify_all()

    @property
    def closed(self):
        return not getattr(self, "_ptr", None)

    def close(self):
        """Free the C object now (idempotent). Waits for running calls."""
        cond = getattr(self, "_cond", None)
        if cond is None:
            return
        with cond:
            if self._closing:
                return
            self._closing = True
            while self._users:
                cond.wait()
            self._ptr = None
        self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def use_ctx(ctx):
    """Context manager giving the lq_ctx pointer of a Context, or None (the
    library's default context) for ctx None."""
    if ctx is None:
        return contextlib.nullcontext(None)
    use = getattr(ctx, "_use", None)
    if use is None or getattr(ctx, "_kind", None) != "Context":
        raise TypeError("ctx must be a libquant.Context or None, not %s" % type(ctx).__name__)
    return use()


def as_f32(a, name, ndim):
    """`a` as a C-contiguous, aligned float32 array of `ndim` dimensions,
    none of them empty. Real numeric dtypes (float, int, unsigned) are
    converted; others raise TypeError; a wrong ndim or an empty array
    raises ValueError (the C library is never called with them)."""
    arr = np.asarray(a)
    if arr.dtype.kind not in "fiu":
        raise TypeError("%s: expected a real numeric array, got dtype %s" % (name, arr.dtype))
    if arr.ndim != ndim:
        raise InvalidArgumentError("%s: expected a %d-D array, got shape %s"
                                   % (name, ndim, arr.shape))
    if arr.size == 0:
        raise InvalidArgumentError("%s: empty array (shape %s)" % (name, arr.shape))
    return np.require(arr, dtype=np.float32, requirements=["C", "A"])


def ptr(arr):
    """Address of an array's data (None for None)."""
    return None if arr is None else arr.ctypes.data


def fspath_bytes(path, name="path"):
    """A path argument (str, bytes or os.PathLike) as bytes for C."""
    try:
        b = os.fsencode(path)
    except TypeError:
        raise TypeError("%s must be str, bytes or os.PathLike, not %s"
                        % (name, type(path).__name__)) from None
    if b"\0" in b:
        raise InvalidArgumentError("%s contains a NUL byte" % name)
    return b


def name_bytes(name, what="name"):
    """A tensor name (str or bytes) as bytes without NUL."""
    if isinstance(name, str):
        b = name.encode("utf-8", "surrogateescape")
    elif isinstance(name, (bytes, bytearray)):
        b = bytes(name)
    else:
        raise TypeError("%s must be str or bytes, not %s" % (what, type(name).__name__))
    if b"\0" in b:
        raise InvalidArgumentError("%s contains a NUL byte" % what)
    return b


def name_str(b):
    return b.decode("utf-8", "surrogateescape")


def count_arg(v, name, lo=0, hi=2**64 - 1):
    """A non-bool integer in [lo, hi] (numpy integers accepted)."""
    if isinstance(v, (bool, np.bool_)):
        raise TypeError("%s must be an integer, not bool" % name)
    try:
        i = operator.index(v)
    except TypeError:
        raise TypeError("%s must be an integer, not %s" % (name, type(v).__name__)) from None
    if not lo <= i <= hi:
        raise InvalidArgumentError("%s = %d is outside [%d, %d]" % (name, i, lo, hi))
    return i


def real_arg(v, name):
    """A real number (not bool, not str) as float."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError("%s must be a real number, not %s" % (name, type(v).__name__))
    return float(v)
