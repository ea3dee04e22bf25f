"""Errors become exceptions: the library's statuses, and the shape, dtype and
option checks made in Python before any C call."""
import unittest

import numpy as np

import libquant as lq
from _common import COLS, ROWS, layer, quantize


class TestLibraryStatuses(unittest.TestCase):
    def setUp(self):
        self.W, self.X, self.H = layer()

    def assert_status(self, cm, cls, status, call):
        e = cm.exception
        self.assertIsInstance(e, cls)
        self.assertIsInstance(e, lq.LibquantError)
        self.assertEqual(e.status, status)
        self.assertEqual(e.message, lq.status_str(status))
        self.assertEqual(e.call, call)
        self.assertIn(lq.status_str(status), str(e))

    def test_nan_in_w(self):
        for m in lq.methods():
            with self.subTest(method=m):
                W = self.W.copy()
                W[3, 5] = np.nan
                with self.assertRaises(lq.NotFiniteError) as cm:
                    quantize(W, self.H, m)
                self.assert_status(cm, lq.NotFiniteError, lq.Status.NOT_FINITE, "lq_quantize")
                with self.assertRaises(ValueError):
                    quantize(W, self.H, m)

    def test_inf_in_h(self):
        H = self.H.copy()
        H[0, 0] = np.inf
        with self.assertRaises(lq.NotFiniteError):
            lq.quantize(self.W, H)

    def test_float64_overflow_is_not_finite(self):
        W = self.W.astype(np.float64)
        W[0, 0] = 1e300  # becomes inf in float32
        with self.assertRaises(lq.NotFiniteError), np.errstate(over="ignore"):
            lq.quantize(W)

    def test_out_of_range(self):
        W = self.W.copy()
        W[1, 1] = 2.0 * lq.MAX_ABS_WEIGHT
        with self.assertRaises(lq.OutOfRangeError) as cm:
            lq.quantize(W)
        self.assert_status(cm, lq.OutOfRangeError, lq.Status.OUT_OF_RANGE, "lq_quantize")
        q = lq.quantize(self.W)
        x = np.ones(COLS, np.float32)
        x[0] = 2.0 * lq.MAX_ABS_ACTIVATION
        with self.assertRaises(lq.OutOfRangeError):
            q.matvec(x)

    def test_not_positive_definite(self):
        with self.assertRaises(lq.NotPositiveDefiniteError) as cm:
            lq.quantize(self.W, -np.eye(COLS, dtype=np.float32))
        self.assert_status(cm, lq.NotPositiveDefiniteError, lq.Status.NOT_POSITIVE_DEFINITE,
                           "lq_quantize")

    def test_bad_option_values_from_library(self):
        with self.assertRaises(lq.InvalidArgumentError) as cm:
            lq.quantize(self.W, None, "int", bits=1)
        self.assert_status(cm, lq.InvalidArgumentError, lq.Status.INVALID_ARG, "lq_quantize")
        with self.assertRaises(lq.InvalidArgumentError):
            lq.quantize(self.W, None, "bcq", k=9)
        with self.assertRaises(ValueError):
            lq.quantize(self.W, None, "aqlm", group=7)  # does not divide cols

    def test_nan_in_products(self):
        q = lq.quantize(self.W)
        x = self.X[0].copy()
        x[4] = np.nan
        for mode in ("exact", "fast"):
            with self.subTest(mode=mode):
                with self.assertRaises(lq.NotFiniteError) as cm:
                    q.matvec(x, mode=mode)
                self.assert_status(cm, lq.NotFiniteError, lq.Status.NOT_FINITE, "lq_matmul_ex")
        Xb = self.X[:3].copy()
        Xb[2, 0] = -np.inf
        with self.assertRaises(lq.NotFiniteError):
            q.matmul(Xb)

    def test_proxy_loss_errors(self):
        Wh = self.W.copy()
        Wh[0, 0] = np.nan
        with self.assertRaises(lq.NotFiniteError):
            lq.proxy_loss(self.W, Wh)
        with self.assertRaises(ValueError):
            lq.proxy_loss(self.W, self.W[:, :8])


class TestPythonChecks(unittest.TestCase):
    def setUp(self):
        self.W, self.X, self.H = layer()
        self.q = lq.quantize(self.W)

    def test_wrong_shapes(self):
        for bad in (self.W[0], self.W[None], np.zeros((0, 8), np.float32),
                    np.zeros((4, 0), np.float32), 3.0):
            with self.subTest(shape=np.shape(bad)):
                with self.assertRaises(lq.InvalidArgumentError):
                    lq.quantize(bad)
        with self.assertRaises(ValueError):
            lq.quantize(self.W, self.H[:8, :8])
        with self.assertRaises(ValueError):
            lq.quantize(self.W, self.H[0])
        with self.assertRaises(ValueError):
            self.q.matvec(np.ones(COLS + 1, np.float32))
        with self.assertRaises(ValueError):
            self.q.matvec(np.ones((1, COLS), np.float32))
        with self.assertRaises(ValueError):
            self.q.matmul(np.ones(COLS, np.float32))
        with self.assertRaises(ValueError):
            self.q.matmul(np.ones((2, COLS - 1), np.float32))
        with self.assertRaises(ValueError):
            self.q.matmul(np.ones((0, COLS), np.float32))
        with self.assertRaises(ValueError):
            self.q.matvec(self.X[0], mode="approximate")

    def test_wrong_dtypes(self):
        for bad in (self.W.astype(np.complex64), self.W > 0, np.array([["a"]]),
                    np.array([[object()]])):
            with self.subTest(dtype=bad.dtype):
                with self.assertRaises(TypeError):
                    lq.quantize(bad)
        with self.assertRaises(TypeError):
            self.q.matvec(np.ones(COLS, np.complex128))

    def test_integer_input_is_converted(self):
        Wi = np.round(self.W * 100).astype(np.int32)
        a = lq.quantize(Wi)
        b = lq.quantize(Wi.astype(np.float32))
        np.testing.assert_array_equal(a.dequantize(), b.dequantize())

    def test_unknown_option(self):
        with self.assertRaises(TypeError) as cm:
            lq.quantize(self.W, None, "int", bitz=3)
        self.assertIn("bitz", str(cm.exception))
        with self.assertRaises(TypeError):
            lq.quantize(self.W, None, "int", k=3)  # a BCQ option
        with self.assertRaises(TypeError) as cm:
            lq.quantize(self.W, None, "bcq", linear_bits=6)  # GPTQT only
        self.assertIn("gptqt", str(cm.exception))

    def test_bad_option_types_and_ranges(self):
        with self.assertRaises(TypeError):
            lq.quantize(self.W, None, "int", bits="4")
        with self.assertRaises(TypeError):
            lq.quantize(self.W, None, "int", bits=4.0)
        with self.assertRaises(TypeError):
            lq.quantize(self.W, None, "int", bits=True)
        with self.assertRaises(TypeError):
            lq.quantize(self.W, None, "int", percdamp="0.1")
        with self.assertRaises(ValueError):
            lq.quantize(self.W, None, "int", bits=-1)
        with self.assertRaises(ValueError):
            lq.quantize(self.W, None, "int", group=2**64)
        with self.assertRaises(ValueError):
            lq.quantize(self.W, None, "int", bits=2**32)
        # numpy integers and floats are fine
        q = lq.quantize(self.W, None, "int", bits=np.int64(3), percdamp=np.float32(0.02))
        self.assertEqual(q.options["bits"], 3)

    def test_unknown_method(self):
        with self.assertRaises(ValueError):
            lq.quantize(self.W, None, "gptq2")
        with self.assertRaises(TypeError):
            lq.quantize(self.W, None, 3)

    def test_closed_tensor(self):
        q = lq.quantize(self.W)
        q.close()
        self.assertTrue(q.closed)
        self.assertIn("closed", repr(q))
        for call in (q.dequantize, lambda: q.matvec(self.X[0]), q.prepare,
                     lambda: q.save("/nonexistent/x.lqt")):
            with self.assertRaises(ValueError):
                call()
        self.assertEqual(q.shape, (ROWS, COLS))  # facts stay readable
        q.close()

    def test_no_direct_construction(self):
        with self.assertRaises(TypeError):
            lq.QTensor()


if __name__ == "__main__":
    unittest.main()
