"""Loading libquant and declaring its C API to ctypes.

Everything in this module mirrors include/quant/*.h: the structs below must
keep the exact field order and C types of their header counterparts (the
test suite compares every size and offset with a C compiler's when one is
available). Nothing here is public; the package's modules wrap it.
"""
import ctypes
import ctypes.util
import os
import shutil
import subprocess

# Major version of the C API these mirrors were written against.
API_MAJOR = 0

c_int, c_uint, c_size_t, c_double, c_float = (ctypes.c_int, ctypes.c_uint, ctypes.c_size_t,
                                              ctypes.c_double, ctypes.c_float)
c_uint32, c_uint64, c_void_p, c_char_p = (ctypes.c_uint32, ctypes.c_uint64, ctypes.c_void_p,
                                          ctypes.c_char_p)
c_status = ctypes.c_int  # lq_status (an enum: int-sized on every supported ABI)
c_enum = ctypes.c_int


# ---- quant/core.h ----------------------------------------------------------

class Allocator(ctypes.Structure):
    _fields_ = [("alloc", c_void_p), ("free", c_void_p), ("user", c_void_p)]


PROGRESS_FN = ctypes.CFUNCTYPE(None, c_void_p, c_double, c_char_p)


class CtxConfig(ctypes.Structure):
    _fields_ = [("allocator", Allocator), ("n_threads", c_size_t),
                ("parallel_for", c_void_p), ("parallel_user", c_void_p),
                ("seed", c_uint64), ("progress", PROGRESS_FN),
                ("progress_user", c_void_p), ("simd_cap", c_enum)]


_MACHINE_FLAGS = ("has_sse42", "has_avx2", "has_fma", "has_f16c", "has_avx512f",
                  "has_avx512bw", "has_avx512vl", "has_avx512dq", "has_avx512vnni",
                  "has_avx512vbmi", "has_avx512bf16", "has_neon", "has_dotprod",
                  "os_avx", "os_avx512", "have_hwloc", "have_sleef")


class MachineInfo(ctypes.Structure):
    _fields_ = ([("physical_cores", c_size_t), ("logical_cpus", c_size_t),
                 ("l1d_bytes", c_size_t), ("l2_bytes", c_size_t), ("l3_bytes", c_size_t)]
                + [(f, c_int) for f in _MACHINE_FLAGS]
                + [("cpu_name", ctypes.c_char * 64)])


# ---- quant/qtensor.h -------------------------------------------------------

class EngineOpts(ctypes.Structure):
    _fields_ = [("rtn", c_int), ("percdamp", c_double), ("act_order", c_int),
                ("static_groups", c_int), ("block_size", c_size_t)]


class IntOpts(ctypes.Structure):
    _fields_ = [("bits", c_uint), ("symmetric", c_int), ("group", c_size_t),
                ("mse_clip", c_int), ("gguf_exact", c_int)]


class NestQuantOpts(ctypes.Structure):
    _fields_ = [("q", c_uint), ("n_betas", c_uint), ("group", c_size_t), ("hadamard", c_int),
                ("select", c_uint), ("betas", c_void_p), ("codebook", c_uint)]


class GptvqOpts(ctypes.Structure):
    _fields_ = [("dim", c_uint), ("index_bits", c_uint), ("group_cols", c_size_t),
                ("group_rows", c_size_t), ("em_iters", c_uint), ("codebook_update", c_int),
                ("codebook_bits", c_uint), ("svd_rank", c_size_t)]


class BcqOpts(ctypes.Structure):
    _fields_ = [("k", c_uint), ("group", c_size_t), ("offset", c_int), ("iters", c_uint),
                ("linear_bits", c_uint), ("rescale_steps", c_uint), ("grid_codes", c_int)]


class AqlmOpts(ctypes.Structure):
    _fields_ = [("n_codebooks", c_uint), ("code_bits", c_uint), ("group", c_uint),
                ("beam", c_uint), ("rounds", c_uint), ("kmeans_iters", c_uint),
                ("cg_iters", c_uint)]


class MethodUnion(ctypes.Union):
    _fields_ = [("int_", IntOpts), ("nestquant", NestQuantOpts), ("gptvq", GptvqOpts),
                ("bcq", BcqOpts), ("aqlm", AqlmOpts)]


class Method(ctypes.Structure):
    _fields_ = [("kind", c_enum), ("engine", EngineOpts), ("u", MethodUnion)]


class QuantReport(ctypes.Structure):
    _fields_ = [("damping", c_double), ("proxy_loss", c_double),
                ("dead_columns", c_size_t), ("overloads", c_size_t)]


# ---- quant/io.h ------------------------------------------------------------

LQT_MAX_SECTIONS = 8
LQT_NPARAMS = 16
LQT_MMAP = 1
LQT_COPY = 2
LQT_SKIP_DATA_CRC = 4
TFILE_MAX_DIMS = 8


class LqtSectionInfo(ctypes.Structure):
    _fields_ = [("tag", c_uint32), ("elem_size", c_uint32), ("offset", c_uint64),
                ("nbytes", c_uint64), ("crc", c_uint32)]


class LqtInfo(ctypes.Structure):
    _fields_ = [("name", c_char_p), ("format", c_uint32), ("rows", c_size_t),
                ("cols", c_size_t), ("ip", c_uint32 * LQT_NPARAMS),
                ("fp", c_float * LQT_NPARAMS), ("nsec", c_size_t),
                ("sec", LqtSectionInfo * LQT_MAX_SECTIONS), ("offset", c_uint64),
                ("size", c_uint64)]


class TensorInfo(ctypes.Structure):
    _fields_ = [("name", c_char_p), ("dtype", c_enum), ("ndim", c_size_t),
                ("shape", c_size_t * TFILE_MAX_DIMS), ("numel", c_size_t)]


# Every struct mirrored above, by its C type name (for the layout test).
STRUCTS = {
    "lq_allocator": Allocator, "lq_ctx_config": CtxConfig, "lq_machine_info": MachineInfo,
    "lq_engine_opts": EngineOpts, "lq_int_opts": IntOpts,
    "lq_nestquant_opts": NestQuantOpts, "lq_gptvq_opts": GptvqOpts, "lq_bcq_opts": BcqOpts,
    "lq_aqlm_opts": AqlmOpts, "lq_method": Method, "lq_quant_report": QuantReport,
    "lq_lqt_section_info": LqtSectionInfo, "lq_lqt_info": LqtInfo,
    "lq_tensor_info": TensorInfo,
}

P = c_void_p  # opaque handles and array data are passed as plain addresses
PP = ctypes.POINTER(c_void_p)

# name: (restype, argtypes)
_PROTOTYPES = {
    # core.h
    "lq_status_str": (c_char_p, [c_status]),
    "lq_version": (c_char_p, []),
    "lq_simd_name": (c_char_p, [c_enum]),
    "lq_simd_detected": (c_enum, []),
    "lq_ctx_config_init": (None, [ctypes.POINTER(CtxConfig)]),
    "lq_ctx_create": (c_status, [ctypes.POINTER(CtxConfig), PP]),
    "lq_ctx_destroy": (None, [P]),
    "lq_ctx_threads": (c_size_t, [P]),
    "lq_ctx_simd": (c_enum, [P]),
    "lq_machine_query": (c_status, [ctypes.POINTER(MachineInfo)]),
    # qtensor.h
    "lq_method_init": (c_status, [ctypes.POINTER(Method), c_enum]),
    "lq_quantize_ex": (c_status, [P, P, c_size_t, c_size_t, P, ctypes.POINTER(Method), PP, P,
                                  ctypes.POINTER(QuantReport)]),
    "lq_qtensor_bits_per_weight": (c_status, [P, ctypes.POINTER(c_double)]),
    "lq_qtensor_shape": (c_status, [P, ctypes.POINTER(c_size_t), ctypes.POINTER(c_size_t)]),
    "lq_qtensor_format": (c_status, [P, ctypes.POINTER(c_enum)]),
    "lq_format_name": (c_char_p, [c_enum]),
    "lq_dequantize": (c_status, [P, P, P]),
    "lq_matvec": (c_status, [P, P, P, P]),
    "lq_matmul": (c_status, [P, P, P, c_size_t, P]),
    "lq_qtensor_free": (None, [P]),
    "lq_proxy_loss": (c_status, [P, P, P, c_size_t, c_size_t, P, ctypes.POINTER(c_double)]),
    # kernels.h
    "lq_matmul_ex": (c_status, [P, P, P, c_size_t, P, c_enum]),
    "lq_qtensor_prepare": (c_status, [P, P]),
    # hessian.h
    "lq_hessian_create": (c_status, [P, c_size_t, PP]),
    "lq_hessian_add": (c_status, [P, P, P, c_size_t, c_size_t]),
    "lq_hessian_get": (c_status, [P, P]),
    "lq_hessian_count": (c_size_t, [P]),
    "lq_hessian_free": (None, [P]),
    # io.h
    "lq_lqt_writer_open": (c_status, [P, c_char_p, PP]),
    "lq_lqt_writer_add": (c_status, [P, c_char_p, P]),
    "lq_lqt_writer_finish": (c_status, [P]),
    "lq_lqt_writer_abort": (None, [P]),
    "lq_qtensor_save": (c_status, [P, P, c_char_p, c_char_p]),
    "lq_lqt_open": (c_status, [P, c_char_p, c_uint, PP]),
    "lq_lqt_close": (None, [P]),
    "lq_lqt_count": (c_size_t, [P]),
    "lq_lqt_find": (c_status, [P, c_char_p, ctypes.POINTER(c_size_t)]),
    "lq_lqt_info_get": (c_status, [P, c_size_t, ctypes.POINTER(LqtInfo)]),
    "lq_lqt_file_info": (c_status, [P, ctypes.POINTER(c_uint32), ctypes.POINTER(c_uint32),
                                    ctypes.POINTER(c_uint64)]),
    "lq_lqt_load": (c_status, [P, P, c_size_t, c_uint, PP]),
    "lq_qtensor_load": (c_status, [P, c_char_p, c_char_p, c_uint, PP]),
    "lq_dtype_name": (c_char_p, [c_enum]),
    "lq_tfile_open": (c_status, [P, c_char_p, c_enum, PP]),
    "lq_tfile_close": (None, [P]),
    "lq_tfile_get_kind": (c_enum, [P]),
    "lq_tfile_count": (c_size_t, [P]),
    "lq_tfile_info": (c_status, [P, c_size_t, ctypes.POINTER(TensorInfo)]),
    "lq_tfile_find": (c_status, [P, c_char_p, ctypes.POINTER(c_size_t)]),
    "lq_tfile_read_f32": (c_status, [P, c_size_t, P, c_size_t]),
}


class LibraryNotFound(ImportError):
    """libquant's shared library could not be located or loaded."""


def _pkg_config_libdir():
    """libdir of the installed pkg-config package, or None."""
    exe = shutil.which("pkg-config")
    if not exe:
        return None
    # The package is called "quant" (quant.pc); "libquant" is tried too.
    for name in ("quant", "libquant"):
        try:
            r = subprocess.run([exe, "--variable=libdir", name], capture_output=True,
                               text=True, timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        d = r.stdout.strip()
        if r.returncode == 0 and d:
            return d
    return None


def _candidates():
    """(description, path) pairs in search order; see locate()."""
    env = os.environ.get("LIBQUANT_LIBRARY")
    if env:
        # An explicit choice is never second-guessed: no fallback.
        return [("LIBQUANT_LIBRARY", env)]
    out = []
    libdir = _pkg_config_libdir()
    if libdir:
        for f in ("libquant.so", "libquant.so.%d" % API_MAJOR):
            p = os.path.join(libdir, f)
            if os.path.exists(p):
                out.append(("pkg-config libdir", p))
                break
    found = ctypes.util.find_library("quant")
    if found:
        out.append(("ctypes.util.find_library('quant')", found))
    return out


def _declare(lib):
    for name, (res, args) in _PROTOTYPES.items():
        fn = getattr(lib, name)
        fn.restype = res
        fn.argtypes = args


def load():
    """Find and load the library: $LIBQUANT_LIBRARY (a path to the shared
    library), else the libdir that pkg-config reports for quant.pc, else
    ctypes.util.find_library('quant'). Returns (CDLL, path)."""
    tried = []
    for how, path in _candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            tried.append("%s (%s): %s" % (path, how, e))
            continue
        try:
            _declare(lib)
        except AttributeError as e:
            tried.append("%s (%s): not libquant or too old: %s" % (path, how, e))
            continue
        major = int(lib.lq_version().decode().split(".")[0])
        if major != API_MAJOR:
            tried.append("%s (%s): C API major version %d, this binding needs %d"
                         % (path, how, major, API_MAJOR))
            continue
        return lib, path
    msg = "libquant shared library not found"
    if tried:
        msg += "; tried:\n  " + "\n  ".join(tried)
    msg += ("\nSet LIBQUANT_LIBRARY to the path of libquant.so (e.g. build/libquant.so), "
            "or install libquant where pkg-config (quant.pc) or the dynamic loader finds it.")
    raise LibraryNotFound(msg)


lib, path = load()
