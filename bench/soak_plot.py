"""The soak's plot: throughput, p50/p99 latency and RSS per process over time, kills marked.

.venv/bin/python -m bench.soak_plot [bench/results/soak.json] [docs/soak.png]
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _mark_kills(ax: plt.Axes, kills: list[dict]) -> None:
    for k in kills:
        colour = "tab:red" if str(k["target"]).startswith("api") else "tab:purple"
        ax.axvline(k["t"], color=colour, alpha=0.35, linewidth=0.8)


def plot(result: dict, out: Path) -> None:
    """Three panels sharing the time axis (seconds since publishing started)."""
    series, kills = result["series"], result["kills"]
    fig, (thr, lat, rss) = plt.subplots(3, 1, figsize=(12, 10), sharex=True)
    thr.plot(series["accepted_per_s"], label="accepted events/s", linewidth=0.6)
    thr.plot(series["delivered_per_s"], label="2xx arrivals/s", linewidth=0.6, alpha=0.8)
    thr.set_ylabel("per second")
    thr.legend(loc="lower left", fontsize=8)
    args = result["args"]
    verdict = "PASS" if result["passed"] else "FAIL"
    thr.set_title(
        f"webhookd soak ({verdict}): {args['rate']:g} events/s, {args['minutes']:g} min, "
        f"SIGKILL every {args['kill_every']:g} s (red: API, purple: worker)"
    )
    points = series["latency"]
    t = [p["t"] for p in points]
    lat.plot(t, [p["p50_ms"] for p in points], label="p50", linewidth=0.6)
    lat.plot(t, [p["p99_ms"] for p in points], label="p99", linewidth=0.6)
    lat.axhline(1000, color="black", linestyle="--", linewidth=0.8, label="1 s limit")
    lat.set_yscale("log")
    lat.set_ylabel("accepted → 2xx arrival (ms)\nhealthy endpoints, per second")
    lat.legend(loc="upper left", fontsize=8)
    by_series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for at, name, mb in series["rss"]:
        by_series[name].append((at, mb))
    colours = {"api": "tab:red", "worker1": "tab:blue", "worker2": "tab:green"}
    seen = set()
    for name, samples in by_series.items():
        proc = name.split(" ")[0]
        label = proc if proc not in seen else None
        seen.add(proc)
        xs, ys = zip(*samples, strict=True)
        rss.plot(xs, ys, color=colours.get(proc, "grey"), linewidth=0.8, label=label)
    window = result["rss"]["window_s"]
    rss.axvspan(*window, color="grey", alpha=0.08, label="RSS judged here")
    rss.set_ylabel("RSS (MB), one line per pid")
    rss.set_xlabel("seconds since publishing started")
    rss.legend(loc="upper left", fontsize=8)
    for ax in (thr, lat, rss):
        _mark_kills(ax, kills)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "bench/results/soak.json"
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "docs/soak.png"
    plot(json.loads(source.read_text()), out)


if __name__ == "__main__":
    main()
