#!/usr/bin/env bash
# A campaign's HTML report drawn in headless Chromium: starts ingest, feature and model from
# BIN on free loopback ports in a temporary folder, imports the Online Retail sample, defines
# an audience and a campaign, launches it, imports orders (buyers order now and then; a third
# of the treated also redeem its coupon, their side computed as docs/CAMPAIGNS.md says), writes `persona campaign report` and checks it with scripts/check-report.sh,
# which leaves docs/campaigns/report.png. Everything started is stopped at the end.
# Usage: BIN=.build/debug scripts/campaign-report-test.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
INGEST=$(free_port); FEATURE=$(free_port); MODEL=$(free_port); NORISK=$(free_port); NORECOMMEND=$(free_port)
export PERSONA_INGEST_ADDR=127.0.0.1:$INGEST PERSONA_FEATURE_ADDR=127.0.0.1:$FEATURE PERSONA_MODEL_ADDR=127.0.0.1:$MODEL
export PERSONA_RISK_CONTROL_ADDR=127.0.0.1:$NORISK PERSONA_RECOMMEND_ADDR=127.0.0.1:$NORECOMMEND
"$BIN/persona-ingest" --port "$INGEST" --metrics-port 0 --data-dir "$WORK/ingest" > "$WORK/ingest.log" 2>&1 & PIDS+=($!)
"$BIN/persona-feature" --port "$FEATURE" --metrics-port 0 --data-dir "$WORK/feature" --ingest "127.0.0.1:$INGEST" \
    --model "127.0.0.1:$MODEL" > "$WORK/feature.log" 2>&1 & PIDS+=($!)
"$BIN/persona-model" --port "$MODEL" --metrics-port 0 --data-dir "$WORK/model" --ingest "127.0.0.1:$INGEST" \
    --feature "127.0.0.1:$FEATURE" > "$WORK/model.log" 2>&1 & PIDS+=($!)
for _ in $(seq 1 100); do "$BIN/persona" campaign list > /dev/null 2>&1 && break; sleep 0.1; done
"$BIN/persona" import Samples/online-retail-2010-12.csv --format online-retail > /dev/null
"$BIN/persona" audience define buyers "purchase_lifetime >= 1" > /dev/null
now=$(date +%s)
"$BIN/persona" campaign define winter --audience buyers --start $(( (now - 3 * 86400) * 1000 )) --end $(( (now + 86400) * 1000 )) \
    --control 0.3 --coupon WINTER10 --discount-share 0.1 --cost-per-send 0.05 --description "a tenth off for every buyer" > /dev/null
"$BIN/persona" campaign launch winter
# Orders over the last three days: one buyer in seven orders, one treated in three redeems the coupon.
/usr/bin/python3 - "$WORK/orders.csv" "$now" <<'PY'
import random, re, sys
random.seed(5)
M = (1 << 64) - 1
def control(user, campaign="winter", share=0.3):
    h = 0xcbf29ce484222325
    for b in f"{campaign}|{user}".encode():
        h = ((h ^ b) * 0x100000001b3) & M
    z = (h + 0x9E3779B97F4A7C15) & M
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    z ^= z >> 31
    return (z >> 11) / float(1 << 53) < share
users = sorted({int(float(m.group(1))) for m in (re.search(r",(\d+(?:\.0)?),[^,]*$", l) for l in open("Samples/online-retail-2010-12.csv")) if m})
with open(sys.argv[1], "w") as out:
    out.write("user_id,order_id,time,item_id,total,coupon_code,discount\n")
    for u in users:
        t = int(sys.argv[2]) - random.randint(120, 3 * 86400 - 120)
        if random.random() < 1 / 7:
            out.write(f"{u},base-{u},{t},1,{random.uniform(20, 100):.2f},,0\n")
        if not control(u) and random.random() < 1 / 3:
            total = random.uniform(20, 100)
            out.write(f"{u},coupon-{u},{t + 60},1,{total:.2f},WINTER10,{total / 10:.2f}\n")
PY
"$BIN/persona" import "$WORK/orders.csv" --format orders > /dev/null
"$BIN/persona" train uplift --param campaign=winter > /dev/null
mkdir -p docs/campaigns
"$BIN/persona" campaign report winter -o "$WORK/winter.html"
grep -q "Over the window" "$WORK/winter.html" && grep -q "Qini" "$WORK/winter.html"
HEIGHT=1800 scripts/check-report.sh "$WORK/winter.html" docs/campaigns/report.png
