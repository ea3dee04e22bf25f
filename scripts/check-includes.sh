#!/bin/sh
# Layering of src/: computes the include graph between the modules of src/
# (one module per top directory) and fails on an include that points up or
# sideways in the layer order below, on an include cycle between files, on a
# module missing from the order, and on a per-ISA file (*_avx2.c, *_avx512.c,
# *_neon.c) outside src/simd/. Public headers (include/quant/*.h) are the API
# every layer may use and are not part of the graph. docs/design.md
# ("Layers") explains the order.
#   scripts/check-includes.sh [--graph]   (--graph: also print the module edges)
# Needs only python3 (standard library).
set -eu
cd "$(dirname "$0")/.."
exec python3 - "$@" <<'EOF'
import os
import re
import sys

# The layer order, bottom (0) to top. An include may point only to a
# strictly lower rank or inside its own module: modules of one rank are
# independent of each other.
LAYERS = {
    "core": 0,      # status, context, pool, RNG, CPU detection, dense linear algebra, half floats
    "simd": 1,      # per-ISA leaf kernels and their interfaces (includes only core)
    "lattice": 2,   # quantizer math per family
    "vq": 2,
    "bcq": 2,
    "mcq": 2,
    "hessian": 3,   # the GPTQ engine (and the uniform grid quantizer it drives)
    "qtensor": 4,   # tensor model, format traits and reference products, method drivers
    "products": 5,  # products framework: kernel records, layout cache, dispatch, threading
    "io": 5,        # .lqt container, safetensors / .npy readers
    "finetune": 5,  # tuning of a packed tensor's continuous parameters (reads the formats' sections)
}
PER_ISA = re.compile(r"_(avx2|avx512|neon)\.c$")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)

src = "src"
files = []
for root, _, names in os.walk(src):
    for n in names:
        if n.endswith((".c", ".h")):
            files.append(os.path.relpath(os.path.join(root, n), src).replace(os.sep, "/"))
files.sort()

errors = []
edges = {}  # (module, module) -> list of "file -> include"
graph = {f: [] for f in files}


def module(path):
    return path.split("/", 1)[0] if "/" in path else ""


for f in files:
    m = module(f)
    if m not in LAYERS:
        errors.append(f"src/{f}: module '{m or '(top level)'}' is not in the layer order "
                      "(add it to LAYERS in scripts/check-includes.sh and to docs/design.md)")
        continue
    if PER_ISA.search(f) and m != "simd":
        errors.append(f"src/{f}: per-ISA file outside src/simd/")
    with open(os.path.join(src, f), encoding="utf-8", errors="replace") as fh:
        text = fh.read()
    for inc in INCLUDE.findall(text):
        here = os.path.normpath(os.path.join(os.path.dirname(f), inc)).replace(os.sep, "/")
        if os.path.isfile(os.path.join(src, inc)):
            target = inc
        elif os.path.isfile(os.path.join(src, here)):
            target = here
        elif inc.startswith("quant/") or inc == "quant.h":
            continue  # public API (include/, or the generated quant/version.h)
        else:
            errors.append(f"src/{f}: #include \"{inc}\" is neither in src/ nor public")
            continue
        graph[f].append(target)
        t = module(target)
        if t == m:
            continue
        edges.setdefault((m, t), []).append(f"src/{f} -> {inc}")
        if t not in LAYERS:
            continue
        if LAYERS[t] >= LAYERS[m]:
            kind = "upward" if LAYERS[t] > LAYERS[m] else "sideways (same rank)"
            errors.append(f"src/{f}: {kind} include of \"{inc}\" ({m} rank {LAYERS[m]} -> "
                          f"{t} rank {LAYERS[t]})")

# cycles between files (a header chain that includes itself)
state = {}
stack = []


def visit(f):
    state[f] = 1
    stack.append(f)
    for g in graph.get(f, []):
        if state.get(g) == 1:
            cyc = stack[stack.index(g):] + [g]
            errors.append("include cycle: " + " -> ".join("src/" + x for x in cyc))
        elif g in graph and not state.get(g):
            visit(g)
    stack.pop()
    state[f] = 2


sys.setrecursionlimit(10000)
for f in files:
    if not state.get(f):
        visit(f)

# cycles between modules (implied impossible by the ranks; checked anyway)
mods = {}
for (a, b) in edges:
    mods.setdefault(a, set()).add(b)
mstate = {}


def mvisit(a, path):
    mstate[a] = 1
    for b in sorted(mods.get(a, ())):
        if mstate.get(b) == 1:
            errors.append("module cycle: " + " -> ".join(path[path.index(b):] + [b]))
        elif not mstate.get(b):
            mvisit(b, path + [b])
    mstate[a] = 2


for a in sorted(mods):
    if not mstate.get(a):
        mvisit(a, [a])

if "--graph" in sys.argv[1:]:
    for (a, b), why in sorted(edges.items(), key=lambda e: (-LAYERS.get(e[0][0], 99), e[0])):
        print(f"{a} -> {b}  ({len(why)} include{'s' if len(why) > 1 else ''})")

for e in errors:
    print("check-includes: " + e, file=sys.stderr)
if errors:
    print(f"check-includes: {len(errors)} problem(s)", file=sys.stderr)
    sys.exit(1)
print(f"check-includes: {len(files)} files in {len(set(map(module, files)))} modules, "
      f"{len(edges)} module edges, all downward, no cycle")
EOF
