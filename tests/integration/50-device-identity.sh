#!/usr/bin/env bash
# The device's identity (issue 6, items 1, 3 and 7): killing the agent with SIGKILL at random
# moments while it enrolls and stores key and certificate leaves it able to come back with the
# old identity or the new one, never a broken one; renewal through /v1/reenroll switches
# certificates under a running agent without losing a reading; offline enrollment with
# `request` and `install`.
TEST_NAME=50-device-identity
source "$(dirname "$0")/50-lib.sh"

start_world 3 --cert-validity 2m
config_broker
start_broker
start_ingest

# identity_ok DIR: identity.pem holds a key and a certificate for that key, naming the device.
identity_ok() {
    local dir=$1
    [[ -f $dir/identity.pem ]] || return 1
    [[ "$(openssl pkey -in "$dir/identity.pem" -pubout 2>/dev/null | sha256sum)" == \
        "$(openssl x509 -in "$dir/identity.pem" -noout -pubkey 2>/dev/null | sha256sum)" ]] || return 1
    openssl x509 -in "$dir/identity.pem" -noout -subject | grep -q "$(dev_id "$dir")"
}

# ---- SIGKILL while the identity is stored -------------------------------------------------------------
k=${devs[0]}
"$device" --state "$k" enroll --broker-port "$bport" >/dev/null 2>>"$k.log"
identity_ok "$k" && pass "first enrollment" || fail "first enrollment"
broken=0
serials=()
for i in $(seq 20); do
    "$device" --state "$k" enroll --force >/dev/null 2>>"$k.log" &
    pid=$!
    # Anywhere from before the challenge to after the rename.
    sleep "0.0$((RANDOM % 10))$((RANDOM % 10))"
    kill -KILL $pid 2>/dev/null || true
    wait $pid 2>/dev/null || true
    identity_ok "$k" || broken=$((broken + 1))
    serials+=("$(openssl x509 -in "$k/identity.pem" -noout -serial 2>/dev/null)")
done
expect_eq "after 20 kills during enroll the identity is always whole" "$broken" 0
echo "# distinct identities seen across the kills: $(printf '%s\n' "${serials[@]}" | sort -u | wc -l)"
expect_eq "no temporary file is mistaken for the identity" "$(ls "$k" | grep -c '^identity.pem$')" 1
run_device "$k" --readings 5 --interval 50ms
wait_device "$k" && pass "it comes back and publishes with the identity it has" ||
    fail "run after the kills ($(tail -n 3 "$k.log"))"
seqs_ok "$(dev_id "$k")" 5 && pass "its readings are stored" || fail "its readings are stored"

# ---- renewal --------------------------------------------------------------------------------------------
r=${devs[1]}
"$device" --state "$r" enroll >/dev/null 2>>"$r.log"
first=$(openssl x509 -in "$r/identity.pem" -noout -serial)
# Certificates live 2 minutes here: with renew-percent 99 a renewal is due within seconds.
run_device "$r" --readings 60 --interval 100ms --renew-percent 99 --renew-check 500ms \
    --retry-base 200ms
wait_device "$r" && pass "renewing device ran to the end" || fail "renewing device ($(tail -n 3 "$r.log"))"
renewals=$(grep -c 'event=renew.ok' "$r.log" || true)
if ((renewals >= 1)); then pass "renewed through /v1/reenroll ($renewals times)"; else fail "no renewal in the log"; fi
last=$(openssl x509 -in "$r/identity.pem" -noout -serial)
[[ "$first" != "$last" ]] && pass "it now holds a new certificate" || fail "certificate unchanged"
seqs_ok "$(dev_id "$r")" 60 && pass "no reading lost across the switch" ||
    fail "readings across renewal: $(stored "$(dev_id "$r")" | jq -c '{acked, readings}')"
expect_eq "the registrar lists the renewals" \
    "$($trellis registrar show "$(dev_id "$r")" --dir r --json | jq '[.certificates[]?] | length > 1')" true

# ---- offline enrollment -----------------------------------------------------------------------------
o=${devs[2]}
challenge=$(curl -sf --cacert r/trust.pem "https://127.0.0.1:$rport/v1/challenge" | jq -r .challenge)
expect_ok "request with a challenge fetched elsewhere" "$device" --state "$o" request \
    --out req.json --challenge "$challenge"
expect_eq "the request is the body of /v1/enroll" "$(jq -c 'keys' req.json)" '["challenge","csr","evidence"]'
expect_eq "pending key is 0600" "$(stat -c %a "$o/pending.key")" 600
expect_fail "install refuses a file that is not an answer" "$device" --state "$o" install --in req.json
code=$(curl -s -o answer.json -w '%{http_code}' --cacert r/trust.pem -H 'Content-Type: application/json' \
    --data-binary @req.json "https://127.0.0.1:$rport/v1/enroll")
expect_eq "the registrar issues for the carried request" "$code" 201
expect_ok "install the answer" "$device" --state "$o" install --in answer.json
identity_ok "$o" && pass "installed identity is whole" || fail "installed identity"
expect_eq "pending key removed" "$(ls "$o" | grep -c pending.key || true)" 0
expect_eq "status says enrolled with the issued serial" \
    "$("$device" --state "$o" status --json | jq -r .certificate_serial)" \
    "$(openssl x509 -in "$o/identity.pem" -noout -serial | cut -d= -f2 | tr 'A-F' 'a-f' | sed 's/^0*//')"
expect_fail "install without a pending request fails" "$device" --state "$o" install --in answer.json
run_device "$o" --readings 3 --interval 50ms
wait_device "$o" && pass "the offline-enrolled device publishes" || fail "offline device run"

finish
