#!/usr/bin/env bash
# The seed scenario end to end with real processes (issue 6, items 1, 4, 5, 7): devices made by
# `trellis factory` enroll against a real registrar and verifier, then publish readings over
# mutual-TLS MQTT through a Mosquitto configured by `trellis broker config` into `trellis ingest`,
# which stores each once and acknowledges it. Then what must be refused: publishing to another
# device's topic, connecting without a certificate or with one from another CA, a device revoked
# at the registrar after `trellis broker reload`; duplicates are stored once; a bad reading is
# quarantined and still acknowledged.
TEST_NAME=50-telemetry-e2e
source "$(dirname "$0")/50-lib.sh"

start_world 3
config_broker
start_broker
start_ingest

# ---- enrollment and telemetry -------------------------------------------------------------------
for d in "${devs[@]}"; do run_device "$d" --readings 10 --interval 50ms; done
for d in "${devs[@]}"; do
    if wait_device "$d"; then pass "$(basename "$d") enrolled and every reading acknowledged"
    else fail "$(basename "$d") run failed ($(tail -n 3 "$d.log"))"; fi
done
for d in "${devs[@]}"; do
    id=$(dev_id "$d")
    if seqs_ok "$id" 10; then pass "store holds seq 1..10 of $(basename "$d") once, acked 10"
    else fail "store for $(basename "$d"): $(stored "$id" | jq -c '{acked, readings}')"; fi
    st=$("$device" --state "$d" status --json)
    expect_eq "status of $(basename "$d")" "$(jq -c '[.enrolled, .last_seq, .acked, .spool_depth]' <<<"$st")" "[true,10,10,0]"
    expect_eq "certificate CN is the device id" \
        "$(openssl x509 -in "$d/identity.pem" -noout -subject -nameopt multiline | sed -n 's/^ *commonName *= //p')" "$id"
    expect_eq "identity.pem is 0600" "$(stat -c %a "$d/identity.pem")" 600
done
expect_eq "the registrar knows 3 devices" "$($trellis registrar devices --dir r --json | jq length)" 3

a=${devs[0]}
b=${devs[1]}
c=${devs[2]}
ida=$(dev_id "$a")
idb=$(dev_id "$b")
idc=$(dev_id "$c")

# ---- what the broker must refuse ------------------------------------------------------------------
mqtt_pub "$a" "devices/$idb/telemetry" "{\"seq\":11,\"ts\":$(date +%s%3N),\"temp_c\":20}"
sleep 1
expect_eq "a device cannot publish on another device's topic" "$(stored "$idb" | jq .readings)" 10
expect_fail "no client certificate: refused" mosquitto_pub -h 127.0.0.1 -p "$bport" \
    --cafile r/trust.pem -i "$ida" -q 1 -t "devices/$ida/telemetry" -m x
openssl ecparam -name prime256v1 -genkey -noout -out evil-ca.key 2>/dev/null
openssl req -x509 -new -key evil-ca.key -subj "/CN=evil ca" -days 2 -out evil-ca.pem 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out evil.key 2>/dev/null
openssl req -new -key evil.key -subj "/CN=$ida/O=acme" -out evil.csr 2>/dev/null
printf 'extendedKeyUsage=clientAuth\n' >evil.ext
openssl x509 -req -in evil.csr -CA evil-ca.pem -CAkey evil-ca.key -CAcreateserial -days 1 \
    -extfile evil.ext -out evil.pem 2>/dev/null
expect_fail "a certificate from another CA with the right name: refused" mosquitto_pub \
    -h 127.0.0.1 -p "$bport" --cafile r/trust.pem --cert evil.pem --key evil.key -i "$ida" -q 1 \
    -t "devices/$ida/telemetry" -m x
expect_fail "the ingest identity on the device listener: refused" mosquitto_pub -h 127.0.0.1 \
    -p "$bport" --cafile r/trust.pem --cert broker/ingest.pem --key broker/ingest.key -q 1 \
    -t "devices/$ida/telemetry" -m x
expect_fail "a device certificate on the service listener: refused" mosquitto_pub -h 127.0.0.1 \
    -p "$sport" --cafile broker/service-ca.pem --cert "$a/identity.pem" --key "$a/identity.pem" \
    -q 1 -t "devices/$ida/telemetry" -m x

# ---- duplicates and quarantine ----------------------------------------------------------------------
now=$(date +%s%3N)
mqtt_pub "$a" "devices/$ida/telemetry" "{\"seq\":5,\"ts\":$now,\"temp_c\":99.5}"
mqtt_pub "$a" "devices/$ida/telemetry" "{\"seq\":11,\"ts\":$now,\"temp_c\":21.5}"
mqtt_pub "$a" "devices/$ida/telemetry" "{\"seq\":11,\"ts\":$now,\"temp_c\":21.5}"
mqtt_pub "$a" "devices/$ida/telemetry" "{\"seq\":12,\"ts\":$now,\"temp_c\":999}"
mqtt_pub "$a" "devices/$ida/telemetry" "not json"
acked_is() { test "$(stored "$1" | jq .acked)" = "$2"; }
wait_for 5 acked_is "$ida" 12 || true
expect_eq "duplicates are stored once" "$(stored "$ida" | jq '[.readings, (.rows[] | select(.seq == 5) | .temp_c != 99.5)]' -c)" "[11,true]"
expect_eq "a reading out of range is quarantined and still acknowledged" \
    "$(stored "$ida" | jq -c '[.quarantined, .acked]')" "[1,12]"
st=$($trellis ingest stats --db tel.db --json)
expect_eq "rejects are counted" "$(jq -c '[.quarantined, .rejected_payload, (.duplicates >= 2)]' <<<"$st")" "[1,1,true]"
expect_eq "the device's next run carries on after the store's ack" \
    "$("$device" --state "$b" run --broker-port "$bport" --readings 2 --interval 50ms 2>/dev/null; stored "$idb" | jq .acked)" 12

# ---- revocation -------------------------------------------------------------------------------------
expect_ok "device c publishes before its revocation" mqtt_pub "$c" "devices/$idc/telemetry" \
    "{\"seq\":11,\"ts\":$(date +%s%3N),\"temp_c\":20}"
expect_ok "registrar revoke" $trellis registrar revoke "$idc" --reason keyCompromise --dir r
expect_eq "the CRL names the certificate" \
    "$(openssl crl -in r/crl.pem -noout -text | grep -ci "$(openssl x509 -in "$c/identity.pem" -noout -serial | cut -d= -f2)")" 1
expect_ok "broker reload" $trellis broker reload --dir broker
sleep 0.3
expect_fail "a revoked device is refused at its next connection" mqtt_pub "$c" \
    "devices/$idc/telemetry" "{\"seq\":12,\"ts\":$(date +%s%3N),\"temp_c\":20}"
expect_ok "other devices still connect" mqtt_pub "$b" "devices/$idb/telemetry" \
    "{\"seq\":13,\"ts\":$(date +%s%3N),\"temp_c\":20}"
expect_fail "broker reload without a running broker fails" $trellis broker reload --dir nowhere

finish
