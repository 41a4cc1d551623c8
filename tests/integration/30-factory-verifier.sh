#!/usr/bin/env bash
# The factory end to end against a running verifier, with both RoT backends: `trellis factory
# make` into device directories (file) and into a SoftHSM2 token the script creates (PKCS#11),
# `factory verify` and `factory upload` over mutual TLS, every device's evidence checked with
# `trellis token check` and verified by the verifier: affirming for its own OEM, unknown_device
# for any other. Then what must be refused: a manifest edited after signing, a RoT key that
# appears twice (a cloned chip, within a manifest and against a known device), a resumed batch
# with other options; and device ids unique across batches. Last, 10,000 file-backend devices
# in well under a minute.
set -euo pipefail

build=${TRELLIS_BUILD_DIR:?TRELLIS_BUILD_DIR must name the build directory}
trellis="$build/tools/trellis/trellis"
[[ -x "$trellis" ]] || { echo "not built: $trellis" >&2; exit 1; }
for tool in jq openssl curl od softhsm2-util pkcs11-tool; do
    command -v "$tool" >/dev/null || { echo "$tool is required (scripts/install-deps)" >&2; exit 1; }
done

# The SoftHSM2 module: where distributions install it, else wherever its package put it.
softhsm_module() {
    local c
    for c in "${TRELLIS_TEST_SOFTHSM2:-}" /usr/lib/softhsm/libsofthsm2.so \
        /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so \
        /usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so /usr/lib64/pkcs11/libsofthsm2.so \
        /usr/local/lib/softhsm/libsofthsm2.so; do
        [[ -n "$c" && -r "$c" ]] && { echo "$c"; return 0; }
    done
    dpkg -L libsofthsm2 softhsm2 2>/dev/null | grep -m1 '/libsofthsm2\.so$' || return 1
}
module=$(softhsm_module) || { echo "SoftHSM2 is not installed (scripts/install-deps)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/trellis-30-factory.XXXXXX")
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
# expect_fail NAME STATUS PATTERN COMMAND...: exit STATUS, one line on stderr matching PATTERN.
expect_fail() {
    local name=$1 want=$2 pattern=$3
    shift 3
    local rc=0
    "$@" >out.txt 2>err.txt || rc=$?
    if [[ $rc -eq $want && $(wc -l <err.txt) -eq 1 ]] && grep -Eq -- "$pattern" err.txt; then
        pass "$name"
    else
        fail "$name (status $rc, want $want; stderr: $(cat err.txt))"
    fi
}
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
unb64url() {
    local s
    s=$(tr '_-' '/+')
    while ((${#s} % 4)); do s="$s="; done
    printf '%s' "$s" | base64 -d
}
tohex() { od -An -tx1 -v | tr -d ' \n'; }               # bytes on stdin -> lowercase hex
fromhex() { printf '%b' "$(sed 's/../\\x&/g' <<<"$1")"; } # hex argument -> bytes

# ---- a PKCS#11 token of our own ----------------------------------------------------------------
mkdir tokens
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' \
    "$work" >softhsm2.conf
export SOFTHSM2_CONF=$work/softhsm2.conf
export TOKEN_PIN=pin-Zq9x # not hex: it cannot appear inside a device id by chance
softhsm2-util --init-token --free --label trellis-it --pin "$TOKEN_PIN" --so-pin 87654321 >/dev/null

# ---- verifier, tenants, factory -----------------------------------------------------------------
V="$trellis verifier"
vdir=v
$V init --dir $vdir --id verifier-30 >/dev/null
$V add-oem acme --dir $vdir >/dev/null
$V add-oem beta --dir $vdir >/dev/null
check "factory init" $trellis factory init --dir fab-1
expect_eq "factory key is 0600" "$(stat -c %a fab-1/factory_key.pem)" 600
expect_fail "a second init never replaces the key" 1 "already holds a factory" \
    $trellis factory init --dir fab-1
$V add-factory fab-1 --key fab-1/factory_pub.pem --dir $vdir >/dev/null
export TRELLIS_FACTORY_DIR=$work/fab-1

$V serve --dir $vdir --port 0 --workers 2 --no-durable --log-level warn >serve.out 2>serve.err &
server_pid=$!
for _ in $(seq 100); do grep -q '^listening on' serve.out 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' serve.out)
[[ -n "$port" ]] || { cat serve.err >&2; echo "verifier did not start" >&2; exit 1; }
url=https://127.0.0.1:$port
fab_tls=(--cert $vdir/clients/fab-1/client.pem --key $vdir/clients/fab-1/client.key
    --ca $vdir/clients/fab-1/ca.pem)
fup() { $trellis factory upload "$1" --verifier "$url" "${fab_tls[@]}" --json; }

# ---- batches on both backends -------------------------------------------------------------------
check "make: file backend" $trellis factory make --count 6 --model T-100 --owner acme \
    --batch b-file --serial-prefix F- --registrar-url https://registrar.example:8443 \
    --registrar-ca $vdir/ca.pem --out run-file
check "make: PKCS#11 backend" $trellis factory make --count 4 --model T-200 --owner acme \
    --batch b-hsm --serial-prefix H- --pkcs11-module "$module" --token-label trellis-it \
    --pin-env TOKEN_PIN --out run-hsm
check "make: a batch for the other OEM" $trellis factory make --count 3 --model T-100 \
    --owner beta --batch b-beta --serial-prefix B- --out run-beta
expect_eq "key files are 0600" "$(stat -c %a run-file/devices/*/rot_key.pem | sort -u)" 600
expect_eq "no key files for the token batch" "$(ls run-hsm/devices/*/ | grep -c rot_key || true)" 0
expect_eq "factory.json names the token key" \
    "$(jq -r .rot.uri run-hsm/devices/H-000001/factory.json)" \
    "pkcs11:token=trellis-it;object=H-000001;type=private?module-path=$module"
expect_eq "and never the PIN" "$(cat run-hsm/devices/*/factory.json | grep -c "$TOKEN_PIN" || true)" 0
expect_eq "the token holds 4 private keys" \
    "$(pkcs11-tool --module "$module" --token-label trellis-it --login --pin "$TOKEN_PIN" \
        --list-objects --type privkey 2>/dev/null | grep -c 'Private Key Object')" 4
for b in run-file run-hsm run-beta; do
    check "factory verify $b" $trellis factory verify $b/manifest.jsonl
done

# Device ids are unique within and across batches.
ids=$(for b in run-file run-hsm run-beta; do sed '1d;$d' $b/manifest.jsonl | jq -r .device_id; done)
expect_eq "13 devices, 13 distinct ids" "$(sort -u <<<"$ids" | wc -l)" 13
check "manifest ids are those of the devices" diff <(sed '1d;$d' run-file/manifest.jsonl | jq -r .device_id | sort) \
    <(jq -r .device_id run-file/devices/*/factory.json | sort)

# ---- upload -----------------------------------------------------------------------------------
expect_eq "upload file batch: imported" "$(fup run-file/manifest.jsonl | jq -r '.status + " " + (.devices|tostring)')" "imported 6"
expect_eq "upload token batch: imported" "$(fup run-hsm/manifest.jsonl | jq -r .status)" imported
expect_eq "upload beta batch: imported" "$(fup run-beta/manifest.jsonl | jq -r .status)" imported
expect_eq "uploading again: already present" "$(fup run-file/manifest.jsonl | jq -r .status)" already_present
out=$($trellis factory upload run-hsm/manifest.jsonl --verifier "$url" "${fab_tls[@]}")
expect_eq "plain output says already present" "$out" "run-hsm/manifest.jsonl: already present (imported before), 4 devices"
expect_eq "registry holds 13 devices" "$($V list-devices --dir $vdir --json | jq length)" 13

# ---- evidence: token check, and verdicts for the owner only ---------------------------------------
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout op.key \
    -subj /CN=device -outform DER -out csr.der 2>/dev/null
challenge=$(openssl rand -hex 32)
fromhex "$challenge" >challenge.bin
nonce=$(cat challenge.bin csr.der | sha256sum | cut -c1-64)
as() { # as CLIENT curl-args...
    local who=$1
    shift
    curl -sS --cacert $vdir/ca.pem --cert $vdir/clients/$who/client.pem \
        --key $vdir/clients/$who/client.key -o body.json -w '%{http_code}' "$@"
}
evidence() { # evidence DEVICE_DIR: ev.bin
    $trellis factory evidence --device "$1" --challenge "$challenge" --csr csr.der \
        --pin-env TOKEN_PIN --out ev.bin >/dev/null
}
verdict() { # verdict CLIENT: "status reasons" of ev.bin
    printf '{"evidence":"%s","csr":"%s","challenge":"%s"}' "$(b64url <ev.bin)" \
        "$(b64url <csr.der)" "$(b64url <challenge.bin)" >req.json
    local code
    code=$(as "$1" -X POST -H 'Content-Type: application/json' --data-binary @req.json "$url/v1/verify")
    printf '%s %s %s' "$code" "$(jq -r .status body.json)" \
        "$(jq -r .verdict body.json | cut -d. -f2 | unb64url | jq -c '[.device_id, .reasons]')"
}
for dev in run-file/devices/* run-hsm/devices/*; do
    serial=$(basename "$dev")
    id=$(jq -r .device_id "$dev/factory.json")
    # The device's public key exactly as the manifest records it, as a PEM for token check.
    point=$(grep -F "\"serial\":\"$serial\"" "${dev%/devices/*}/manifest.jsonl" | jq -r .rot_key | unb64url | tohex)
    fromhex "3059301306072a8648ce3d020106082a8648ce3d030107034200$point" |
        openssl pkey -pubin -inform DER -out pub.pem 2>/dev/null
    if ! evidence "$dev" 2>err.txt; then fail "evidence of $serial ($(cat err.txt))"; continue; fi
    if $trellis token check --token ev.bin --key pub.pem --nonce "$nonce" >check.json 2>err.txt; then
        pass "token check: $serial"
    else
        fail "token check: $serial ($(cat err.txt))"
    fi
    expect_eq "$serial: the firmware measurement is the trellis binary" \
        "$(grep -c "$(sha256sum "$(readlink -f "$trellis")" | cut -c1-64)" check.json)" 1
    expect_eq "$serial: affirming for acme" "$(verdict acme)" "200 affirming [\"$id\",[]]"
    expect_eq "$serial: nothing for beta" "$(verdict beta)" "200 contraindicated [\"$id\",[\"unknown_device\"]]"
done
evidence run-beta/devices/B-000001
expect_eq "beta's own device: affirming for beta" "$(verdict beta | cut -d' ' -f1,2)" "200 affirming"
expect_eq "beta's own device: nothing for acme" "$(verdict acme | cut -d' ' -f2)" contraindicated
expect_fail "evidence with a wrong PIN" 1 "CKR_PIN_INCORRECT" \
    $trellis factory evidence --device run-hsm/devices/H-000001 --challenge "$challenge" \
    --csr csr.der --pin 0000 --out ev.bin

# ---- refused at import ----------------------------------------------------------------------------
before=$($V list-devices --dir $vdir --json | sha256sum)
$trellis factory make --count 2 --model T-100 --owner acme --batch b-edit --serial-prefix E- \
    --out run-edit >/dev/null
sed '2s/"T-100"/"T-101"/' run-edit/manifest.jsonl >edited.jsonl
expect_fail "factory verify refuses the edited manifest" 1 "sha256 does not match" \
    $trellis factory verify edited.jsonl
expect_fail "the verifier refuses a manifest edited after signing" 1 "refused \(HTTP 400" \
    $trellis factory upload edited.jsonl --verifier "$url" "${fab_tls[@]}"

# A cloned chip: the key of an imported device again, under another serial.
point=$(sed -n 2p run-file/manifest.jsonl | jq -r .rot_key | unb64url | tohex)
printf '{"serial":"CLONE-1","model":"T-100","public_key":"%s"}\n' "$point" >clone.jsonl
check "a manifest for the clone can be signed" $trellis factory manifest --from-keys clone.jsonl \
    --owner acme --batch b-clone --out clone-manifest.jsonl
expect_fail "the verifier refuses a known RoT key under another serial" 1 "HTTP 409.*lines 2" \
    $trellis factory upload clone-manifest.jsonl --verifier "$url" "${fab_tls[@]}"
# The same key twice in one input never makes it into a manifest.
printf '{"serial":"C-1","model":"SE","public_key":"%s"}\n{"serial":"C-2","model":"SE","public_key":"%s"}\n' \
    "$point" "$point" >twice.jsonl
expect_fail "--from-keys refuses a key listed twice" 1 "line 2: the same public key as line 1" \
    $trellis factory manifest --from-keys twice.jsonl --owner acme --batch b-twice --out twice-m.jsonl
[[ ! -e twice-m.jsonl ]] && pass "and writes no manifest" || fail "and writes no manifest"
# And if one is signed anyway (by hand, here with openssl), the verifier refuses it.
{
    head -1 clone-manifest.jsonl | jq -c '.count = 2 | .batch = "b-twice"'
    rec=$(sed -n 2p clone-manifest.jsonl)
    echo "$rec"
    jq -c '.serial = "CLONE-2"' <<<"$rec"
} >twice-body.jsonl
digest=$(sha256sum twice-body.jsonl | cut -c1-64)
fromhex "$digest" >digest.bin
openssl pkeyutl -sign -inkey fab-1/factory_key.pem -in digest.bin -out sig.der
ints=$(openssl asn1parse -inform DER -in sig.der | sed -n 's/.*INTEGER *:\([0-9A-F]*\)$/\1/p')
raw=$(for i in $ints; do printf '%064s' "$i" | tr ' ' 0; done | tr 'A-F' 'a-f')
{
    cat twice-body.jsonl
    printf '{"sha256":"%s","signature":"%s"}\n' "$digest" "$(fromhex "$raw" | b64url)"
} >twice-signed.jsonl
expect_fail "factory verify finds the cloned key" 1 "same RoT key" $trellis factory verify twice-signed.jsonl
expect_fail "the verifier refuses a key twice in one manifest" 1 "refused \(HTTP 4.*lines 3" \
    $trellis factory upload twice-signed.jsonl --verifier "$url" "${fab_tls[@]}"
expect_eq "refused manifests changed nothing" "$($V list-devices --dir $vdir --json | sha256sum)" "$before"
kill -TERM "$server_pid"
wait "$server_pid" || true
server_pid=""

# ---- CLI errors: one line, exit 2 for a wrong command line, 1 for a failure -----------------------
expect_fail "make without --owner" 2 "are required" $trellis factory make --count 1 --model M --out x
expect_fail "make with a count of 0" 2 "--count" $trellis factory make --count 0 --model M --owner acme --out x
expect_fail "make with a bad owner" 1 "--owner" $trellis factory make --count 1 --model M --owner 'a b' --out x
expect_fail "--pin and --pin-env together" 2 "not both" $trellis factory make --count 1 --model M \
    --owner acme --out x --pkcs11-module "$module" --token-label t --pin 1 --pin-env TOKEN_PIN
expect_fail "upload over plain HTTP" 1 "https://" $trellis factory upload run-file/manifest.jsonl \
    --verifier http://127.0.0.1:1 "${fab_tls[@]}"
expect_fail "upload to nobody" 1 "127.0.0.1" $trellis factory upload run-file/manifest.jsonl \
    --verifier "$url" "${fab_tls[@]}"
expect_fail "unknown subcommand" 2 "unknown subcommand" $trellis factory frobnicate
expect_eq "factory --help" "$($trellis factory --help | head -1 | cut -c1-28)" "usage: trellis factory init "

# ---- an interrupted batch resumes; other options are refused ----------------------------------------
$trellis factory make --count 300 --model T-100 --owner acme --batch b-crash --serial-prefix K- \
    --out run-crash --progress 100000 >/dev/null 2>&1 &
crash_pid=$!
for _ in $(seq 200); do [[ $(ls run-crash/devices 2>/dev/null | wc -l) -ge 20 ]] && break; sleep 0.02; done
kill -9 $crash_pid 2>/dev/null || true
wait $crash_pid 2>/dev/null || true
if [[ -e run-crash/manifest.jsonl ]]; then
    pass "killed run left a whole manifest (it had finished)"
else
    pass "killed run left no manifest"
fi
expect_fail "resuming with another count is refused" 1 "another count" $trellis factory make \
    --count 301 --model T-100 --owner acme --serial-prefix K- --out run-crash
if [[ ! -e run-crash/manifest.jsonl ]]; then
    check "the same options resume" $trellis factory make --count 300 --model T-100 --owner acme \
        --serial-prefix K- --out run-crash
fi
check "the resumed batch verifies" $trellis factory verify run-crash/manifest.jsonl
expect_eq "and holds 300 devices" "$(sed '1d;$d' run-crash/manifest.jsonl | jq -r .device_id | sort -u | wc -l)" 300

# ---- 10,000 file-backend devices (speed is measured by bench/run-factory, not asserted here) -------
$trellis factory make --count 10000 --model T-100 --owner acme --batch b-10k --out run-10k \
    --json >10k.json 2>10k.err
expect_eq "10,000 devices made" "$(jq .devices 10k.json)" 10000
expect_eq "progress every 1,000 devices" "$(grep -c '^factory make: [0-9]*/10000 devices ([0-9]*/s)$' 10k.err)" 10
check "the 10,000-device manifest verifies" $trellis factory verify run-10k/manifest.jsonl

if ((failures > 0)); then
    echo "$failures check(s) failed" >&2
    exit 1
fi
echo "all checks passed"
