#!/usr/bin/env bash
# Generates the fuzz seed corpus into fuzz/corpus/<target>/ (git-ignored) with the
# `gen-corpus` bin of imgchkr-benches, which builds the same inputs as the benches.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
out="${1:-$here/corpus}"
cd "$root"
cargo run --quiet -p imgchkr-benches --bin gen-corpus -- "$out"
