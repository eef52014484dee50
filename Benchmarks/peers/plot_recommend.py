"""Draws Benchmarks/results/recommend.png from the figures `PersonaBench recommend` wrote:
Recommend's p50 and p99 against calls in flight, one line per catalogue size.

    python plot_recommend.py FIGURES_JSON OUT_PNG
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    with open(sys.argv[1]) as f:
        rows = json.load(f)["rows"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for items, serving in sorted({(r["items"], r["serving"]) for r in rows}):
        mine = sorted((r for r in rows if r["items"] == items and r["serving"] == serving), key=lambda r: r["in_flight"])
        x = [r["in_flight"] for r in mine]
        line, = ax.plot(x, [r["p99_ms"] for r in mine], marker="o", label=f"{items:,} items, {serving}, p99")
        ax.plot(x, [r["p50_ms"] for r in mine], marker=".", linestyle="--", color=line.get_color(), label=f"{items:,} items, {serving}, p50")
    ax.axhline(2.0, color="grey", linestyle=":", label="goal: p99 2 ms at 100,000 items")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("calls in flight")
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_title("Recommend over RPC, feature fetch included (2 cores)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110)


if __name__ == "__main__":
    main()
