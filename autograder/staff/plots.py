"""The class report's plots: matplotlib figures rendered to inline SVG.

Each figure is drawn on its own Agg canvas inside an ``rc_context`` (no pyplot, no global
settings changed), with text kept as text (``svg.fonttype: none``), a fixed id salt per plot
and no metadata (no date), so the same data gives the same bytes.
"""
from __future__ import annotations

import io
import re
from typing import Callable

import matplotlib
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

RC = {"svg.fonttype": "none", "font.family": "DejaVu Sans", "font.size": 9, "axes.spines.top": False,
      "axes.spines.right": False, "figure.dpi": 100}
BAR, EDGE = "#4c72b0", "#ffffff"


def _plain(text: str) -> str:
    """A label drawn as written: a dollar sign must not start matplotlib's math mode."""
    return text.replace("$", r"\$")


def render(name: str, draw: Callable[[Axes], None], size: tuple[float, float] = (6.4, 2.8)) -> str:
    """``draw`` on one axes, as an ``<svg id="plot-NAME">`` element to inline in HTML."""
    with matplotlib.rc_context({**RC, "svg.hashsalt": f"class-report-{name}", "svg.id": f"plot-{name}"}):
        fig = Figure(figsize=size, layout="constrained")
        FigureCanvasAgg(fig)
        draw(fig.add_subplot())
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.S)  # RDF about the file, not the plot
    return text[text.index("<svg"):].strip()


def score_histogram(scores: list[float], max_score: float) -> str:
    """How many submissions got each total: one bar per point when scores are whole points."""
    def draw(ax: Axes) -> None:
        top = max([max_score, *scores, 1.0])
        whole = all(float(s).is_integer() for s in scores) and float(top).is_integer() and top <= 40
        bins = [k - 0.5 for k in range(int(top) + 2)] if whole else [top * k / 20 for k in range(21)]
        ax.hist(scores, bins=bins, color=BAR, edgecolor=EDGE)
        if whole:
            ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlim(bins[0], bins[-1])
        ax.set_xlabel(f"total score (of {max_score:g} points)")
        ax.set_ylabel("submissions")
        ax.yaxis.get_major_locator().set_params(integer=True)
    return render("scores", draw)


def pass_rates(rates: list[tuple[str, float]]) -> str:
    """One horizontal bar per test: its pass rate among the submissions it graded."""
    def draw(ax: Axes) -> None:
        labels = [_plain(test_id) for test_id, _ in rates][::-1]
        values = [rate for _, rate in rates][::-1]
        ax.barh(range(len(values)), values, color=BAR)
        ax.set_yticks(range(len(values)), labels=labels)
        ax.set_xlim(0, 1)
        ax.set_xlabel("pass rate (passed / graded)")
    return render("pass-rates", draw, size=(6.4, 0.6 + 0.28 * max(len(rates), 1)))


def time_and_memory(points: list[tuple[float, float]], times: list[float]) -> str:
    """Each submission's wall time against its workers' peak memory; a histogram of the times
    when no submission recorded its memory."""
    def draw(ax: Axes) -> None:
        if points:
            ax.scatter([t for t, _ in points], [m for _, m in points], s=14, color=BAR)
            ax.set_ylabel("worker peak memory (MiB)")
        else:
            ax.hist(times, bins=20, color=BAR, edgecolor=EDGE)
            ax.set_ylabel("submissions")
        ax.set_xlabel("wall time of the grade (s)")
    return render("time-memory", draw)
