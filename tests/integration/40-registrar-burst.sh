#!/usr/bin/env bash
# A mass power-on (issue 5 item 6): far more devices at once than the registrar takes
# connections for, against a rate limit, each device on a fresh TLS connection. A device that
# is turned away (connection closed at once, 429 rate_limited, 503 unavailable) backs off and
# tries again with a fresh challenge, as the device agent does. Every device must end up
# enrolled: the crowd degrades into retries, never into failures.
set -euo pipefail

build=${TRELLIS_BUILD_DIR:?TRELLIS_BUILD_DIR must name the build directory}
trellis="$build/tools/trellis/trellis"
bench="$build/bench/registrar/bench_enroll"
for b in "$trellis" "$bench"; do
    [[ -x "$b" ]] || { echo "not built: $b" >&2; exit 1; }
done
command -v jq >/dev/null || { echo "jq is required" >&2; exit 1; }
devices=${TRELLIS_BURST_DEVICES:-1500}
crowd=${TRELLIS_BURST_CROWD:-400}

work=$(mktemp -d "${TMPDIR:-/tmp}/trellis-40-burst.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

source "$(dirname "${BASH_SOURCE[0]}")/assert.sh"
serve() { # serve NAME COMMAND...: starts a server, sets port
    local name=$1
    shift
    "$@" >"$name.out" 2>"$name.err" &
    pids+=($!)
    for _ in $(seq 150); do grep -q '^listening on' "$name.out" 2>/dev/null && break; sleep 0.1; done
    port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$name.out")
    [[ -n "$port" ]] || { cat "$name.err" >&2; echo "$name did not start" >&2; exit 1; }
}

"$trellis" verifier init --dir v >/dev/null
"$trellis" verifier add-oem acme --dir v >/dev/null
"$trellis" factory init --dir fab --name fab >/dev/null
"$trellis" verifier add-factory fab --key fab/factory_pub.pem --dir v >/dev/null
"$bench" gen --key fab/factory_key.pem --factory fab --owner acme --batch b-burst \
    --devices "$devices" --out manifest.jsonl --keys keys.txt
"$trellis" verifier import manifest.jsonl --dir v >/dev/null
serve verifier "$trellis" verifier serve --dir v --port 0 --no-durable --log-level warn
vport=$port
"$trellis" registrar init --oem acme --dir r >/dev/null
"$trellis" registrar join --dir r --verifier "https://127.0.0.1:$vport" --bundle v/clients/acme \
    >/dev/null
# Room for a tenth of the crowd, and a rate limit the crowd (one address) runs into.
serve registrar "$trellis" registrar serve --dir r --port 0 --no-durable --log-level error \
    --max-connections 40 --rate-limit 300 --rate-burst 100 --request-timeout 20s
rport=$port

out=$("$bench" run --ca r/trust.pem --port "$rport" --keys keys.txt --first 0 \
    --devices "$devices" --concurrency "$crowd" --seconds 240 --retry)
echo "# $out"
expect_eq "every device of the crowd enrolled" "$(jq -r .enrollments <<<"$out")" "$devices"
expect_eq "no device failed" "$(jq -r .failed <<<"$out")" 0
retries=$(jq -r .retries <<<"$out")
[[ $retries -gt 0 ]] && pass "the crowd was turned away $retries times, and retried" ||
    fail "no device was turned away: the test did not overload the registrar"
expect_eq "the registry holds one certificate per device" \
    "$("$trellis" registrar devices --dir r --json | jq '[.[] | select(.serial != null)] | length')" \
    "$devices"
metrics=$(curl -sS --cacert r/trust.pem "https://127.0.0.1:$rport/metrics")
limited=$(awk '/^trellis_registrar_enrollments_total\{outcome="rate_limited"\}/ {print $2}' <<<"$metrics")
rejected=$(awk '/^trellis_registrar_connections_total\{outcome="rejected_over_limit"\}/ {print $2}' <<<"$metrics")
echo "# rate_limited answers: ${limited:-0}, connections closed over the limit: ${rejected:-0}"
[[ $((${limited:-0} + ${rejected:-0})) -gt 0 ]] && pass "turned away by the rate limit or the connection cap" ||
    fail "neither the rate limit nor the connection cap was reached"

echo "registrar burst test: $failures failure(s)"
exit $((failures > 0))
