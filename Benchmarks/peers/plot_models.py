"""Draws Benchmarks/results/models.png (or sequence.png) from the figures `PersonaBench
models` (or `sequence`) wrote: NDCG@10 against training time, one panel per dataset,
Persona's models and the peers.

    python plot_models.py FIGURES_JSON OUT_PNG [SPLIT_NAME]
"""
import json
import sys

from plotting import finish, plt, side


def main():
    with open(sys.argv[1]) as f:
        figures = json.load(f)
    panels = figures["datasets"]
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.8), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for row in panel["rows"]:
            persona = row["side"] == "Persona"
            ax.scatter(max(row["seconds"], 1e-3), row["ndcg"], **side(persona), s=40)
            ax.annotate(row["name"], (max(row["seconds"], 1e-3), row["ndcg"]), fontsize=8, xytext=(4, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("training time, one thread (s, log scale)")
        ax.set_ylabel(f"NDCG@10 on the {sys.argv[3] if len(sys.argv) > 3 else 'time split'}")
        ax.set_title(panel["name"])
        ax.grid(True, alpha=0.3)
    finish(fig, figures.get("title", "Recommenders: quality against training time"), sys.argv[2], peers="implicit / numpy")


if __name__ == "__main__":
    main()
