#!/usr/bin/env bash
# Regenerates the README's pictures of the dashboard, docs/dashboard.png (1280 px wide) and
# docs/dashboard-phone.png (390 px), from a busy deployment run by the browser test
# (imgchkr-http/tests/ui_browser.rs). Needs chromium and chromium-driver (apt).
set -euo pipefail
cd "$(dirname "$0")/.."
IMGCHKR_UI_SCREENSHOTS="$PWD/docs" cargo test -p imgchkr-http --test ui_browser -- --nocapture
