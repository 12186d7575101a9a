#!/usr/bin/env bash
# Side by side, interleaved: the ceiling (a do-nothing server on imgchkr's HTTP stack and
# webhook sender), `serve` on memory:, `serve` on the SQLite default, `api` + 1 `worker` on a
# throwaway Redis, on three Redis shards (12 tenants), on a throwaway Postgres, RabbitMQ
# (queue) + Redis (store), and optionally
# older builds (OLD=path/to/imgchkr, SEAM=path/to/imgchkr: `serve` with their own defaults,
# memory: for both). Rounds alternate the variants so a busy moment of a shared machine hits
# them alike; compare within a round, report medians. Build first:
#   cargo build --release -p imgchkr-http --bin imgchkr -p imgchkr-benches --bin loadgen --bin ceiling
# Usage: ROUNDS=3 JOBS=20000 CONC=8 [OLD=…] [SEAM=…] \
#        [VARIANTS="ceiling memory sqlite redis redis3 postgres amqp old seam"] \
#        benches/scripts/side-by-side.sh [OUT_DIR]
# Columns: validations/s end to end; submit latency; CPU per job of every imgchkr process and
# engine server together (the load generator left out); peak RSS of each process.
set -u
cd "$(dirname "$0")/../.."
bin=target/release
jobs=${JOBS:-20000}
conc=${CONC:-8}
rounds=${ROUNDS:-3}
variants=${VARIANTS:-ceiling memory sqlite redis redis3 postgres amqp${OLD:+ old}${SEAM:+ seam}}
out=${1:-$(mktemp -d)}
mkdir -p "$out"
echo "round variant | validations/s | submit p50 / p99 / max | CPU µs/job (processes) | peak RSS | load average"
for round in $(seq 1 "$rounds"); do
    for variant in $variants; do
        # Postgres serves fewer jobs a second: fewer jobs keep its round near the others' length.
        n=$jobs
        case $variant in
            ceiling) args=(--server "$bin/ceiling") ;;
            memory) args=(--server "$bin/imgchkr" --store memory:) ;;
            sqlite) args=(--server "$bin/imgchkr") ;;
            redis) args=(--server "$bin/imgchkr" --start-redis --worker-processes 1) ;;
            redis3) args=(--server "$bin/imgchkr" --start-redis-shards 3 --tenants 12 --worker-processes 1) ;;
            postgres) args=(--server "$bin/imgchkr" --start-postgres --worker-processes 1); n=$((jobs / 4)) ;;
            amqp) args=(--server "$bin/imgchkr" --start-redis --start-rabbitmq --worker-processes 1); n=$((jobs / 2)) ;;
            old) args=(--server "${OLD:?OLD=path to the older imgchkr}") ;;
            seam) args=(--server "${SEAM:?SEAM=path to the imgchkr built at the seam}" --store memory:) ;;
            *) echo "unknown variant $variant" >&2; exit 2 ;;
        esac
        report="$out/$variant-$round.md"
        timeout 600 "$bin/loadgen" "${args[@]}" --jobs "$n" --concurrency "$conc" >"$report" 2>&1
        field() { grep -E "$1" "$report" | sed 's/.*| \(.*\) |$/\1/' | tr '\n' ' '; }
        # "server 2.55, loadgen 1.22" → the processes' seconds summed, loadgen left out.
        cpu=$(field 'CPU time' | tr ',' '\n' | grep -v loadgen |
            awk -v n="$n" '{s += $NF} END {if (n > 0) printf "%.0f", s / n * 1e6}')
        echo "$round $variant | $(field end-to-end) | $(field 'submit latency') | $cpu ($(field 'CPU time')) | $(field 'peak RSS') | $(cut -d' ' -f1 /proc/loadavg)"
    done
done
echo "reports: $out"
