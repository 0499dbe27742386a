#!/bin/sh
# Download, here, the wheels bench/gpu_epoch.py needs on the GPU machine (Python 3.12, x86-64, no
# internet; it already has numpy, scipy, numba, filelock, setuptools, attrs, jax with CUDA, torch):
# PyTensor and dltspec's pure-Python dependencies that the machine lacks. Into .whl/ (ignored).
# There: python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
set -eu
cd "$(dirname "$0")/.."
PIP="${PIP:-python3 -m pip}"
mkdir -p .whl
for spec in pytensor==3.0.7 etuples==0.3.10 logical-unification==0.4.7 miniKanren==1.0.5 cons==0.4.7 \
            lark==1.3.1 jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 \
            rpds-py==2026.9.1; do
    $PIP download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl "$spec"
done
ls .whl
