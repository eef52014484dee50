"""The k-means peer of `PersonaBench classifiers`: scikit-learn's KMeans (Lloyd, k-means++,
one initialisation, one thread) on the standardised profiles Persona wrote.

    python kmeans.py ROWS.f32 COLS K OUT_JSON
"""
import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402


def main():
    rows_path, cols, k, out_path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    x = np.fromfile(rows_path, dtype=np.float32).reshape(-1, cols).astype(np.float64)
    runs = []
    with threadpool_limits(1):
        for seed in range(20):
            start = time.perf_counter()
            model = KMeans(n_clusters=k, init="k-means++", n_init=1, algorithm="lloyd", max_iter=100, tol=1e-4, random_state=seed).fit(x)
            runs.append({"seconds": time.perf_counter() - start, "inertia": float(model.inertia_), "iterations": int(model.n_iter_)})
    with open(out_path, "w") as f:
        json.dump({"runs": runs}, f)


if __name__ == "__main__":
    main()
