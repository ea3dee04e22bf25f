#!/usr/bin/env python3
"""Regenerate docs/api.md from the public headers in include/quant/.

Every LQ_API declaration is listed under its header with the comment written
above it (the contract: parameters, ownership, errors, threading). A comment
followed by several declarations documents all of them. The introduction
(conventions that hold for every function) is kept in this script.
Usage: scripts/gen-api-doc.py [--check]   (--check: fail if docs/api.md is stale)
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORDER = ["core", "qtensor", "hessian", "kernels", "lattice", "vq", "bcq", "mcq", "io", "finetune"]

INTRO = """# libquant API reference

Generated from the headers in `include/quant/` by `scripts/gen-api-doc.py`
(do not edit by hand: edit the header comment, then rerun the script). Each
entry quotes the declaration and the contract written above it. `#include
<quant.h>` includes every module header.

## Conventions that hold for every function

- **Status.** Every function that can fail returns `lq_status` (`LQ_OK` is
  0); results go through pointer arguments. `lq_status_str` names a status.
  NULL pointers, zero or inconsistent sizes and bad options give
  `LQ_ERR_INVALID_ARG`; NaN/Inf in an input `LQ_ERR_NOT_FINITE`; corrupt
  packed data or files `LQ_ERR_CORRUPT`; a valid request this build or
  format cannot serve `LQ_ERR_UNSUPPORTED`; failed reads, writes or mappings
  `LQ_ERR_IO`; a Hessian that stays indefinite after damping
  `LQ_ERR_NOT_POSITIVE_DEFINITE`.
- **Outputs on error.** On any error, caller-owned outputs are left
  untouched (`*out` pointers are not written) and everything the call
  allocated is freed; in particular `LQ_ERR_NO_MEMORY` leaves no trace.
- **Contexts.** Heavy functions take `lq_ctx *` first; `NULL` means the
  default context (malloc, all physical cores, seed 0), created once on
  first use. All allocation goes through the context's allocator; objects
  that outlive their context (qtensors, opened files) keep a copy of the
  allocator, so they may be freed after the context is destroyed, but the
  allocator itself must stay usable.
- **Ownership.** A function that returns an object through `T **out` gives
  the caller ownership: free it with the matching function
  (`lq_ctx_destroy`, `lq_qtensor_free`, `lq_hessian_free`, `lq_lqt_close`,
  `lq_tfile_close`, `lq_lqt_writer_finish`/`_abort`). The free functions
  accept NULL. Strings returned by `*_name`/`*_str` functions are static;
  strings inside info structs belong to the object they describe.
- **Threading.** Functions are reentrant and keep no global mutable state
  (besides once-initialised tables). Read-only objects (a qtensor, an opened
  file) may be used from several threads at once; an object being modified
  (a Hessian accumulator, a writer) by one thread at a time. Results are
  identical for a given seed whatever the thread count or the host's
  parallel-for.
- **Pure functions.** Per-vector math (nearest points, encode/decode of one
  vector) takes no context, allocates nothing and may be called from any
  thread.

"""


def clean_comment(text):
    text = text.strip()
    text = re.sub(r"^/\*+ ?", "", text)
    text = re.sub(r"\*+/$", "", text)
    lines = []
    for line in text.split("\n"):
        line = re.sub(r"^\s*\* ?", "", line.rstrip())
        lines.append(line)
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines)


def parse_header(path):
    src = open(path, encoding="utf-8").read()
    # file comment: the first comment block
    m = re.match(r"\s*(/\*.*?\*/)", src, re.S)
    file_doc = clean_comment(m.group(1)) if m else ""
    entries = []  # (comment, [decls])
    pending = None  # last comment block
    pending_used = False
    i = 0
    n = len(src)
    last_kind = None
    while i < n:
        if src.startswith("/*", i):
            j = src.find("*/", i) + 2
            pending = src[i:j]
            pending_used = False
            last_kind = "comment"
            i = j
            continue
        if src.startswith("//", i):
            i = src.find("\n", i) + 1 or n
            continue
        if src.startswith("LQ_API", i) and (i == 0 or src[i - 1] == "\n"):
            j = src.find(";", i) + 1
            decl = re.sub(r"\s+", " ", src[i + len("LQ_API"):j]).strip()
            if pending is not None and (not pending_used or last_kind == "decl"):
                if pending_used and entries and entries[-1][0] == clean_comment(pending):
                    entries[-1][1].append(decl)
                else:
                    entries.append((clean_comment(pending), [decl]))
                pending_used = True
            else:
                entries.append(("", [decl]))
            last_kind = "decl"
            i = j
            continue
        c = src[i]
        if not c.isspace():
            # any other code between a comment and a declaration detaches it
            k = src.find("\n", i)
            k = n if k < 0 else k + 1
            chunk = src[i:k]
            if "LQ_API" not in chunk and "/*" not in chunk:
                if last_kind == "decl" or last_kind == "comment":
                    pending = None
                last_kind = "code"
                i = k
                continue
        i += 1
    return file_doc, entries


def fname(decl):
    m = re.search(r"(\w+)\s*\(", decl)
    return m.group(1) if m else decl


def render():
    out = [INTRO]
    hdrs = sorted(f[:-2] for f in os.listdir(os.path.join(ROOT, "include", "quant"))
                  if f.endswith(".h"))
    names = [h for h in ORDER if h in hdrs] + [h for h in hdrs if h not in ORDER]
    out.append("## Contents\n")
    for h in names:
        out.append(f"- [`quant/{h}.h`](#quant{h}h)")
    out.append("")
    for h in names:
        file_doc, entries = parse_header(os.path.join(ROOT, "include", "quant", h + ".h"))
        out.append(f"## quant/{h}.h\n")
        if file_doc:
            out.append(file_doc + "\n")
        if not entries:
            out.append("(no functions)\n")
        for comment, decls in entries:
            out.append("### " + ", ".join(f"`{fname(d)}`" for d in decls) + "\n")
            out.append("```c")
            out.extend(decls)
            out.append("```\n")
            out.append((comment or "(undocumented in the header)") + "\n")
    return "\n".join(out).rstrip() + "\n"


def main():
    text = render()
    path = os.path.join(ROOT, "docs", "api.md")
    if "--check" in sys.argv:
        cur = open(path, encoding="utf-8").read() if os.path.exists(path) else ""
        if cur != text:
            print("docs/api.md is stale: run scripts/gen-api-doc.py", file=sys.stderr)
            return 1
        return 0
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
