"""Rendering: Manhattan and QQ plots as PNG bytes, with matplotlib's Agg canvas.

No pyplot and no display: each figure is a standalone :class:`matplotlib.figure.Figure` on
a :class:`~matplotlib.backends.backend_agg.FigureCanvasAgg`, so nothing leaks between calls
and nothing depends on ``MPLBACKEND`` or a screen. What is drawn comes from
:mod:`glimix_cli.report.data`; this module only draws it.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from glimix_cli.errors import GlimixError, InputError
from glimix_cli.io.atomic import check_output
from glimix_cli.report import write_bytes_atomic
from glimix_cli.report.data import (
    GENOME_WIDE,
    SUGGESTIVE,
    ManhattanData,
    QQData,
    ScanTable,
    lambda_gc,
    manhattan_data,
    qq_data,
    read_scan_table,
)

#: Alternating chromosome colours (dark and light blue) and the threshold colours.
COLOURS = ("#1b4f72", "#5dade2")
GENOME_WIDE_COLOUR = "#c0392b"
SUGGESTIVE_COLOUR = "#7f8c8d"
DPI = 150


def require_matplotlib(command: str = "glimix plot") -> None:
    """Raise a one-line :class:`GlimixError` when the optional matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise GlimixError(f"{command} needs matplotlib: pip install 'glimix-cli[plot]'") from None


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": "glimix"})
    return buf.getvalue()


def manhattan_png(md: ManhattanData, title: str = "") -> bytes:
    """Draw a Manhattan plot; returns PNG bytes."""
    return _png(manhattan_figure(md, title))


def manhattan_figure(md: ManhattanData, title: str = "") -> Any:
    """The Manhattan plot as a matplotlib Figure (labels placed, see :func:`place_labels`)."""
    fig = _figure(12.0, 4.6)
    ax = fig.add_subplot()
    for parity in (0, 1):
        sel = md.chrom_rank % 2 == parity
        ax.plot(md.x[sel], md.y[sel], linestyle="none", marker="o", markersize=2.2,
                markeredgewidth=0, color=COLOURS[parity], rasterized=False)
    ax.axhline(GENOME_WIDE, color=GENOME_WIDE_COLOUR, linewidth=0.9, linestyle="-",
               label="genome-wide, p = 5e-8")
    ax.axhline(SUGGESTIVE, color=SUGGESTIVE_COLOUR, linewidth=0.9, linestyle="--",
               label="suggestive, p = 1e-5")
    ymax = max(float(md.y.max()) if md.y.size else 0.0, GENOME_WIDE + 1.0)
    # headroom for the labels of the highest points (rotated text rises above its point)
    ax.set_ylim(0, ymax * (1.3 if md.labels else 1.1))
    if md.bounds.size:
        pad = 0.005 * float(md.bounds[-1, 1])
        ax.set_xlim(float(md.bounds[0, 0]) - pad, float(md.bounds[-1, 1]) + pad)
    ax.set_xticks(md.ticks)
    many = len(md.chromosomes) > 30
    ax.set_xticklabels(md.chromosomes, fontsize=6 if many else 8,
                       rotation=90 if many else 0)
    for i, (lo, hi) in enumerate(md.bounds):
        if i % 2:
            ax.axvspan(lo, hi, color="#f4f6f7", zorder=0, linewidth=0)
    ax.set_xlabel("chromosome")
    ax.set_ylabel(r"$-\log_{10}\,p$")
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(loc="upper right", fontsize=7, frameon=False)
    thinned = f" ({md.n_drawn:,} drawn)" if md.n_drawn < md.n_input else ""
    ax.set_title(f"{title}{' - ' if title else ''}{md.n_input:,} variants{thinned}",
                 fontsize=10, loc="left")
    for x, y, _ in md.labels:
        ax.plot([x], [y], linestyle="none", marker="o", markersize=3.5, markeredgewidth=0.6,
                markerfacecolor="none", markeredgecolor="#000000")
    fig.canvas.draw()  # fix the layout, then place the labels in it
    place_labels(ax, md.labels)
    return fig


#: Offsets (points right of and above the labelled point) tried in turn for a label that
#: would overlap one already placed; beyond the first a thin line joins label and point.
_LABEL_OFFSETS = ((3, 4), *((dx, dy) for dy in (16, 30, 44, 58) for dx in (3, 36, 69, 102)))


def place_labels(ax: Any, labels: list[tuple[float, float, str]]) -> list[Any]:
    """Annotate ``labels`` (x, y, name), strongest first, each at the lowest offset where its
    text overlaps no label already placed and stays inside the figure; a label with no such
    place is left out (its point keeps its circle). Returns the placed annotations."""
    from matplotlib.text import Text

    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    frame = fig.bbox
    placed: list[Any] = []
    boxes: list[Any] = []
    legend = ax.get_legend()
    if legend is not None:
        boxes.append(legend.get_window_extent(renderer))
    for x, y, name in sorted(labels, key=lambda t: -t[1]):
        for off in _LABEL_OFFSETS:
            ann = ax.annotate(name, (x, y), xytext=off, textcoords="offset points",
                              fontsize=7, rotation=30, ha="left", va="bottom",
                              annotation_clip=False,
                              arrowprops=None if off == _LABEL_OFFSETS[0] else
                              {"arrowstyle": "-", "linewidth": 0.4, "color": "#555555",
                               "shrinkA": 0, "shrinkB": 2})
            ann.set_in_layout(False)
            ann.update_positions(renderer)
            box = Text.get_window_extent(ann, renderer)  # the text's box, not its line
            inside = (box.x0 >= frame.x0 and box.x1 <= frame.x1 and box.y0 >= frame.y0
                      and box.y1 <= frame.y1)
            if inside and not any(box.overlaps(b) for b in boxes):
                boxes.append(box)
                placed.append(ann)
                break
            ann.remove()
    return placed


def qq_png(qd: QQData, title: str = "") -> bytes:
    """Draw a QQ plot with its 95% band and lambda_GC; returns PNG bytes."""
    fig = _figure(5.6, 5.6)
    ax = fig.add_subplot()
    top = float(qd.expected.max()) if qd.n else 1.0
    ax.fill_between(qd.expected, qd.band_lower, qd.band_upper, color="#d5dbdb",
                    linewidth=0, label="95% band under the null")
    ax.plot([0, top], [0, top], color="#7f8c8d", linewidth=0.9)
    ax.plot(qd.expected, qd.observed, linestyle="none", marker="o", markersize=2.5,
            markeredgewidth=0, color=COLOURS[0])
    ax.set_xlabel(r"expected $-\log_{10}\,p$")
    ax.set_ylabel(r"observed $-\log_{10}\,p$")
    ax.set_xlim(0, top * 1.04)
    ymax = max(float(qd.observed.max()) if qd.n else 1.0, float(qd.band_upper.max())
               if qd.n else 1.0, top)
    ax.set_ylim(0, ymax * 1.06)
    lam = "NA" if not np.isfinite(qd.lambda_gc) else f"{qd.lambda_gc:.3f}"
    ax.text(0.04, 0.96, f"$\\lambda_{{GC}}$ = {lam}\n{qd.n:,} variants", transform=ax.transAxes,
            va="top", ha="left", fontsize=10)
    ax.legend(loc="lower right", fontsize=7, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_title(title or "QQ plot", fontsize=10, loc="left")
    return _png(fig)


@dataclass(frozen=True)
class PlotSet:
    """Both plots of one results file, with the data they were drawn from."""

    manhattan: bytes
    qq: bytes
    lambda_gc: float
    manhattan_data: ManhattanData
    qq_data: QQData


def plot_table(table: ScanTable, source: str, title: str = "",
               command: str = "glimix plot") -> PlotSet:
    """Prepare and draw both plots of a :class:`ScanTable`."""
    require_matplotlib(command)
    if table.n_ok == 0:
        found = ", ".join(f"{k} {v:,}" for k, v in table.status_counts.items()) or "no rows"
        raise InputError(f"{source}: no variant has status ok and a p-value ({found}) - "
                         "nothing to plot; check the scan's QC options")
    lam = lambda_gc(table.lrt)
    md = manhattan_data(table.chrom, table.pos, table.nlp, table.variant_id)
    qd = qq_data(table.nlp, lambda_gc=lam)
    return PlotSet(manhattan_png(md, title), qq_png(qd, title), lam, md, qd)


def default_title(results: str | os.PathLike[str]) -> str:
    """The trait's name from the results' ``.meta.json`` (``glimix scan`` records it), else
    the file's name."""
    from glimix_cli.io.ssf_meta import read_scan_meta

    meta = read_scan_meta(results) or {}
    trait = meta.get("trait")
    return str(trait) if trait else Path(results).name


def run_plot(results: str | os.PathLike[str], prefix: str | os.PathLike[str],
             title: str | None = None) -> dict[str, Any]:
    """``glimix plot``: read a results TSV, write ``PREFIX.manhattan.png`` and ``PREFIX.qq.png``.

    The output is checked (writable, not a directory) before anything is read."""
    check_output(Path(f"{prefix}.manhattan.png"), "--out")
    require_matplotlib("glimix plot")
    table = read_scan_table(results, top=0)
    name = default_title(results) if title is None else title
    ps = plot_table(table, str(results), name)
    man = write_bytes_atomic(f"{prefix}.manhattan.png", ps.manhattan)
    qq = write_bytes_atomic(f"{prefix}.qq.png", ps.qq)
    return {"manhattan": man, "qq": qq, "lambda_gc": ps.lambda_gc, "n_rows": table.n_rows,
            "n_ok": table.n_ok, "n_drawn": ps.manhattan_data.n_drawn}
