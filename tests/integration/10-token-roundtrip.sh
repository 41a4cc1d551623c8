#!/usr/bin/env bash
# `trellis token create` and `trellis token check` end to end, with keys made by the openssl CLI:
# a token round-trips, its JSON says what went in, and a wrong key, a wrong nonce and a changed
# byte are each refused with one line and exit status 1.
set -euo pipefail

build=${TRELLIS_BUILD_DIR:?TRELLIS_BUILD_DIR must name the build directory}
src=${TRELLIS_SOURCE_DIR:?TRELLIS_SOURCE_DIR must name the source directory}
trellis="$build/tools/trellis/trellis"
[[ -x "$trellis" ]] || { echo "not built: $trellis" >&2; exit 1; }
command -v jq >/dev/null || { echo "jq is required" >&2; exit 1; }
command -v openssl >/dev/null || { echo "openssl is required" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/trellis-10-token.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

source "$(dirname "${BASH_SOURCE[0]}")/assert.sh"
check() { # check NAME COMMAND...: the command must succeed
    local name=$1
    shift
    if "$@" >/dev/null; then pass "$name"; else fail "$name"; fi
}
# expect_status NAME STATUS REASON_PATTERN COMMAND...: exit status STATUS, exactly one line on
# stderr, matching REASON_PATTERN.
expect_status() {
    local name=$1 want=$2 pattern=$3
    shift 3
    local rc=0
    "$@" >out.txt 2>err.txt || rc=$?
    local lines
    lines=$(wc -l <err.txt)
    if [[ $rc -eq $want && $lines -eq 1 ]] && grep -Eq -- "$pattern" err.txt; then
        pass "$name"
    else
        fail "$name (status $rc, want $want; stderr: $(cat err.txt))"
    fi
}

openssl ecparam -name prime256v1 -genkey -noout -out key.pem 2>/dev/null
openssl ec -in key.pem -pubout -out pub.pem 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out other.pem 2>/dev/null
openssl ec -in other.pem -pubout -out other-pub.pem 2>/dev/null
nonce=$(openssl rand -hex 32)
other_nonce=$(openssl rand -hex 32)

# The public key as a JWK (RFC 7518 §6.2.1), from the 65-byte uncompressed point.
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
openssl ec -in key.pem -pubout -outform DER 2>/dev/null | tail -c 65 >point.bin
x=$(dd if=point.bin bs=1 skip=1 count=32 2>/dev/null | b64url)
y=$(dd if=point.bin bs=1 skip=33 count=32 2>/dev/null | b64url)
printf '{"kty":"EC","crv":"P-256","x":"%s","y":"%s"}\n' "$x" "$y" >pub.jwk

# design.md §3: ueid = 0x01 || SHA-256(point)
ueid="01$(sha256sum point.bin | cut -c1-64)"
self_hash=$(sha256sum "$trellis" | cut -c1-64)

# --help, --version, unknown command
check "trellis --help lists token" bash -c "'$trellis' --help | grep -q '^  token '"
check "trellis token --help" bash -c "'$trellis' token --help | grep -q 'trellis token create'"
check "trellis token create --help" bash -c "'$trellis' token create --help | grep -q -- '--nonce'"
check "trellis help token" bash -c "'$trellis' help token | grep -q 'trellis token check'"
check "trellis --version" bash -c "'$trellis' --version | grep -Eq '^trellis [0-9]+\.[0-9]+\.[0-9]+$'"
expect_status "unknown command exits 2" 2 "unknown command 'frobnicate'" "$trellis" frobnicate
rc=0
"$trellis" >/dev/null 2>&1 || rc=$?
if [[ $rc -eq 2 ]]; then pass "no command exits 2"; else fail "no command exits 2 (status $rc)"; fi
expect_status "unknown token subcommand exits 2" 2 "^trellis token: unknown subcommand" \
    "$trellis" token mangle
expect_status "missing --nonce exits 2" 2 "^trellis token create: --key and --nonce are required" \
    "$trellis" token create --key key.pem --out t.cbor
expect_status "short nonce exits 2" 2 "32, 48 or 64 bytes" \
    "$trellis" token create --key key.pem --nonce abcd --out t.cbor
expect_status "unknown option exits 2" 2 "unknown option" \
    "$trellis" token check --token t.cbor --key pub.pem --colour red

# create, then check with the PEM public key
check "create" "$trellis" token create --key key.pem --nonce "$nonce" --out token.cbor
check "token starts with tag 18 and an array of 4" \
    bash -c "[[ \$(head -c 2 token.cbor | od -An -tx1 | tr -d ' ') == d284 ]]"
check "check with PEM" bash -c "'$trellis' token check --token token.cbor --key pub.pem --nonce $nonce >claims.json"
check "JSON: profile" jq -e '.eat_profile == "tag:psacertified.org,2023:psa#tfm"' claims.json
check "JSON: nonce" jq -e --arg n "$nonce" '.eat_nonce == $n' claims.json
check "JSON: ueid from the key" jq -e --arg u "$ueid" '.ueid == $u' claims.json
check "JSON: lifecycle secured" jq -e '."psa-security-lifecycle" == 12288' claims.json
check "JSON: client id" jq -e '."psa-client-id" == -1' claims.json
check "JSON: boot seed 32 bytes" jq -e '."psa-boot-seed" | length == 64' claims.json
check "JSON: implementation id" \
    jq -e '."psa-implementation-id" == "0a398ffe5dd7d2453e1c47a968d5a3143965888a59bd078133e1db61cd247c00"' claims.json
check "JSON: measurement of the trellis binary" \
    jq -e --arg h "$self_hash" '."psa-software-components"[0]."measurement-value" == $h' claims.json
check "JSON: one component" jq -e '."psa-software-components" | length == 1' claims.json

# the private key file and a JWK work as verification keys too; stdin as the token
check "check with the private PEM" "$trellis" token check --token token.cbor --key key.pem
check "check with a JWK" bash -c "'$trellis' token check --token token.cbor --key pub.jwk --nonce $nonce | jq -e '.ueid' >/dev/null"
check "check from stdin" bash -c "'$trellis' token check --token - --key pub.pem <token.cbor >/dev/null"

# refusals: one line, exit 1
expect_status "wrong key" 1 "^trellis token check: ES256 signature does not verify" \
    "$trellis" token check --token token.cbor --key other-pub.pem
expect_status "wrong nonce" 1 "^trellis token check: the nonce in the token .* is not the expected one" \
    "$trellis" token check --token token.cbor --key pub.pem --nonce "$other_nonce"
# flip one byte of the signature and one of the payload
len=$(stat -c %s token.cbor)
for offset in $((len - 10)) 40; do
    cp token.cbor tampered.cbor
    byte=$(dd if=token.cbor bs=1 skip="$offset" count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
    printf "$(printf '\\%03o' $(((byte ^ 0x01) & 0xff)))" |
        dd of=tampered.cbor bs=1 seek="$offset" conv=notrunc 2>/dev/null
    expect_status "tampered byte at $offset" 1 "^trellis token check: " \
        "$trellis" token check --token tampered.cbor --key pub.pem
done
head -c $((len - 1)) token.cbor >truncated.cbor
expect_status "truncated token" 1 "^trellis token check: COSE_Sign1: truncated" \
    "$trellis" token check --token truncated.cbor --key pub.pem
expect_status "missing token file" 1 "^trellis token check: cannot read nothing.cbor" \
    "$trellis" token check --token nothing.cbor --key pub.pem
expect_status "not a key" 1 "^trellis token check: cannot load the key" \
    "$trellis" token check --token token.cbor --key token.cbor

# --claims: inline JSON and a file; a claim the profile forbids is refused
check "create with inline claims" "$trellis" token create --key key.pem --nonce "$nonce" \
    --claims '{"lifecycle": "non-psa-rot-debug", "boot_seed": null, "verification_service": "https://verifier.example"}' \
    --out token2.cbor
check "inline claims applied" bash -c "'$trellis' token check --token token2.cbor --key pub.jwk | jq -e '.\"psa-security-lifecycle\" == 16384 and (has(\"psa-boot-seed\") | not) and .\"psa-verification-service-indicator\" == \"https://verifier.example\"' >/dev/null"
printf '{"psa-client-id": 5, "sw_components": [{"measurement_value": "%s", "measurement_type": "BL"}, {"measurement-value": "%s"}]}' \
    "$self_hash" "$nonce" >claims-in.json
check "create with a claims file" "$trellis" token create --key key.pem --nonce "$nonce" \
    --claims claims-in.json --out token3.cbor
check "claims file applied" bash -c "'$trellis' token check --token token3.cbor --key pub.pem | jq -e '.\"psa-client-id\" == 5 and (.\"psa-software-components\" | length == 2)' >/dev/null"
expect_status "invalid claim refused" 1 "^trellis token create: claim 2394 \(client id\) is 0" \
    "$trellis" token create --key key.pem --nonce "$nonce" --claims '{"client_id": 0}' --out t.cbor
expect_status "unknown claim name refused" 1 "^trellis token create: --claims: unknown claim" \
    "$trellis" token create --key key.pem --nonce "$nonce" --claims '{"colour": 1}' --out t.cbor
expect_status "public key cannot sign" 1 "^trellis token create: cannot load the private key" \
    "$trellis" token create --key pub.pem --nonce "$nonce" --out t.cbor

# the interoperability vectors: TF-M's PSA 2.0.0 token checks with its JWK, and the output is
# what tests/vectors/psa/README.md describes
xxd -r -p "$src/tests/vectors/psa/tfm-psa-2_0_0-sign1.hex" >tfm.cbor
check "TF-M token checks" bash -c "'$trellis' token check --token tfm.cbor --key '$src/tests/vectors/psa/tfm-iak.jwk' | jq -e '.eat_profile == \"http://arm.com/psa/2.0.0\" and .\"psa-client-id\" == 3002' >/dev/null"
xxd -r -p "$src/tests/vectors/psa/rfc9783-a2-mac0.hex" >mac0.cbor
expect_status "COSE_Mac0 refused" 1 "^trellis token check: tag 17 \(COSE_Mac0\)" \
    "$trellis" token check --token mac0.cbor --key pub.pem

if ((failures > 0)); then
    echo "$failures check(s) failed" >&2
    exit 1
fi
echo "all token checks passed"
