#!/usr/bin/env bash
# The trial a shop runs before it trusts Persona, on the shared data (`make trial`): each check
# splits a file, starts a fresh suite, imports the training part, trains with the CLI's
# defaults, then judges the served answers (`persona eval`) on the held-out part, with simple
# peers (Benchmarks/peers/trial.py) on the very same split files. Results in $OUT.
#   BIN     where the release executables are      SHARED  ../shared/data by default
#   OUT     the results file (default Benchmarks/results/trial.md)
#   CHECKS  which checks (default: "retail taobao fraud fraud-users")
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:?BIN: the directory of the persona executables}
SHARED=${SHARED:-../shared/data}
OUT=${OUT:-Benchmarks/results/trial.md}
CHECKS=${CHECKS:-retail taobao fraud fraud-users}
PYTHON=${PYTHON:-Benchmarks/results/venv/bin/python}
WORK=$(mktemp -d)
PIDS=()
stop_suite() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
}
trap 'stop_suite; rm -rf "$WORK"' EXIT
SERVICES="ingest:7201 feature:7202 model:7203 risk-control:7204 recommend:7205"
for s in $SERVICES; do
    IFS=: read -r name port <<< "$s"
    var="PERSONA_$(tr 'a-z-' 'A-Z_' <<< "$name")_ADDR"
    export "$var=127.0.0.1:$port"
done
persona() { "$BIN/persona" "$@"; }

# A fresh suite with its state under $WORK/$1.
start_suite() {
    local data=$WORK/$1
    [ ! -e "$data" ] || { echo "a suite named $1 ran already"; exit 1; }
    mkdir -p "$data"
    head -c 32 /dev/urandom > "$data/pseudonym.key"
    for role in service admin analyst producer consumer; do echo "$role $role-1 $(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"; done > "$data/tokens"
    export PERSONA_TOKENS_FILE=$data/tokens PERSONA_PSEUDONYM_KEY_FILE=$data/pseudonym.key
    export PERSONA_IP_COUNTRY_FILE=$SHARED/fraud/IpAddress_to_Country.csv
    local s svc port
    for s in $SERVICES; do
        IFS=: read -r svc port <<< "$s"
        "$BIN/persona-$svc" --port "$port" --metrics-port $((port + 2000)) --data-dir "$data/$svc" > "$data/$svc.log" 2>&1 &
        PIDS+=($!)
    done
    for _ in $(seq 1 100); do persona health > /dev/null 2>&1 && return; sleep 0.2; done
    persona health
}

# Waits until recommend serves a version of every model kind named, or risk-control the fraud model.
wait_served() {
    for _ in $(seq 1 150); do
        health=$(persona health 2>/dev/null || true)
        if grep -q -- "$1" <<< "$health"; then return; fi
        sleep 0.2
    done
    echo "not served after 30 s: $1"; persona health; exit 1
}

train_recommenders() {
    for kind in popularity item_knn als content sequence; do persona train "$kind"; done
    wait_served "models=.*sequence="
}

{
    echo "# The trial: served answers on held-out data, beside simple peers"
    echo
    echo "\`make trial\` (scripts/trial.sh): for each check a fresh suite imports the training part, trains with the"
    echo "CLI's defaults and is judged through the served calls (\`persona eval\`); the peers"
    echo "(Benchmarks/peers/trial.py, one thread each) train and are judged on the same split files."
    echo "$(nproc) cores, $(date -u +%F)."
} > "$WORK/results.md"

recommend_check() { # name format file split-args...
    local name=$1 format=$2 file=$3
    shift 3
    persona eval split "$file" --format "$format" "$@" --train "$WORK/$name-train.csv" --test "$WORK/$name-test.csv"
    start_suite "$name"
    persona import "$WORK/$name-train.csv" --format "$format" --wait
    train_recommenders
    persona eval recommend --test "$WORK/$name-test.csv" --train "$WORK/$name-train.csv" --format "$format" | tee "$WORK/$name.eval"
    # The same suite again with the learned second stage over those sources (where the data can teach one).
    if persona train ranker; then
        wait_served "models=.*ranker="
        persona eval recommend --test "$WORK/$name-test.csv" --train "$WORK/$name-train.csv" --format "$format" | tee "$WORK/$name.ranker.eval"
    fi
    stop_suite
    "$PYTHON" Benchmarks/peers/trial.py recommend "$format" "$WORK/$name-train.csv" "$WORK/$name-test.csv" "$WORK/$name.json"
    "$PYTHON" - "$WORK/$name.eval" "$WORK/$name.json" "$name" "$WORK/$name.ranker.eval" >> "$WORK/results.md" <<'PY'
import json, os, re, sys
text, peers, name = open(sys.argv[1]).read(), json.load(open(sys.argv[2])), sys.argv[3]
ranked = open(sys.argv[4]).read() if os.path.exists(sys.argv[4]) else None
value = lambda key, text=text: re.search(rf"^{re.escape(key)}\s+(\S+)", text, re.M).group(1)
users = re.search(r"evaluated (\d+) users", text).group(1)
latency = re.search(r"Recommend p50 / p99\s+(.+)$", text, re.M).group(1).strip()
print(f"\n## {name}: NDCG@10 of Recommend ({users} users served; the peers rank for {peers['users']})\n")
print("| | NDCG@10 | recall@10 | hit rate@10 | |\n| --- | ---: | ---: | ---: | --- |")
print(f"| Persona, served | {float(value('ndcg@10')):.4f} | {float(value('recall@10')):.4f} | {float(value('hit_rate@10')):.4f} | p50 / p99 {latency} |")
if ranked:
    at = re.search(r"Recommend p50 / p99\s+(.+)$", ranked, re.M).group(1).strip()
    print(f"| Persona, served with `persona train ranker` | {float(value('ndcg@10', ranked)):.4f} | {float(value('recall@10', ranked)):.4f} | {float(value('hit_rate@10', ranked)):.4f} | p50 / p99 {at} |")
best = max(p["ndcg"] for p in peers["peers"].values())
for peer, p in peers["peers"].items():
    print(f"| {peer} | {p['ndcg']:.4f} | {p['recall']:.4f} | {p['hit_rate']:.4f} | trained and ranked in {p['seconds']:.1f} s |")
print(f"\nPersona against the best peer: {float(value('ndcg@10')) / best:.3f}x")
PY
}

for check in $CHECKS; do
    case $check in
    retail)
        echo "== Online Retail: train to the end of August 2011, test on September-October's new items" >&2
        {
            echo
            echo "Online Retail: the shared Dec 2010-Oct 2011 file, trained to the end of August 2011; each customer's"
            echo "held-out items are what they bought in September-October and had not bought before."
        } >> "$WORK/results.md"
        recommend_check retail online-retail "$SHARED/online-retail/Online_Retail_2010-12_to_2011-10.csv" --at 2011-09-01
        ;;
    taobao)
        echo "== Taobao: each user's last interaction held out" >&2
        {
            echo
            echo "Taobao: the 293 users' complete histories; each user's last interaction is held out (an item they"
            echo "had met before is not counted). Nearly every such item is one nobody else met in the training"
            echo "part, so every side is near zero here: the check guards against a regression, it does not rank."
        } >> "$WORK/results.md"
        recommend_check taobao taobao "$SHARED/taobao/UserBehavior_293_users.csv" --last-of-user
        ;;
    fraud | fraud-users)
        if [ "$check" = fraud ]; then
            split="the first 70% of orders by purchase time"
            persona eval split "$SHARED/fraud/Fraud_Data_train.csv" --format fraud --share 0.7 --train "$WORK/$check-train.csv" --test "$WORK/$check-test.csv"
        else
            split="70% of the accounts (a seeded hash of the user id; the others' orders interleave with theirs in time)"
            persona eval split "$SHARED/fraud/Fraud_Data_train.csv" --format fraud --users 0.7 --train "$WORK/$check-train.csv" --test "$WORK/$check-test.csv"
        fi
        echo "== fraud: $split trained, the rest replayed through Score" >&2
        start_suite "$check"
        persona import "$WORK/$check-train.csv" --format fraud --wait
        persona train fraud
        wait_served "model=fraud="
        persona eval fraud --test "$WORK/$check-test.csv" | tee "$WORK/$check.eval"
        stop_suite
        "$PYTHON" Benchmarks/peers/trial.py fraud "$WORK/$check-train.csv" "$WORK/$check-test.csv" "$WORK/$check.json"
        "$PYTHON" - "$WORK/$check.eval" "$WORK/$check.json" "$check" "$split" >> "$WORK/results.md" <<'PY'
import json, re, sys
text, peers, name, split = open(sys.argv[1]).read(), json.load(open(sys.argv[2])), sys.argv[3], sys.argv[4]
value = lambda key: float(re.search(rf"^{re.escape(key)}\s+(\S+)", text, re.M).group(1))
orders = re.search(r"replayed (\d+) orders \((\d+) fraudulent\)", text)
latency = re.search(r"Score p50 / p99\s+(.+)$", text, re.M).group(1).strip()
print(f"\n## {name}: ROC-AUC of Score on held-out orders\n")
print(f"The shared fraud rows, {split}, imported with labels and `persona train fraud`; the other")
print(f"{orders.group(1)} orders ({orders.group(2)} fraudulent) replayed in time order (signup, Score at the purchase, then the purchase).\n")
print("| | ROC-AUC | PR-AUC | |\n| --- | ---: | ---: | --- |")
print(f"| Persona, served (Score's 0-1000 score) | {value('ROC-AUC (score)'):.4f} | {value('PR-AUC (score)'):.4f} | Score p50 / p99 {latency} |")
for peer, p in peers["peers"].items():
    print(f"| {peer}, 12 point-in-time columns | {p['roc_auc']:.4f} | {p['pr_auc']:.4f} | trained and ranked in {p['seconds']:.1f} s |")
best = max(p["roc_auc"] for p in peers["peers"].values())
print(f"\nPersona against the best peer (ROC-AUC): {value('ROC-AUC (score)') / best:.3f}x")
PY
        ;;
    *) echo "unknown check $check" >&2; exit 1 ;;
    esac
done
cp "$WORK/results.md" "$OUT"
echo "written: $OUT"
