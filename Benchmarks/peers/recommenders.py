"""The recommendation peers of `PersonaBench models`: implicit's ALS, BPR, BM25 and cosine
item-kNN, and a numpy EASE, each on one thread, trained on the split Persona wrote and
answering with ranked lists that Persona scores with its own metric code (so both sides
are measured by one function on one split).

    python recommenders.py SPLIT_DIR PARAMS_JSON OUT_JSON

SPLIT_DIR holds train.csv (user,item,confidence-input value) and users.csv (the users to
rank for, one index a line); the matrix is users x items with the sizes in shape.txt.
PARAMS_JSON gives each peer's parameters (the same values Persona trains with), and
`filter_seen` (default true; a peer's own `filter_seen` overrides it): whether a user's training items are left out of their list
(the leave-last-out protocol ranks them like any other).
"""
import json
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import implicit  # noqa: E402
from implicit.als import AlternatingLeastSquares  # noqa: E402
from implicit.bpr import BayesianPersonalizedRanking  # noqa: E402
from implicit.nearest_neighbours import BM25Recommender, CosineRecommender  # noqa: E402


def load(split):
    with open(os.path.join(split, "shape.txt")) as f:
        users, items = (int(x) for x in f.read().split())
    data = np.loadtxt(os.path.join(split, "train.csv"), delimiter=",", dtype=np.float64, ndmin=2)
    m = sp.csr_matrix((data[:, 2].astype(np.float32), (data[:, 0].astype(np.int64), data[:, 1].astype(np.int64))), shape=(users, items))
    m.sum_duplicates()
    m.sort_indices()
    evaluated = np.loadtxt(os.path.join(split, "users.csv"), dtype=np.int64, ndmin=1)
    return m, evaluated


def rank_implicit(model, m, evaluated, n, filter_seen=True):
    ids, _ = model.recommend(evaluated, m[evaluated], N=n, filter_already_liked_items=filter_seen)
    return [[int(i) for i in row if i >= 0] for row in ids]


def ease(m, evaluated, n, lam, items=None):
    """EASE over the given item columns (all when None); other items are never ranked."""
    start = time.perf_counter()
    columns = np.arange(m.shape[1]) if items is None else np.asarray(items, dtype=np.int64)
    x = m[:, columns].astype(np.float64)
    g = (x.T @ x).toarray()
    g[np.diag_indices_from(g)] += lam
    p = np.linalg.inv(g)
    b = p / (-np.diag(p))
    b[np.diag_indices_from(b)] = 0
    seconds = time.perf_counter() - start
    scores = x[evaluated] @ b
    scores = np.asarray(scores)
    rows = m[evaluated][:, columns]
    lists = []
    k = min(n, len(columns) - 1)
    for r in range(len(evaluated)):
        s = scores[r]
        s[rows[r].indices] = -np.inf
        top = np.argpartition(-s, k)[:k]
        top = top[np.argsort(-s[top], kind="stable")]
        lists.append([int(columns[i]) for i in top if np.isfinite(s[i])])
    return seconds, lists


def main():
    split, params_path, out_path = sys.argv[1:4]
    with open(params_path) as f:
        params = json.load(f)
    m, evaluated = load(split)
    n = params.get("n", 50)
    results = {"implicit_version": implicit.__version__, "numpy_version": np.__version__, "peers": {}}
    with threadpool_limits(limits=1):
        for name, spec in params["peers"].items():
            kind = spec["kind"]
            if kind == "ease":
                seconds, lists = ease(m, evaluated, n, spec["lambda"], spec.get("items"))
            else:
                if kind == "als":
                    model = AlternatingLeastSquares(
                        factors=spec["factors"], regularization=spec["regularization"], alpha=1.0, iterations=spec["iterations"],
                        use_cg=True, num_threads=1, random_state=spec.get("seed", 42), calculate_training_loss=False)
                    fit = m.copy()
                    fit.data = 1.0 + spec["alpha"] * fit.data  # confidence 1 + alpha * value, as Persona's
                elif kind == "bpr":
                    model = BayesianPersonalizedRanking(
                        factors=spec["factors"], learning_rate=spec["learning_rate"], regularization=spec["regularization"],
                        iterations=spec["iterations"], num_threads=1, random_state=spec.get("seed", 42))
                    fit = m
                elif kind == "bm25":
                    model = BM25Recommender(K=spec["neighbors"], K1=spec["k1"], B=spec["b"], num_threads=1)
                    fit = m
                elif kind == "cosine":
                    model = CosineRecommender(K=spec["neighbors"], num_threads=1)
                    fit = m
                else:
                    raise SystemExit(f"unknown peer kind {kind}")
                start = time.perf_counter()
                model.fit(fit, show_progress=False)
                seconds = time.perf_counter() - start
                lists = rank_implicit(model, m, evaluated, n, spec.get("filter_seen", params.get("filter_seen", True)))
            results["peers"][name] = {"seconds": seconds, "lists": lists}
            print(f"{name}: trained in {seconds:.3f} s", file=sys.stderr)
    with open(out_path, "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
