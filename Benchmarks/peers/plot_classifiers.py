"""Draws Benchmarks/results/classifiers.png from the figures `PersonaBench classifiers`
wrote: ROC-AUC and PR-AUC of each model against its training time.

    python plot_classifiers.py FIGURES_JSON OUT_PNG
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    with open(sys.argv[1]) as f:
        rows = json.load(f)["rows"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    for ax, metric, title in ((axes[0], "roc_auc", "ROC-AUC"), (axes[1], "pr_auc", "PR-AUC")):
        for r in rows:
            persona = r["side"] == "Persona"
            ax.scatter(max(r["seconds"], 1e-3), r[metric], marker="o" if persona else "s", color="tab:blue" if persona else "tab:orange", s=45)
            ax.annotate(r["name"], (max(r["seconds"], 1e-3), r[metric]), fontsize=7, xytext=(4, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("training time, one thread (s, log scale)")
        ax.set_ylabel(title + " on the test rows")
        ax.grid(True, alpha=0.3)
    fig.legend(handles=[plt.Line2D([], [], marker="o", color="tab:blue", linestyle="", label="Persona"),
                        plt.Line2D([], [], marker="s", color="tab:orange", linestyle="", label="LightGBM / scikit-learn")],
               loc="upper right")
    fig.suptitle("Fraud classifiers on the feature service's point-in-time rows")
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110)


if __name__ == "__main__":
    main()
