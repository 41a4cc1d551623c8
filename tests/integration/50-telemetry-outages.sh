#!/usr/bin/env bash
# Never loses a reading (issue 6, items 2 and 7): four devices publish while the broker is killed
# with SIGKILL and restarted, stopped for a while and restarted, the ingest is restarted, and one
# device is killed with SIGKILL and started again. At the end every device's store holds exactly
# seq 1..last, once each, acknowledged, and every spool is empty.
TEST_NAME=50-telemetry-outages
source "$(dirname "$0")/50-lib.sh"

start_world 4
config_broker
start_broker
start_ingest

opts=(--interval 40ms --ack-timeout 2s)
for d in "${devs[@]}"; do run_device "$d" --readings 150 "${opts[@]}"; done
victim=${devs[0]}

sleep 1
stop_broker KILL
pass "broker killed with SIGKILL"
sleep 1
start_broker
sleep 0.5
kill -KILL "${pids[$victim]}"
wait "${pids[$victim]}" 2>/dev/null || true
unset "pids[$victim]"
pass "device $(basename "$victim") killed with SIGKILL"
run_device "$victim" --readings 60 "${opts[@]}"
sleep 0.5
stop_broker TERM
pass "broker stopped"
sleep 1.5
start_broker
sleep 0.5
stop_ingest
pass "ingest stopped"
sleep 1
start_ingest

for d in "${devs[@]}"; do
    if wait_device "$d"; then pass "$(basename "$d") finished with every reading acknowledged"
    else fail "$(basename "$d") run failed ($(tail -n 3 "$d.log"))"; fi
done
for d in "${devs[@]}"; do
    id=$(dev_id "$d")
    st=$("$device" --state "$d" status --json)
    last=$(jq .last_seq <<<"$st")
    expect_eq "$(basename "$d"): spool empty" "$(jq .spool_depth <<<"$st")" 0
    if seqs_ok "$id" "$last"; then pass "$(basename "$d"): store holds seq 1..$last, each once"
    else fail "$(basename "$d"): store $(stored "$id" | jq -c '{acked, readings}'), device last seq $last"; fi
done
expect_eq "the killed device kept its seq across the restart" \
    "$(( $("$device" --state "$victim" status --json | jq .last_seq) > 60 ))" 1
resends=$(grep -h 'event=mqtt.resend' run/devices/*.log | wc -l)
echo "# resend rounds after outages: $resends"

finish
