#!/usr/bin/env bash
# Counts the system calls of validating one file: `imgchkr check` (or, if that binary cannot be
# built, the `validate-one` bin, which calls the same `imgchkr_core::validate_file`) against
# peers reading the same file (`peer-read`).
#
# How: each command runs under `strace -f -c` (all threads, summary table); we report the total
# number of calls and the file-I/O calls (openat, read, pread64, lseek, statx/fstat/newfstatat,
# close; none of them mmaps the file). Process start-up (execve, the dynamic
# loader's mmap/mprotect, sigaltstack, ...) is the same for every Rust binary and is included in
# the total; `baseline: true` runs a binary that exits at once (`peer-read` without arguments)
# so it can be subtracted.
#
# Usage: benches/syscalls.sh [INPUT-NAME]   (default exif60k-icc40k)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
name="${1:-exif60k-icc40k}"
cd "$root"

if ! command -v strace >/dev/null; then
    (apt-get install -y strace || (apt-get update && apt-get install -y strace)) >/dev/null
fi

cargo build --quiet --release -p imgchkr-benches --bins
target="${CARGO_TARGET_DIR:-$root/target}/release"
imgchkr=()
if cargo build --quiet --release -p imgchkr-http --bin imgchkr 2>/dev/null \
    && "$target/imgchkr" check --help >/dev/null 2>&1; then
    imgchkr=("$target/imgchkr" check)
else
    echo "note: imgchkr binary not available; using validate-one (same validate_file)" >&2
    imgchkr=("$target/validate-one")
fi

dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
"$target/gen-inputs" "$dir" >/dev/null
file="$dir/$name.jpg"
[ -f "$file" ] || { echo "no input $name" >&2; exit 2; }
echo "file: $name.jpg, $(stat -c %s "$file") bytes"

count() {
    local label="$1"; shift
    strace -f -c -o "$dir/strace.out" "$@" >/dev/null 2>&1 || true
    local total io
    # strace -c rows: %time seconds usecs/call calls [errors] syscall: calls is field 4.
    total="$(awk '$NF == "total" { print $4 }' "$dir/strace.out")"
    io="$(awk '$NF ~ /^(openat|open|read|pread64|lseek|statx|fstat|newfstatat|close)$/ {
            calls=$4; s=s sprintf("%s=%s ", $NF, calls); n+=calls }
          END { printf "%d (%s)", n, s }' "$dir/strace.out")"
    printf '%-28s total %5s   file I/O %s\n' "$label" "$total" "$io"
}

count "baseline: true" "$target/peer-read"
count "imgchkr (${imgchkr[*]##*/})" "${imgchkr[@]}" "$file"
for peer in fs-read+imagesize imagesize image jpeg-decoder; do
    count "peer: $peer" "$target/peer-read" "$peer" "$file"
done
