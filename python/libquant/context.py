"""Contexts (threads, seed, SIMD cap, progress), version and machine facts."""
import ctypes
import enum

from . import _lib
from ._util import Handle, count_arg
from .errors import InvalidArgumentError, check

_L = _lib.lib


class Simd(enum.IntEnum):
    """lq_simd_level values."""
    SCALAR = 0
    AVX2 = 1
    AVX512 = 2
    NEON = 3
    AUTO = 255


def _simd_level(v):
    if isinstance(v, Simd):
        return v
    if isinstance(v, str):
        try:
            return Simd[v.strip().upper()]
        except KeyError:
            raise InvalidArgumentError("simd must be one of %s, not %r"
                                       % ([s.name.lower() for s in Simd], v)) from None
    raise TypeError("simd must be a str or libquant.Simd, not %s" % type(v).__name__)


def version():
    """Version string of the loaded C library (lq_version), e.g. '0.1.0'."""
    return _L.lq_version().decode()


def simd_name(level):
    """Name of a SIMD level ('scalar', 'avx2', 'avx512', 'neon', 'auto')."""
    return _L.lq_simd_name(int(_simd_level(level))).decode()


def simd_detected():
    """Name of the level the library uses when no context caps it (the best
    this machine supports, lowered by $LQ_SIMD)."""
    return _L.lq_simd_name(_L.lq_simd_detected()).decode()


def machine_info():
    """The machine as `lq info` describes it: a dict with physical_cores,
    logical_cpus, l1d_bytes, l2_bytes, l3_bytes (0 if unknown), the CPU
    feature flags has_* and os_avx/os_avx512 (bool), have_hwloc/have_sleef
    (how the library was built) and cpu_name."""
    mi = _lib.MachineInfo()
    check(_L.lq_machine_query(ctypes.byref(mi)), "lq_machine_query")
    out = {}
    for name, _ in _lib.MachineInfo._fields_:
        v = getattr(mi, name)
        if name == "cpu_name":
            v = v.decode("utf-8", "replace")
        elif name in _lib._MACHINE_FLAGS:
            v = bool(v)
        out[name] = v
    return out


class Context(Handle):
    """An lq_ctx: the thread pool, RNG seed, SIMD cap and progress callback
    that every heavy call runs with. Everywhere a ``ctx`` argument is taken,
    None means the library's default context (all physical cores, seed 0).

    threads   0: all physical cores; n: exactly n (1: no pool).
    simd      cap on the SIMD level: 'auto' (none), 'scalar', 'avx2',
              'avx512', 'neon' (a level above the machine's is the machine's).
    seed      RNG seed of every randomized step (results are deterministic
              for a seed whatever the thread count).
    progress  optional callable(fraction: float, stage: str), called from the
              thread running the library call; an exception raised in it is
              reported through sys.unraisablehook and does not stop the work.

    Close it with close() or a with-block (or let it be collected); no call
    may use it afterwards. Objects made with a context keep it alive.
    """

    _kind = "Context"

    def __init__(self, threads=0, simd="auto", seed=0, progress=None):
        cfg = _lib.CtxConfig()
        _L.lq_ctx_config_init(ctypes.byref(cfg))
        cfg.n_threads = count_arg(threads, "threads")
        cfg.seed = count_arg(seed, "seed")
        cfg.simd_cap = int(_simd_level(simd))
        self._progress_cb = None
        if progress is not None:
            if not callable(progress):
                raise TypeError("progress must be callable")

            def _cb(_user, fraction, stage):
                progress(fraction, stage.decode() if stage else "")

            # Kept on the object: the C side holds only the function pointer.
            self._progress_cb = _lib.PROGRESS_FN(_cb)
            cfg.progress = self._progress_cb
        out = ctypes.c_void_p()
        check(_L.lq_ctx_create(ctypes.byref(cfg), ctypes.byref(out)), "lq_ctx_create")
        self._own(out.value, _L.lq_ctx_destroy)
        self.seed = cfg.seed
        self.simd_cap = Simd(cfg.simd_cap).name.lower()

    @property
    def threads(self):
        """Number of threads work is split across (lq_ctx_threads)."""
        with self._use() as p:
            return _L.lq_ctx_threads(p)

    @property
    def simd(self):
        """SIMD level the context's work uses: the detected level capped by
        the context's simd cap (lq_ctx_simd), as a name."""
        with self._use() as p:
            return _L.lq_simd_name(_L.lq_ctx_simd(p)).decode()

    def __repr__(self):
        if self.closed:
            return "<libquant.Context closed>"
        return "<libquant.Context threads=%d simd=%s seed=%d>" % (self.threads, self.simd,
                                                                   self.seed)


def default_threads():
    """Threads of the library's default context (ctx=None)."""
    return _L.lq_ctx_threads(None)
