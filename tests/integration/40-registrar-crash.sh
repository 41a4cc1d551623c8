#!/usr/bin/env bash
# Crash consistency of the registrar (issue 5 item 9): a stream of enrollments from several
# concurrent device loops while the registrar is killed with SIGKILL at random moments and
# restarted, then: every certificate any client received is in the registry (record first, sign
# second), the registry opens cleanly and passes SQLite's integrity check, and the service still
# enrolls. The registrar runs with its default durability (synchronous=FULL).
set -euo pipefail

build=${TRELLIS_BUILD_DIR:?TRELLIS_BUILD_DIR must name the build directory}
trellis="$build/tools/trellis/trellis"
[[ -x "$trellis" ]] || { echo "not built: $trellis" >&2; exit 1; }
for tool in jq openssl curl xxd; do
    command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 1; }
done
rounds=${TRELLIS_CRASH_ROUNDS:-8}
loops=4

work=$(mktemp -d "${TMPDIR:-/tmp}/trellis-40-crash.XXXXXX")
verifier_pid=""
registrar_pid=""
clients=()
cleanup() {
    for p in "${clients[@]}" $registrar_pid $verifier_pid; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

source "$(dirname "${BASH_SOURCE[0]}")/assert.sh"
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
unb64url() {
    local s
    s=$(tr '_-' '/+')
    while ((${#s} % 4)); do s="$s="; done
    printf '%s' "$s" | base64 -d
}
wait_listening() { # wait_listening FILE: prints the port
    for _ in $(seq 150); do grep -q '^listening on' "$1" 2>/dev/null && break; sleep 0.1; done
    sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$1"
}

# ---- a verifier that knows the devices, a registrar joined to it -------------------------------
V="$trellis verifier"
R="$trellis registrar"
$V init --dir v >/dev/null
$V add-oem acme --dir v >/dev/null
$trellis factory init --dir fab >/dev/null
$V add-factory fab --key fab/factory_pub.pem --dir v >/dev/null
export TRELLIS_FACTORY_DIR=$work/fab
$V serve --dir v --port 0 --workers 1 --no-durable --log-level warn >v.out 2>v.err &
verifier_pid=$!
vport=$(wait_listening v.out)
[[ -n "$vport" ]] || { cat v.err >&2; exit 1; }
$trellis factory make --count $loops --model T-100 --owner acme --batch b-crash \
    --serial-prefix C- --out run >/dev/null
$trellis factory upload run/manifest.jsonl --verifier "https://127.0.0.1:$vport" \
    --cert v/clients/fab/client.pem --key v/clients/fab/client.key --ca v/ca.pem >/dev/null
$R init --oem acme --dir r >/dev/null
$R join --dir r --verifier "https://127.0.0.1:$vport" --bundle v/clients/acme >/dev/null

rport=0
start_registrar() {
    : >r.out
    $R serve --dir r --port "$rport" --workers 2 --rate-limit 0 --log-level warn >r.out 2>>r.err &
    registrar_pid=$!
    rport=$(wait_listening r.out)
    [[ -n "$rport" ]] || { cat r.err >&2; echo "registrar did not start" >&2; exit 1; }
}
start_registrar
rurl=https://127.0.0.1:$rport

# ---- device loops: enroll again and again (each time a factory reset), keep what they get ------
device_loop() { # device_loop N: runs until killed; appends received serials to got.N
    local n=$1 dir id
    dir=$(ls -d run/devices/* | sed -n "${n}p")
    id=$(jq -r .device_id "$dir/factory.json")
    mkdir -p "c$n"
    cd "c$n"
    openssl ecparam -name prime256v1 -genkey -noout -out op.key
    while true; do
        curl -sS --max-time 5 --cacert ../r/trust.pem "$rurl/v1/challenge" 2>/dev/null |
            jq -r .challenge 2>/dev/null | unb64url >challenge.bin 2>/dev/null || true
        if [[ ! -s challenge.bin ]]; then sleep 0.05; continue; fi
        openssl req -new -key op.key -subj "/CN=$id" -outform DER -out csr.der 2>/dev/null
        $trellis factory evidence --device "../$dir" --challenge "$(xxd -p -c 1000 challenge.bin)" \
            --csr csr.der --out ev.bin >/dev/null 2>&1 || continue
        printf '{"csr":"%s","evidence":"%s","challenge":"%s"}' "$(b64url <csr.der)" \
            "$(b64url <ev.bin)" "$(b64url <challenge.bin)" >enroll.json
        status=$(curl -sS --max-time 5 --cacert ../r/trust.pem -H 'Content-Type: application/json' \
            --data-binary @enroll.json -o resp.json -w '%{http_code}' "$rurl/v1/enroll" \
            2>/dev/null || true)
        if [[ "$status" == 201 ]]; then
            # The device has its certificate: from here on, the registry must know it.
            jq -r .certificate resp.json | openssl x509 -noout -serial | cut -d= -f2 |
                tr 'A-F' 'a-f' >>"../got.$n"
        fi
    done
}
for n in $(seq $loops); do
    device_loop "$n" >/dev/null 2>&1 &
    clients+=($!)
done

# ---- kill -9 at random moments, restart ------------------------------------------------------
for round in $(seq "$rounds"); do
    sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.2f", 0.4 + (r % 1000) / 1000 }')"
    kill -9 "$registrar_pid"
    wait "$registrar_pid" 2>/dev/null || true
    start_registrar
done
sleep 1
for p in "${clients[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
clients=()
kill -9 "$registrar_pid"
wait "$registrar_pid" 2>/dev/null || true
registrar_pid=""

# ---- every certificate handed out is in the registry ---------------------------------------------
cat got.* 2>/dev/null | sort -u >received.txt
received=$(wc -l <received.txt)
echo "# $received certificates received across $rounds kills"
[[ $received -ge $rounds ]] && pass "enrollments went on between the kills" ||
    fail "only $received certificates received"
expect_eq "the registry passes SQLite's integrity check" \
    "$(sqlite3 r/registry.db 'PRAGMA integrity_check')" ok
for id in $(jq -r .device_id run/devices/*/factory.json); do
    $R show "$id" --dir r --json 2>/dev/null | jq -r '.certificates[]?.serial'
done | sort -u >recorded.txt
missing=$(comm -23 received.txt recorded.txt | wc -l)
expect_eq "every certificate a device received is recorded" "$missing" 0
expect_eq "every recorded enrollment keeps the verifier's verdict" \
    "$(sqlite3 r/registry.db "SELECT count(*) FROM certificates WHERE verdict NOT LIKE '%.%.%'")" 0

# ---- and the registrar comes back and enrolls ---------------------------------------------------
start_registrar
dir=$(ls -d run/devices/* | head -1)
id=$(jq -r .device_id "$dir/factory.json")
curl -sS --cacert r/trust.pem "$rurl/v1/challenge" | jq -r .challenge | unb64url >challenge.bin
openssl ecparam -name prime256v1 -genkey -noout -out op.key
openssl req -new -key op.key -subj "/CN=$id" -outform DER -out csr.der 2>/dev/null
$trellis factory evidence --device "$dir" --challenge "$(xxd -p -c 1000 challenge.bin)" \
    --csr csr.der --out ev.bin >/dev/null
printf '{"csr":"%s","evidence":"%s","challenge":"%s"}' "$(b64url <csr.der)" "$(b64url <ev.bin)" \
    "$(b64url <challenge.bin)" >enroll.json
expect_eq "after the last restart, a device enrolls" \
    "$(curl -sS --cacert r/trust.pem -H 'Content-Type: application/json' --data-binary @enroll.json \
        -o /dev/null -w '%{http_code}' "$rurl/v1/enroll")" 201

echo "registrar crash test: $failures failure(s)"
exit $((failures > 0))
