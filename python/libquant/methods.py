"""Quantization methods and their options: the lq_method tagged struct.

Options are the C field names of lq_engine_opts (shared by every method)
and of the method's member of the lq_method union (include/quant/qtensor.h
documents each one and its range); omitted options keep the defaults of
lq_method_init. Values are checked for type and for fitting their C field
here; whether a value is acceptable for the method is the library's call
(InvalidArgumentError).
"""
import ctypes
import enum

from . import _lib
from ._util import count_arg, real_arg
from .errors import InvalidArgumentError, check

_L = _lib.lib


class MethodKind(enum.IntEnum):
    """lq_method_kind values."""
    INT = 1
    NESTQUANT = 2
    GPTVQ = 3
    GPTQT = 4
    BCQ = 5
    AQLM = 6


# kind -> name of the lq_method.u member holding its options
_UNION_MEMBER = {
    MethodKind.INT: "int_", MethodKind.NESTQUANT: "nestquant", MethodKind.GPTVQ: "gptvq",
    MethodKind.GPTQT: "bcq", MethodKind.BCQ: "bcq", MethodKind.AQLM: "aqlm",
}
# Fields of lq_bcq_opts that only GPTQT reads (BCQ ignores them, so setting
# them for 'bcq' is refused as a likely mistake).
_GPTQT_ONLY = ("linear_bits", "rescale_steps", "grid_codes")

_UINT_MAX = 2**32 - 1
_SIZE_MAX = 2**(8 * ctypes.sizeof(ctypes.c_size_t)) - 1
_INT_MIN, _INT_MAX = -2**31, 2**31 - 1


def methods():
    """Names accepted as `method`: 'int', 'nestquant', 'gptvq', 'gptqt', 'bcq', 'aqlm'."""
    return [k.name.lower() for k in MethodKind]


def method_kind(method):
    """The MethodKind of a method name (case-insensitive) or MethodKind."""
    if isinstance(method, MethodKind):
        return method
    if isinstance(method, str):
        try:
            return MethodKind[method.strip().upper()]
        except KeyError:
            raise InvalidArgumentError("unknown method %r; methods: %s"
                                       % (method, ", ".join(methods()))) from None
    raise TypeError("method must be a str, not %s" % type(method).__name__)


def _fields(kind):
    """[(option name, struct, ctypes type)] for a kind: engine then method."""
    out = [(n, "engine", t) for n, t in _lib.EngineOpts._fields_]
    member = _UNION_MEMBER[kind]
    opts_type = dict(_lib.MethodUnion._fields_)[member]
    for n, t in opts_type._fields_:
        if kind == MethodKind.BCQ and n in _GPTQT_ONLY:
            continue
        out.append((n, member, t))
    return out


def options(method):
    """Names of the options `method` takes (engine options first)."""
    return [n for n, _, _ in _fields(method_kind(method))]


def _convert(name, ctype, value):
    if ctype is _lib.c_double:
        return real_arg(value, name)
    if ctype is _lib.c_int:  # flags (rtn, act_order, symmetric...)
        if isinstance(value, bool):
            return int(value)
        return count_arg(value, name, _INT_MIN, _INT_MAX)
    if ctype is _lib.c_uint:
        return count_arg(value, name, 0, _UINT_MAX)
    if ctype is _lib.c_size_t:
        return count_arg(value, name, 0, _SIZE_MAX)
    raise AssertionError("unmapped field type %r" % ctype)  # a mirror out of sync


def build(method, opts):
    """An lq_method for `method` with `opts` (a dict) applied over the
    defaults. Unknown option names raise TypeError (as an unexpected keyword
    argument would); values of the wrong type TypeError; values that do not
    fit the C field InvalidArgumentError (a ValueError)."""
    kind = method_kind(method)
    m = _lib.Method()
    check(_L.lq_method_init(ctypes.byref(m), int(kind)), "lq_method_init")
    fields = {n: (s, t) for n, s, t in _fields(kind)}
    for name, value in opts.items():
        if name not in fields:
            hint = ""
            if kind == MethodKind.BCQ and name in _GPTQT_ONLY:
                hint = " (%s is read by method 'gptqt' only)" % name
            raise TypeError("method %r has no option %r%s; options: %s"
                            % (kind.name.lower(), name, hint, ", ".join(fields)))
        struct, ctype = fields[name]
        target = m.engine if struct == "engine" else getattr(m.u, struct)
        setattr(target, name, _convert(name, ctype, value))
    return m


def describe(m):
    """{option: value} of an lq_method (engine options first)."""
    kind = MethodKind(m.kind)
    out = {}
    for name, struct, _ in _fields(kind):
        target = m.engine if struct == "engine" else getattr(m.u, struct)
        out[name] = getattr(target, name)
    return out


def defaults(method):
    """{option: default} of a method, from lq_method_init."""
    return describe(build(method, {}))
