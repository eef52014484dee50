"""The top-K peers of `PersonaBench topk`: faiss IndexFlatIP (exact) and hnswlib
(approximate) on the vectors Persona wrote, one thread each.

    python topk.py ITEMS.f32 QUERIES.f32 DIM K OUT_JSON [--no-hnsw]

ITEMS.f32 and QUERIES.f32 are raw little-endian float32 rows of DIM values. OUT_JSON gets each
peer's milliseconds per query, its top-K ids per query, and hnswlib's build time.
"""
import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import faiss  # noqa: E402
import hnswlib  # noqa: E402


def main():
    items_path, queries_path, dim, k, out_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    items = np.fromfile(items_path, dtype=np.float32).reshape(-1, dim)
    queries = np.fromfile(queries_path, dtype=np.float32).reshape(-1, dim)
    faiss.omp_set_num_threads(1)
    out = {"faiss_version": faiss.__version__}

    index = faiss.IndexFlatIP(dim)
    index.add(items)
    start = time.perf_counter()
    ids = []
    for q in queries:  # one query at a time, as a service answers them
        _, found = index.search(q.reshape(1, -1), k)
        ids.append([int(i) for i in found[0]])
    out["faiss_flat"] = {"ms_per_query": 1000 * (time.perf_counter() - start) / len(queries), "ids": ids}

    if "--no-hnsw" in sys.argv:
        with open(out_path, "w") as f:
            json.dump(out, f)
        return
    start = time.perf_counter()
    graph = hnswlib.Index(space="ip", dim=dim)
    graph.init_index(max_elements=len(items), ef_construction=200, M=16, random_seed=1)
    graph.set_num_threads(1)
    graph.add_items(items, np.arange(len(items)))
    build = time.perf_counter() - start
    graph.set_ef(200)
    start = time.perf_counter()
    ids = []
    for q in queries:
        found, _ = graph.knn_query(q.reshape(1, -1), k=k)
        ids.append([int(i) for i in found[0]])
    out["hnswlib"] = {"ms_per_query": 1000 * (time.perf_counter() - start) / len(queries), "ids": ids, "build_seconds": build, "M": 16, "ef": 200}
    with open(out_path, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
