#!/usr/bin/env bash
# Side by side, interleaved: the ceiling (a do-nothing server on imgchkr's HTTP stack and
# webhook sender), `serve` on memory:, `serve` on the SQLite default, `api` + 1 `worker` on a
# throwaway Redis, and optionally an older build (OLD=path/to/imgchkr, `serve` with its own
# defaults). Rounds alternate the variants so a busy moment of a shared machine hits them
# alike; compare within a round, report medians. Build first:
#   cargo build --release -p imgchkr-http --bin imgchkr -p imgchkr-benches --bin loadgen --bin ceiling
# Usage: ROUNDS=3 JOBS=20000 CONC=8 [OLD=…] [VARIANTS="ceiling memory sqlite redis old"] \
#        benches/scripts/side-by-side.sh [OUT_DIR]
set -u
cd "$(dirname "$0")/../.."
bin=target/release
jobs=${JOBS:-20000}
conc=${CONC:-8}
rounds=${ROUNDS:-3}
variants=${VARIANTS:-ceiling memory sqlite redis${OLD:+ old}}
out=${1:-$(mktemp -d)}
mkdir -p "$out"
echo "round variant | validations/s | submit p50 / p99 / max | CPU s | peak RSS | load average"
for round in $(seq 1 "$rounds"); do
    for variant in $variants; do
        case $variant in
            ceiling) args=(--server "$bin/ceiling") ;;
            memory) args=(--server "$bin/imgchkr" --store memory:) ;;
            sqlite) args=(--server "$bin/imgchkr") ;;
            redis) args=(--server "$bin/imgchkr" --start-redis --worker-processes 1) ;;
            old) args=(--server "${OLD:?OLD=path to the older imgchkr}") ;;
            *) echo "unknown variant $variant" >&2; exit 2 ;;
        esac
        report="$out/$variant-$round.md"
        timeout 300 "$bin/loadgen" "${args[@]}" --jobs "$jobs" --concurrency "$conc" >"$report" 2>&1
        field() { grep -E "$1" "$report" | sed 's/.*| \(.*\) |$/\1/' | tr '\n' ' '; }
        echo "$round $variant | $(field end-to-end) | $(field 'submit latency') | $(field 'CPU time|CPU s') | $(field 'peak RSS') | $(cut -d' ' -f1 /proc/loadavg)"
    done
done
echo "reports: $out"
