#!/usr/bin/env bash
# What onnx-cnn/generated/ was made from: md5 of the ONNX fixtures and of burn-ternary-onnx's
# sources, and the burn-onnx version in Cargo.lock (the test `generated_code_is_current`
# recomputes the same lines).
set -euo pipefail
cd "$(dirname "$0")/.."
for f in fixtures/cnn.onnx fixtures/seq.onnx $(find onnx/src -type f -name '*.rs' | LC_ALL=C sort); do
    echo "$(md5sum "$f" | cut -d' ' -f1)  $f"
done
echo "burn-onnx $(grep -A1 '^name = "burn-onnx"$' Cargo.lock | sed -n 's/^version = "\(.*\)"$/\1/p')"
