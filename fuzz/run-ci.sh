#!/usr/bin/env bash
# CI fuzzing: builds every fuzz target (nightly, ASan) and runs each for a bounded time on the
# generated seed corpus; exits non-zero on the first finding (crash, panic, leak, timeout, OOM).
#
# Usage: fuzz/run-ci.sh [SECONDS-PER-TARGET]   (default 30)
# Needs: a nightly toolchain (`rustup toolchain install nightly`); installs cargo-fuzz if missing.
# Findings land in fuzz/artifacts/<target>/ (upload them from CI).
set -euo pipefail
secs="${1:-30}"
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

start=$SECONDS
./gen-corpus.sh "$here/corpus"
cargo +nightly fuzz build -O
echo "build: $((SECONDS - start)) s"

targets=(probe incremental_feed differential_libjpeg differential_formats submission)
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    t0=$SECONDS
    # -O: the same release+debug-assertions build as `fuzz build -O`, no rebuild.
    # A scratch corpus dir first so the seeds stay as generated; runs stop at the first crash.
    mkdir -p "target/ci-corpus/$t"
    status=0
    cargo +nightly fuzz run -O "$t" "target/ci-corpus/$t" "corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 >"target/ci-$t.log" 2>&1 || status=$?
    grep -E "^(stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY)|panicked at" "target/ci-$t.log" || true
    if [ "$status" -ne 0 ]; then
        echo "FAIL: fuzz target $t found a problem (exit $status); see fuzz/target/ci-$t.log and fuzz/artifacts/$t/" >&2
        tail -n 40 "target/ci-$t.log" >&2
        exit 1
    fi
    echo "$t: ok ($((SECONDS - t0)) s)"
done
echo "all fuzz targets ran ${secs}s each without findings; total $((SECONDS - start)) s"
