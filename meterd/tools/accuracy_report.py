"""The accuracy test's report: HTML and PDF for people, JSON and CSV for a lab's own records.

The PDF (matplotlib, no display needed) has a first page with the meter, its calibration
identifier and date, the reference standard, the verdict, and the plot of error (%) against
current (A, logarithmic) per power factor and load with the class 0.5S limits drawn in
:data:`LIMIT_COLOUR`; then the table of points (one row per point, the result cell
:data:`PASS_COLOUR` or :data:`FAIL_COLOUR`, :data:`ROWS_PER_PAGE` rows a page) and the
starting-current and no-load tests. The HTML shows the same plot (embedded PNG) and tables.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from meterd.services.accuracy_test import AccuracyReport, PointResult

LIMIT_COLOUR = "#d62728"
"""The class limit lines (red)."""
PASS_COLOUR = "#b7e1b0"
"""Background of a PASS result cell (light green)."""
FAIL_COLOUR = "#f4b6b6"
"""Background of a FAIL result cell (light red)."""
ROWS_PER_PAGE = 30
_PF_COLOURS = {"1": "#1f77b4", "0.5L": "#2ca02c", "0.8C": "#9467bd"}
_LOAD_MARKERS = {"balanced": "o", "L1": "^", "L2": "s", "L3": "D"}
_A4 = (8.27, 11.69)


def _title(report: AccuracyReport) -> str:
    m = report.meter
    return f"Accuracy test IEC 62053-22 class 0.5S — meter {m.get('serial', '?')}"


def _meter_lines(report: AccuracyReport) -> list[str]:
    m = report.meter
    return [f"Calibration: {m.get('calibration_id') or 'none'} ({m.get('calibration_date') or 'no date'})",
            f"Reference: {report.reference} (uncertainty {report.reference_uncertainty_pct:g} %)",
            f"Un {m.get('nominal_voltage_v', '?')} V, In {m.get('basic_current_a', '?')} A, "
            f"Imax {m.get('max_current_a', '?')} A; register {m.get('energy_resolution_mwh', '?')} mWh/count; "
            f"point resolution ≤ {report.resolution_pct:g} %",
            f"Run: {m.get('run_utc') or 'not recorded'}; largest |error| {report.max_abs_error_pct:.4f} %; "
            f"verdict {'PASS' if report.passed else 'FAIL'}"]


def _limit_steps(points: Sequence[PointResult]) -> list[tuple[list[float], list[float], str]]:
    """The limit lines: (currents, limits, line style) per load kind and power factor group."""
    lines: list[tuple[list[float], list[float], str]] = []
    groups: dict[tuple[bool, bool], list[PointResult]] = {}
    for r in points:
        groups.setdefault((r.point.load == "balanced", r.point.power_factor == "1"), []).append(r)
    for (balanced, unity), members in sorted(groups.items()):
        members = sorted(members, key=lambda r: r.point.current_a)
        xs = [r.point.current_a for r in members]
        ys = [r.point.limit_pct for r in members]
        lines.append((xs, ys, "-" if unity else "--" if balanced else ":"))
    return lines


def plot_errors(report: AccuracyReport, ax: Axes) -> None:
    """Error (%) against current (A) with the class limits."""
    for xs, ys, style in _limit_steps(report.points):
        ax.step(xs, ys, where="post", color=LIMIT_COLOUR, linestyle=style, linewidth=1.6)
        ax.step(xs, [-y for y in ys], where="post", color=LIMIT_COLOUR, linestyle=style, linewidth=1.6)
    seen: set[str] = set()
    for r in report.points:
        label = f"PF {r.point.power_factor} {r.point.load}"
        ax.plot([r.point.current_a], [r.error_pct], linestyle="none",
                marker=_LOAD_MARKERS.get(r.point.load, "o"), color=_PF_COLOURS.get(r.point.power_factor, "k"),
                markersize=5, label=None if label in seen else label)
        seen.add(label)
    ax.set_xscale("log")
    ax.axhline(0.0, color="#888888", linewidth=0.8)
    ax.set_xlabel("current (A)")
    ax.set_ylabel("error (%)")
    ax.set_ylim(-1.3, 1.3)
    ax.grid(True, which="both", linewidth=0.3)
    ax.legend(fontsize=6, ncol=3, loc="lower right")
    ax.set_title("error against current; class 0.5S limits in red (solid: balanced PF 1, dashed: balanced "
                 "PF 0.5 L / 0.8 C, dotted: one phase alone)", fontsize=7)


def _row(r: PointResult) -> list[str]:
    return [r.point.load, f"{r.point.current_a:g}", f"{r.point.current_pct_in:g}", r.point.power_factor,
            r.point.direction, f"{r.meter_wh:.3f}", f"{r.reference_wh:.3f}", f"{r.error_pct:+.4f}",
            f"±{r.resolution_pct:.4f}", f"±{r.point.limit_pct:g}", "PASS" if r.passed else "FAIL"]


COLUMNS = ["load", "I (A)", "% In", "PF", "direction", "meter Wh", "reference Wh", "error %", "resolution %",
           "limit %", "result"]


def write_pdf(report: AccuracyReport, path: Path) -> None:
    """The report as a PDF (module docstring)."""
    with PdfPages(path) as pdf:
        fig = Figure(figsize=_A4)
        fig.text(0.07, 0.95, _title(report), fontsize=12, weight="bold")
        fig.text(0.07, 0.235, "Starting current (meter's configured starting current; IEC 62053-22 class 0.5S: "
                 "0.1 % In) and running with no load (Δt = 600·10⁶ / (k·m·Un·Imax) min)", fontsize=7)
        for i, line in enumerate(_meter_lines(report)):
            fig.text(0.07, 0.92 - 0.018 * i, line, fontsize=7.5)
        plot_errors(report, fig.add_axes((0.1, 0.3, 0.85, 0.5)))
        special = [[s.name, s.condition, f"{s.meter_wh:.4f}", f"{s.reference_wh:.4f}", s.allowance,
                    "PASS" if s.passed else "FAIL"] for s in report.special]
        if special:
            ax = fig.add_axes((0.05, 0.05, 0.9, 0.17))
            ax.axis("off")
            table = ax.table(cellText=special, colLabels=["test", "condition", "meter Wh", "reference Wh",
                                                          "allowance", "result"], loc="upper center",
                             colWidths=[0.17, 0.33, 0.1, 0.12, 0.2, 0.08], cellLoc="center")
            table.auto_set_font_size(False)
            table.set_fontsize(6)
            for i, s in enumerate(report.special, start=1):
                table[i, 5].set_facecolor(PASS_COLOUR if s.passed else FAIL_COLOUR)
        pdf.savefig(fig)
        rows = list(report.points)
        for page, first in enumerate(range(0, len(rows), ROWS_PER_PAGE), start=2):
            chunk = rows[first:first + ROWS_PER_PAGE]
            fig = Figure(figsize=_A4)
            fig.text(0.07, 0.96, f"{_title(report)} — points {first + 1}–{first + len(chunk)} (page {page})",
                     fontsize=9)
            ax = fig.add_axes((0.04, 0.05, 0.92, 0.88))
            ax.axis("off")
            table = ax.table(cellText=[_row(r) for r in chunk], colLabels=COLUMNS, loc="upper center")
            table.auto_set_font_size(False)
            table.set_fontsize(6.5)
            table.scale(1.0, 1.5)
            for i, r in enumerate(chunk, start=1):
                table[i, len(COLUMNS) - 1].set_facecolor(PASS_COLOUR if r.passed else FAIL_COLOUR)
            pdf.savefig(fig)


def plot_png(report: AccuracyReport) -> bytes:
    """The plot alone as PNG bytes."""
    fig = Figure(figsize=(8, 5), dpi=100)
    plot_errors(report, fig.add_subplot(1, 1, 1))
    out = io.BytesIO()
    FigureCanvasAgg(fig)
    fig.savefig(out, format="png")
    return out.getvalue()


def write_html(report: AccuracyReport, path: Path) -> None:
    """The report as one self-contained HTML file."""
    esc = html.escape
    png = base64.b64encode(plot_png(report)).decode("ascii")
    head = "".join(f"<th>{esc(c)}</th>" for c in COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(v)}</td>" for v in _row(r)[:-1])
        + f"<td style=\"background:{PASS_COLOUR if r.passed else FAIL_COLOUR}\">{'PASS' if r.passed else 'FAIL'}</td></tr>"
        for r in report.points)
    special = "".join(
        f"<tr><td>{esc(s.name)}</td><td>{esc(s.condition)}</td><td>{s.meter_wh:.4f}</td><td>{s.reference_wh:.4f}</td>"
        f"<td>{esc(s.allowance)}</td><td style=\"background:{PASS_COLOUR if s.passed else FAIL_COLOUR}\">"
        f"{'PASS' if s.passed else 'FAIL'}</td></tr>" for s in report.special)
    lines = "".join(f"<p>{esc(line)}</p>" for line in _meter_lines(report))
    path.write_text(
        f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{esc(_title(report))}</title>"
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #999;"
        "padding:2px 6px;font-size:12px}</style></head><body>"
        f"<h1>{esc(_title(report))}</h1>{lines}<img alt=\"error against current\" src=\"data:image/png;base64,{png}\">"
        f"<h2>Points</h2><table><tr>{head}</tr>{body}</table>"
        "<h2>Starting current and no load</h2><table><tr><th>test</th><th>condition</th><th>meter Wh</th>"
        f"<th>reference Wh</th><th>allowance</th><th>result</th></tr>{special}</table></body></html>",
        encoding="utf-8")


def write_json(report: AccuracyReport, path: Path) -> None:
    """The report as JSON."""
    path.write_text(json.dumps(report.as_dict(), indent=1, sort_keys=True), encoding="utf-8")


def write_csv(report: AccuracyReport, path: Path) -> None:
    """One row per point (and per starting/no-load test)."""
    rows: list[dict[str, Any]] = [p.as_dict() for p in report.points]
    fields = list(rows[0]) if rows else ["label"]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*fields, "test", "condition", "allowance"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        for s in report.special:
            writer.writerow({"test": s.name, "condition": s.condition, "allowance": s.allowance,
                             "meter_wh": s.meter_wh, "reference_wh": s.reference_wh,
                             "duration_s": s.duration_s, "result": "PASS" if s.passed else "FAIL"})


def write_all(report: AccuracyReport, directory: Path, stem: str = "accuracy") -> dict[str, Path]:
    """HTML, PDF, JSON and CSV in ``directory``; returns the paths by kind."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {kind: directory / f"{stem}.{kind}" for kind in ("html", "pdf", "json", "csv")}
    write_html(report, paths["html"])
    write_pdf(report, paths["pdf"])
    write_json(report, paths["json"])
    write_csv(report, paths["csv"])
    return paths
