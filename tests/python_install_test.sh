#!/bin/sh
# The Python package as users get it: libquant installed into a temporary
# prefix, the package pip-installed offline (--no-build-isolation --no-index)
# into a temporary virtual environment that sees Debian's numpy, then the
# library found without LIBQUANT_LIBRARY (through pkg-config's quant.pc, then
# through ctypes.util.find_library), and the unit tests run against the
# installed package (the model functions run the installed bin/lq).
#   python_install_test.sh BUILD_DIR SOURCE_DIR PYTHON
set -eu
build=$1; src=$2; py=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
pcdir=$(ls -d "$prefix"/lib*/pkgconfig | head -n1)
libdir=$(dirname "$pcdir")
"$py" -m venv --system-site-packages "$tmp/venv"
# pip builds in the source directory (build/, *.egg-info): build a copy.
mkdir "$tmp/pkg"
cp -R "$src/python/pyproject.toml" "$src/python/README.md" "$src/python/libquant" \
      "$src/python/tests" "$tmp/pkg/"
"$tmp/venv/bin/python" -m pip install --quiet --no-build-isolation --no-index "$tmp/pkg"
rm -rf "$tmp/pkg/libquant"   # nothing but the installed copy can be imported
cd "$tmp"
unset LIBQUANT_LIBRARY PYTHONPATH LIBQUANT_INCLUDE_DIRS
vpy=$tmp/venv/bin/python

echo "== found through pkg-config (quant.pc)"
PKG_CONFIG_PATH=$pcdir "$vpy" -c "
import libquant
assert libquant.__file__.startswith('$tmp/venv/'), libquant.__file__
assert libquant.library_path.startswith('$libdir/'), libquant.library_path
print(libquant.version(), libquant.library_path)"

echo "== found through ctypes.util.find_library (LD_LIBRARY_PATH, no pkg-config)"
PKG_CONFIG_LIBDIR=$tmp/none PKG_CONFIG_PATH='' LD_LIBRARY_PATH=$libdir "$vpy" -c "
import libquant, numpy as np
print(libquant.version(), libquant.library_path)
assert libquant.quantize(np.ones((4, 16))).shape == (4, 16)"

echo "== a wrong LIBQUANT_LIBRARY is an ImportError naming it (no fallback)"
if LIBQUANT_LIBRARY=$tmp/missing.so PKG_CONFIG_PATH=$pcdir "$vpy" -c "import libquant" \
     2>"$tmp/err"; then
  echo "import succeeded with a missing LIBQUANT_LIBRARY"; exit 1
fi
grep -q "LIBQUANT_LIBRARY" "$tmp/err" || { cat "$tmp/err"; exit 1; }
grep -q "ImportError\|LibraryNotFound" "$tmp/err" || { cat "$tmp/err"; exit 1; }

echo "== unit tests against the installed package (whole models: the installed bin/lq)"
PKG_CONFIG_PATH=$pcdir LIBQUANT_TEST_DATA=$src/tests/data "$vpy" -m unittest discover -s "$tmp/pkg/tests"
echo "python install: ok"
