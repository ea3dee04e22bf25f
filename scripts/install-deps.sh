#!/bin/sh
# Install everything libquant needs to build, test, fuzz and cross-test on a
# fresh Debian 12 machine. Peers for benchmarks (OpenBLAS, FAISS, PyTorch)
# are optional: pass --bench to add them. libudev-dev is there because
# `pkg-config --static --libs hwloc` names -ludev. The python3-* packages
# serve the Python binding (python/): numpy for its tests, pip, setuptools,
# wheel and venv to install it offline into a virtual environment.
# libopenmpi-dev and openmpi-bin serve the MPI scale-out of lq quantize
# (-DLQ_WITH_MPI=ON; the test script's MPI stage).
set -eu
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
pkgs="build-essential cmake pkg-config clang clang-format libclang-rt-14-dev check libhwloc-dev libudev-dev libsleef-dev
      gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static
      python3 python3-numpy python3-pip python3-setuptools python3-wheel python3-venv
      libopenmpi-dev openmpi-bin"
if [ "${1:-}" = "--bench" ]; then
  pkgs="$pkgs libopenblas-dev libfaiss-dev python3-torch"
fi
$SUDO apt-get update
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $pkgs
