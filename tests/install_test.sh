#!/bin/sh
# Install libquant into a temporary prefix, then build and run the two
# example consumers (pkg-config and CMake) against the shared and the static
# library. This is how users consume libquant.
set -eu
build=$1; src=$2; cc=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(ls -d "$prefix"/lib*/pkgconfig | head -n1)
export PKG_CONFIG_PATH=$libdir
export LD_LIBRARY_PATH=$(dirname "$libdir")

echo "== pkg-config, shared"
"$cc" -o "$tmp/pc_shared" "$src/examples/pkgconfig/main.c" $(pkg-config --cflags --libs quant)
"$tmp/pc_shared"
echo "== pkg-config, static"
"$cc" -o "$tmp/pc_static" "$src/examples/pkgconfig/main.c" $(pkg-config --cflags quant) \
    $(pkg-config --static --libs quant | sed "s|-lquant|$(dirname "$libdir")/libquant.a|")
"$tmp/pc_static"
if ldd "$tmp/pc_static" | grep -q libquant; then echo "static consumer linked the shared library"; exit 1; fi

echo "== engine example (a linear layer from a .lqt on the codes)"
"$cc" -o "$tmp/engine" "$src/examples/engine/linear.c" $(pkg-config --cflags --libs quant) -lm
(cd "$tmp" && ./engine)

for kind in shared static; do
  echo "== cmake, $kind"
  cmake -S "$src/examples/cmake" -B "$tmp/cm_$kind" -DCMAKE_PREFIX_PATH="$prefix" \
        -DCMAKE_C_COMPILER="$cc" -DLQ_EXAMPLE_STATIC=$([ $kind = static ] && echo ON || echo OFF) >/dev/null
  cmake --build "$tmp/cm_$kind" >/dev/null
  "$tmp/cm_$kind/consumer"
done
# The public headers must also compile as C++ (extern "C", no C-only syntax).
if command -v c++ >/dev/null 2>&1; then
  echo "== C++ consumer of the public headers"
  printf '#include <quant.h>\n#include <cstdio>\nint main() { std::printf("%%s\\n", lq_version()); return 0; }\n' > "$tmp/cpp.cpp"
  c++ -std=c++11 -Wall -Wextra -Wpedantic -Werror -o "$tmp/cpp" "$tmp/cpp.cpp" $(pkg-config --cflags --libs quant)
  "$tmp/cpp"
fi
echo "install consumers: ok"
