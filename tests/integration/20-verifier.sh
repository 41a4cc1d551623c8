#!/usr/bin/env bash
# The verifier end to end through the CLI and real HTTPS on loopback: `trellis verifier init`,
# add-oem / add-factory bundles, `trellis factory make` + `upload` (mutual TLS as the factory),
# evidence from the factory's devices verified with curl as the OEM, the verdict's JWS checked
# with the openssl CLI against the pinned key, tenant isolation, revocation, transfers, the
# audit log, /metrics, and bad input of every kind, each leaving the registry unchanged.
set -euo pipefail

build=${TRELLIS_BUILD_DIR:?TRELLIS_BUILD_DIR must name the build directory}
trellis="$build/tools/trellis/trellis"
[[ -x "$trellis" ]] || { echo "not built: $trellis" >&2; exit 1; }
for tool in jq openssl curl; do
    command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/trellis-20-verifier.XXXXXX")
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

source "$(dirname "${BASH_SOURCE[0]}")/assert.sh"
check() { # check NAME COMMAND...: the command must succeed
    local name=$1
    shift
    if "$@" >/dev/null 2>err.txt; then pass "$name"; else fail "$name ($(cat err.txt))"; fi
}
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
unb64url() {
    local s
    s=$(tr '_-' '/+')
    while ((${#s} % 4)); do s="$s="; done
    printf '%s' "$s" | base64 -d
}

V="$trellis verifier"
vdir=v

# ---- init, tenants ---------------------------------------------------------------------------
check "init creates the state directory" $V init --dir $vdir --id verifier-it
for f in verdict.key verdict.pub.pem ca.key ca.pem server.key server.pem registry.db verifier.conf; do
    [[ -f $vdir/$f ]] || fail "init wrote $f"
done
expect_eq "keys are 0600" "$(stat -c %a $vdir/verdict.key $vdir/ca.key $vdir/server.key | sort -u)" 600
rc=0; $V init --dir $vdir 2>err.txt || rc=$?
expect_eq "a second init is refused" "$rc:$(wc -l <err.txt)" "1:1"

$trellis factory init --dir fab --name fab-1 >/dev/null
$trellis factory init --dir rogue --name fab-1 >/dev/null # same name, another key
check "add-oem acme" $V add-oem acme --dir $vdir
check "add-oem beta" $V add-oem beta --dir $vdir --json
check "add-factory fab-1" $V add-factory fab-1 --key fab/factory_pub.pem --dir $vdir
rc=0; $V add-factory acme --key fab/factory_pub.pem --dir $vdir 2>err.txt || rc=$?
expect_eq "OEM and factory names share one namespace" "$rc" 1
rc=0; $V add-oem 'bad name' --dir $vdir 2>err.txt || rc=$?
expect_eq "a bad name is refused" "$rc" 1
for c in acme beta fab-1; do
    expect_eq "bundle of $c is 0600" "$(stat -c %a $vdir/clients/$c/client.key)" 600
done

# ---- serve -----------------------------------------------------------------------------------
$V serve --dir $vdir --port 0 --workers 2 --no-durable --request-timeout 3s \
    --max-connections 12 --manifest-max-body 64k --log-level warn >serve.out 2>serve.err &
server_pid=$!
for _ in $(seq 100); do grep -q '^listening on' serve.out 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' serve.out)
[[ -n "$port" ]] || { cat serve.err >&2; echo "verifier did not start" >&2; exit 1; }
url=https://127.0.0.1:$port
pass "serve listens on $port"

as() { # as CLIENT curl-args...: a request with CLIENT's bundle ("none": no certificate)
    local who=$1
    shift
    if [[ $who == none ]]; then
        curl -sS --cacert $vdir/ca.pem -o body.json -w '%{http_code}' "$@"
    else
        curl -sS --cacert $vdir/ca.pem --cert $vdir/clients/$who/client.pem \
            --key $vdir/clients/$who/client.key -o body.json -w '%{http_code}' "$@"
    fi
}
registry() { $V list-devices --dir $vdir --json | sha256sum; }
upload() { # upload CLIENT MANIFEST [content-type]
    as "$1" -X POST -H "Content-Type: ${3:-application/x-ndjson}" --data-binary @"$2" "$url/v1/manifests"
}

# ---- manifest import ---------------------------------------------------------------------------
$trellis factory make --factory fab --count 5 --model T-100 --owner acme --batch b-acme \
    --out run-acme >/dev/null
$trellis factory make --factory fab --count 2 --model T-100 --owner beta --batch b-beta \
    --out run-beta >/dev/null
$trellis factory make --factory fab --count 1 --model T-100 --owner acme --batch b-never \
    --out run-never >/dev/null
fup() { $trellis factory upload "$1" --verifier "$url" --cert $vdir/clients/fab-1/client.pem \
    --key $vdir/clients/fab-1/client.key --ca $vdir/clients/fab-1/ca.pem --json; }
expect_eq "factory upload imports" "$(fup run-acme/manifest.jsonl | jq -r .status)" imported
expect_eq "the same manifest again is a no-op" "$(fup run-acme/manifest.jsonl | jq -r .status)" \
    already_present
expect_eq "second batch imports" "$(fup run-beta/manifest.jsonl | jq -r .status)" imported
expect_eq "registry holds 7 devices" "$($V list-devices --dir $vdir --json | jq length)" 7
expect_eq "list-devices --owner beta" "$($V list-devices --dir $vdir --owner beta --json | jq length)" 2
# The operator's bulk path: the same importer, from a file, while the service runs.
$trellis factory make --factory fab --count 3 --model T-200 --owner acme --batch b-cli \
    --out run-cli >/dev/null
expect_eq "verifier import" "$($V import run-cli/manifest.jsonl --dir $vdir --json | jq -r '.status + " " + (.added | tostring)')" "imported 3"
expect_eq "verifier import again" "$($V import run-cli/manifest.jsonl --dir $vdir --json | jq -r .status)" already_present
sed '2s/"T-200"/"T-201"/' run-cli/manifest.jsonl >cli-tampered.jsonl
rc=0; $V import cli-tampered.jsonl --dir $vdir >/dev/null 2>err.txt || rc=$?
expect_eq "verifier import refuses a tampered file" "$rc:$(grep -c 'sha256 does not match' err.txt)" "1:1"
expect_eq "show-device" "$($V show-device "$(jq -r .device_id "$(ls -d run-cli/devices/* | head -1)/factory.json")" --dir $vdir --json | jq -r '.owner + " " + .model + " " + .status')" "acme T-200 active"

# ---- verify -----------------------------------------------------------------------------------
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout op.key \
    -subj /CN=device -outform DER -out csr.der 2>/dev/null
challenge=$(openssl rand -hex 32)
printf '%s' "$challenge" | xxd -r -p >challenge.bin
verify_body() { # verify_body DEVICE_DIR > body: evidence of that device over challenge + csr
    $trellis factory evidence --device "$1" --challenge "$challenge" --csr csr.der --out ev.bin >/dev/null
    printf '{"evidence":"%s","csr":"%s","challenge":"%s"}' "$(b64url <ev.bin)" \
        "$(b64url <csr.der)" "$(b64url <challenge.bin)"
}
verify() { # verify CLIENT DEVICE_DIR -> HTTP status; body.json
    verify_body "$2" >req.json
    as "$1" -X POST -H 'Content-Type: application/json' --data-binary @req.json "$url/v1/verify"
}
payload() { jq -r .verdict body.json | cut -d. -f2 | unb64url; }
dev_acme=$(ls -d run-acme/devices/* | head -1)
dev_acme2=$(ls -d run-acme/devices/* | sed -n 2p)
dev_beta=$(ls -d run-beta/devices/* | head -1)
dev_never=$(ls -d run-never/devices/* | head -1)
id_acme=$(jq -r .device_id "$dev_acme/factory.json")
id_acme2=$(jq -r .device_id "$dev_acme2/factory.json")

expect_eq "acme verifies its device" "$(verify acme "$dev_acme")" 200
expect_eq "verdict is affirming" "$(jq -r .status body.json)" affirming
expect_eq "verdict names the device" "$(payload | jq -r .device_id)" "$id_acme"
expect_eq "verdict binds the CSR" "$(payload | jq -r .csr_sha256)" "$(sha256sum csr.der | cut -c1-64)"
expect_eq "verdict is an EAR" "$(payload | jq -r '.eat_profile + " " + .submods.device."ear.status"')" \
    "tag:github.com,2023:veraison/ear affirming"
expect_eq "verdict lives 5 minutes" "$(payload | jq '.exp - .iat')" 300

# The JWS checks with plain openssl against the key pinned from /v1/verdict-key.
jws=$(jq -r .verdict body.json)
expect_eq "verdict-key endpoint" "$(as beta "$url/v1/verdict-key")" 200
jq -r .pem body.json >pinned.pem
check "pinned key is verdict.pub.pem" cmp <(openssl pkey -pubin -in pinned.pem -outform DER) \
    <(openssl pkey -pubin -in $vdir/verdict.pub.pem -outform DER)
printf '%s' "${jws%.*}" >signing-input.txt
printf '%s' "${jws##*.}" | unb64url >sig.raw
der_int() { # der_int HEX: a DER INTEGER of an unsigned big-endian number
    local h=$1
    while [[ ${#h} -gt 2 && ${h:0:2} == 00 ]]; do h=${h:2}; done
    (( 16#${h:0:2} >= 128 )) && h="00$h"
    printf '02%02x%s' $((${#h} / 2)) "$h"
}
r=$(head -c 32 sig.raw | xxd -p -c 64)
s=$(tail -c 32 sig.raw | xxd -p -c 64)
seq_body="$(der_int "$r")$(der_int "$s")"
printf '30%02x%s' $((${#seq_body} / 2)) "$seq_body" | xxd -r -p >sig.der
check "openssl verifies the verdict's ES256 signature" \
    openssl dgst -sha256 -verify pinned.pem -signature sig.der signing-input.txt

# Tenant isolation: beta cannot verify acme's device nor tell it from one that does not exist.
expect_eq "beta asks about acme's device" "$(verify beta "$dev_acme")" 200
theirs=$(jq -c '{status}' body.json)-$(payload | jq -c .reasons)
expect_eq "beta asks about an unknown device" "$(verify beta "$dev_never")" 200
ghost=$(jq -c '{status}' body.json)-$(payload | jq -c .reasons)
expect_eq "both answers are the same" "$theirs" "$ghost"
expect_eq "and say unknown_device" "$ghost" '{"status":"contraindicated"}-["unknown_device"]'
expect_eq "beta verifies its own device" "$(verify beta "$dev_beta"; jq -r .status body.json)" 200affirming
$V audit --dir $vdir --device "$id_acme" --json >audit.json
expect_eq "the audit log records the real reason" \
    "$(jq -r 'map(select(.caller == "beta")) | .[0].reason' audit.json)" "unknown device: owned by acme"

# ---- bad input: nothing changes in the registry ------------------------------------------------
before=$(registry)
devices_before=$($V list-devices --dir $vdir --json | jq length)

# A manifest over the body limit (64 KiB here: ~400 devices).
$trellis factory make --factory fab --count 400 --model T-100 --owner acme --batch b-big \
    --out run-big --progress 100000 >/dev/null
expect_eq "oversize manifest: 413" "$(upload fab-1 run-big/manifest.jsonl)" 413
expect_eq "oversize manifest: too_large" "$(jq -r .error body.json)" too_large
# Malformed: a record's serial member renamed.
sed '2s/"serial"/"Serial"/' run-never/manifest.jsonl >bad-line.jsonl
expect_eq "malformed manifest: 400" "$(upload fab-1 bad-line.jsonl)" 400
expect_eq "malformed manifest names its line" "$(jq -c .lines body.json)" "[2]"
# Signed by another key under the same factory name.
$trellis factory make --factory rogue --count 2 --model T-100 --owner acme --batch b-rogue \
    --out run-rogue >/dev/null
expect_eq "bad signature: 400" "$(upload fab-1 run-rogue/manifest.jsonl)" 400
expect_eq "bad signature detail" "$(jq -r .detail body.json | grep -c 'signature does not verify')" 1
# A signed record conflicting with a known device (the same RoT key, another owner).
sed -n 2p run-acme/manifest.jsonl | jq -c '{serial, model, public_key: .rot_key}' |
    while read -r rec; do
        key=$(jq -r .public_key <<<"$rec" | unb64url | xxd -p -c 200)
        jq -c --arg k "$key" '.public_key = $k' <<<"$rec"
    done >steal-keys.jsonl
$trellis factory manifest --factory fab --from-keys steal-keys.jsonl --owner beta --batch b-steal \
    --out steal.jsonl >/dev/null
expect_eq "conflicting record: 409" "$(upload fab-1 steal.jsonl)" 409
expect_eq "the conflict names its line" "$(jq -c .lines body.json)" "[2]"
# Bytes changed after signing.
sed '2s/"T-100"/"T-999"/' run-never/manifest.jsonl >tampered.jsonl
expect_eq "tampered manifest: 400" "$(upload fab-1 tampered.jsonl)" 400
expect_eq "tampered manifest detail" "$(jq -r .detail body.json | grep -c 'sha256 does not match')" 1
# Unknown factory and wrong caller.
expect_eq "an OEM cannot upload a manifest" "$(upload acme run-never/manifest.jsonl)" 403
expect_eq "no client certificate: refused at the handshake" \
    "$(upload none run-never/manifest.jsonl 2>/dev/null)" 000
expect_eq "wrong content type: 415" "$(upload fab-1 run-never/manifest.jsonl text/plain)" 415
verify_body "$dev_acme" >req.json
expect_eq "verify without a certificate: refused at the handshake" \
    "$(as none -X POST -H 'Content-Type: application/json' --data-binary @req.json "$url/v1/verify" 2>/dev/null)" 000
expect_eq "verify as a factory: 403" \
    "$(as fab-1 -X POST -H 'Content-Type: application/json' --data-binary @req.json "$url/v1/verify")" 403
expect_eq "verify, wrong content type: 415" \
    "$(as acme -X POST -H 'Content-Type: text/plain' --data-binary @req.json "$url/v1/verify")" 415
expect_eq "verify, malformed JSON: 400" \
    "$(as acme -X POST -H 'Content-Type: application/json' --data-binary '{"evidence":' "$url/v1/verify")" 400
head -c 20000 /dev/zero | tr '\0' ' ' >big.json
expect_eq "verify, oversize body: 413" \
    "$(as acme -X POST -H 'Content-Type: application/json' --data-binary @big.json "$url/v1/verify")" 413
expect_eq "verify, garbage evidence: 400 bad_evidence" "$(as acme -X POST -H 'Content-Type: application/json' \
    --data-binary '{"evidence":"2BKEQA","csr":"AQ","challenge":"AQ"}' "$url/v1/verify"; jq -r .error body.json)" \
    400bad_evidence

# A slow client is cut off after the request timeout (3 s here).
start=$(date +%s)
timeout 10 openssl s_client -connect 127.0.0.1:$port -quiet -CAfile $vdir/ca.pem \
    -cert $vdir/clients/fab-1/client.pem -key $vdir/clients/fab-1/client.key \
    < <(printf 'POST /v1/manifests HTTP/1.1\r\nHost: x\r\n'; sleep 9) >/dev/null 2>&1 || true
elapsed=$(($(date +%s) - start))
if ((elapsed < 8)); then pass "slow client cut off after ${elapsed}s"; else fail "slow client kept for ${elapsed}s"; fi

# Too many connections: with 12 held open, the next is closed at once.
pids=()
for _ in $(seq 12); do
    { sleep 5; } | openssl s_client -connect 127.0.0.1:$port -quiet -CAfile $vdir/ca.pem \
        -cert $vdir/clients/acme/client.pem -key $vdir/clients/acme/client.key >/dev/null 2>&1 &
    pids+=($!)
done
sleep 1.5
rc=0; curl -sS --max-time 3 --cacert $vdir/ca.pem --cert $vdir/clients/acme/client.pem \
    --key $vdir/clients/acme/client.key "$url/healthz" >/dev/null 2>&1 || rc=$?
if ((rc != 0)); then pass "connection over the cap refused"; else fail "connection over the cap served"; fi
for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
wait "${pids[@]}" 2>/dev/null || true
sleep 0.5
expect_eq "served again once connections close" "$(as acme "$url/healthz")" 200

expect_eq "bad input changed nothing in the registry" "$(registry)" "$before"
expect_eq "device count unchanged" "$($V list-devices --dir $vdir --json | jq length)" "$devices_before"
expect_eq "rejected imports are audited" \
    "$($V audit --dir $vdir --json --limit 100000 | jq '[.[] | select(.outcome == "rejected")] | length')" 6

# ---- revocation and transfer -------------------------------------------------------------------
check "revoke-device" $V revoke-device "$id_acme2" --reason "RoT key extracted" --dir $vdir
rc=0; $V revoke-device "$id_acme2" --reason again --dir $vdir 2>err.txt || rc=$?
expect_eq "revoking twice fails with one line" "$rc:$(wc -l <err.txt)" "1:1"
expect_eq "revoked device: contraindicated" "$(verify acme "$dev_acme2"; payload | jq -c .reasons)" \
    '200["revoked"]'
expect_eq "show-device says revoked" "$($V show-device "$id_acme2" --dir $vdir --json | jq -r .status)" revoked

check "transfer one device to beta" $V transfer --device "$id_acme" --to beta --dir $vdir
expect_eq "the new owner gets verdicts" "$(verify beta "$dev_acme"; jq -r .status body.json)" 200affirming
expect_eq "the old owner does not" "$(verify acme "$dev_acme"; payload | jq -c .reasons)" '200["unknown_device"]'
expect_eq "batch transfer moves the rest" "$($V transfer --batch b-acme --factory fab-1 --to beta --dir $vdir --json | jq .moved)" 4
rc=0; $V transfer --batch b-acme --to nobody --dir $vdir 2>err.txt || rc=$?
expect_eq "transfer to an unknown OEM fails" "$rc" 1
$V audit --dir $vdir --device "$id_acme" --json >audit.json
expect_eq "the device's history" \
    "$(jq -r '[.[] | .event] | unique | join(",")' audit.json)" "device.transfer,verdict"
expect_eq "transfer records the previous owner" \
    "$(jq -r '[.[] | select(.event == "device.transfer")] | .[0].reason' audit.json)" "from=acme to=beta"

# ---- metrics, health, shutdown -------------------------------------------------------------------
expect_eq "healthz" "$(as acme "$url/healthz"; jq -r .status body.json)" 200ok
as acme "$url/metrics" >/dev/null
grep -q '^trellis_verifier_verdicts_total{status="affirming"} [1-9]' body.json && pass "metrics count verdicts" ||
    fail "metrics count verdicts"
grep -q '^trellis_verifier_verify_duration_seconds_count [1-9]' body.json && pass "metrics latency histogram" ||
    fail "metrics latency histogram"
grep -q '^trellis_verifier_manifests_total{outcome="rejected"} 5' body.json && pass "metrics count rejections" ||
    fail "metrics count rejections"
# ---- large manifests, uploaded in parts ---------------------------------------------------------
# Over 1 MiB, `trellis factory upload` switches to POST /v1/manifests/uploads + PUT parts +
# commit; the verifier's parts are at most manifest-max-body (64 KiB here): ~17 parts.
$trellis factory make --factory fab --count 5800 --model T-300 --owner acme --batch b-parts \
    --out run-parts --progress 1000000 >/dev/null
# Bytes changed after signing, past the first parts: refused at the commit, nothing changed.
before=$(registry)
sed '3000s/"T-300"/"T-301"/' run-parts/manifest.jsonl >parts-tampered.jsonl
rc=0; fup parts-tampered.jsonl >tampered.out 2>err.txt || rc=$?
expect_eq "a tampered large manifest is refused" "$rc:$(jq -r .detail tampered.out | grep -c 'sha256 does not match')" "1:1"
expect_eq "a refused upload changes nothing" "$(registry)" "$before"
expect_eq "a large manifest imports in parts" \
    "$(fup run-parts/manifest.jsonl | jq -r '.status + " " + (.added | tostring)')" "imported 5800"
expect_eq "the same large manifest again is a no-op" "$(fup run-parts/manifest.jsonl | jq -r .status)" \
    already_present
before=$(registry)
# The protocol by hand: bad parts are refused and the upload carries on; another tenant cannot
# touch it; an abandoned upload is gone.
expect_eq "open an upload" "$(as fab-1 -X POST "$url/v1/manifests/uploads"; jq -r .part_max body.json)" 20165536
up=$(jq -r .upload body.json)
head -c 1000 run-never/manifest.jsonl >part1.bin
put() { # put CLIENT PART FILE [content-type]
    as "$1" -X PUT -H "Content-Type: ${4:-application/octet-stream}" --data-binary @"$3" \
        "$url/v1/manifests/uploads/part?upload=$up&part=$2"
}
expect_eq "part 1" "$(put fab-1 1 part1.bin; jq -r .next_part body.json)" 2002
expect_eq "a part out of order: 409" "$(put fab-1 3 part1.bin)" 409
head -c 65537 /dev/zero >part-big.bin
expect_eq "an oversize part: 413" "$(put fab-1 2 part-big.bin)" 413
expect_eq "a part of the wrong type: 415" "$(put fab-1 2 part1.bin text/plain)" 415
expect_eq "an OEM cannot feed a factory's upload: 404" "$(put acme 2 part1.bin)" 404
expect_eq "the upload is where it was" \
    "$(as fab-1 "$url/v1/manifests/uploads?upload=$up"; jq -r .next_part body.json)" 2002
expect_eq "abandon it" "$(as fab-1 -X DELETE "$url/v1/manifests/uploads?upload=$up"; jq -r .status body.json)" \
    200abandoned
expect_eq "an abandoned upload takes no part: 404" "$(put fab-1 2 part1.bin)" 404
expect_eq "none of it changed the registry" "$(registry)" "$before"
expect_eq "the abandonment is audited" \
    "$($V audit --dir $vdir --json --limit 100000 | jq '[.[] | select(.event == "manifest.upload" and .outcome == "abandoned")] | length')" 1

kill -TERM "$server_pid"
rc=0; wait "$server_pid" || rc=$?
server_pid=""
expect_eq "SIGTERM stops the verifier cleanly" "$rc" 0
expect_eq "every verdict is in the audit log" \
    "$($V audit --dir $vdir --json --limit 100000 | jq '[.[] | select(.event == "verdict")] | length')" 7

if ((failures > 0)); then
    echo "$failures check(s) failed" >&2
    exit 1
fi
echo "all checks passed"
