"""The MUAP report picture: what a clinician reads off a QEMG screen — each unit's
template with its duration and amplitude marked and its measures beside it (a unit the
decomposition cannot vouch for greyed, with its verdict instead: merged or uncertain), the
raster of firings, and each unit's firing rate over time. Needs matplotlib (the workstation extra;
``nemg muap`` without ``-o`` does not)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def write_report(res: dict[str, Any], out: Path) -> None:
    try:
        import matplotlib
    except ModuleNotFoundError:
        from edge.errors import MissingExtraError

        raise MissingExtraError("convert", "the MUAP report picture (-o)", "matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    units = res["units"]
    n = max(1, len(units))
    cols = min(n, 6)
    rows = -(-n // cols)
    fig = plt.figure(figsize=(2.4 * cols, 2.6 * rows + 4.2))
    grid = fig.add_gridspec(rows + 2, cols, height_ratios=[2.6] * rows + [1.8, 1.8])
    colors = [c if u["measured"] else (0.6, 0.6, 0.6, 1.0)
              for c, u in zip(plt.cm.tab10(np.arange(n) % 10), units, strict=False)]
    span = 0.0
    for k, u in enumerate(units):
        ax = fig.add_subplot(grid[k // cols, k % cols])
        v = np.asarray(u["template_uv"])
        t = np.arange(v.size) / u["template_rate_hz"] * 1000
        ax.plot(t, v, color=colors[k], lw=1.2)
        if not u["measured"]:
            va = u["validity"]
            ax.set_title(f"unit {u['id']}: {va['verdict']}", fontsize=9, color="0.35")
            ax.text(0.02, 0.02, f"not measured\n{va['ptp_to_rms']:g}× RMS\n"
                    f"{va['short_interval_share']:.0%} short intervals",
                    transform=ax.transAxes, fontsize=7, va="bottom", color="0.35")
        else:
            if u["onset_ms"] is not None:
                ax.axvspan(u["onset_ms"], u["end_ms"], color="0.9", zorder=0)
            conf = (f" · {u['validity']['ptp_to_rms']:g}× RMS" if "validity" in u else "")
            ax.set_title(f"unit {u['id']}{conf}", fontsize=9)
            ax.text(0.02, 0.02, f"{u['amplitude_uv']:.0f} µV\n{u['duration_ms']:.1f} ms\n"
                    f"{u['phases']} ph · {u['turns']} turns\n{u['firing_rate_hz']:.1f} Hz",
                    transform=ax.transAxes, fontsize=7, va="bottom")
        ax.tick_params(labelsize=7)
        ax.set_xlabel("ms", fontsize=7)
        span = max(span, float(np.ptp(v)))
    for ax in fig.axes:  # one amplitude scale: sizes compare at a glance
        mid = float(np.mean(ax.get_ylim()))
        ax.set_ylim(mid - 0.6 * span, mid + 0.6 * span)
    raster = fig.add_subplot(grid[rows, :])
    rates = fig.add_subplot(grid[rows + 1, :], sharex=raster)
    for k, u in enumerate(units):
        f = np.asarray(u["firings_s"])
        raster.vlines(f, k + 0.6, k + 1.4, color=colors[k], lw=0.8)
        if f.size > 1:
            rates.plot(f[1:], 1 / np.diff(f), ".", ms=2.5, color=colors[k])
    raster.set_yticks(range(1, n + 1), [str(u["id"]) for u in units], fontsize=7)
    raster.set_ylabel("unit", fontsize=8)
    rates.set_ylabel("rate (Hz)", fontsize=8)
    rates.set_ylim(0, 50)
    rates.set_xlabel("time (s)", fontsize=8)
    i = res["interpretation"]
    measured = sum(u["measured"] for u in units)
    fig.suptitle(f"{Path(res['file']).name}: {i['finding']} — {measured} of {len(units)} "
                 "units measured"
                 f"{' · ' + res['muscle'] if res.get('muscle') else ''}", fontsize=11)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
