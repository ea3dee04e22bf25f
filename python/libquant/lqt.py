"""The .lqt container: reading (listing and loading tensors) and writing."""
import collections
import ctypes

from . import _lib
from ._util import Handle, count_arg, fspath_bytes, name_bytes, name_str, use_ctx
from .errors import InvalidArgumentError, check
from .qtensor import QTensor, format_name

_L = _lib.lib

# Section tags (docs/formats.md, section 1.5).
SECTION_TAGS = {1: "codes", 2: "scales", 3: "zeros", 4: "codebooks", 5: "betas",
                6: "alphas", 7: "offsets", 8: "aux", 9: "perm"}

Section = collections.namedtuple("Section", "tag kind elem_size offset nbytes crc")
Section.__doc__ = "One stored section of a tensor (lq_lqt_section_info); kind names the tag."

TensorEntry = collections.namedtuple(
    "TensorEntry", "index name format format_id shape ip fp sections offset size")
TensorEntry.__doc__ = """One tensor record of a .lqt file (lq_lqt_info): its
index, name, format name and id (as stored), shape (rows, cols), integer and
float parameters, sections, and the record's byte range in the file."""


class LqtFile(Handle):
    """An opened .lqt file (lq_lqt): lists its tensors and loads them.

        with LqtFile("model.lqt") as f:
            for e in f:                  # TensorEntry records
                print(e.name, e.format, e.shape)
            q = f.load("layers.0.wq")    # a QTensor

    Opening checks the header, directory and every record; loading a tensor
    checks its section checksums (unless verify=False) and validates it.
    Loaded tensors stay valid after the file is closed.
    """

    _kind = "LqtFile"

    def __init__(self, path, mmap=False, ctx=None):
        out = ctypes.c_void_p()
        with use_ctx(ctx) as c:
            check(_L.lq_lqt_open(c, fspath_bytes(path), _lib.LQT_MMAP if mmap else 0,
                                 ctypes.byref(out)), "lq_lqt_open")
        self._own(out.value, _L.lq_lqt_close)
        self._ctx = ctx
        self.path = path
        ver, align, size = ctypes.c_uint32(), ctypes.c_uint32(), ctypes.c_uint64()
        with self._use() as p:
            check(_L.lq_lqt_file_info(p, ctypes.byref(ver), ctypes.byref(align),
                                      ctypes.byref(size)), "lq_lqt_file_info")
            self.version, self.alignment, self.file_size = ver.value, align.value, size.value
            self._entries = [self._entry(p, i) for i in range(_L.lq_lqt_count(p))]
        self._by_name = {e.name: e.index for e in self._entries}

    @staticmethod
    def _entry(p, i):
        info = _lib.LqtInfo()
        check(_L.lq_lqt_info_get(p, i, ctypes.byref(info)), "lq_lqt_info_get")
        secs = tuple(Section(s.tag, SECTION_TAGS.get(s.tag, "unknown"), s.elem_size, s.offset,
                             s.nbytes, s.crc) for s in info.sec[:info.nsec])
        return TensorEntry(i, name_str(info.name), format_name(info.format), info.format,
                           (info.rows, info.cols), tuple(info.ip), tuple(info.fp), secs,
                           info.offset, info.size)

    def __len__(self):
        return len(self._entries)

    def __iter__(self):
        return iter(self._entries)

    def __contains__(self, name):
        return isinstance(name, (str, bytes)) and self._index(name, missing=None) is not None

    def names(self):
        """Tensor names in file order."""
        return [e.name for e in self._entries]

    def entries(self):
        """TensorEntry of every tensor, in file order."""
        return list(self._entries)

    def _index(self, key, missing=KeyError):
        if isinstance(key, (bytes, bytearray)):
            key = name_str(bytes(key))
        if isinstance(key, str):
            if key in self._by_name:
                return self._by_name[key]
            if missing is None:
                return None
            raise KeyError(key)
        i = count_arg(key, "index")
        if i >= len(self._entries):
            raise IndexError("tensor index %d out of range (%d tensors)" % (i, len(self)))
        return i

    def info(self, key):
        """TensorEntry of the tensor named `key` (or at index `key`)."""
        return self._entries[self._index(key)]

    def __getitem__(self, key):
        return self.load(key)

    def load(self, key=None, copy=False, verify=True, ctx=None):
        """Load a tensor by name or index (None: the file must hold exactly
        one). copy: the tensor owns copies of its sections (otherwise it
        shares the file's memory, zero copy when mapped); verify=False skips
        the section checksums. KeyError/IndexError for a missing tensor."""
        if key is None:
            if len(self._entries) != 1:
                raise InvalidArgumentError("the file holds %d tensors: name one"
                                           % len(self._entries))
            key = 0
        i = self._index(key)
        flags = (_lib.LQT_COPY if copy else 0) | (0 if verify else _lib.LQT_SKIP_DATA_CRC)
        ctx = self._ctx if ctx is None else ctx
        out = ctypes.c_void_p()
        with self._use() as p, use_ctx(ctx) as c:
            check(_L.lq_lqt_load(c, p, i, flags, ctypes.byref(out)), "lq_lqt_load")
        return QTensor._wrap(out.value, ctx, name=self._entries[i].name)

    def __repr__(self):
        return "<libquant.LqtFile %r: %d tensors%s>" % (self.path, len(self._entries),
                                                       ", closed" if self.closed else "")


def _writer_free(p):
    _L.lq_lqt_writer_abort(p)


class LqtWriter(Handle):
    """Writes a .lqt file of several tensors. Data goes to "<path>.part",
    renamed to `path` by finish(); abort() (or an exception leaving a
    with-block) removes it, so a reader never sees a partial file.

        with LqtWriter("model.lqt") as w:
            w.add("layers.0.wq", q0)
            w.add("layers.0.wk", q1)
    """

    _kind = "LqtWriter"

    def __init__(self, path, ctx=None):
        out = ctypes.c_void_p()
        with use_ctx(ctx) as c:
            check(_L.lq_lqt_writer_open(c, fspath_bytes(path), ctypes.byref(out)),
                  "lq_lqt_writer_open")
        self._own(out.value, _writer_free)
        self.path = path

    def add(self, name, tensor):
        """Append `tensor` (a QTensor) under `name` (unique in the file)."""
        if not isinstance(tensor, QTensor):
            raise TypeError("tensor must be a QTensor, not %s" % type(tensor).__name__)
        nb = name_bytes(name)
        with self._use() as w, tensor._use() as t:
            check(_L.lq_lqt_writer_add(w, nb, t), "lq_lqt_writer_add")

    def _detach(self):
        """Take the writer pointer out of the handle (the C call frees it)."""
        with self._cond:
            if self._closing or not self._ptr:
                raise ValueError("LqtWriter is closed")
            self._closing = True
            while self._users:
                self._cond.wait()
            p, self._ptr = self._ptr, None
        self._finalizer.detach()
        return p

    def finish(self):
        """Write the directory, close and rename the file into place."""
        check(_L.lq_lqt_writer_finish(self._detach()), "lq_lqt_writer_finish")

    def abort(self):
        """Discard the partial file (idempotent)."""
        self.close()

    def __exit__(self, exc_type, *exc):
        if exc_type is None and not self.closed:
            self.finish()
        else:
            self.abort()


def save(path, tensors, ctx=None):
    """Write several QTensors to one .lqt file: `tensors` is a mapping or
    an iterable of (name, QTensor) pairs, written in that order."""
    items = tensors.items() if hasattr(tensors, "items") else tensors
    with LqtWriter(path, ctx) as w:
        for name, t in items:
            w.add(name, t)
