#!/usr/bin/env bash
# The demo `make run` ends with, against a running suite: on first use it imports the sample
# data (Samples/), trains and publishes the models and the rule set, and records that in
# $DATA/demo.done; every run then prints a user's profile, their explained recommendations
# and a risk decision with its reasons. RETRAIN=1 trains again on the data already there.
#   PERSONA   the persona CLI (default: persona on PATH)
#   DATA      where the suite keeps its state (default: ./data)
#   DEMO_USER the user shown (default: 17850, the sample's first customer)
#   SEQUENCE_EPOCHS  the sequence model's epochs (default: its own, 200 with early stopping)
set -euo pipefail
cd "$(dirname "$0")/.."
PERSONA=${PERSONA:-persona}
DATA=${DATA:-data}
USER_ID=${DEMO_USER:-17850}
step() { printf '\n== %s\n' "$*"; }

if [ ! -f "$DATA/demo.done" ]; then
    step "importing the sample data"
    "$PERSONA" import Samples/online-retail-2010-12.csv --format online-retail
    # The fraud orders are of 2015: replayed to end with the shop's week, on one clock.
    "$PERSONA" import Tests/Fixtures/fraud-100.csv --format fraud --end-at 2010-12-07T15:00:00Z --wait
fi
if [ ! -f "$DATA/demo.done" ] || [ -n "${RETRAIN:-}" ]; then
    step "training and publishing the models"
    for kind in popularity item_knn als content; do "$PERSONA" train "$kind"; done
    "$PERSONA" train sequence ${SEQUENCE_EPOCHS:+--param epochs=$SEQUENCE_EPOCHS}
    for kind in fraud segments; do "$PERSONA" train "$kind"; done
    "$PERSONA" risk rules publish Samples/rules.txt
    # Recommend and risk-control pick the new versions up by themselves; wait until they serve them.
    for _ in $(seq 1 100); do
        health=$("$PERSONA" health 2>/dev/null || true)
        grep -q "models=.*als=" <<< "$health" && grep -q "model=fraud=" <<< "$health" && break
        sleep 0.2
    done
    date -u +%FT%TZ > "$DATA/demo.done"
fi

step "persona profile $USER_ID"
"$PERSONA" profile "$USER_ID"
step "persona recommend $USER_ID -n 5 --explain"
"$PERSONA" recommend "$USER_ID" -n 5 --explain
order="demo-$(date +%s)"
step "persona risk score --user $USER_ID --order $order --amount 2600 --device new-tablet-7 --ip 81.2.69.160 --time 2010-12-07T16:00:00Z --explain"
"$PERSONA" risk score --user "$USER_ID" --order "$order" --amount 2600 --device new-tablet-7 --ip 81.2.69.160 --time 2010-12-07T16:00:00Z --explain
printf '\nThe suite keeps running: try persona health, persona risk explain %s, persona audit; make stop ends it.\n' "$order"
printf 'The risk console is at http://127.0.0.1:7106: add yourself with persona console user add NAME --role admin (password on stdin).\n'
