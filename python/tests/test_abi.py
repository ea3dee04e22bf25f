"""The ctypes mirrors match the C headers: every struct's size and field
offsets, and every enum value and flag the binding names, as a C compiler
sees them. Needs a C compiler ($CC or cc) and the include directories in
$LIBQUANT_INCLUDE_DIRS (os.pathsep-separated: include/ and the build's
include/ holding the generated quant/version.h); skipped otherwise."""
import ctypes
import os
import shutil
import subprocess
import tempfile
import unittest

import libquant as lq
from libquant import _lib

CONSTANTS = {}
CONSTANTS.update({"LQ_" + ("OK" if s.name == "OK" else "ERR_" + s.name): int(s)
                  for s in lq.Status})
CONSTANTS.update({"LQ_FORMAT_" + f.name: int(f) for f in lq.Format})
CONSTANTS.update({"LQ_METHOD_" + m.name: int(m) for m in lq.MethodKind})
CONSTANTS.update({"LQ_SIMD_" + s.name: int(s) for s in lq.Simd})
CONSTANTS.update({"LQ_KERNEL_" + m.name: int(m) for m in lq.Mode})
CONSTANTS.update({"LQ_LQT_MMAP": _lib.LQT_MMAP, "LQ_LQT_COPY": _lib.LQT_COPY,
                  "LQ_LQT_SKIP_DATA_CRC": _lib.LQT_SKIP_DATA_CRC,
                  "LQ_LQT_MAX_SECTIONS": _lib.LQT_MAX_SECTIONS,
                  "LQ_LQT_NPARAMS": _lib.LQT_NPARAMS, "LQ_TFILE_MAX_DIMS": _lib.TFILE_MAX_DIMS,
                  "LQ_TFILE_AUTO": 0, "LQ_TFILE_SAFETENSORS": 1, "LQ_TFILE_NPY": 2,
                  "LQ_VERSION_MAJOR": _lib.API_MAJOR})
FLOAT_CONSTANTS = {"LQ_MAX_ABS_WEIGHT": lq.MAX_ABS_WEIGHT,
                   "LQ_MAX_ABS_HESSIAN": lq.MAX_ABS_HESSIAN,
                   "LQ_MAX_ABS_ACTIVATION": lq.MAX_ABS_ACTIVATION}
ENUM_TYPES = ["lq_status", "lq_format", "lq_method_kind", "lq_simd_level", "lq_kernel_mode",
              "lq_dtype", "lq_tfile_kind"]


def _program():
    lines = ["#include <stddef.h>", "#include <stdio.h>", "#include <quant.h>",
             "int main(void) {"]
    for cname, cls in _lib.STRUCTS.items():
        lines.append('printf("sizeof %s %%zu\\n", sizeof(%s));' % (cname, cname))
        for f, _ in cls._fields_:
            lines.append('printf("offset %s.%s %%zu\\n", offsetof(%s, %s));'
                         % (cname, f, cname, f))
    for u, _ in _lib.MethodUnion._fields_:
        lines.append('printf("offset lq_method.u.%s %%zu\\n", offsetof(lq_method, u.%s));'
                     % (u, u))
    for e in ENUM_TYPES:
        lines.append('printf("sizeof %s %%zu\\n", sizeof(%s));' % (e, e))
    for c in CONSTANTS:
        lines.append('printf("const %s %%lld\\n", (long long)(%s));' % (c, c))
    for c in FLOAT_CONSTANTS:
        lines.append('printf("float %s %%a\\n", (double)(%s));' % (c, c))
    lines += ["return 0;", "}"]
    return "\n".join(lines) + "\n"


def _expected():
    exp = {}
    for cname, cls in _lib.STRUCTS.items():
        exp["sizeof " + cname] = ctypes.sizeof(cls)
        for f, _ in cls._fields_:
            exp["offset %s.%s" % (cname, f)] = getattr(cls, f).offset
    for u, _ in _lib.MethodUnion._fields_:
        exp["offset lq_method.u.%s" % u] = _lib.Method.u.offset + getattr(_lib.MethodUnion,
                                                                          u).offset
    for e in ENUM_TYPES:
        exp["sizeof " + e] = ctypes.sizeof(_lib.c_enum)
    for c, v in CONSTANTS.items():
        exp["const " + c] = v
    for c, v in FLOAT_CONSTANTS.items():
        exp["float " + c] = v
    return exp


class TestAbi(unittest.TestCase):
    def test_mirrors_match_headers(self):
        incs = [d for d in os.environ.get("LIBQUANT_INCLUDE_DIRS", "").split(os.pathsep) if d]
        cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
        if not incs or not cc:
            self.skipTest("set LIBQUANT_INCLUDE_DIRS (and have a C compiler) to compare "
                          "the ctypes mirrors with the headers")
        with tempfile.TemporaryDirectory() as tmp:
            src, exe = os.path.join(tmp, "abi.c"), os.path.join(tmp, "abi")
            with open(src, "w") as f:
                f.write(_program())
            cmd = [cc, "-std=c11", "-o", exe, src] + ["-I" + d for d in incs]
            r = subprocess.run(cmd, capture_output=True, text=True, check=False)
            self.assertEqual(r.returncode, 0, "compiling the layout probe failed:\n" + r.stderr)
            out = subprocess.run([exe], capture_output=True, text=True, check=True).stdout
        got = {}
        for line in out.splitlines():
            kind, key, val = line.split(" ")
            got[kind + " " + key] = float.fromhex(val) if kind == "float" else int(val)
        exp = _expected()
        self.assertEqual(set(got), set(exp))
        bad = {k: (got[k], exp[k]) for k in exp if got[k] != exp[k]}
        self.assertFalse(bad, "C vs ctypes: %s" % bad)


if __name__ == "__main__":
    unittest.main()
