"""The classifier peers of `PersonaBench classifiers`: LightGBM, scikit-learn's
HistGradientBoostingClassifier and LogisticRegression, one thread each, on the rows Persona
wrote (its feature service's point-in-time export, split as `persona train fraud` splits).

    python classifiers.py DIR OUT_JSON [--no-shap]

DIR holds {train,valid,test}.f32 (row-major float32, NaN for missing), {train,valid,test}.labels
(float32 0/1) and shape.json ({"features": D}). OUT_JSON gets each peer's training seconds and
test probabilities, and LightGBM's per-row SHAP timing.
"""
import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import lightgbm as lgb  # noqa: E402
import sklearn  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402


def load(d, part, features):
    x = np.fromfile(os.path.join(d, part + ".f32"), dtype=np.float32).reshape(-1, features)
    y = np.fromfile(os.path.join(d, part + ".labels"), dtype=np.float32).astype(int)
    return x, y


def main():
    d, out_path = sys.argv[1], sys.argv[2]
    features = json.load(open(os.path.join(d, "shape.json")))["features"]
    xt, yt = load(d, "train", features)
    xv, yv = load(d, "valid", features)
    xs, _ = load(d, "test", features)
    out = {"lightgbm_version": lgb.__version__, "sklearn_version": sklearn.__version__}

    start = time.perf_counter()
    booster = lgb.LGBMClassifier(n_estimators=300, learning_rate=0.05, num_leaves=31, max_depth=8, min_child_samples=20,
                                 reg_lambda=1.0, max_bin=255, n_jobs=1, verbose=-1, random_state=1)
    booster.fit(xt, yt, eval_set=[(xv, yv)], callbacks=[lgb.early_stopping(30, verbose=False)])
    seconds = time.perf_counter() - start
    out["lightgbm"] = {"seconds": seconds, "test": booster.predict_proba(xs)[:, 1].tolist(), "trees": int(booster.best_iteration_ or 300)}

    start = time.perf_counter()
    hist = HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, max_leaf_nodes=31, max_depth=8, min_samples_leaf=20,
                                          l2_regularization=1.0, early_stopping=True, validation_fraction=0.125, n_iter_no_change=30, random_state=1)
    hist.fit(xt, yt)
    seconds = time.perf_counter() - start
    out["sklearn_hist"] = {"seconds": seconds, "test": hist.predict_proba(xs)[:, 1].tolist(), "trees": int(hist.n_iter_)}

    start = time.perf_counter()
    logistic = make_pipeline(SimpleImputer(strategy="mean"), StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    logistic.fit(xt, yt)
    seconds = time.perf_counter() - start
    out["sklearn_logistic"] = {"seconds": seconds, "test": logistic.predict_proba(xs)[:, 1].tolist()}

    if "--no-shap" in sys.argv:
        with open(out_path, "w") as f:
            json.dump(out, f)
        return
    # SHAP values per prediction from LightGBM's own TreeSHAP: 300 trees of depth 6, one row at a time.
    shap_model = lgb.LGBMClassifier(n_estimators=300, learning_rate=0.05, num_leaves=63, max_depth=6, n_jobs=1, verbose=-1, random_state=1)
    shap_model.fit(xt, yt)
    times = []
    for row in xs[:500]:
        t = time.perf_counter()
        shap_model.predict(row.reshape(1, -1), pred_contrib=True)
        times.append((time.perf_counter() - t) * 1e6)
    times.sort()
    out["lightgbm_shap_us"] = {"p50": times[len(times) // 2], "p99": times[int(len(times) * 0.99)]}
    with open(out_path, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
