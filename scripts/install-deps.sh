#!/usr/bin/env bash
# Installs what tandem needs on Debian 12 (as root): Debian packages, a Python venv (.venv) with pinned
# test tools from PyPI, and (only when a CUDA toolkit is present) the FlashInfer headers from the pinned
# flashinfer-python wheel plus the CUTLASS/CuTe headers from the pinned nvidia-cutlass wheel (FlashInfer's
# Hopper FA3 path needs them). Idempotent: a second run checks and does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(build-essential cmake ninja-build pkg-config git curl unzip procps
  libboost-dev libboost-system-dev nlohmann-json3-dev libyaml-cpp-dev libspdlog-dev libfmt-dev
  libcli11-dev libpcre2-dev libxxhash-dev libicu-dev libgtest-dev libbenchmark-dev
  python3 python3-venv python3-pip)
FLASHINFER_VERSION=0.7.2.post1
CUTLASS_VERSION=4.2.0.0

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python tools for tests and fixtures (pinned), in a venv so the system Python stays untouched.
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import openai, tokenizers, pytest, yaml' 2>/dev/null; then
  echo "install-deps: python venv (.venv) with tools/requirements-test.txt"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r tools/requirements-test.txt
fi

# FlashInfer headers (header-only CUDA attention library) from its PyPI wheel.
if [ -x /usr/local/cuda/bin/nvcc ] || command -v nvcc >/dev/null 2>&1; then
  if [ ! -f .cache/flashinfer/include/flashinfer/page.cuh ]; then
    echo "install-deps: flashinfer-python==${FLASHINFER_VERSION} headers"
    mkdir -p .cache/wheels .cache/flashinfer
    .venv/bin/pip download -q --disable-pip-version-check --no-deps -d .cache/wheels "flashinfer-python==${FLASHINFER_VERSION}"
    rm -rf .cache/flashinfer/include
    unzip -q -o .cache/wheels/flashinfer_python-${FLASHINFER_VERSION}-*.whl 'flashinfer/data/include/*' -d .cache/flashinfer/tmp
    mv .cache/flashinfer/tmp/flashinfer/data/include .cache/flashinfer/include
    rm -rf .cache/flashinfer/tmp
  fi
fi

# CUTLASS + CuTe headers (header-only) from the nvidia-cutlass PyPI wheel (cutlass_library/source/include):
# FlashInfer's sm90 (FA3) prefill needs them. Without them the FA3 path is simply not compiled in.
if [ -x /usr/local/cuda/bin/nvcc ] || command -v nvcc >/dev/null 2>&1; then
  if [ ! -f .cache/cutlass/include/cute/tensor.hpp ] || [ "$(cat .cache/cutlass/VERSION 2>/dev/null)" != "${CUTLASS_VERSION}" ]; then
    echo "install-deps: nvidia-cutlass==${CUTLASS_VERSION} headers"
    mkdir -p .cache/wheels .cache/cutlass
    .venv/bin/pip download -q --disable-pip-version-check --no-deps -d .cache/wheels "nvidia-cutlass==${CUTLASS_VERSION}"
    rm -rf .cache/cutlass/include .cache/cutlass/tmp
    unzip -q -o .cache/wheels/nvidia_cutlass-${CUTLASS_VERSION}-*.whl 'cutlass_library/source/include/*' -d .cache/cutlass/tmp
    mv .cache/cutlass/tmp/cutlass_library/source/include .cache/cutlass/include
    rm -rf .cache/cutlass/tmp
    echo "${CUTLASS_VERSION}" > .cache/cutlass/VERSION
  fi
fi
