"""No leak over many calls: the resident set stays flat over thousands of
create/use/free cycles of every handle type, on success and error paths, and
every QTensor is freed once unreferenced."""
import gc
import os
import tempfile
import unittest
import weakref

import numpy as np

import libquant as lq
from _common import layer, quantize

CYCLES = 2000


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# Under AddressSanitizer (LIBQUANT_ASAN=1, set by the ctest wiring) freed
# memory sits in ASan's quarantine, so the resident set grows by design.
RSS_OK = os.path.exists("/proc/self/statm") and not os.environ.get("LIBQUANT_ASAN")


class TestNoLeak(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.W, cls.X, cls.H = layer(rows=16, cols=64)
        cls.tmp = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def assert_flat(self, cycle, n=CYCLES, warmup=200, limit=4 << 20):
        """Run cycle() `warmup` times, then n times; RSS may grow by at most
        `limit` bytes over the n. Measured on x86-64: flat cycles grow by
        0-40 KiB; with lq_qtensor_free (or lq_lqt_close) replaced by a no-op
        the same cycles grow by about 10 MiB, so the bound separates them."""
        if not RSS_OK:
            # Still run the cycles (ASan checks each one), without the RSS bound.
            for _ in range(100):
                cycle()
            return
        for _ in range(warmup):
            cycle()
        gc.collect()
        before = rss_bytes()
        for _ in range(n):
            cycle()
        gc.collect()
        grown = rss_bytes() - before
        self.assertLess(grown, limit, "RSS grew by %d bytes over %d cycles" % (grown, n))

    def test_quantize_free_cycles(self):
        methods = lq.methods()
        state = {"i": 0}

        def cycle():
            m = methods[state["i"] % len(methods)]
            state["i"] += 1
            q = quantize(self.W, self.H if state["i"] % 2 else None, m)
            q.matvec(self.X[0])
            q.matmul(self.X[:4], mode="fast")
            q.dequantize()
            if state["i"] % 3:
                q.close()  # the rest are freed by garbage collection
        self.assert_flat(cycle)

    def test_error_paths(self):
        W = self.W.copy()
        W[0, 0] = np.nan
        q = lq.quantize(self.W)
        x = self.X[0].copy()
        x[0] = np.inf

        def cycle():
            for call in (lambda: lq.quantize(W, self.H), lambda: q.matvec(x),
                         lambda: lq.quantize(self.W, None, "int", bits=1),
                         lambda: lq.load(os.path.join(self.tmp.name, "none.lqt"))):
                try:
                    call()
                except lq.LibquantError:
                    pass
        self.assert_flat(cycle)

    def test_files_hessian_context_cycles(self):
        p = os.path.join(self.tmp.name, "t.lqt")
        lq.quantize(self.W, self.H, "bcq").save(p)

        def cycle():
            with lq.LqtFile(p) as f:
                f.load(0).dequantize()
            lq.load(p, mmap=True).matvec(self.X[0])
            h = lq.Hessian(self.W.shape[1])
            h.add(self.X[:8])
            h.matrix()
            with lq.Context(threads=1) as ctx:
                ctx.threads
        self.assert_flat(cycle, n=CYCLES // 2)

    def test_tensors_freed_when_unreferenced(self):
        refs = weakref.WeakSet()
        for i in range(200):
            refs.add(lq.quantize(self.W, None, "int"))
        gc.collect()
        self.assertEqual(len(refs), 0)
        q = lq.quantize(self.W)
        fin = q._finalizer
        self.assertTrue(fin.alive)
        del q
        gc.collect()
        self.assertFalse(fin.alive)  # lq_qtensor_free ran


if __name__ == "__main__":
    unittest.main()
