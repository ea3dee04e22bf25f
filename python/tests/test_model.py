"""Whole models through the lq program: quantize_model (sequential
calibration), eval_model, the option mapping, errors as exceptions with the
status, and no leak (processes, descriptors, memory) over many calls. Uses
the llama2.c model shipped in tests/data/realmodel ($LIBQUANT_TEST_DATA, or
found from this file in a source tree)."""
import gc
import math
import os
import tempfile
import unittest

import numpy as np

import libquant as lq
from libquant import model as lqm
from _common import FORMAT_OF

_HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(os.environ.get("LIBQUANT_TEST_DATA",
                                   os.path.join(_HERE, os.pardir, os.pardir, "tests", "data")),
                    "realmodel")
MODEL = os.path.join(DATA, "tinystories_d64_l5.bin")
TOK = os.path.join(DATA, "tok512.bin")
TRAIN = os.path.join(DATA, "tinystories_train_head.txt")
VAL = os.path.join(DATA, "tinystories_val.txt")
# 5 blocks x 7 linear layers (q, k, v, o, gate, up, down).
N_LINEAR = 35

# Small settings per method for a whole model (35 layers of 32-172 x 64-172).
MODEL_OPTIONS = {
    "int": dict(bits=4, group=32),
    "nestquant": dict(q=16, n_betas=4),
    "gptvq": dict(dim=2, index_bits=4, group_cols=64, em_iters=2),
    "gptqt": dict(k=2, group=64, iters=2, rescale_steps=2),
    "bcq": dict(k=2, group=64, iters=2),
    "aqlm": dict(n_codebooks=1, code_bits=4, group=8, beam=2, rounds=1, kmeans_iters=2),
}


def have_data():
    return all(os.path.isfile(p) for p in (MODEL, TOK, TRAIN, VAL))


@unittest.skipUnless(have_data(), "the real-model data (tests/data/realmodel) is not here: set "
                     "LIBQUANT_TEST_DATA to the source tree's tests/data")
class TestModel(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.environ.get("LIBQUANT_ASAN"):
            # The ctest wiring preloads the shared ASan runtime into the
            # interpreter; an ASan lq carries its own (static) runtime and
            # refuses a second one. The interpreter has it loaded already, so
            # only child processes see this change.
            os.environ.pop("LD_PRELOAD", None)
        cls.tmp = tempfile.TemporaryDirectory()
        cls.d = cls.tmp.name
        # The head of the validation text (lq eval encodes the whole file):
        # enough for a few chunks of 256 tokens, quick to encode.
        cls.val = os.path.join(cls.d, "val_head.txt")
        with open(VAL, "rb") as f, open(cls.val, "wb") as g:
            head = f.read(16384)
            g.write(head[:head.rfind(b"\n") + 1])   # whole lines: no cut UTF-8

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.d, name)

    def test_program_is_the_librarys(self):
        p = lq.lq_program()
        self.assertTrue(os.access(p, os.X_OK))
        if "LIBQUANT_LQ" not in os.environ:
            libdir = os.path.dirname(os.path.realpath(lq.library_path))
            self.assertIn(os.path.dirname(p), (libdir, os.path.realpath(
                os.path.join(libdir, os.pardir, "bin"))), p)

    def test_calibrated_quantize_then_eval(self):
        out = self.path("int3.lqt")
        r = lq.quantize_model(MODEL, out, "int", bits=3, group=32, calib_text=TRAIN,
                              tokenizer=TOK, calib_chunks=4, threads=2)
        self.assertEqual(r.output, out)
        self.assertEqual(r.method, "int")
        self.assertEqual(r.quantized_layers, N_LINEAR)
        self.assertEqual(len(r.layers), N_LINEAR)
        self.assertTrue(r.calibration.startswith("sequential, 4 chunks"), r.calibration)
        # Every layer: 3-bit codes plus a scale and a zero per group of 32.
        for layer in r.layers:
            self.assertTrue(layer["quantized"])
            self.assertIsNotNone(layer["proxy_loss"])
            self.assertTrue(3 < layer["bits_per_weight"] < 4, layer)
        # The file holds the layers as qtensors with the reported sizes, and
        # each loads and dequantizes to finite values.
        with lq.LqtFile(out) as f:
            names = set(f.names())
            for layer in r.layers:
                self.assertIn(layer["name"], names)
                q = f.load(layer["name"])
                self.assertEqual(q.shape, (layer["rows"], layer["cols"]))
                self.assertAlmostEqual(q.bits_per_weight, layer["bits_per_weight"], places=5)
                self.assertTrue(np.isfinite(q.dequantize()).all())
        e = lq.eval_model(out, TOK, self.val, ref=MODEL, chunks=2, threads=2)
        self.assertEqual(e.chunks, 2)
        self.assertEqual(e.quantized_layers, N_LINEAR)
        self.assertAlmostEqual(e.bits_per_weight, sum(
            l["bits_per_weight"] * l["rows"] * l["cols"] for l in r.layers) / sum(
            l["rows"] * l["cols"] for l in r.layers), places=5)
        self.assertTrue(math.isfinite(e.ppl) and e.ppl > 1)
        self.assertAlmostEqual(e.ppl, math.exp(e.nll), places=5)
        self.assertGreater(e.kl, 0)          # 3 bits change the distribution
        self.assertTrue(0 < e.top1 < 1)
        # The float model against itself: KL(p || p) = 0, top-1 agreement 1,
        # and a lower perplexity than its 3-bit quantization on the same text.
        f = lq.eval_model(MODEL, TOK, self.val, ref=MODEL, chunks=2, threads=2)
        self.assertEqual(f.kl, 0.0)
        self.assertEqual(f.top1, 1.0)
        self.assertEqual(f.tokens, e.tokens)
        self.assertLess(f.ppl, e.ppl)
        self.assertEqual(f.quantized_layers, 0)
        # Without a reference there is no KL.
        self.assertIsNone(lq.eval_model(out, TOK, self.val, chunks=1).kl)

    def test_every_method(self):
        for method, opts in MODEL_OPTIONS.items():
            with self.subTest(method=method):
                out = self.path("m_%s.lqt" % method)
                r = lq.quantize_model(MODEL, out, method, rtn=True, threads=2, **opts)
                self.assertEqual(r.quantized_layers, N_LINEAR)
                with lq.LqtFile(out) as f:
                    fmts = {e.format for e in f if e.name.endswith("proj.weight")}
                self.assertEqual(fmts, {FORMAT_OF[method]})

    def test_options_reach_the_program(self):
        # Same options on a layer of the same shape through the C API give
        # the same bits/weight as the model's layers (which depend on shape
        # and options only): each option was passed on, none dropped.
        rng = np.random.default_rng(0)
        cases = [("int", dict(bits=2, group=16, symmetric=True)),
                 ("bcq", dict(k=3, group=32, iters=2, offset=False)),
                 ("nestquant", dict(q=14, n_betas=2, hadamard=False)),
                 ("gptvq", dict(dim=1, index_bits=3, group_cols=32, em_iters=1))]
        for method, opts in cases:
            with self.subTest(method=method):
                out = self.path("o_%s.lqt" % method)
                r = lq.quantize_model(MODEL, out, method, rtn=True, **opts)
                for layer in r.layers[:3]:
                    W = rng.standard_normal((layer["rows"], layer["cols"])).astype(np.float32)
                    q = lq.quantize(W, None, method, rtn=True, **opts)
                    self.assertAlmostEqual(q.bits_per_weight, layer["bits_per_weight"], places=5)

    def test_option_mapping(self):
        a = lqm._method_args("nestquant", dict(hadamard=False, select=2, codebook=0, q=14))
        self.assertEqual(a[:2], ["--method", "nestquant"])
        for want in (["--no-hadamard"], ["--select", "exhaustive"], ["--codebook", "voronoi"],
                     ["--q", "14"]):
            i = a.index(want[0])
            self.assertEqual(a[i:i + len(want)], want)
        a = lqm._method_args("aqlm", dict(n_codebooks=2, group=4, act_order=True, percdamp=0.05))
        for want in (["--codebooks", "2"], ["--vec", "4"], ["--act-order"],
                     ["--percdamp", "0.05"]):
            i = a.index(want[0])
            self.assertEqual(a[i:i + len(want)], want)
        # Default-valued flags add nothing.
        self.assertEqual(lqm._method_args("int", dict(symmetric=False, rtn=False)),
                         ["--method", "int"])
        self.assertEqual(lqm._method_args("int", dict(gguf_compatible="q4_0"))[-2:],
                         ["--gguf-compatible", "q4_0"])

    def test_errors(self):
        out = self.path("bad.lqt")
        # Checked in Python, before any process runs.
        with self.assertRaises(TypeError):
            lq.quantize_model(MODEL, out, "int", nosuch=1)
        with self.assertRaises(TypeError):      # a field lq quantize has no option for
            lq.quantize_model(MODEL, out, "aqlm", cg_iters=2)
        with self.assertRaises(TypeError):
            lq.quantize_model(MODEL, out, "int", bits="4")
        with self.assertRaises(TypeError):
            lq.quantize_model(MODEL, out, "bcq", gguf_compatible="q4_0")
        with self.assertRaises(lq.InvalidArgumentError):
            lq.quantize_model(MODEL, out, "int", calib_text=TRAIN)   # no tokenizer
        with self.assertRaises(lq.InvalidArgumentError):
            lq.quantize_model(MODEL, out, "nosuch")
        with self.assertRaises(lq.InvalidArgumentError):
            lq.quantize_model(MODEL, out, "nestquant", select=7)
        with self.assertRaises(lq.InvalidArgumentError):
            lq.eval_model(MODEL, TOK, VAL, protocol="nosuch")
        with self.assertRaises(TypeError):
            lq.eval_model(MODEL, 5, VAL)
        # Reported by the program: the status, its exit code and message.
        with self.assertRaises(lq.InvalidArgumentError) as cm:   # lq: bits out of range
            lq.quantize_model(MODEL, out, "int", bits=99)
        self.assertEqual(cm.exception.status, lq.Status.INVALID_ARG)
        self.assertNotEqual(cm.exception.returncode, 0)
        self.assertIn("quantize", cm.exception.argv)
        with self.assertRaises(lq.LibquantIOError) as cm:
            lq.eval_model(MODEL, TOK, self.path("missing.txt"))
        self.assertEqual(cm.exception.status, lq.Status.IO)
        self.assertIsInstance(cm.exception, OSError)
        self.assertIn("missing.txt", str(cm.exception))
        with self.assertRaises(lq.LibquantError) as cm:
            lq.quantize_model(self.path("missing.bin"), out, "int")
        self.assertEqual(cm.exception.returncode, 1)
        # A NaN weight in a model: the library's NOT_FINITE.
        bad = self.path("nan.bin")
        with open(MODEL, "rb") as f:
            data = bytearray(f.read())
        # llama2.c layout: 7 int32 of config, the 512 x 64 embedding, the
        # 5 x 64 attention norms, then wq: its 11th entry becomes a NaN.
        at = 28 + 4 * (512 * 64 + 5 * 64) + 4 * 10
        data[at:at + 4] = b"\x00\x00\xc0\x7f"
        with open(bad, "wb") as f:
            f.write(data)
        with self.assertRaises(lq.LibquantError) as cm:
            lq.quantize_model(bad, out, "int", rtn=True)
        self.assertEqual(cm.exception.status, lq.Status.NOT_FINITE, cm.exception.stderr)
        self.assertFalse(os.path.exists(out) or os.path.exists(out + ".part"))
        # The program is found through LIBQUANT_LQ when it is set, and only there.
        saved = os.environ.get("LIBQUANT_LQ")
        os.environ["LIBQUANT_LQ"] = self.path("no-such-lq")
        try:
            with self.assertRaises(FileNotFoundError):
                lq.eval_model(MODEL, TOK, VAL)
        finally:
            if saved is None:
                del os.environ["LIBQUANT_LQ"]
            else:
                os.environ["LIBQUANT_LQ"] = saved

    def test_no_leak_over_many_calls(self):
        """Each call starts and reaps one process: after many calls, successful
        and failing, no child is left, the descriptor count is unchanged and
        the resident set has not grown."""
        def fds():
            return len(os.listdir("/proc/self/fd"))

        def cycle(i):
            if i % 2:
                lq.eval_model(MODEL, TOK, self.val, chunks=1, threads=1)
            else:
                with self.assertRaises(lq.LibquantIOError):
                    lq.eval_model(MODEL, TOK, self.path("missing.txt"))

        for i in range(4):
            cycle(i)
        gc.collect()
        fd0 = fds()
        with open("/proc/self/statm") as f:
            rss0 = int(f.read().split()[1])
        for i in range(20):
            cycle(i)
        gc.collect()
        self.assertEqual(fds(), fd0)
        with self.assertRaises(ChildProcessError):   # no child, reaped or not
            os.waitpid(-1, os.WNOHANG)
        with open("/proc/self/statm") as f:
            rss1 = int(f.read().split()[1])
        self.assertLess((rss1 - rss0) * os.sysconf("SC_PAGE_SIZE"), 4 << 20)


if __name__ == "__main__":
    unittest.main()
