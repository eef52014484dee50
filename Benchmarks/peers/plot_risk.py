"""Draws Benchmarks/results/risk.png from the figures `PersonaBench risk` wrote: the AUCs of
Score's decisions beside the peers', Score's latency at each rate, QueryDecisions' latency.

    python plot_risk.py FIGURES_JSON OUT_PNG
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    with open(sys.argv[1]) as f:
        figures = json.load(f)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    quality = figures["quality"]
    names = [q["name"].replace(" (score 0-1000)", "").replace("scikit-learn ", "sklearn ") for q in quality]
    x = range(len(quality))
    axes[0].bar([i - 0.2 for i in x], [q["roc_auc"] for q in quality], 0.4, label="ROC-AUC")
    axes[0].bar([i + 0.2 for i in x], [q["pr_auc"] for q in quality], 0.4, label="PR-AUC")
    axes[0].set_xticks(list(x))
    axes[0].set_xticklabels(names, rotation=20, ha="right", fontsize=7)
    axes[0].set_ylim(0, 1)
    axes[0].legend(fontsize=8)
    axes[0].set_title("held-back orders, replayed through Score")
    load = figures["load"]
    rates = [str(l["rate"]) for l in load]
    for key, label in (("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9")):
        axes[1].plot(rates, [l[key] for l in load], marker="o", label=label)
    axes[1].axhline(2, color="grey", linestyle="--", linewidth=1, label="goal: p99 2 ms")
    axes[1].set_xlabel("Score requests per second (open loop)")
    axes[1].set_ylabel("latency (ms)")
    axes[1].set_yscale("log")
    axes[1].legend(fontsize=8)
    axes[1].set_title("Score over RPC, durable decision included")
    queries = figures["queries"]
    y = range(len(queries))
    axes[2].barh([i - 0.2 for i in y], [q["p50_ms"] for q in queries], 0.4, label="p50")
    axes[2].barh([i + 0.2 for i in y], [q["p99_ms"] for q in queries], 0.4, label="p99")
    axes[2].axvline(50, color="grey", linestyle="--", linewidth=1, label="goal: p99 50 ms")
    axes[2].set_yticks(list(y))
    axes[2].set_yticklabels([q["name"] for q in queries], fontsize=7)
    axes[2].set_xlabel("ms")
    axes[2].legend(fontsize=8)
    axes[2].set_title("QueryDecisions over the stored decisions")
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110)


if __name__ == "__main__":
    main()
