"""Draws Benchmarks/results/classifiers.png from the figures `PersonaBench classifiers`
wrote: ROC-AUC and PR-AUC of each model against its training time.

    python plot_classifiers.py FIGURES_JSON OUT_PNG
"""
import json
import sys

from plotting import finish, plt, side


def main():
    with open(sys.argv[1]) as f:
        rows = json.load(f)["rows"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    for ax, metric, title in ((axes[0], "roc_auc", "ROC-AUC"), (axes[1], "pr_auc", "PR-AUC")):
        for r in rows:
            persona = r["side"] == "Persona"
            ax.scatter(max(r["seconds"], 1e-3), r[metric], **side(persona), s=45)
            ax.annotate(r["name"], (max(r["seconds"], 1e-3), r[metric]), fontsize=7, xytext=(4, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("training time, one thread (s, log scale)")
        ax.set_ylabel(title + " on the test rows")
        ax.grid(True, alpha=0.3)
    finish(fig, "Fraud classifiers on the feature service's point-in-time rows", sys.argv[2], peers="LightGBM / scikit-learn")


if __name__ == "__main__":
    main()
