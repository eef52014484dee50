"""numpy (OpenBLAS) on the shapes `PersonaBench models` times its kernels on, one thread.

    python products.py SHAPES_JSON OUT_JSON

SHAPES_JSON: {"gemm": [[m, k, n], ...], "gram": [[rows, k], ...]}; OUT_JSON gets GFLOP/s for
each, best of 5 runs, with the BLAS numpy runs on.
"""
import json
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402
from threadpoolctl import threadpool_info, threadpool_limits  # noqa: E402


def best(f, runs=5):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    with open(sys.argv[1]) as f:
        shapes = json.load(f)
    rng = np.random.default_rng(1)
    out = {"gemm": [], "gram": []}
    with threadpool_limits(limits=1):
        for m, k, n in shapes["gemm"]:
            a = rng.standard_normal((m, k), dtype=np.float32)
            b = rng.standard_normal((k, n), dtype=np.float32)
            seconds = best(lambda: a @ b)
            out["gemm"].append({"shape": [m, k, n], "gflops": 2.0 * m * k * n / seconds / 1e9})
        for rows, k in shapes["gram"]:
            y = rng.standard_normal((rows, k), dtype=np.float32)
            seconds = best(lambda: y.T @ y)
            out["gram"].append({"shape": [rows, k], "gflops": 2.0 * rows * k * k / seconds / 1e9})
        out["blas"] = [{k: v for k, v in lib.items() if k in ("internal_api", "version", "architecture", "num_threads")} for lib in threadpool_info()]
    with open(sys.argv[2], "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
