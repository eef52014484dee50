"""Draws Benchmarks/results/topk.png from the figures `PersonaBench topk` wrote: recall@10
against milliseconds per query for every side, one panel per catalogue size.

    python plot_topk.py FIGURES_JSON OUT_PNG
"""
import json
import sys

from plotting import finish, plt, side


def main():
    with open(sys.argv[1]) as f:
        points = json.load(f)["points"]
    sizes = sorted({p["items"] for p in points})
    fig, axes = plt.subplots(1, len(sizes), figsize=(6 * len(sizes), 4.5), squeeze=False)
    for ax, n in zip(axes[0], sizes):
        for p in (p for p in points if p["items"] == n):
            persona = p["side"] == "Persona"
            ax.scatter(p["ms"], p["recall"], **side(persona))
            ax.annotate(p["system"], (p["ms"], p["recall"]), fontsize=8, xytext=(4, 3), textcoords="offset points")
        ax.axhline(0.97, color="grey", linestyle=":", linewidth=1)
        ax.set_xscale("log")
        ax.set_xlabel("ms per query, one thread (log scale)")
        ax.set_ylabel("recall@10 against the exact answer")
        ax.set_title(f"{n:,} items x 64")
        ax.grid(True, alpha=0.3)
    finish(fig, "Top-10 by inner product: recall against time per query (goal line: recall 0.97)", sys.argv[2], peers="faiss / hnswlib")


if __name__ == "__main__":
    main()
