"""The simple peers of `make trial`, on the very split files Persona imported and was judged on.

    python trial.py recommend FORMAT TRAIN TEST OUT_JSON
    python trial.py fraud TRAIN TEST OUT_JSON

recommend: implicit's ALS and a numpy EASE on the training part's user x item matrix (every
interaction counts once; purchases, carts and favourites as views), ranking for each user of
the held-out part who is in the training part the items they never had, scored as Persona's
`persona eval recommend --train` scores the served lists: the held-out items they had not had
before, NDCG@10 with binary gains, recall@10 (hits over held-out items), hit rate@10.

fraud: a random forest and HistGradientBoosting on twelve point-in-time columns of each order
(seconds from signup to purchase, value, age, hour, weekday, how many other accounts were seen
with the device and with the IP before the purchase, and source, browser and sex one-hot),
trained on the training rows, ranked on the held-out rows: ROC-AUC and PR-AUC (average
precision). Every peer runs on one thread.
"""
import csv
import json
import math
import os
import sys
import time
from collections import defaultdict
from datetime import datetime, timezone

for v in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(v, "1")

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from recommenders import ease  # noqa: E402  (the models benchmark's EASE, the same code)


def interactions(fmt, path):
    """(user, item) pairs of a file, as strings, in file order (Persona's `eval recommend` reads
    the same interactions: purchased lines, views, carts and favourites)."""
    pairs = []
    with open(path, newline="") as f:
        if fmt == "online-retail":
            for row in csv.reader(f):
                if len(row) != 8 or row[0] == "InvoiceNo" or row[0].startswith("C") or not row[6]:
                    continue
                try:
                    if int(row[3]) <= 0:
                        continue
                except ValueError:
                    continue
                pairs.append((row[6].split(".")[0], row[1]))
        elif fmt == "taobao":
            for line in f:
                p = line.strip().split(",")
                if len(p) == 5:
                    pairs.append((p[0], p[1]))
        else:
            raise SystemExit(f"unknown format {fmt}")
    return pairs


def ndcg(ranked, expected, k=10):
    dcg = sum(1 / math.log2(i + 2) for i, item in enumerate(ranked[:k]) if item in expected)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(len(expected), k)))
    return dcg / ideal


def recommend(fmt, train_path, test_path, out_path, k=10):
    train, test = interactions(fmt, train_path), interactions(fmt, test_path)
    users, items = {}, {}
    for u, i in train:
        users.setdefault(u, len(users))
        items.setdefault(i, len(items))
    had = defaultdict(set)
    for u, i in train:
        had[u].add(i)
    expected = defaultdict(set)
    for u, i in test:
        if u in users and i not in had[u]:
            expected[u].add(i)
    evaluated = sorted(u for u in expected if expected[u])
    rows = np.array([users[u] for u, _ in train]), np.array([items[i] for _, i in train])
    m = sp.csr_matrix((np.ones(len(train), dtype=np.float32), rows), shape=(len(users), len(items)))
    m.data[:] = 1.0  # repeated pairs count once
    m.sum_duplicates()
    m.data[:] = 1.0
    index = np.array([users[u] for u in evaluated])
    names = {v: key for key, v in items.items()}
    out = {"users": len(evaluated), "peers": {}}

    def score(lists, seconds):
        got = [[names[i] for i in row] for row in lists]
        n = [ndcg(r, expected[u], k) for r, u in zip(got, evaluated)]
        hits = [len(set(r[:k]) & expected[u]) for r, u in zip(got, evaluated)]
        return {"seconds": seconds, "ndcg": float(np.mean(n)), "hit_rate": float(np.mean([h > 0 for h in hits])),
                "recall": float(np.mean([h / len(expected[u]) for h, u in zip(hits, evaluated)]))}

    with threadpool_limits(limits=1):
        # EASE at two common lambdas, over the items at least two users met (the others cannot
        # be learnt from, and a dense inverse over every item of a long tail does not fit).
        columns = np.flatnonzero(np.diff(m.tocsc().indptr) >= 2)
        for lam in (100.0, 500.0):
            seconds, lists = ease(m, index, k, lam, columns)
            out["peers"][f"EASE (lambda {lam:g})"] = score(lists, seconds)
        from implicit.als import AlternatingLeastSquares
        for factors, reg, alpha in ((64, 0.01, 1.0), (128, 10.0, 1.0)):
            start = time.perf_counter()
            model = AlternatingLeastSquares(factors=factors, regularization=reg, alpha=alpha, iterations=15, num_threads=1,
                                            random_state=42, calculate_training_loss=False)
            model.fit(m, show_progress=False)
            ids, _ = model.recommend(index, m[index], N=k, filter_already_liked_items=True)
            out["peers"][f"implicit ALS ({factors} factors, reg {reg:g}, alpha {alpha:g})"] = score(
                [[int(i) for i in row if i >= 0] for row in ids], time.perf_counter() - start)
    json.dump(out, open(out_path, "w"), indent=1)


def fraud_rows(path):
    rows = []
    with open(path) as f:
        for line in f:
            p = line.strip().split(",")
            if len(p) != 11 or p[0] == "user_id":
                continue
            parse = lambda s: datetime.strptime(s, "%m/%d/%Y %H:%M").replace(tzinfo=timezone.utc)
            rows.append({"signup": parse(p[1]), "purchase": parse(p[2]), "value": float(p[3]), "device": p[4],
                         "source": p[5], "browser": p[6], "sex": p[7], "age": float(p[8]), "ip": p[9], "label": int(p[10])})
    return rows


def fraud_columns(rows):
    """Each row's point-in-time columns: everything of every row (training and held-out) replayed
    in time order, an account's signup before its purchase, and each purchase's columns read then."""
    sources, browsers = ["SEO", "Ads", "Direct"], ["Chrome", "Safari", "FireFox", "IE", "Opera"]
    timeline = sorted([(r["signup"], 0, n) for n, r in enumerate(rows)] + [(r["purchase"], 1, n) for n, r in enumerate(rows)])
    on_device, on_ip = defaultdict(set), defaultdict(set)
    x = [None] * len(rows)
    for _, kind, n in timeline:
        r = rows[n]
        on_device[r["device"]].add(n)
        on_ip[r["ip"]].add(n)
        if kind == 1:
            x[n] = ([(r["purchase"] - r["signup"]).total_seconds(), r["value"], r["age"], r["purchase"].hour, r["purchase"].weekday(),
                     len(on_device[r["device"]]) - 1, len(on_ip[r["ip"]]) - 1, r["sex"] == "M"]
                    + [r["source"] == s for s in sources] + [r["browser"] == b for b in browsers])
    return np.array(x, dtype=np.float64), np.array([r["label"] for r in rows])


def fraud(train_path, test_path, out_path):
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.metrics import average_precision_score, roc_auc_score
    train, test = fraud_rows(train_path), fraud_rows(test_path)
    x, y = fraud_columns(train + test)
    xt, yt, xs, ys = x[:len(train)], y[:len(train)], x[len(train):], y[len(train):]
    out = {"orders": len(ys), "frauds": int(ys.sum()), "peers": {}}
    for name, model in (("random forest", RandomForestClassifier(n_estimators=300, min_samples_leaf=5, n_jobs=1, random_state=1)),
                        ("HistGradientBoosting", HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, random_state=1))):
        start = time.perf_counter()
        model.fit(xt, yt)
        p = model.predict_proba(xs)[:, 1]
        out["peers"][name] = {"seconds": time.perf_counter() - start, "roc_auc": roc_auc_score(ys, p),
                              "pr_auc": average_precision_score(ys, p)}
    json.dump(out, open(out_path, "w"), indent=1)


if __name__ == "__main__":
    if sys.argv[1] == "recommend":
        recommend(*sys.argv[2:6])
    elif sys.argv[1] == "fraud":
        fraud(*sys.argv[2:5])
    else:
        raise SystemExit(__doc__)
