#!/usr/bin/env bash
# The registrar end to end against a real verifier process and a real registrar process over TLS
# on loopback: devices made by `trellis factory` (their evidence signed by their RoT keys through
# `trellis factory evidence`), the OEM joined with the bundle `trellis verifier add-oem` wrote.
# First enrollment, the certificate profile (openssl x509 -text) and chain (openssl verify),
# every bad input of issue 5 item 7 with its error code and an unchanged registry, renewal over
# mutual TLS, factory reset, revocation and the CRL (served and written for the broker), a
# hundred identical requests racing, the rate limit, and the operator commands.
set -euo pipefail

build=${TRELLIS_BUILD_DIR:?TRELLIS_BUILD_DIR must name the build directory}
trellis="$build/tools/trellis/trellis"
[[ -x "$trellis" ]] || { echo "not built: $trellis" >&2; exit 1; }
for tool in jq openssl curl xxd; do
    command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/trellis-40-registrar.XXXXXX")
verifier_pid=""
registrar_pid=""
stop() { # stop PID
    [[ -n "$1" ]] || return 0
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
cleanup() {
    stop "$registrar_pid"
    stop "$verifier_pid"
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
wait_listening() { # wait_listening FILE: prints the port
    for _ in $(seq 150); do grep -q '^listening on' "$1" 2>/dev/null && break; sleep 0.1; done
    sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$1"
}

V="$trellis verifier"
R="$trellis registrar"

# ---- the verifier, its tenants, a factory and its devices ------------------------------------
$V init --dir v >/dev/null
$V add-oem acme --dir v >/dev/null
$V add-oem globex --dir v >/dev/null
$trellis factory init --dir fab >/dev/null
$V add-factory fab --key fab/factory_pub.pem --dir v >/dev/null
export TRELLIS_FACTORY_DIR=$work/fab
start_verifier() {
    $V serve --dir v --port "${vport:-0}" --workers 2 --no-durable --log-level warn \
        >v.out 2>v.err &
    verifier_pid=$!
    vport=$(wait_listening v.out)
    [[ -n "$vport" ]] || { cat v.err >&2; echo "verifier did not start" >&2; exit 1; }
}
start_verifier
vurl=https://127.0.0.1:$vport
fab_tls=(--cert v/clients/fab/client.pem --key v/clients/fab/client.key --ca v/ca.pem)
$trellis factory make --count 8 --model T-100 --owner acme --batch b-acme --serial-prefix A- \
    --out run-acme >/dev/null
$trellis factory make --count 1 --model T-100 --owner globex --batch b-globex \
    --serial-prefix G- --out run-globex >/dev/null
$trellis factory make --count 1 --model T-100 --owner acme --batch b-never \
    --serial-prefix N- --out run-never >/dev/null # never uploaded: unknown to the verifier
$trellis factory upload run-acme/manifest.jsonl --verifier "$vurl" "${fab_tls[@]}" >/dev/null
$trellis factory upload run-globex/manifest.jsonl --verifier "$vurl" "${fab_tls[@]}" >/dev/null
dev() { echo "run-acme/devices/A-00000$1"; }
devid() { jq -r .device_id "$1/factory.json"; }

# ---- registrar init and join ------------------------------------------------------------------
check "registrar init" $R init --oem acme --dir r
for f in root/root.key root/root.pem trust.pem ca.key ca.pem ca-chain.pem server.key server.pem \
    challenge.key registry.db crl.pem registrar.conf; do
    [[ -f r/$f ]] || fail "init wrote $f"
done
expect_eq "keys are 0600" "$(stat -c %a r/root/root.key r/ca.key r/server.key r/challenge.key | sort -u)" 600
rc=0; $R init --oem acme --dir r 2>err.txt || rc=$?
expect_eq "a second init is refused" "$rc" 1
rc=0; $R join --dir r --verifier "$vurl" --bundle v/clients/globex 2>err.txt || rc=$?
expect_eq "joining with another OEM's bundle is refused" "$rc:$(grep -c globex err.txt)" "1:1"
out=$($R join --dir r --verifier "$vurl" --bundle v/clients/acme --json)
kid=$(curl -sS --cacert v/ca.pem --cert v/clients/acme/client.pem --key v/clients/acme/client.key \
    "$vurl/v1/verdict-key" | jq -r .kid)
expect_eq "join pins the verifier's verdict key" "$(jq -r .verdict_key_kid <<<"$out")" "$kid"
expect_eq "join sets verifier-url" "$(grep -c "^verifier-url = $vurl\$" r/registrar.conf)" 1

start_registrar() { # start_registrar [FLAGS...]
    $R serve --dir r --port "${rport:-0}" --workers 2 --no-durable --log-level warn \
        --challenge-ttl 8s "$@" >r.out 2>>r.err &
    registrar_pid=$!
    rport=$(wait_listening r.out)
    [[ -n "$rport" ]] || { cat r.err >&2; echo "registrar did not start" >&2; exit 1; }
}
start_registrar --rate-limit 0
rurl=https://127.0.0.1:$rport
pass "registrar serves on $rport"

# ---- a device's side of enrollment, with curl and openssl ---------------------------------------
get() { curl -sS --cacert r/trust.pem -o body.out -w '%{http_code}' "$rurl$1"; }
challenge() { # challenge.bin
    curl -sS --cacert r/trust.pem "$rurl/v1/challenge" | jq -r .challenge | unb64url >challenge.bin
}
csr_for() { # csr_for KEYFILE CN [openssl req options...]: csr.der
    local key=$1 cn=$2
    shift 2
    openssl req -new -key "$key" -subj "/CN=$cn" -outform DER -out csr.der "$@" 2>/dev/null
}
evidence_of() { # evidence_of DEVICE_DIR: ev.bin over challenge.bin and csr.der
    $trellis factory evidence --device "$1" --challenge "$(xxd -p -c 1000 challenge.bin)" \
        --csr csr.der --out ev.bin >/dev/null
}
post_enroll() { # post_enroll [curl options]: prints the status, body in resp.json
    printf '{"csr":"%s","evidence":"%s","challenge":"%s"}' "$(b64url <csr.der)" \
        "$(b64url <ev.bin)" "$(b64url <challenge.bin)" >enroll.json
    curl -sS --cacert r/trust.pem -H 'Content-Type: application/json' --data-binary @enroll.json \
        -D headers.txt -o resp.json -w '%{http_code}' "$@" "$rurl/v1/enroll"
}
enroll() { # enroll DEVICE_DIR KEYFILE: a normal first-time enrollment, prints the status
    challenge
    csr_for "$2" "$(devid "$1")"
    evidence_of "$1"
    post_enroll
}
code() { jq -r .error resp.json; }
registry() { # a fingerprint of the registry: devices and certificates
    local id
    $R devices --dir r --json | jq -c '[.[] | [.device_id, .status, .enrollments, .serial]]'
}
serial_of() { openssl x509 -in "$1" -noout -serial | cut -d= -f2 | tr 'A-F' 'a-f'; }

# ---- first enrollment and the certificate profile -----------------------------------------------
d1=$(dev 1)
id1=$(devid "$d1")
openssl ecparam -name prime256v1 -genkey -noout -out op1.key
expect_eq "device 1 enrolls" "$(enroll "$d1" op1.key)" 201
jq -r .certificate resp.json >chain1.pem
expect_eq "the answer names the device" "$(jq -r .device_id resp.json)" "$id1"
openssl x509 -in chain1.pem -noout -text >cert1.txt
grep -q "Version: 3 (0x2)" cert1.txt && pass "v3" || fail "v3"
grep -q "Signature Algorithm: ecdsa-with-SHA256" cert1.txt && pass "ecdsa-with-SHA256" || fail "signature algorithm"
grep -q "Subject: O = acme, CN = $id1\$" cert1.txt && pass "subject O = OEM, CN = device id" || fail "subject"
grep -A1 "Basic Constraints: critical" cert1.txt | grep -q "CA:FALSE" && pass "basicConstraints CA:FALSE critical" || fail "basicConstraints"
grep -A1 "Key Usage: critical" cert1.txt | grep -q "Digital Signature$" && pass "keyUsage digitalSignature critical" || fail "keyUsage"
grep -A1 "Extended Key Usage:" cert1.txt | grep -q "TLS Web Client Authentication$" && pass "EKU clientAuth" || fail "EKU"
grep -q "URI:urn:trellis:device:$id1\$" cert1.txt && pass "SAN URI" || fail "SAN URI"
grep -q "Subject Key Identifier" cert1.txt && grep -q "Authority Key Identifier" cert1.txt && pass "SKI and AKI" || fail "SKI/AKI"
serial1=$(serial_of chain1.pem)
expect_eq "serial: 16 bytes, positive" "$(printf %s "$serial1" | wc -c):$(printf %s "$serial1" | cut -c1 | grep -c '[0-7]')" "32:1"
nb=$(date -d "$(openssl x509 -in chain1.pem -noout -startdate | cut -d= -f2)" +%s)
na=$(date -d "$(openssl x509 -in chain1.pem -noout -enddate | cut -d= -f2)" +%s)
now=$(date +%s)
expect_eq "notBefore backdated about a minute" "$(( (now - nb) >= 55 && (now - nb) <= 90 ))" 1
expect_eq "validity 90 days by default" "$(( (na - nb - 60) / 86400 ))" 90
expect_eq "the key is the CSR's" "$(openssl x509 -in chain1.pem -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum)" \
    "$(openssl pkey -in op1.key -pubout -outform DER | sha256sum)"
check "openssl verify: chain to the pinned root, client purpose" \
    openssl verify -CAfile r/trust.pem -untrusted r/ca.pem -purpose sslclient chain1.pem
check "GET /v1/ca is the device CA chain" cmp <(curl -sS --cacert r/trust.pem "$rurl/v1/ca") r/ca-chain.pem
expect_eq "the same request again: replayed" "$(post_enroll)" 409
expect_eq "  error code" "$(code)" replayed

# ---- bad input: each refused with its code, the registry unchanged ------------------------------
d2=$(dev 2)
id2=$(devid "$d2")
openssl ecparam -name prime256v1 -genkey -noout -out op2.key
before=$(registry)
refuse() { # refuse NAME STATUS CODE: the last post_enroll
    local status=$1
    shift
    local name=$1 want_status=$2 want_code=$3
    expect_eq "$name: $want_status $want_code" "$status $(code)" "$want_status $want_code"
}
challenge; csr_for op2.key "$id2"; evidence_of "$d2"
refuse "$(curl -sS --cacert r/trust.pem -H 'Content-Type: application/json' -d '{"csr":' -o resp.json -w '%{http_code}' "$rurl/v1/enroll")" \
    "malformed JSON" 400 bad_request
refuse "$(curl -sS --cacert r/trust.pem -H 'Content-Type: text/plain' --data-binary @enroll.json -o resp.json -w '%{http_code}' "$rurl/v1/enroll")" \
    "wrong content type" 415 bad_request
head -c 70000 /dev/zero | tr '\0' ' ' >big.json
refuse "$(curl -sS --cacert r/trust.pem -H 'Content-Type: application/json' --data-binary @big.json -o resp.json -w '%{http_code}' "$rurl/v1/enroll")" \
    "oversize body" 413 too_large
refuse "$(curl -sS --cacert r/trust.pem -H 'Content-Type: application/json' -d '{"csr":"a+b/","evidence":"AA","challenge":"AA"}' -o resp.json -w '%{http_code}' "$rurl/v1/enroll")" \
    "bad base64" 400 bad_request

bad_csr() { # bad_csr NAME KEYFILE [openssl req options...]: evidence bound to the bad CSR
    local name=$1 key=$2
    shift 2
    challenge
    csr_for "$key" "$id2" "$@"
    evidence_of "$d2"
    refuse "$(post_enroll)" "$name" 400 bad_csr
}
openssl genrsa -out rsa.key 2048 2>/dev/null
openssl ecparam -name prime192v1 -genkey -noout -out p192.key
openssl ecparam -name secp256k1 -genkey -noout -out k1.key
openssl ecparam -name prime256v1 -param_enc explicit -genkey -noout -out explicit.key
bad_csr "CSR with an RSA key" rsa.key
bad_csr "CSR with a P-192 key" p192.key
bad_csr "CSR with a secp256k1 key" k1.key
bad_csr "CSR with an explicit-parameter P-256 key" explicit.key
bad_csr "CSR signed with SHA-1" op2.key -sha1
bad_csr "CSR with a critical extension" op2.key -addext "keyUsage=critical,digitalSignature"
bad_csr "CSR asking to be a CA" op2.key -addext "basicConstraints=CA:TRUE"
# A CSR whose self-signature fails (its last byte flipped), bound by valid evidence.
challenge; csr_for op2.key "$id2"
python3 -c 'import sys; b=bytearray(open("csr.der","rb").read()); b[-1]^=1; open("csr.der","wb").write(b)'
evidence_of "$d2"
refuse "$(post_enroll)" "CSR whose signature fails" 400 bad_csr
# The subject is another device than the one the evidence names.
challenge; csr_for op2.key "$id1"; evidence_of "$d2"
refuse "$(post_enroll)" "CSR subject not matching the evidence" 400 bad_csr
# Evidence naming device 2 but signed by device 3's RoT key.
challenge; csr_for op2.key "$id2"
ueid2=$(openssl pkey -in "$d2/rot_key.pem" -pubout -outform DER | tail -c 65 | sha256sum | cut -c1-64)
$trellis token create --key "$(dev 3)/rot_key.pem" --claims "{\"ueid\":\"01$ueid2\"}" \
    --nonce "$(cat challenge.bin csr.der | sha256sum | cut -c1-64)" --out ev.bin
refuse "$(post_enroll)" "evidence signed by another device" 400 bad_evidence
# Evidence altered in transit (a bit of its signature).
challenge; csr_for op2.key "$id2"; evidence_of "$d2"
python3 -c 'import sys; b=bytearray(open("ev.bin","rb").read()); b[-1]^=1; open("ev.bin","wb").write(b)'
refuse "$(post_enroll)" "tampered evidence" 400 bad_evidence
# Evidence for another challenge (made before a fresh one was fetched).
challenge; csr_for op2.key "$id2"; evidence_of "$d2"; challenge
refuse "$(post_enroll)" "evidence not bound to the challenge" 400 bad_evidence
# A challenge this registrar never issued, and one that expired.
challenge; head -c 57 /dev/urandom >challenge.bin; csr_for op2.key "$id2"; evidence_of "$d2"
refuse "$(post_enroll)" "forged challenge" 400 bad_challenge
challenge; csr_for op2.key "$id2"; evidence_of "$d2"; sleep 9
refuse "$(post_enroll)" "stale challenge" 400 bad_challenge
# Devices the verifier does not know, or knows as another OEM's: the same answer.
openssl ecparam -name prime256v1 -genkey -noout -out opx.key
for d in run-never/devices/N-000001 run-globex/devices/G-000001; do
    challenge; csr_for opx.key "$(devid $d)"; evidence_of "$d"
    refuse "$(post_enroll)" "device unknown to the verifier ($(basename $d))" 404 unknown_device
done
expect_eq "no bad input changed the registry" "$(registry)" "$before"

# ---- the verifier down, or answering with a verdict that does not verify ------------------------
stop "$verifier_pid"
verifier_pid=""
challenge; csr_for op2.key "$id2"; evidence_of "$d2"
refuse "$(post_enroll)" "verifier down" 503 unavailable
expect_eq "  with Retry-After" "$(grep -ci '^retry-after: 1' headers.txt)" 1
start_verifier
openssl ecparam -name prime256v1 -genkey -noout | openssl pkey -pubout -out wrong-verdict.pem
cp r/verifier/verdict.pub.pem right-verdict.pem
cp wrong-verdict.pem r/verifier/verdict.pub.pem
stop "$registrar_pid"
start_registrar --rate-limit 0
challenge; csr_for op2.key "$id2"; evidence_of "$d2"
refuse "$(post_enroll)" "verdict not signed by the pinned key" 503 unavailable
cp right-verdict.pem r/verifier/verdict.pub.pem
stop "$registrar_pid"
start_registrar --rate-limit 0
expect_eq "still nothing recorded" "$(registry)" "$before"
expect_eq "device 2 enrolls once the verifier is back" "$(enroll "$d2" op2.key)" 201

# ---- renewal over mutual TLS -------------------------------------------------------------------
openssl ecparam -name prime256v1 -genkey -noout -out op1b.key
csr_for op1b.key "$id1"
printf '{"csr":"%s"}' "$(b64url <csr.der)" >reenroll.json
reenroll() { # reenroll CERT KEY: prints the status
    curl -sS --cacert r/trust.pem --cert "$1" --key "$2" -H 'Content-Type: application/json' \
        --data-binary @reenroll.json -o resp.json -w '%{http_code}' "$rurl/v1/reenroll"
}
expect_eq "reenroll without a certificate" "$(curl -sS --cacert r/trust.pem -H 'Content-Type: application/json' --data-binary @reenroll.json -o resp.json -w '%{http_code}' "$rurl/v1/reenroll") $(code)" "401 bad_request"
expect_eq "reenroll with the device certificate" "$(reenroll chain1.pem op1.key)" 201
jq -r .certificate resp.json >chain1b.pem
serial1b=$(serial_of chain1b.pem)
expect_eq "  a new certificate" "$([[ $serial1b != "$serial1" ]] && echo new)" new
check "  for the new key" cmp <(openssl x509 -in chain1b.pem -noout -pubkey) <(openssl pkey -in op1b.key -pubout)
expect_eq "the old certificate renews no more" "$(reenroll chain1.pem op1.key) $(code)" "403 revoked"
sleep 1.2 # a CRL published less than a second earlier defers the next one to the writer's tick
curl -sS --cacert r/trust.pem "$rurl/v1/crl" -o crl.der
openssl crl -inform DER -in crl.der -noout -text >crl.txt
expect_eq "GET /v1/crl lists the old serial (superseded)" \
    "$(grep -i -A4 "Serial Number: $serial1" crl.txt | grep -c Superseded)" 1
check "the CRL verifies with the device CA" openssl crl -inform DER -in crl.der -noout -CAfile r/ca-chain.pem
cat r/trust.pem r/ca.pem r/crl.pem >trust-crl.pem
rc=0; openssl verify -crl_check -CAfile trust-crl.pem chain1.pem >/dev/null 2>&1 || rc=$?
expect_eq "openssl verify -crl_check refuses the old certificate (crl.pem)" "$rc" 2
check "and accepts the new one" openssl verify -crl_check -CAfile trust-crl.pem -untrusted r/ca.pem chain1b.pem

# ---- factory reset, revocation, reinstatement --------------------------------------------------
d3=$(dev 3)
id3=$(devid "$d3")
openssl ecparam -name prime256v1 -genkey -noout -out op3.key
expect_eq "device 3 enrolls" "$(enroll "$d3" op3.key)" 201
jq -r .certificate resp.json >chain3.pem
expect_eq "device 3 enrolls again after a factory reset (replace)" "$(enroll "$d3" op3.key)" 201
expect_eq "  the audit log flags it" \
    "$($R audit --dir r --device "$id3" --json | jq -r '[.[] | select(.event == "enroll") | .outcome] | join(",")')" \
    "ok,replaced"
expect_eq "  the first certificate is revoked" \
    "$($R show "$id3" --dir r --json | jq -r '[.certificates[] | has("revoked")] | join(",")')" "true,false"

out=$($R revoke "$id3" --reason keyCompromise --dir r --json)
expect_eq "revoke" "$(jq -r '.status + " " + .code + " " + (.certificates_revoked|tostring)' <<<"$out")" \
    "revoked keyCompromise 1"
expect_eq "the CRL file for the broker lists every certificate of device 3" \
    "$(openssl crl -in r/crl.pem -noout -text | grep -c 'Serial Number')" 3
sleep 1.5
curl -sS --cacert r/trust.pem "$rurl/v1/crl" | openssl crl -inform DER -noout -text >crl.txt
expect_eq "the service serves the new CRL within its tick" "$(grep -c 'Serial Number' crl.txt)" 3
expect_eq "a revoked device cannot enroll" "$(enroll "$d3" op3.key) $(code)" "403 revoked"
rc=0; $R revoke "$id3" --reason again --dir r 2>err.txt || rc=$?
expect_eq "revoking twice is refused" "$rc" 1
check "reinstate" $R reinstate "$id3" --dir r
expect_eq "a reinstated device enrolls again" "$(enroll "$d3" op3.key)" 201

# ---- a hundred identical requests: one certificate -------------------------------------------------
d4=$(dev 4)
id4=$(devid "$d4")
openssl ecparam -name prime256v1 -genkey -noout -out op4.key
challenge; csr_for op4.key "$id4"; evidence_of "$d4"
printf '{"csr":"%s","evidence":"%s","challenge":"%s"}' "$(b64url <csr.der)" \
    "$(b64url <ev.bin)" "$(b64url <challenge.bin)" >race.json
racers=()
for i in $(seq 100); do
    curl -sS --cacert r/trust.pem -H 'Content-Type: application/json' --data-binary @race.json \
        -o /dev/null -w '%{http_code}\n' "$rurl/v1/enroll" >race.out.$i &
    racers+=($!)
done
for p in "${racers[@]}"; do wait "$p" || true; done
expect_eq "100 identical requests: one 201, 99 replayed" \
    "$(cat race.out.* | sort | uniq -c | awk '{print $2 "x" $1}' | paste -sd,)" "201x1,409x99"
expect_eq "one certificate for device 4" "$($R show "$id4" --dir r --json | jq '.certificates | length')" 1

# ---- operator commands ----------------------------------------------------------------------------
expect_eq "devices lists 4 devices" "$($R devices --dir r --json | jq length)" 4
expect_eq "show: device 1 has two certificates" "$($R show "$id1" --dir r --json | jq '.certificates | length')" 2
check "devices (text)" $R devices --dir r
check "audit (text)" $R audit --dir r
expect_eq "audit --device keeps to one device" \
    "$($R audit --dir r --device "$id1" --json | jq -r '[.[].device] | unique | join(",")')" "$id1"
check "crl publishes" $R crl --dir r
rc=0; $R show 0000 --dir r 2>err.txt || rc=$?
expect_eq "show refuses a bad id" "$rc" 2
expect_eq "/healthz" "$(get /healthz) $(jq -r .status body.out)" "200 ok"
get /metrics >/dev/null
expect_eq "/metrics counts the enrollments" \
    "$(grep '^trellis_registrar_enrollments_total{outcome="replayed"}' body.out | awk '{print ($2 >= 99)}')" 1

# ---- rate limit ------------------------------------------------------------------------------------
stop "$registrar_pid"
start_registrar --rate-limit 1 --rate-burst 2
codes=$(for i in 1 2 3; do curl -sS --cacert r/trust.pem -D h.$i -o /dev/null -w '%{http_code} ' "$rurl/v1/challenge"; done)
expect_eq "rate limit: the third request in a burst of two" "$codes" "200 200 429 "
expect_eq "  answered with Retry-After" "$(grep -ci '^retry-after: 1' h.3)" 1

echo "registrar integration: $failures failure(s)"
exit $((failures > 0))
