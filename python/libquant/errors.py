"""Status codes and the exceptions they become.

Every C call that returns an lq_status other than LQ_OK raises the
LibquantError subclass of that status. The exception carries ``status``
(a Status) and ``message`` (lq_status_str of it); str(e) also names the
call that failed. Where a Python built-in exception has the same meaning
the subclass derives from it too, so ``except ValueError`` catches bad
arguments and non-finite inputs, ``except OSError`` file errors and
``except MemoryError`` allocation failures.
"""
import enum

from . import _lib


class Status(enum.IntEnum):
    """lq_status values (stable: they may be stored and compared)."""
    OK = 0
    INVALID_ARG = 1
    NO_MEMORY = 2
    NOT_FINITE = 3
    NOT_POSITIVE_DEFINITE = 4
    CORRUPT = 5
    UNSUPPORTED = 6
    IO = 7
    OUT_OF_RANGE = 8


def status_str(status):
    """The library's English description of a status (lq_status_str)."""
    return _lib.lib.lq_status_str(int(status)).decode()


class LibquantError(Exception):
    """A libquant call failed. ``status``: the Status; ``message``: its
    lq_status_str text; ``call``: the C function (or operation) that failed."""
    status = None

    def __init__(self, text, status=None, message=None, call=None):
        super().__init__(text)
        if status is not None:
            self.status = status
        self.message = message if message is not None else text
        self.call = call


class InvalidArgumentError(LibquantError, ValueError):
    """LQ_ERR_INVALID_ARG: zero or inconsistent size, bad option, name not found."""
    status = Status.INVALID_ARG


class NoMemoryError(LibquantError, MemoryError):
    """LQ_ERR_NO_MEMORY: an allocation failed; nothing was changed."""
    status = Status.NO_MEMORY


class NotFiniteError(LibquantError, ValueError):
    """LQ_ERR_NOT_FINITE: NaN or Inf in an input."""
    status = Status.NOT_FINITE


class NotPositiveDefiniteError(LibquantError, ValueError):
    """LQ_ERR_NOT_POSITIVE_DEFINITE: H stayed indefinite after damping."""
    status = Status.NOT_POSITIVE_DEFINITE


class CorruptError(LibquantError):
    """LQ_ERR_CORRUPT: packed data or a file failed validation."""
    status = Status.CORRUPT


class UnsupportedError(LibquantError):
    """LQ_ERR_UNSUPPORTED: a valid request this build or format cannot serve."""
    status = Status.UNSUPPORTED


class LibquantIOError(LibquantError, OSError):
    """LQ_ERR_IO: a read, write or map of a file failed."""
    status = Status.IO


class OutOfRangeError(LibquantError, ValueError):
    """LQ_ERR_OUT_OF_RANGE: finite input beyond the supported range
    (|w| > 2^40, |h| > 2^80, |x| > 2^64: see quant/core.h)."""
    status = Status.OUT_OF_RANGE


_BY_STATUS = {cls.status: cls for cls in (
    InvalidArgumentError, NoMemoryError, NotFiniteError, NotPositiveDefiniteError,
    CorruptError, UnsupportedError, LibquantIOError, OutOfRangeError)}


def error_for(status, call):
    """The exception for a non-OK status returned by `call`."""
    try:
        st = Status(status)
    except ValueError:
        st = None
    msg = status_str(status)
    cls = _BY_STATUS.get(st, LibquantError)
    return cls("%s: %s" % (call, msg), status=st if st is not None else status, message=msg,
               call=call)


def check(status, call):
    """Raise the exception of `status` unless it is LQ_OK."""
    if status != 0:
        raise error_for(status, call)
