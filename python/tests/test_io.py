"""Files: QTensor.save/load, LqtWriter, the .lqt reader, tensor files."""
import json
import os
import struct
import tempfile
import unittest

import numpy as np

import libquant as lq
from _common import COLS, FORMAT_OF, ROWS, layer, quantize


class TempDir(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.dir = self._tmp.name

    def tearDown(self):
        self._tmp.cleanup()

    def path(self, name):
        return os.path.join(self.dir, name)


class TestSaveLoad(TempDir):
    @classmethod
    def setUpClass(cls):
        cls.W, cls.X, cls.H = layer()
        cls.q = {m: quantize(cls.W, cls.H, m) for m in lq.methods()}

    def test_round_trip_every_method(self):
        for m, q in self.q.items():
            for mmap in (False, True):
                for copy in (False, True):
                    with self.subTest(method=m, mmap=mmap, copy=copy):
                        p = self.path("%s.lqt" % m)
                        q.save(p, name="layer." + m)
                        r = lq.load(p, mmap=mmap, copy=copy)  # the only tensor
                        self.assertEqual(r.shape, q.shape)
                        self.assertEqual(r.format, FORMAT_OF[m])
                        self.assertEqual(r.bits_per_weight, q.bits_per_weight)
                        np.testing.assert_array_equal(r.dequantize(), q.dequantize())
                        np.testing.assert_array_equal(r.matvec(self.X[1]), q.matvec(self.X[1]))
                        np.testing.assert_array_equal(r.matvec(self.X[1], "fast"),
                                                      q.matvec(self.X[1], "fast"))
                        r2 = lq.QTensor.load(p, name="layer." + m, verify=False)
                        np.testing.assert_array_equal(r2.dequantize(), q.dequantize())

    def test_default_name_and_pathlike(self):
        import pathlib
        p = pathlib.Path(self.path("t.lqt"))
        self.q["int"].save(p)
        with lq.LqtFile(p) as f:
            self.assertEqual(f.names(), ["tensor"])
        self.assertEqual(lq.load(p, "tensor").shape, (ROWS, COLS))

    def test_loaded_tensor_outlives_file(self):
        p = self.path("a.lqt")
        self.q["bcq"].save(p)
        with lq.LqtFile(p, mmap=True) as f:
            t = f.load()
        self.assertTrue(f.closed)
        np.testing.assert_array_equal(t.dequantize(), self.q["bcq"].dequantize())

    def test_writer_several_tensors(self):
        p = self.path("model.lqt")
        names = ["blk.%d.%s" % (i, m) for i, m in enumerate(lq.methods())]
        with lq.LqtWriter(p) as w:
            for n, m in zip(names, lq.methods()):
                w.add(n, self.q[m])
        self.assertFalse(os.path.exists(p + ".part"))
        with lq.LqtFile(p) as f:
            self.assertEqual(len(f), len(names))
            self.assertEqual(f.names(), names)
            self.assertEqual(f.version, 1)
            self.assertGreaterEqual(f.alignment, 64)
            self.assertEqual(f.file_size, os.path.getsize(p))
            for e, m in zip(f, lq.methods()):
                self.assertEqual(e.format, FORMAT_OF[m])
                self.assertEqual(e.shape, (ROWS, COLS))
                self.assertEqual(e.format_id, int(self.q[m].format_id))
                self.assertEqual(len(e.ip), 16)
                self.assertTrue(e.sections)
                self.assertIn("codes", [s.kind for s in e.sections])
                for s in e.sections:
                    self.assertEqual(s.offset % f.alignment, 0)
                    self.assertLessEqual(s.offset + s.nbytes, f.file_size)
                self.assertIn(e.name, f)
                self.assertEqual(f.info(e.name), e)
                self.assertEqual(f.info(e.index), e)
                t = f[e.name]
                self.assertEqual(t.name, e.name)
                np.testing.assert_array_equal(t.dequantize(), self.q[m].dequantize())
            np.testing.assert_array_equal(f.load(2).dequantize(),
                                          self.q[lq.methods()[2]].dequantize())
            self.assertNotIn("missing", f)
            with self.assertRaises(KeyError):
                f.load("missing")
            with self.assertRaises(IndexError):
                f.load(99)
            with self.assertRaises(ValueError):
                f.load()  # several tensors: name one
        with self.assertRaises(lq.InvalidArgumentError):
            lq.load(p)  # several tensors
        with self.assertRaises(lq.InvalidArgumentError):
            lq.load(p, "missing")
        self.assertEqual(lq.load(p, names[3]).format, FORMAT_OF[lq.methods()[3]])

    def test_save_mapping(self):
        p = self.path("m.lqt")
        lq.save(p, {"a": self.q["int"], "b": self.q["aqlm"]})
        with lq.LqtFile(p) as f:
            self.assertEqual(f.names(), ["a", "b"])

    def test_writer_errors_and_abort(self):
        p = self.path("w.lqt")
        with self.assertRaises(RuntimeError):
            with lq.LqtWriter(p) as w:
                w.add("x", self.q["int"])
                with self.assertRaises(lq.InvalidArgumentError):
                    w.add("x", self.q["int"])  # duplicate name; the writer goes on
                with self.assertRaises(TypeError):
                    w.add("y", self.W)
                raise RuntimeError("stop")
        self.assertFalse(os.path.exists(p))
        self.assertFalse(os.path.exists(p + ".part"))
        w = lq.LqtWriter(p)
        w.add("x", self.q["int"])
        w.abort()
        w.abort()
        self.assertFalse(os.path.exists(p + ".part"))
        with self.assertRaises(ValueError):
            w.add("y", self.q["int"])
        w = lq.LqtWriter(p)
        w.finish()  # an empty file is valid
        with self.assertRaises(ValueError):
            w.finish()
        with lq.LqtFile(p) as f:
            self.assertEqual(len(f), 0)

    def test_io_errors(self):
        missing = self.path("nope/none.lqt")
        with self.assertRaises(lq.LibquantIOError) as cm:
            lq.load(missing)
        self.assertEqual(cm.exception.status, lq.Status.IO)
        self.assertIsInstance(cm.exception, OSError)
        with self.assertRaises(OSError):
            self.q["int"].save(missing)
        with self.assertRaises(OSError):
            lq.LqtFile(missing)
        with self.assertRaises(ValueError):
            lq.load("a\0b")
        with self.assertRaises(TypeError):
            lq.load(42.0)

    def test_corrupt_file(self):
        p = self.path("c.lqt")
        self.q["int"].save(p)
        with open(p, "rb") as fh:
            data = bytearray(fh.read())
        # Flip a byte of the codes section: the data checksum catches it.
        with lq.LqtFile(p) as f:
            codes = [s for s in f.info(0).sections if s.kind == "codes"][0]
        data[codes.offset] ^= 0x5A
        bad = self.path("bad.lqt")
        with open(bad, "wb") as fh:
            fh.write(bytes(data))
        with self.assertRaises(lq.CorruptError) as cm:
            lq.load(bad)
        self.assertEqual(cm.exception.status, lq.Status.CORRUPT)
        # A truncated file or garbage fails at open.
        with open(bad, "wb") as fh:
            fh.write(bytes(data[:100]))
        with self.assertRaises(lq.CorruptError):
            lq.LqtFile(bad)
        with open(bad, "wb") as fh:
            fh.write(b"not a tensor file at all" * 10)
        with self.assertRaises(lq.LibquantError):
            lq.load(bad)


class TestTensorFile(TempDir):
    def test_npy_written_by_numpy(self):
        W, _, _ = layer()
        p = self.path("w.npy")
        np.save(p, W)
        with lq.TensorFile(p) as f:
            self.assertEqual(f.kind, "npy")
            self.assertEqual(len(f), 1)
            self.assertEqual(f.info(0).shape, W.shape)
            self.assertEqual(f.info(0).dtype, "F32")
            np.testing.assert_array_equal(f.read(), W)
        np.save(p, W.astype(np.float16))
        with lq.TensorFile(p) as f:
            np.testing.assert_array_equal(f.read(0), W.astype(np.float16).astype(np.float32))

    def test_safetensors(self):
        W, _, H = layer()
        tensors = {"w": W, "h": H[:4, :4].astype(np.float16)}
        header, blob = {}, b""
        for name, a in tensors.items():
            raw = a.tobytes()
            header[name] = {"dtype": "F32" if a.dtype == np.float32 else "F16",
                            "shape": list(a.shape), "data_offsets": [len(blob),
                                                                     len(blob) + len(raw)]}
            blob += raw
        hj = json.dumps(header).encode()
        p = self.path("m.safetensors")
        with open(p, "wb") as fh:
            fh.write(struct.pack("<Q", len(hj)) + hj + blob)
        with lq.TensorFile(p) as f:
            self.assertEqual(f.kind, "safetensors")
            self.assertEqual(sorted(f.names()), ["h", "w"])
            np.testing.assert_array_equal(f["w"], W)
            np.testing.assert_array_equal(f.read("h"), tensors["h"].astype(np.float32))
            q = lq.quantize(f["w"], None, "int")
            self.assertEqual(q.shape, W.shape)

    def test_errors(self):
        p = self.path("x.npy")
        np.save(p, np.arange(6, dtype=np.int32))
        with lq.TensorFile(p) as f:
            self.assertEqual(f.info(0).dtype, "I32")
            with self.assertRaises(lq.UnsupportedError):
                f.read()
        with open(p, "wb") as fh:
            fh.write(b"\x93NUMPY garbage")
        with self.assertRaises(lq.CorruptError):
            lq.TensorFile(p)
        with self.assertRaises(ValueError):
            lq.TensorFile(p, kind="pickle")


if __name__ == "__main__":
    unittest.main()
