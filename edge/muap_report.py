"""The MUAP report picture: what a clinician reads off a QEMG screen — each unit's
template with its duration marked (onset and end lines) and its measures beside it (a unit
the decomposition cannot vouch for greyed, with its verdict instead: merged or uncertain);
the site against its reference values (duration–amplitude plot with the limits of the mean
as the inner box and the single-MUP limits as the outer one, the multi-MUP database's
picture) and its recruitment (each unit's rate against the number of units firing, with
Petajan's ratio limit); the finding and its evidence; the raster of firings and each unit's
firing rate over time. Needs matplotlib (the workstation extra; ``nemg muap`` without
``-o`` does not)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np

DPI = 110
SMALL = 7  # pt: the smallest label drawn (readable at DPI)

# each panel's axes label (``Axes.get_label``): how a test finds the panels
TEMPLATE, DURATION_AMPLITUDE, RECRUITMENT, FINDING, RASTER, RATES, SITES = (
    "template", "duration-amplitude", "recruitment", "finding", "raster", "rates", "sites")


def write_report(res: dict[str, Any], out: Path) -> None:
    """Draw ``res`` (``nemg muap``'s analysis of one file: :func:`edge.muap.analysis.analyse`
    plus ``file``, ``muscle``, ``age``) into the PNG ``out``."""
    _save(report_figure(res), out)


def write_muscle_report(res: dict[str, Any], sites: list[dict[str, Any]], out: Path) -> None:
    """Draw a muscle's reading (``nemg muap --one-muscle``: :func:`edge.muap.analysis.
    read_muscle` plus ``muscle``) from its ``sites`` (each site's analysis) into ``out``."""
    _save(muscle_figure(res, sites), out)


def _save(fig, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI)
    _pyplot().close(fig)


def muscle_figure(res: dict[str, Any], sites: list[dict[str, Any]]):
    """The muscle's picture: every site's measured units on one duration–amplitude plot
    (coloured by site, named site.unit) against the reference boxes with the muscle's mean,
    each site's recruitment ratio against its limit, and the finding with its evidence."""
    plt = _pyplot()
    lines = _finding_lines(res, 12 * 0.38)
    fig = plt.figure(figsize=(14.0, max(4.4, 0.14 * len(lines) + 1.2)), layout="constrained")
    grid = fig.add_gridspec(1, 3, width_ratios=[1.0, 1.0, 1.25])
    colors = plt.cm.tab10(np.arange(len(sites)) % 10)
    measured = [({**u, "id": f"{k + 1}.{u['id']}"}, colors[k])
                for k, site in enumerate(sites) for u in site["units"] if u["measured"]]
    i = res["interpretation"]
    limits = i.get("limits")
    _duration_amplitude(fig.add_subplot(grid[0], label=DURATION_AMPLITUDE), measured,
                        res["summary"], limits, i.get("reference"), mean_label="muscle mean")
    ax = fig.add_subplot(grid[1], label=SITES)
    ratios = [site["summary"].get("recruitment_ratio") for site in sites]
    for k, r in enumerate(ratios):
        if r is not None:
            ax.bar(k + 1, r, color=colors[k], width=0.6)
        n = sites[k]["summary"].get("units", 0)
        ax.annotate(f"{n} unit{'' if n == 1 else 's'}", (k + 1, r or 0), ha="center",
                    fontsize=SMALL, xytext=(0, 3), textcoords="offset points")
    limit = (limits or {}).get("recruitment_reduced_above")
    if limit:
        ax.axhline(limit, color=(0.75, 0.2, 0.2), lw=1.2,
                   label=f"limit {limit:g}: above it, few units firing fast")
    ax.set_xticks(range(1, len(sites) + 1),
                  [f"{k + 1}: {Path(site.get('file', '')).name}" for k, site in
                   enumerate(sites)], fontsize=SMALL, rotation=20, ha="right")
    ax.set_title(f"recruitment ratio per site · muscle (median) "
                 f"{res['summary'].get('recruitment_ratio', '–')}", fontsize=9)
    ax.set_ylabel("mean rate ÷ units", fontsize=8)
    ax.tick_params(labelsize=SMALL)
    _legend_below(ax)
    text = fig.add_subplot(grid[2], label=FINDING)
    text.axis("off")
    text.text(0, 1, "\n".join(lines), transform=text.transAxes, va="top", ha="left",
              fontsize=SMALL)
    fig.suptitle(f"muscle{' (' + res['muscle'] + ')' if res.get('muscle') else ''}: "
                 f"{i['finding']} — {len(measured)} units measured at {len(sites)} site(s)",
                 fontsize=11)
    return fig


def _pyplot():
    try:
        import matplotlib
    except ModuleNotFoundError:
        from edge.errors import MissingExtraError

        raise MissingExtraError("convert", "the MUAP report picture (-o)", "matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def report_figure(res: dict[str, Any]):
    """The report as a matplotlib figure (not yet saved; the caller closes it). Each panel's
    axes carries its name as its label (the module's constants)."""
    plt = _pyplot()
    units = res["units"]
    n = max(1, len(units))
    cols = min(n, 6)
    rows = -(-n // cols)
    width = max(2.4 * cols, 12.0)  # the site row needs room for its three panels
    lines = _finding_lines(res, width * 0.38)
    site_h = max(3.6, 0.14 * len(lines) + 0.6)  # the text panel grows with its evidence
    # constrained: it places the site row's nested panels and their legends below them
    fig = plt.figure(figsize=(width, 2.6 * rows + site_h + 4.2), layout="constrained")
    grid = fig.add_gridspec(rows + 3, cols, height_ratios=[2.6] * rows + [site_h, 1.8, 1.8])
    colors = [c if u["measured"] else (0.6, 0.6, 0.6, 1.0)
              for c, u in zip(plt.cm.tab10(np.arange(n) % 10), units, strict=False)]
    span = 0.0
    templates = []
    for k, u in enumerate(units):
        ax = fig.add_subplot(grid[k // cols, k % cols], label=f"{TEMPLATE} {u['id']}")
        templates.append(ax)
        span = max(span, _template(ax, u, colors[k]))
    if not units:  # the template row says why it is empty
        ax = fig.add_subplot(grid[0, :], label=TEMPLATE)
        ax.axis("off")
        ax.text(0.5, 0.5, "no steadily firing motor unit found", transform=ax.transAxes,
                ha="center", fontsize=11, color="0.35")
    for ax in templates:  # one amplitude scale: sizes compare at a glance
        mid = float(np.mean(ax.get_ylim()))
        ax.set_ylim(mid - 0.6 * span, mid + 0.6 * span)
    site = grid[rows, :].subgridspec(1, 3, width_ratios=[1.0, 1.0, 1.25])
    i = res["interpretation"]
    limits = i.get("limits")
    measured = [(u, c) for u, c in zip(units, colors, strict=False) if u["measured"]]
    _duration_amplitude(fig.add_subplot(site[0], label=DURATION_AMPLITUDE), measured,
                        res["summary"], limits, i.get("reference"))
    _recruitment(fig.add_subplot(site[1], label=RECRUITMENT), measured, res["summary"],
                 limits)
    text = fig.add_subplot(site[2], label=FINDING)
    text.axis("off")
    text.text(0, 1, "\n".join(lines), transform=text.transAxes, va="top", ha="left",
              fontsize=SMALL)
    raster = fig.add_subplot(grid[rows + 1, :], label=RASTER)
    rates = fig.add_subplot(grid[rows + 2, :], sharex=raster, label=RATES)
    for k, u in enumerate(units):
        f = np.asarray(u["firings_s"])
        raster.vlines(f, k + 0.6, k + 1.4, color=colors[k], lw=0.8)
        if f.size > 1:
            rates.plot(f[1:], 1 / np.diff(f), ".", ms=2.5, color=colors[k])
    raster.set_yticks(range(1, len(units) + 1), [str(u["id"]) for u in units],
                      fontsize=SMALL)
    raster.set_ylim(0.4, n + 0.6)
    raster.set_ylabel("unit", fontsize=8)
    rates.set_ylabel("rate (Hz)", fontsize=8)
    rates.set_ylim(0, 50)
    rates.set_xlabel("time (s)", fontsize=8)
    fig.suptitle(f"{Path(res['file']).name}: {i['finding']} — {len(measured)} of {len(units)} "
                 "units measured"
                 f"{' · ' + res['muscle'] if res.get('muscle') else ''}", fontsize=11)
    return fig


def _template(ax, u: dict[str, Any], color) -> float:
    """One unit's template: measured, with its duration shaded between its onset and end
    lines and its measures; flagged, greyed with its verdict. Returns its peak-to-peak."""
    v = np.asarray(u["template_uv"])
    t = np.arange(v.size) / u["template_rate_hz"] * 1000
    ax.plot(t, v, color=color, lw=1.2)
    if not u["measured"]:
        va = u["validity"]
        ax.set_title(f"unit {u['id']}: {va['verdict']}", fontsize=9, color="0.35")
        ax.text(0.02, 0.02, f"not measured\n{va['ptp_to_rms']:g}× RMS\n"
                f"{va['short_interval_share']:.0%} short intervals",
                transform=ax.transAxes, fontsize=SMALL, va="bottom", color="0.35")
    else:
        if u["onset_ms"] is not None:
            ax.axvspan(u["onset_ms"], u["end_ms"], color="0.9", zorder=0)
            for x in (u["onset_ms"], u["end_ms"]):  # the duration's markers
                ax.axvline(x, color="0.15", lw=1.0, ls="--", zorder=1)
        conf = (f" · {u['validity']['ptp_to_rms']:g}× RMS" if "validity" in u else "")
        ax.set_title(f"unit {u['id']}{conf}", fontsize=9)
        sd = u.get("duration_sd_ms")
        ax.text(0.02, 0.02, f"{u['amplitude_uv']:.0f} µV\n{u['duration_ms']:.1f}"
                f"{'' if sd is None else f' ± {sd:.1f}'} ms\n"
                f"{u['phases']} ph · {u['turns']} turns\n{u['firing_rate_hz']:.1f} Hz",
                transform=ax.transAxes, fontsize=SMALL, va="bottom")
    ax.tick_params(labelsize=SMALL)
    ax.set_xlabel("ms", fontsize=SMALL)
    return float(np.ptp(v)) if v.size else 0.0


def _box(ax, xs: list[float], ys: list[float], label: str, **style) -> None:
    from matplotlib.patches import Rectangle

    ax.add_patch(Rectangle((xs[0], ys[0]), xs[1] - xs[0], ys[1] - ys[0], label=label,
                           **style))


def _duration_amplitude(ax, measured: list, summary: dict, limits: dict | None,
                        reference: str | None, mean_label: str = "site mean") -> None:
    """Each measured unit (its colour, its duration's uncertainty as a bar), the site's
    (or muscle's) mean (black cross), the limits of the mean (inner box) and the
    single-MUP limits (outer box) where the reference has them."""
    if limits:
        if "single_duration_ms" in limits:
            _box(ax, limits["single_duration_ms"], limits["single_amplitude_uv"],
                 "single-MUP limits (outer box)", fill=False, ec="0.35", ls="--", lw=1.0)
        _box(ax, limits["duration_ms"], limits["amplitude_uv"],
             "limits of the mean (inner box)", fc=(0.2, 0.6, 0.3, 0.15),
             ec=(0.2, 0.5, 0.3), lw=1.2)
    shown = [(u, c) for u, c in measured if u["amplitude_uv"] > 0]  # log axis
    for u, c in shown:
        ax.errorbar(u["duration_ms"], u["amplitude_uv"], xerr=u.get("duration_sd_ms"),
                    fmt="o", ms=5, color=c, elinewidth=0.8, capsize=2)
        ax.annotate(str(u["id"]), (u["duration_ms"], u["amplitude_uv"]), fontsize=SMALL,
                    xytext=(4, 3), textcoords="offset points")
    if summary.get("units"):
        ax.plot(summary["mean_duration_ms"], summary["mean_amplitude_uv"], "x", ms=10,
                mew=2.2, color="k", label=mean_label, zorder=5)
    if not shown:
        ax.text(0.5, 0.5, "no unit measured", transform=ax.transAxes, ha="center",
                fontsize=8, color="0.35")
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # 200, not 2×10²
    ax.yaxis.set_minor_formatter(NullFormatter())
    if limits or shown:
        ax.autoscale_view()
        ax.margins(0.08)
    else:  # nothing to scale to: the usual range of MUAPs
        ax.set_xlim(0, 20)
        ax.set_ylim(100, 5000)
    ax.set_title("duration–amplitude · reference: "
                 f"{reference if limits and reference else 'none'}", fontsize=9)
    ax.set_xlabel("duration (ms)", fontsize=8)
    ax.set_ylabel("amplitude (µV)", fontsize=8)
    ax.tick_params(labelsize=SMALL, which="both")
    _legend_below(ax)


def _recruitment(ax, measured: list, summary: dict, limits: dict | None) -> None:
    """Each measured unit's mean rate against the number of units firing once it has
    started (units in the order they first fire), the site (its mean rate at its number
    of units: the recruitment ratio is their quotient) and the ratio's limit as a line."""
    order = sorted((uc for uc in measured if uc[0]["firings_s"]),
                   key=lambda uc: uc[0]["firings_s"][0])
    rates = [u["firing_rate_hz"] for u, _ in order]
    for k, (u, c) in enumerate(order, start=1):
        ax.plot(k, u["firing_rate_hz"], "o", ms=5, color=c)
        ax.annotate(str(u["id"]), (k, u["firing_rate_hz"]), fontsize=SMALL, xytext=(4, 3),
                    textcoords="offset points")
    top = max([25.0, *(1.2 * r for r in rates)])
    n = len(order)
    ratio = summary.get("recruitment_ratio")
    if ratio is not None:
        # hollow: the last unit's own point, at the same n, shows through
        ax.plot(summary["units"], summary["mean_firing_rate_hz"], "D", ms=11, mew=1.5,
                mfc="none", color="k", label="site: mean rate at its n units", zorder=5)
    limit = (limits or {}).get("recruitment_reduced_above")
    if limit:
        xs = np.array([0.0, n + 1.0])
        ax.plot(xs, limit * xs, color=(0.75, 0.2, 0.2), lw=1.2,
                label=f"Petajan's limit, rate = {limit:g} × n: above it, few units firing fast")
    if not order:
        ax.text(0.5, 0.5, "no unit measured", transform=ax.transAxes, ha="center",
                fontsize=8, color="0.35")
    ax.set_xlim(0, n + 1)
    ax.set_ylim(0, top)
    ax.set_xticks(range(1, n + 1))
    ax.set_title("recruitment · ratio "
                 f"{'–' if ratio is None else f'{ratio:g}'}"
                 f"{f' (limit {limit:g})' if limit else ''}", fontsize=9)
    ax.set_xlabel("units firing (in order of recruitment)", fontsize=8)
    ax.set_ylabel("mean firing rate (Hz)", fontsize=8)
    ax.tick_params(labelsize=SMALL)
    _legend_below(ax)


def _legend_below(ax) -> None:
    """The legend under the plot: inside it would hide the very units it explains."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=SMALL, loc="upper center", bbox_to_anchor=(0.5, -0.2),
                  frameon=False)


def _finding_lines(res: dict[str, Any], width_in: float) -> list[str]:
    """The finding, the site's means and the evidence lines, wrapped to ``width_in``
    inches of SMALL text: the picture reads without the text output."""
    i, s = res["interpretation"], res["summary"]
    chars = max(30, int(width_in * 72 / (0.55 * SMALL)))  # ~0.55 em a character
    head = f"finding: {i['finding'].upper()}"
    if i.get("reference"):
        head += f" (reference: {i['reference']})"
    out = [head]
    if s.get("units"):
        out.append(f"mean {s['mean_amplitude_uv']:g} µV, {s['mean_duration_ms']:g} ms, "
                   f"polyphasic {s['polyphasic_share']:.0%}, recruitment ratio "
                   f"{s['recruitment_ratio']:g}")
    out.append("evidence:")
    for e in i["evidence"]:
        out += textwrap.wrap(e, chars, initial_indent="• ", subsequent_indent="  ")
    return out
