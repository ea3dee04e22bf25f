"""quantize() for every method: round trip, products on the codes against
dequantize @ x, options, determinism."""
import unittest

import numpy as np

import libquant as lq
from _common import COLS, FAST_OPTIONS, FORMAT_OF, ROWS, layer, product_bound, quantize


class TestEveryMethod(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.W, cls.X, cls.H = layer()
        cls.ctx = lq.Context(threads=2, seed=3)
        cls.q = {m: quantize(cls.W, cls.H, m, ctx=cls.ctx) for m in lq.methods()}

    @classmethod
    def tearDownClass(cls):
        for q in cls.q.values():
            q.close()
        cls.ctx.close()

    def test_all_methods_listed(self):
        self.assertEqual(sorted(lq.methods()), sorted(FAST_OPTIONS))

    def test_round_trip(self):
        for m, q in self.q.items():
            with self.subTest(method=m):
                self.assertEqual(q.shape, (ROWS, COLS))
                self.assertEqual((q.rows, q.cols), (ROWS, COLS))
                self.assertEqual(q.format, FORMAT_OF[m])
                self.assertEqual(lq.format_name(q.format_id), q.format)
                self.assertEqual(q.method, m)
                self.assertTrue(0.5 < q.bits_per_weight < 16, q.bits_per_weight)
                Wh = q.dequantize()
                self.assertEqual(Wh.shape, (ROWS, COLS))
                self.assertEqual(Wh.dtype, np.float32)
                self.assertTrue(np.isfinite(Wh).all())
                # A real approximation: well below the weights' own energy.
                rel = np.linalg.norm(Wh - self.W) / np.linalg.norm(self.W)
                self.assertLess(rel, 0.6, m)
                # Dequantizing is deterministic and the report's loss is the
                # library's proxy loss of that W_hat.
                np.testing.assert_array_equal(Wh, q.dequantize())
                loss = lq.proxy_loss(self.W, Wh, self.H)
                self.assertAlmostEqual(q.report.proxy_loss, loss, delta=1e-4 * loss)
                self.assertAlmostEqual(lq.proxy_loss(self.W, q, self.H), loss)
                self.assertGreater(q.report.damping, 0.0)

    def test_matvec_matches_dequantize(self):
        for m, q in self.q.items():
            Wh = q.dequantize().astype(np.float64)
            for i in range(3):
                x = self.X[i]
                ref = Wh @ x.astype(np.float64)
                with self.subTest(method=m, mode="exact", i=i):
                    y = q.matvec(x)
                    self.assertEqual(y.shape, (ROWS,))
                    self.assertEqual(y.dtype, np.float32)
                    self.assertTrue((np.abs(y - ref) <= product_bound(Wh, x, 1e-5)).all())
                with self.subTest(method=m, mode="fast", i=i):
                    y = q.matvec(x, mode="fast")
                    self.assertTrue((np.abs(y - ref) <= product_bound(Wh, x, 3e-2)).all())

    def test_matmul_matches_dequantize(self):
        Xb = self.X[:9]
        for m, q in self.q.items():
            Wh = q.dequantize().astype(np.float64)
            ref = Xb.astype(np.float64) @ Wh.T
            bound = (np.abs(Xb.astype(np.float64)) @ np.abs(Wh).T)
            for mode, rel in (("exact", 1e-5), (lq.Mode.FAST, 3e-2)):
                with self.subTest(method=m, mode=mode):
                    Y = q.matmul(Xb, mode=mode)
                    self.assertEqual(Y.shape, (9, ROWS))
                    self.assertTrue((np.abs(Y - ref) <= rel * bound + 1e-30).all())
            with self.subTest(method=m, what="rows of matmul are matvecs"):
                Y = q.matmul(Xb)
                for i in range(3):
                    np.testing.assert_allclose(Y[i], q.matvec(Xb[i]), rtol=1e-5, atol=1e-6)
            with self.subTest(method=m, what="operator @"):
                np.testing.assert_array_equal(q @ Xb[0], q.matvec(Xb[0]))
                np.testing.assert_array_equal(q @ Xb.T, q.matmul(Xb).T)

    def test_prepare_keeps_products(self):
        for m, q in self.q.items():
            with self.subTest(method=m):
                before = q.matvec(self.X[5], mode="fast")
                q.prepare()
                np.testing.assert_array_equal(q.matvec(self.X[5], mode="fast"), before)

    def test_inputs_converted(self):
        # float64, Fortran order, a strided view: same result as float32 C.
        q = self.q["int"]
        x = self.X[7]
        y = q.matvec(x)
        np.testing.assert_array_equal(q.matvec(x.astype(np.float64)), y)
        wide = np.zeros((COLS, 2), np.float32)
        wide[:, 0] = x
        np.testing.assert_array_equal(q.matvec(wide[:, 0]), y)
        np.testing.assert_array_equal(q.matvec(list(map(float, x))), y)
        Xb = np.asfortranarray(self.X[:4])
        np.testing.assert_array_equal(q.matmul(Xb), q.matmul(np.ascontiguousarray(Xb)))

    def test_repr(self):
        self.assertIn("int", repr(self.q["int"]))


class TestOptions(unittest.TestCase):
    def setUp(self):
        self.W, self.X, self.H = layer(seed=1)

    def test_options_reach_the_library(self):
        q2 = lq.quantize(self.W, self.H, "int", bits=2, group=64)
        q4 = lq.quantize(self.W, self.H, "int", bits=4, group=64)
        self.assertLess(q2.bits_per_weight, q4.bits_per_weight)
        self.assertEqual(q2.options["bits"], 2)
        self.assertEqual(q2.options["group"], 64)
        self.assertGreater(q2.report.proxy_loss, q4.report.proxy_loss)
        k2 = lq.quantize(self.W, None, "bcq", k=2, group=64, iters=2)
        k4 = lq.quantize(self.W, None, "bcq", k=4, group=64, iters=2)
        self.assertLess(k2.bits_per_weight, k4.bits_per_weight)

    def test_engine_options(self):
        rtn = lq.quantize(self.W, self.H, "int", rtn=True)
        self.assertEqual(rtn.options["rtn"], 1)
        gptq = lq.quantize(self.W, self.H, "int", percdamp=0.1, act_order=1,
                           static_groups=True, block_size=32)
        self.assertEqual(gptq.options["block_size"], 32)
        self.assertAlmostEqual(gptq.options["percdamp"], 0.1)
        # GPTQ beats round to nearest on the proxy loss.
        self.assertLess(gptq.report.proxy_loss, rtn.report.proxy_loss)

    def test_every_option_accepted(self):
        for m in lq.methods():
            d = lq.defaults(m)
            self.assertEqual(list(d), lq.options(m))
            self.assertEqual(list(d)[:5], ["rtn", "percdamp", "act_order", "static_groups",
                                           "block_size"])
        self.assertNotIn("linear_bits", lq.options("bcq"))
        self.assertIn("linear_bits", lq.options("gptqt"))
        self.assertEqual(lq.defaults("int")["bits"], 4)
        self.assertEqual(lq.defaults("aqlm")["n_codebooks"], 2)

    def test_method_names(self):
        a = lq.quantize(self.W, None, "INT")
        b = lq.quantize(self.W, None, lq.MethodKind.INT)
        np.testing.assert_array_equal(a.dequantize(), b.dequantize())

    def test_plain_mse_without_h(self):
        for m in lq.methods():
            with self.subTest(method=m):
                q = quantize(self.W, None, m)
                Wh = q.dequantize()
                self.assertAlmostEqual(q.report.proxy_loss, float(((Wh.astype(np.float64) -
                                                                    self.W) ** 2).sum()),
                                       delta=1e-6 * q.report.proxy_loss + 1e-12)

    def test_nestquant_and_gptvq_options(self):
        a = lq.quantize(self.W, self.H, "nestquant", q=8, n_betas=2, hadamard=False)
        self.assertEqual(a.options["hadamard"], 0)
        b = lq.quantize(self.W, self.H, "gptvq", dim=4, index_bits=6, group_cols=64,
                        codebook_bits=8, codebook_update=0, em_iters=3)
        self.assertEqual(b.format, "vq")
        c = lq.quantize(self.W, self.H, "gptqt", k=2, linear_bits=4, rescale_steps=3,
                        grid_codes=1, group=64)
        self.assertEqual(c.format, "bcq")


class TestDeterminism(unittest.TestCase):
    def test_same_seed_same_codes_whatever_the_threads(self):
        W, X, H = layer(seed=2)
        for m in lq.methods():
            with self.subTest(method=m):
                outs = []
                for threads, simd in ((1, "auto"), (2, "auto"), (2, "auto")):
                    with lq.Context(threads=threads, simd=simd, seed=11) as ctx:
                        q = quantize(W, H, m, ctx=ctx)
                        outs.append((q.dequantize(), q.matvec(X[0]), q.report,
                                     q.bits_per_weight))
                        q.close()
                for o in outs[1:]:
                    np.testing.assert_array_equal(o[0], outs[0][0])
                    np.testing.assert_array_equal(o[1], outs[0][1])
                    self.assertEqual(o[2], outs[0][2])
                    self.assertEqual(o[3], outs[0][3])

    def test_simd_cap_changes_no_code(self):
        # Codes are identical at every SIMD level (the library's contract).
        W, X, H = layer(seed=4)
        for m in ("int", "nestquant", "bcq"):
            with self.subTest(method=m):
                with lq.Context(threads=1, simd="scalar") as a, lq.Context(threads=1) as b:
                    qa, qb = quantize(W, H, m, ctx=a), quantize(W, H, m, ctx=b)
                    np.testing.assert_array_equal(qa.dequantize(), qb.dequantize())


class TestHessian(unittest.TestCase):
    def test_matches_numpy(self):
        _, X, _ = layer()
        h = lq.Hessian(COLS)
        self.assertEqual(h.count, 0)
        h.add(X[:100]).add(X[100:])
        h.add(X[0])  # one sample, 1-D
        self.assertEqual(len(h), X.shape[0] + 1)
        Xa = np.vstack([X, X[:1]]).astype(np.float64)
        ref = 2.0 / Xa.shape[0] * Xa.T @ Xa
        H = h.matrix()
        self.assertEqual(H.shape, (COLS, COLS))
        np.testing.assert_allclose(H, ref, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(H, H.T)

    def test_strided_rows_without_copy(self):
        _, X, _ = layer()
        wide = np.zeros((X.shape[0], COLS + 5), np.float32)
        wide[:, 2:2 + COLS] = X
        a, b = lq.Hessian(COLS), lq.Hessian(COLS)
        a.add(X)
        b.add(wide[:, 2:2 + COLS])
        np.testing.assert_array_equal(a.matrix(), b.matrix())
        c = lq.Hessian(COLS)
        c.add(X[::-1].astype(np.float64))  # converted
        np.testing.assert_allclose(c.matrix(), a.matrix(), rtol=1e-5, atol=1e-6)

    def test_feeds_quantize(self):
        W, X, H = layer()
        h = lq.Hessian(COLS, ctx=lq.Context(threads=1))
        h.add(X)
        q = lq.quantize(W, h.matrix(), "int")
        self.assertGreater(q.report.proxy_loss, 0)

    def test_errors(self):
        h = lq.Hessian(8)
        with self.assertRaises(lq.InvalidArgumentError):
            h.matrix()  # no sample yet
        with self.assertRaises(ValueError):
            h.add(np.ones((3, 9), np.float32))
        with self.assertRaises(ValueError):
            h.add(np.ones((2, 2, 8), np.float32))
        bad = np.ones((4, 8), np.float32)
        bad[2, 3] = np.nan
        with self.assertRaises(lq.NotFiniteError):
            h.add(bad)
        self.assertEqual(h.count, 0)  # unchanged
        with self.assertRaises(ValueError):
            lq.Hessian(0)


if __name__ == "__main__":
    unittest.main()
