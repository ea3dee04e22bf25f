#!/bin/sh
# End-to-end checks of the lq program.
set -eu
lq=$1
"$lq" --version | grep -q "libquant"
"$lq" --help >/dev/null
"$lq" info | grep -q "dispatch:"
"$lq" info --json | grep -q '"physical_cores":'
if "$lq" info --bogus 2>/dev/null; then echo "unknown option accepted"; exit 1; fi
if "$lq" nosuchcommand 2>/dev/null; then echo "unknown command accepted"; exit 1; fi
LQ_SIMD=scalar "$lq" info | grep -q "dispatch:   scalar"
echo "cli: ok"
