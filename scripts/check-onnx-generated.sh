#!/usr/bin/env bash
# Regenerates onnx-cnn's committed models with burn-onnx (onnx-cnn/build.rs, feature
# `regenerate`), refreshes the fingerprint of their inputs (onnx-cnn/generated/INPUTS), and
# fails if anything changed. Run it after changing burn-ternary-onnx, the ONNX fixtures or the
# burn-onnx version; `cargo test` fails (onnx-cnn's `generated_code_is_current`) until it has
# been run and its output committed.
#
# It builds the ONNX import stack for the build script; with the feature on, cargo also gives
# the workspace's Burn crates new hashes, so expect a second full build (~20 min, ~17 GB of
# target directory on the 2-core dev VM). That is why .ci/run does not run it.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/burn-ternary/target}"
cargo test --workspace --release --no-run --features onnx-cnn/regenerate
onnx-cnn/fingerprint.sh > onnx-cnn/generated/INPUTS
if [ -n "$(git status --porcelain -- onnx-cnn/generated)" ]; then
    git status --short -- onnx-cnn/generated
    echo "onnx-cnn/generated/ changed: review and commit it" >&2
    exit 1
fi
