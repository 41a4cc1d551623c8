#!/usr/bin/env bash
# Shared by the 50-* integration tests (sourced, not run): the seed scenario's processes on
# loopback - a verifier, a registrar joined to it, a factory batch uploaded, a Mosquitto
# configured by `trellis broker config`, and `trellis ingest` - plus check helpers. Every
# process started here is stopped on exit; the work directory is removed.
set -euo pipefail

build=${TRELLIS_BUILD_DIR:?TRELLIS_BUILD_DIR must name the build directory}
trellis="$build/tools/trellis/trellis"
device="$build/tools/trellis-device/trellis-device"
for bin in "$trellis" "$device"; do
    [[ -x "$bin" ]] || { echo "not built: $bin" >&2; exit 1; }
done
mosquitto_bin=$(command -v mosquitto || true)
[[ -n "$mosquitto_bin" ]] || for c in /usr/sbin/mosquitto /usr/local/sbin/mosquitto; do
    [[ -x "$c" ]] && mosquitto_bin=$c && break
done
[[ -n "$mosquitto_bin" ]] || { echo "mosquitto is required (scripts/install-deps)" >&2; exit 1; }
for tool in jq openssl curl mosquitto_pub; do
    command -v "$tool" >/dev/null || { echo "$tool is required (scripts/install-deps)" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/trellis-${TEST_NAME:-50}.XXXXXX")
declare -A pids=()
cleanup() {
    local name
    for name in "${!pids[@]}"; do
        kill "${pids[$name]}" 2>/dev/null || true
    done
    for name in "${!pids[@]}"; do
        wait "${pids[$name]}" 2>/dev/null || true
    done
    if [[ ${failures:-0} -ne 0 && -n "${KEEP_LOGS:-}" ]]; then
        echo "logs kept in $work" >&2
        return
    fi
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

source "$(dirname "${BASH_SOURCE[0]}")/assert.sh"
expect_ok() { # expect_ok NAME COMMAND...
    local name=$1
    shift
    if "$@" >out.txt 2>err.txt; then pass "$name"; else fail "$name ($(tail -n 3 err.txt))"; fi
}
expect_fail() { # expect_fail NAME COMMAND...: must exit non-zero
    local name=$1
    shift
    if "$@" >out.txt 2>err.txt; then fail "$name (it succeeded)"; else pass "$name"; fi
}
finish() {
    if ((failures)); then
        echo "$failures check(s) failed" >&2
        for log in broker.log ingest.log registrar.log verifier.log; do
            [[ -f $log ]] && { echo "--- $log (tail)" >&2; tail -n 15 $log >&2; }
        done
        exit 1
    fi
    echo "all checks passed"
}

# wait_for SECONDS COMMAND...: polls the command every 0.1 s.
wait_for() {
    local tries=$(($1 * 10))
    shift
    for _ in $(seq "$tries"); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
    local p
    for _ in $(seq 50); do
        # Below the kernel's ephemeral range (32768+), so no outgoing connection holds it.
        p=$((10000 + RANDOM % 22000))
        port_open "$p" || { echo "$p"; return 0; }
    done
    return 1
}

# ---- verifier, registrar, factory batch ---------------------------------------------------------
# start_world N [REGISTRAR_OPTIONS...]: N file-backend devices of OEM acme in run/devices/.
start_world() {
    local n=$1
    shift
    $trellis verifier init --dir v --id verifier-50 >/dev/null
    $trellis verifier add-oem acme --dir v >/dev/null
    $trellis factory init --dir fab >/dev/null
    $trellis verifier add-factory fab --key fab/factory_pub.pem --dir v >/dev/null
    $trellis verifier serve --dir v --port 0 --workers 1 --no-durable --log-level warn \
        >verifier.out 2>verifier.log &
    pids[verifier]=$!
    wait_for 10 grep -q '^listening on' verifier.out || { echo "verifier did not start" >&2; exit 1; }
    vport=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' verifier.out)
    $trellis registrar init --oem acme --dir r >/dev/null
    $trellis registrar join --dir r --verifier "https://127.0.0.1:$vport" --bundle v/clients/acme \
        >/dev/null
    start_registrar "$@"
    TRELLIS_FACTORY_DIR=$work/fab $trellis factory make --count "$n" --model T-100 --owner acme \
        --batch b-50 --serial-prefix S- --registrar-url "https://127.0.0.1:$rport" \
        --registrar-ca r/trust.pem --out run >/dev/null
    $trellis factory upload run/manifest.jsonl --verifier "https://127.0.0.1:$vport" \
        --cert v/clients/fab/client.pem --key v/clients/fab/client.key \
        --ca v/clients/fab/ca.pem >/dev/null
    mapfile -t devs < <(ls -d run/devices/*)
}

# start_registrar [OPTIONS...]: (re)starts the registrar on a fixed port once chosen.
start_registrar() {
    if [[ -n "${pids[registrar]:-}" ]]; then
        kill "${pids[registrar]}"; wait "${pids[registrar]}" 2>/dev/null || true
    fi
    : >registrar.out
    $trellis registrar serve --dir r --port "${rport:-0}" --workers 1 --rate-limit 0 \
        --log-level info "$@" >registrar.out 2>>registrar.log &
    pids[registrar]=$!
    wait_for 10 grep -q 'listening on' registrar.out || { echo "registrar did not start" >&2; exit 1; }
    rport=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' registrar.out)
}

# ---- broker and ingest ----------------------------------------------------------------------------
config_broker() {
    bport=$(free_port)
    sport=$(free_port)
    $trellis broker config --ca r/ca-chain.pem --crl r/crl.pem --cert r/server.pem \
        --key r/server.key --port "$bport" --service-port "$sport" --out broker >/dev/null
}
broker_running() { test "$(grep -c 'running' broker.log 2>/dev/null || true)" -gt "${1:-0}"; }
# start_broker: starts (or restarts) Mosquitto; if another process took one of its ports since
# config_broker chose them, it configures two other ports (only before devices know them).
start_broker() {
    local runs
    for attempt in 1 2 3; do
        runs=$(grep -c 'running' broker.log 2>/dev/null || true)
        runs=${runs:-0}
        "$mosquitto_bin" -c broker/mosquitto.conf >>broker.log 2>&1 &
        pids[broker]=$!
        if wait_for 10 broker_running "$runs" && kill -0 "${pids[broker]}" 2>/dev/null; then
            broker_started=1
            return 0
        fi
        kill -KILL "${pids[broker]}" 2>/dev/null || true
        wait "${pids[broker]}" 2>/dev/null || true
        unset 'pids[broker]'
        [[ -z "${broker_started:-}" ]] || break
        config_broker
    done
    cat broker.log >&2
    echo "mosquitto did not start" >&2
    exit 1
}
stop_broker() { # stop_broker [SIGNAL]
    kill -"${1:-TERM}" "${pids[broker]}" 2>/dev/null || true
    wait "${pids[broker]}" 2>/dev/null || true
    unset 'pids[broker]'
}
start_ingest() {
    local before=0
    [[ -f ingest.log ]] && before=$(grep -c 'event=ingest.subscribed' ingest.log || true)
    $trellis ingest --ca broker/service-ca.pem --cert broker/ingest.pem --key broker/ingest.key \
        --broker-port "$sport" --db tel.db --batch-wait 2ms --stats-interval 0 \
        --client-id "ingest-$RANDOM" >>ingest.log 2>&1 &
    pids[ingest]=$!
    wait_for 10 subscribed_more_than "$before" ||
        { tail ingest.log >&2; echo "ingest did not subscribe" >&2; exit 1; }
}
subscribed_more_than() { test "$(grep -c 'event=ingest.subscribed' ingest.log || true)" -gt "$1"; }
stop_ingest() {
    kill -TERM "${pids[ingest]}" 2>/dev/null || true
    wait "${pids[ingest]}" 2>/dev/null || true
    unset 'pids[ingest]'
}

# ---- devices --------------------------------------------------------------------------------------
dev_id() { jq -r .device_id "$1/factory.json"; }
# run_device DIR [OPTIONS...]: the agent in the background, its log in DIR.log.
run_device() {
    local dir=$1
    shift
    "$device" --state "$dir" run --broker-port "$bport" "$@" >>"$dir.log" 2>&1 &
    pids[$dir]=$!
}
wait_device() { # wait_device DIR: its exit status
    local rc=0
    wait "${pids[$1]}" || rc=$?
    unset "pids[$1]"
    return $rc
}
stored() { $trellis ingest telemetry "$1" --db tel.db --json; }
# seqs_ok ID LAST: the store holds exactly seq 1..LAST for ID, each once, and acked LAST.
seqs_ok() {
    stored "$1" | jq -e --argjson n "$2" \
        '([.rows[].seq] == [range(1; $n + 1)]) and .acked == $n and .readings == $n' >/dev/null
}
# mqtt_pub DIR TOPIC PAYLOAD [EXTRA...]: publish as the device in DIR with its identity.
mqtt_pub() {
    local dir=$1 topic=$2 payload=$3
    shift 3
    mosquitto_pub -h 127.0.0.1 -p "$bport" --cafile r/trust.pem --cert "$dir/identity.pem" \
        --key "$dir/identity.pem" -i "$(dev_id "$dir")" -q 1 -t "$topic" -m "$payload" "$@"
}
