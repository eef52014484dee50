"""Draws a benchmark's latency picture (rpc.png, store.png, feature.png) from the figures
`PersonaBench rpc`, `store` or `feature` wrote: each case's throughput against the peer
measured in the same run (when there is one), and the latency distributions of the cases it
names, every system's quantiles, with a published reference figure as a line.

    python plot_latency.py FIGURES_JSON OUT_PNG
"""
import json
import math
import sys

from plotting import finish, plt


def main():
    with open(sys.argv[1]) as f:
        fig_data = json.load(f)
    rows = fig_data["rows"]
    peer = fig_data.get("peer")
    groups = list(dict.fromkeys(r["group"] for r in rows))
    systems = [s for s in dict.fromkeys(r["system"] for r in rows) if s != peer]
    colours = {s: f"C{i}" for i, s in enumerate(dict.fromkeys(r["system"] for r in rows))}
    shown = fig_data["distributions"]
    panels = len(shown) + (1 if peer else 0)
    fig, axes = plt.subplots(1, panels, figsize=(4.5 * panels + (1.5 if peer else 0), 4.8), squeeze=False)
    axes = list(axes[0])
    if peer:
        throughput_panel(axes.pop(0), fig_data, rows, peer, groups, systems, colours)
    for ax, g in zip(axes, shown):
        distribution_panel(ax, fig_data, rows, peer, g, colours)
    finish(fig, fig_data["title"], sys.argv[2])


def throughput_panel(ax, fig_data, rows, peer, groups, systems, colours):
    width = 0.8 / max(1, len(systems))
    for k, system in enumerate(systems):
        ratios = []
        for g in groups:
            mine = next((r for r in rows if r["group"] == g and r["system"] == system), None)
            theirs = next((r for r in rows if r["group"] == g and r["system"] == peer), None)
            ratios.append(mine["throughput"] / theirs["throughput"] if mine and theirs else math.nan)
        ax.bar([i + (k - (len(systems) - 1) / 2) * width for i in range(len(groups))], ratios, width, label=system, color=colours[system])
    ax.axhline(1, color="grey", linestyle=":", label=peer)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, rotation=40, ha="right", fontsize=8)
    ax.set_ylabel(f"{fig_data['throughput_label']}, times {peer}'s")
    ax.set_title("throughput against the peer, same run")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)



def distribution_panel(ax, fig_data, rows, peer, group, colours):
    """Quantiles on a "nines" axis: 0.5, 0.9, 0.99, 0.999 equally spaced."""
    for r in (r for r in rows if r["group"] == group):
        qs = sorted((float(q), v) for q, v in r["quantiles"].items())
        ax.plot([-math.log10(1 - q) for q, _ in qs], [v for _, v in qs], marker="o", markersize=3,
                linestyle="--" if r["system"] == peer else "-", color=colours[r["system"]], label=r["system"])
    if fig_data.get("reference_value"):
        ax.axhline(fig_data["reference_value"], color="grey", linestyle=":", label=fig_data["reference_label"])
    ticks = [0.5, 0.9, 0.99, 0.999]
    ax.set_xticks([-math.log10(1 - q) for q in ticks])
    ax.set_xticklabels([f"p{q * 100:g}" for q in ticks])
    ax.set_yscale("log")
    ax.set_ylabel(fig_data["latency_label"] + " (log scale)")
    ax.set_title(f"latency distribution: {group}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)


if __name__ == "__main__":
    main()
