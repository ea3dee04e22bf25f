#!/bin/sh
# Apply the tree's .clang-format to every C source and header under version
# control (src, include, tests, tools, fuzz, bench, examples), or with --check
# fail, naming the files, when any would change. The test command runs the
# check. Uses clang-format 14 (Debian 12's; other versions may format
# differently: set CLANG_FORMAT to pick the binary).
set -eu
cd "$(dirname "$0")/.."
cf=${CLANG_FORMAT:-clang-format}
files=$(git ls-files '*.c' '*.h')
if [ "${1:-}" = "--check" ]; then
  bad=""
  for f in $files; do
    "$cf" --dry-run -Werror "$f" >/dev/null 2>&1 || bad="$bad $f"
  done
  if [ -n "$bad" ]; then
    echo "format: not clang-formatted (run scripts/format.sh):$bad" >&2
    exit 1
  fi
  echo "format: $(echo "$files" | wc -l) files clang-formatted"
else
  # shellcheck disable=SC2086
  "$cf" -i $files
fi
