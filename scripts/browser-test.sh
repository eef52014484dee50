#!/usr/bin/env bash
# The risk console in a real browser (Debian's chromium, driven by python3-selenium): starts
# ingest, risk-control and the console from BIN on free loopback ports in a temporary folder
# (decisions are made by the failure policy: no feature service; the console with four-eyes
# on), imports a user's events and scores a few orders with the CLI, adds three people, then
# runs scripts/browser_test.py, which writes a screenshot of each page to docs/console/.
# Everything started is stopped at the end.
# Usage: BIN=.build/debug scripts/browser-test.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
INGEST=$(free_port); RISK=$(free_port); CONSOLE=$(free_port); NOFEATURE=$(free_port)
NOMODEL=$(free_port); NORECOMMEND=$(free_port)
export PERSONA_INGEST_ADDR=127.0.0.1:$INGEST PERSONA_RISK_CONTROL_ADDR=127.0.0.1:$RISK PERSONA_FEATURE_ADDR=127.0.0.1:$NOFEATURE
export PERSONA_MODEL_ADDR=127.0.0.1:$NOMODEL PERSONA_RECOMMEND_ADDR=127.0.0.1:$NORECOMMEND
export PERSONA_FEATURE_TIMEOUT_MS=200
"$BIN/persona-ingest" --port "$INGEST" --metrics-port 0 --data-dir "$WORK/ingest" > "$WORK/ingest.log" 2>&1 & PIDS+=($!)
"$BIN/persona-risk-control" --port "$RISK" --metrics-port 0 --data-dir "$WORK/risk-control" > "$WORK/risk.log" 2>&1 & PIDS+=($!)
"$BIN/persona-console" --port "$CONSOLE" --data-dir "$WORK/console" --bcrypt-cost 6 --four-eyes > "$WORK/console.log" 2>&1 & PIDS+=($!)
for _ in $(seq 1 100); do
    "$BIN/persona" health > /dev/null 2>&1 || true
    curl -fsS "http://127.0.0.1:$CONSOLE/health" > /dev/null 2>&1 && "$BIN/persona" risk rules show > /dev/null 2>&1 && break
    sleep 0.1
done
printf 'huge: amount > 5000 => decline, score +900\nbig: amount > 500 => review\n' > "$WORK/rules.txt"
"$BIN/persona" risk rules publish "$WORK/rules.txt" > /dev/null
for i in 1 2 3 4 5 6; do
    amount=$(( i == 2 ? 900 : (i == 4 ? 7000 : 20 + i) ))
    "$BIN/persona" risk score --user $((100 + i % 3)) --order "web-$i" --amount "$amount" > /dev/null
done
# A few events of user 102 (the review's user) in the log: the decision page's timeline.
now=$(date +%s)
printf '102,5001,77,pv,%s\n102,5002,77,cart,%s\n102,5002,77,buy,%s\n' $((now - 300)) $((now - 200)) $((now - 100)) > "$WORK/events.csv"
"$BIN/persona" import "$WORK/events.csv" --format taobao > /dev/null
echo "correct horse battery" | "$BIN/persona" console user add alice --role analyst --data-dir "$WORK/console" > /dev/null
echo "another good password" | "$BIN/persona" console user add rob --role rule-author --data-dir "$WORK/console" > /dev/null
echo "admin of the console" | "$BIN/persona" console user add ada --role admin --data-dir "$WORK/console" > /dev/null
/usr/bin/python3 scripts/browser_test.py "http://127.0.0.1:$CONSOLE" docs/console "$BIN/persona" || {
    echo "-- console log"; tail -20 "$WORK/console.log"; echo "-- risk-control log"; tail -20 "$WORK/risk.log"; exit 1; }
