#!/usr/bin/env bash
# `make demo`'s scenario (scripts/demo) as a test, smaller: three devices, four readings each.
# It must exit 0, print one summary row per device with every published reading stored and a
# certificate serial, and leave no process of its own running.
set -euo pipefail

src=${TRELLIS_SOURCE_DIR:?TRELLIS_SOURCE_DIR must name the source directory}
build=${TRELLIS_BUILD_DIR:?TRELLIS_BUILD_DIR must name the build directory}
for tool in jq openssl mosquitto; do
    command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/trellis-60-demo.XXXXXX")
cleanup() { pkill -f "$work/" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

source "$(dirname "${BASH_SOURCE[0]}")/assert.sh"

if "$src/scripts/demo" --build "$build" --devices 3 --duration 4 --state "$work/demo" \
    >"$work/out" 2>&1; then
    pass "the demo exits 0"
else
    fail "the demo exits 0"
    tail -n 30 "$work/out" >&2
fi
rows=$(awk '$1 ~ /^TH-/ && NF == 6' "$work/out")
if [[ $(wc -l <<<"$rows") == 3 ]]; then pass "one summary row per device"; else fail "one summary row per device"; fi
if awk '$1 ~ /^TH-/ && NF == 6 { if ($4 != 4 || $5 != 4 || $3 !~ /^[0-9A-F]+$/) bad = 1 } END { exit bad }' \
    "$work/out"; then
    pass "every device has a certificate and all 4 readings stored"
else
    fail "every device has a certificate and all 4 readings stored"
fi
grep -q 'every device enrolled and every reading it published was stored' "$work/out" &&
    pass "the demo says it succeeded" || fail "the demo says it succeeded"
if pgrep -f "$work/demo" >/dev/null; then
    fail "nothing of the demo is left running"
    pgrep -af "$work/demo" >&2 || true
else
    pass "nothing of the demo is left running"
fi

echo "$failures failure(s)"
((failures == 0))
