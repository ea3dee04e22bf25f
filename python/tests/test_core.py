"""Version, machine facts, contexts, status codes and the exception classes."""
import threading
import unittest

import numpy as np

import libquant as lq
from _common import layer, quantize


class TestVersion(unittest.TestCase):
    def test_version_string(self):
        v = lq.version()
        self.assertRegex(v, r"^\d+\.\d+\.\d+")
        self.assertEqual(int(v.split(".")[0]), 0)

    def test_library_path(self):
        self.assertTrue(lq.library_path)

    def test_machine_info(self):
        mi = lq.machine_info()
        self.assertGreaterEqual(mi["logical_cpus"], 1)
        self.assertGreaterEqual(mi["physical_cores"], 1)
        self.assertIsInstance(mi["cpu_name"], str)
        self.assertIsInstance(mi["has_avx2"], bool)
        self.assertIn("have_hwloc", mi)

    def test_simd_names(self):
        self.assertIn(lq.simd_detected(), ("scalar", "avx2", "avx512", "neon"))
        self.assertEqual(lq.simd_name("scalar"), "scalar")
        self.assertEqual(lq.simd_name(lq.Simd.AUTO), "auto")
        with self.assertRaises(ValueError):
            lq.simd_name("sse9")


class TestContext(unittest.TestCase):
    def test_threads_and_simd_cap(self):
        with lq.Context(threads=1, simd="scalar", seed=5) as ctx:
            self.assertEqual(ctx.threads, 1)
            self.assertEqual(ctx.simd, "scalar")
            self.assertEqual(ctx.seed, 5)
            self.assertIn("threads=1", repr(ctx))
        with lq.Context(threads=2) as ctx:
            self.assertEqual(ctx.threads, 2)
            self.assertEqual(ctx.simd, lq.simd_detected())
        self.assertGreaterEqual(lq.default_threads(), 1)

    def test_closed_context_refused(self):
        ctx = lq.Context(threads=1)
        ctx.close()
        ctx.close()  # idempotent
        self.assertTrue(ctx.closed)
        with self.assertRaises(ValueError):
            ctx.threads
        W, _, _ = layer()
        with self.assertRaises(ValueError):
            lq.quantize(W, ctx=ctx)

    def test_bad_arguments(self):
        with self.assertRaises(TypeError):
            lq.Context(threads=1.5)
        with self.assertRaises(ValueError):
            lq.Context(threads=-1)
        with self.assertRaises(ValueError):
            lq.Context(simd="mmx")
        with self.assertRaises(TypeError):
            lq.Context(progress=3)
        with self.assertRaises(TypeError):
            lq.quantize(np.ones((8, 8), np.float32), ctx="default")

    def test_progress_callback(self):
        seen = []
        W, _, H = layer()
        with lq.Context(threads=1, progress=lambda f, s: seen.append((f, s))) as ctx:
            quantize(W, H, "int", ctx=ctx)
        self.assertTrue(seen)
        self.assertTrue(all(0.0 <= f <= 1.0 and isinstance(s, str) for f, s in seen))
        self.assertIn("gptq", {s for _, s in seen})

    def test_tensor_keeps_context_alive(self):
        W, X, H = layer()
        q = quantize(W, H, "int", ctx=lq.Context(threads=1))
        import gc
        gc.collect()
        self.assertEqual(q.ctx.threads, 1)
        q.matvec(X[0])


class TestStatus(unittest.TestCase):
    def test_status_values(self):
        self.assertEqual(int(lq.Status.OK), 0)
        self.assertEqual(int(lq.Status.OUT_OF_RANGE), 8)
        self.assertEqual(lq.status_str(lq.Status.OK), "ok")
        self.assertEqual(lq.status_str(99), "unknown status")

    def test_hierarchy(self):
        for cls, base in [(lq.InvalidArgumentError, ValueError), (lq.NotFiniteError, ValueError),
                          (lq.OutOfRangeError, ValueError),
                          (lq.NotPositiveDefiniteError, ValueError),
                          (lq.NoMemoryError, MemoryError), (lq.LibquantIOError, OSError)]:
            self.assertTrue(issubclass(cls, lq.LibquantError))
            self.assertTrue(issubclass(cls, base))
        for cls in (lq.CorruptError, lq.UnsupportedError):
            self.assertTrue(issubclass(cls, lq.LibquantError))
        statuses = {c.status for c in (lq.InvalidArgumentError, lq.NoMemoryError,
                                       lq.NotFiniteError, lq.NotPositiveDefiniteError,
                                       lq.CorruptError, lq.UnsupportedError,
                                       lq.LibquantIOError, lq.OutOfRangeError)}
        self.assertEqual(statuses, set(lq.Status) - {lq.Status.OK})


class TestThreads(unittest.TestCase):
    def test_concurrent_products_on_one_tensor(self):
        W, X, H = layer()
        with lq.Context(threads=2) as ctx:
            q = quantize(W, H, "int", ctx=ctx)
            ref = q.matmul(X[:16])
            out = [None] * 4
            errs = []

            def work(k):
                try:
                    for _ in range(20):
                        out[k] = q.matmul(X[:16])
                except Exception as e:  # pragma: no cover - reported below
                    errs.append(e)

            ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            self.assertFalse(errs)
            for o in out:
                np.testing.assert_array_equal(o, ref)
            q.close()


if __name__ == "__main__":
    unittest.main()
