#!/usr/bin/env python3
"""Check that the build options the README documents are the ones the build has.

Fails when an `option(LQ_...)` or `set(LQ_... CACHE ...)` of CMakeLists.txt is
missing from the README's "Build options" table or the table lists an option
the build does not define, and when an `add_subdirectory(dir)` names a
directory without a CMakeLists.txt (a documented option that cannot build).
Usage: scripts/check-options.py   (exit status 1 on a mismatch)
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    with open(os.path.join(ROOT, "CMakeLists.txt"), encoding="utf-8") as f:
        cmake = f.read()
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    defined = set(re.findall(r"^\s*option\(\s*(LQ_\w+)", cmake, re.M))
    defined |= set(re.findall(r"^\s*set\(\s*(LQ_\w+)\s[^)]*\bCACHE\b", cmake, re.M))
    table = readme.split("## Build options", 1)
    documented = set(re.findall(r"^\|\s*`(LQ_\w+)`", table[1], re.M)) if len(table) == 2 else set()
    bad = []
    for o in sorted(defined - documented):
        bad.append(f"{o}: defined in CMakeLists.txt, missing from the README's build options")
    for o in sorted(documented - defined):
        bad.append(f"{o}: in the README's build options, not defined by CMakeLists.txt")
    for d in re.findall(r"^\s*add_subdirectory\(\s*([\w/.-]+)", cmake, re.M):
        if not os.path.isfile(os.path.join(ROOT, d, "CMakeLists.txt")):
            bad.append(f"add_subdirectory({d}): {d}/CMakeLists.txt does not exist")
    for b in bad:
        print("check-options: " + b, file=sys.stderr)
    if not bad:
        print(f"check-options: {len(defined)} options, all documented and buildable")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
