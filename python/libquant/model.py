"""Whole models: quantize with sequential calibration, evaluate perplexity.

The model runner (loaders, tokenizer, sequential calibration, the Llama
forward pass) is not part of the C library but of the `lq` program
(docs/design.md, "Real models"): the library's contract is one layer's math
and products. So these functions run the `lq` program that belongs to the
loaded library (`lq quantize ... --json`, `lq eval ... --json`) and parse
its JSON; a failure raises the LibquantError subclass of the status the
program reported, with the program's exit code and message attached.

Which `lq` (the first that exists; checked once to report the same version
as the library):
  1. $LIBQUANT_LQ, the path of the program (when set, the only candidate);
  2. `lq` next to the loaded library (a build tree: build/lq beside
     build/libquant.so) or in ../bin from it (an installed prefix);
  3. `lq` on $PATH.
"""
import json
import os
import shutil
import subprocess
import threading

from . import _lib
from ._util import count_arg
from .errors import InvalidArgumentError, LibquantError, Status, error_for, status_str
from .methods import _UNION_MEMBER, MethodKind, build, method_kind

_lock = threading.Lock()
_found = {}


def _candidates():
    env = os.environ.get("LIBQUANT_LQ")
    if env is not None:
        return [env], True
    libdir = os.path.dirname(os.path.realpath(_lib.path)) if _lib.path else None
    out = []
    if libdir:
        out += [os.path.join(libdir, "lq"), os.path.join(libdir, os.pardir, "bin", "lq")]
    which = shutil.which("lq")
    if which:
        out.append(which)
    return out, False


def lq_program():
    """Path of the `lq` program the model functions run (see the module
    doc). FileNotFoundError when there is none; UnsupportedError when it
    belongs to another libquant version; LibquantError when it does not
    run."""
    cands, explicit = _candidates()
    for c in cands:
        if not (os.path.isfile(c) and os.access(c, os.X_OK)):
            continue
        c = os.path.realpath(c)
        with _lock:
            ver = _found.get(c)
        if ver is None:
            r = subprocess.run([c, "--version"], stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, check=False)
            if r.returncode != 0 or not r.stdout.strip():
                raise LibquantError("%s --version failed (exit status %d): %s"
                                    % (c, r.returncode, r.stderr.strip()[:300]),
                                    call="lq --version")
            ver = r.stdout.strip().split()[-1]
            with _lock:
                _found[c] = ver
        lib_ver = _lib.lib.lq_version().decode()
        if ver != lib_ver:
            e = error_for(int(Status.UNSUPPORTED), "lq --version")
            e.args = ("%s is libquant %r, the loaded library %s is %r"
                      % (c, ver, _lib.path, lib_ver),)
            raise e
        return c
    if explicit:
        raise FileNotFoundError("LIBQUANT_LQ=%r is not an executable file" % cands[0])
    raise FileNotFoundError("no lq program next to %s, in ../bin from it or on PATH (set "
                            "LIBQUANT_LQ to its path)" % _lib.path)


# ---- running lq -----------------------------------------------------------------

# Messages of lq that name no status but mean one.
_HINTS = (("NaN or Inf", Status.NOT_FINITE), ("cannot read", Status.IO),
          ("cannot write", Status.IO), ("cannot open", Status.IO), ("No such file", Status.IO))


def _status_of(returncode, stderr):
    """The status an lq failure reports: the library's status text in its
    message (lq prints lq_status_str), a message that means one (a file
    that could not be read or written: IO; a NaN in a checkpoint:
    NOT_FINITE), a usage error (exit code 2: INVALID_ARG), else None."""
    for st in Status:
        if st != Status.OK and status_str(st) in stderr:
            return st
    for hint, st in _HINTS:
        if hint in stderr:
            return st
    if returncode == 2:
        return Status.INVALID_ARG
    return None


def _run(argv, what):
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       check=False)
    if r.returncode != 0:
        err = r.stderr.strip()
        first = next((ln for ln in err.splitlines() if ln.startswith("error:")),
                     err.splitlines()[0] if err else "exit status %d" % r.returncode)
        st = _status_of(r.returncode, err)
        if st is None:
            e = LibquantError("%s: %s" % (what, first), call=what)
        else:
            e = error_for(int(st), what)
            e.args = ("%s: %s" % (what, first),)
        e.returncode, e.stderr, e.argv = r.returncode, r.stderr, list(argv)
        raise e
    try:
        return json.loads(r.stdout)
    except ValueError:
        raise LibquantError("%s: unexpected output %r" % (what, r.stdout[:200]),
                            call=what) from None


def _path(p, name):
    if not isinstance(p, (str, bytes, os.PathLike)):
        raise TypeError("%s must be a path, not %s" % (name, type(p).__name__))
    p = os.fsdecode(p)
    if not p:
        raise InvalidArgumentError("%s is empty" % name)
    return p


# C field -> `lq quantize` option. A flag that turns a default-on field off
# is ("--no-x", False). Fields without an option cannot be set here.
_FLAG, _NEG, _VAL = "flag", "neg", "val"
_CLI = {
    "rtn": (_FLAG, "--rtn"), "act_order": (_FLAG, "--act-order"),
    "static_groups": (_FLAG, "--static-groups"), "percdamp": (_VAL, "--percdamp"),
    "block_size": (_VAL, "--block-size"),
}
_CLI_METHOD = {
    MethodKind.INT: {"bits": (_VAL, "--bits"), "group": (_VAL, "--group"),
                     "symmetric": (_FLAG, "--symmetric"), "mse_clip": (_FLAG, "--mse-clip")},
    MethodKind.NESTQUANT: {"q": (_VAL, "--q"), "n_betas": (_VAL, "--betas"),
                           "group": (_VAL, "--group"), "hadamard": (_NEG, "--no-hadamard"),
                           "select": ("enum", "--select", ("first", "best", "exhaustive")),
                           "codebook": ("enum", "--codebook", ("voronoi", "e8p"))},
    MethodKind.GPTVQ: {"dim": (_VAL, "--dim"), "index_bits": (_VAL, "--index-bits"),
                       "group_cols": (_VAL, "--group-cols"),
                       "group_rows": (_VAL, "--group-rows"), "em_iters": (_VAL, "--em-iters"),
                       "codebook_bits": (_VAL, "--codebook-bits"),
                       "svd_rank": (_VAL, "--svd-rank"),
                       "codebook_update": (_NEG, "--no-codebook-update")},
    MethodKind.GPTQT: {"k": (_VAL, "--k"), "group": (_VAL, "--group"),
                       "iters": (_VAL, "--iters"), "linear_bits": (_VAL, "--linear-bits"),
                       "rescale_steps": (_VAL, "--rescale-steps"),
                       "offset": (_NEG, "--no-offset"), "grid_codes": (_FLAG, "--grid-codes")},
    MethodKind.BCQ: {"k": (_VAL, "--k"), "group": (_VAL, "--group"),
                     "iters": (_VAL, "--iters"), "offset": (_NEG, "--no-offset")},
    MethodKind.AQLM: {"n_codebooks": (_VAL, "--codebooks"), "code_bits": (_VAL, "--code-bits"),
                      "group": (_VAL, "--vec"), "beam": (_VAL, "--beam"),
                      "rounds": (_VAL, "--rounds"), "kmeans_iters": (_VAL, "--kmeans-iters")},
}


def _method_args(method, options):
    """`lq quantize` arguments for method + options (C field names, the
    same as quantize()'s). Names and types are checked like quantize()'s
    (TypeError, InvalidArgumentError); a field lq has no option for is a
    TypeError. gguf_compatible='q4_0'... is lq's --gguf-compatible."""
    kind = method_kind(method)
    opts = dict(options)
    gguf = opts.pop("gguf_compatible", None)
    m = build(kind, opts)  # validates names, types and ranges of the fields
    table = dict(_CLI)
    table.update(_CLI_METHOD[kind])
    args = ["--method", kind.name.lower()]
    for name in opts:
        if name not in table:
            raise TypeError("option %r of method %r cannot be set for a whole model (lq "
                            "quantize has no option for it)" % (name, kind.name.lower()))
        entry = table[name]
        target = m.engine if name in _CLI else getattr(m.u, _UNION_MEMBER[kind])
        v = getattr(target, name)  # the converted value
        if entry[0] == _FLAG:
            if v:
                args.append(entry[1])
        elif entry[0] == _NEG:
            if not v:
                args.append(entry[1])
        elif entry[0] == "enum":
            if v >= len(entry[2]):
                raise InvalidArgumentError("%s=%d: one of 0..%d (%s)" % (
                    name, v, len(entry[2]) - 1, ", ".join(entry[2])))
            args += [entry[1], entry[2][v]]
        else:
            args += [entry[1], repr(float(v)) if isinstance(v, float) else str(v)]
    if gguf is not None:
        if kind != MethodKind.INT or not isinstance(gguf, str):
            raise TypeError("gguf_compatible is a str ('q4_0', 'q4_1', 'q5_0', 'q5_1', 'q8_0') "
                            "of method 'int'")
        args += ["--gguf-compatible", gguf]
    return args


class _Result:
    """Fields of lq's JSON as attributes; `.json` is the whole object."""

    def __init__(self, obj):
        self.json = obj
        for k, v in obj.items():
            setattr(self, k, v)

    def __repr__(self):
        keys = [k for k in self._show if k in self.json]
        return "<libquant.%s %s>" % (type(self).__name__,
                                     " ".join("%s=%r" % (k, self.json[k]) for k in keys))


class ModelReport(_Result):
    """What quantize_model did: `layers` (a list of dicts: name, rows, cols,
    quantized, bits_per_weight, rel_error, proxy_loss or None, seconds),
    `quantized_layers`, `bits_per_weight` (over the linear layers),
    `calibration`, `method`, `input`, `output`, `seconds`, `cpu_seconds`."""
    _show = ("output", "method", "quantized_layers", "bits_per_weight")


class EvalResult(_Result):
    """An evaluation: `ppl`, `nll` (mean nats per scored token), `kl` and
    `top1` (None without a reference), `tokens`, `chunks`, `protocol`,
    `bits_per_weight`, `quantized_layers`, `tokens_per_second`, `seconds`,
    `cpu_seconds`, `mode` ('exact' or 'fast'), `model` (the loader used)."""
    _show = ("ppl", "kl", "top1", "tokens", "bits_per_weight")

    def __init__(self, obj):
        obj = dict(obj)
        obj.setdefault("kl", None)
        obj.setdefault("top1", None)
        super().__init__(obj)


def quantize_model(model, out, method="int", *, calib_text=None, tokenizer=None,
                   calib_chunks=None, exclude=None, fp_inputs=False, threads=0, seed=0,
                   **options):
    """Quantize every linear layer of a Llama model into one complete-model
    .lqt (`lq quantize` model mode): `model` a llama2.c .bin, a Hugging
    Face folder or .safetensors; with `calib_text` (UTF-8 file) and
    `tokenizer` (llama2.c tokenizer.bin) GPTQ-style sequential calibration,
    block by block (`fp_inputs`: Hessians from the float model), over
    `calib_chunks` chunks of seq_len tokens; without them no Hessian.
    `exclude`: names (or a list of name parts) of layers left in float.
    `options`: quantize()'s method options (C field names), plus
    gguf_compatible='q4_0'|... for method 'int'. Returns a ModelReport;
    `out` appears only when the run succeeded."""
    args = [lq_program(), "quantize"] + _method_args(method, options)
    if (calib_text is None) != (tokenizer is None):
        raise InvalidArgumentError("calib_text and tokenizer go together")
    if calib_text is not None:
        args += ["--calib-text", _path(calib_text, "calib_text"),
                 "--tokenizer", _path(tokenizer, "tokenizer")]
    if calib_chunks is not None:
        args += ["--calib-chunks", str(count_arg(calib_chunks, "calib_chunks", 1))]
    if exclude is not None:
        parts = [exclude] if isinstance(exclude, str) else list(exclude)
        if not parts or not all(isinstance(p, str) and p and "," not in p for p in parts):
            raise InvalidArgumentError("exclude: non-empty name parts without commas")
        args += ["--exclude", ",".join(parts)]
    if fp_inputs:
        args.append("--fp-inputs")
    args += ["--threads", str(count_arg(threads, "threads", 0)),
             "--seed", str(count_arg(seed, "seed", 0, 2**64 - 1)), "--quiet", "--json",
             _path(model, "model"), _path(out, "out")]
    return ModelReport(_run(args, "lq quantize"))


def eval_model(model, tokenizer, text, *, ref=None, chunks=0, protocol="stream", fast=False,
               threads=0):
    """Perplexity of `model` (a float model or a .lqt from quantize_model)
    on the UTF-8 file `text` (`lq eval`): the text encoded once and cut into
    chunks of seq_len tokens (`protocol='docs'`: one chunk per story),
    `chunks` of them scored (0: all). With `ref` (the float model) also the
    mean KL(ref || model) per token and the top-1 agreement. `fast`: int8
    activations in the products. Returns an EvalResult."""
    if protocol not in ("stream", "docs"):
        raise InvalidArgumentError("protocol is 'stream' or 'docs', not %r" % (protocol,))
    args = [lq_program(), "eval", _path(model, "model"), "--tokenizer",
            _path(tokenizer, "tokenizer"), "--text", _path(text, "text"),
            "--chunks", str(count_arg(chunks, "chunks", 0)), "--protocol", protocol,
            "--threads", str(count_arg(threads, "threads", 0)), "--json"]
    if ref is not None:
        args += ["--ref", _path(ref, "ref")]
    if fast:
        args.append("--fast")
    return EvalResult(_run(args, "lq eval"))
