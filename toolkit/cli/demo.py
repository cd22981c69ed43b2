"""``toolkit demo``: the whole journey, end to end, on a local sandbox, into ``out/``.

It starts a sandbox (and a fresh temporary journal), executes the four guided notebooks
headless (nbclient) into ``out/``, exports each to one self-contained HTML page that works
offline, its widgets included (:func:`toolkit.view.html_export.export_html`), saves the charts of
the main launch as PNG, writes ``out/index.html`` (the report), prints a short summary and
stops the sandbox. The notebooks in ``notebooks/`` are read, never rewritten.

Exit codes: 0 done; 1 a notebook failed (its partial output is still written); 2 the
notebooks were not found.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser(); sub = parser.add_subparsers()
    >>> register(sub)
    >>> args = parser.parse_args(["demo", "--out", "report"])
    >>> str(args.out), args.func is run
    ('report', True)
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import html
import os
import sys
import time
from pathlib import Path
from typing import Any

from toolkit.cli.notebooks import NOTEBOOKS, execute, notebooks_dir, platform_env

__all__ = ["CHART_TAGS", "MAIN_LABEL", "RETRY_LABEL", "register", "run"]

#: The launch of 04_results.ipynb whose figures and counts the demo reports.
MAIN_LABEL = "results-spring"
RETRY_LABEL = "results-spring-retry"
#: Cell tags of 04_results.ipynb -> the PNG file each chart is saved as.
CHART_TAGS = {
    "chart-launch": "launch.png",
    "chart-errors": "errors.png",
    "chart-funnel": "funnel.png",
    "chart-progress": "progress.png",
}


def register(subparsers: Any) -> None:
    """Add the ``demo`` sub-command."""
    p = subparsers.add_parser(
        "demo",
        help="run the four notebooks end to end on a local sandbox; report in out/",
        description="Start a sandbox, execute the notebooks into OUT (HTML too), save the charts "
        "as PNG, print a summary, stop the sandbox.",
    )
    p.add_argument("--out", type=Path, default=Path("out"), help="where the report goes (default: out/)")
    p.add_argument("--notebooks", type=Path, default=None, help="the notebooks folder (default: ./notebooks)")
    p.add_argument(
        "--processing-rate",
        type=float,
        default=3000.0,
        help="sandbox profiles per second (default 3000: the tasks take a moment, as on the platform)",
    )
    p.add_argument("--timeout", type=int, default=300, help="seconds a notebook cell may run (default 300)")
    p.set_defaults(func=run)


def _save_charts(nb: Any, out: Path) -> list[Path]:
    """The PNG outputs of the cells tagged ``chart-*``, written as files."""
    saved = []
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        name = next((CHART_TAGS[t] for t in tags if t in CHART_TAGS), None)
        if name is None or cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            png = output.get("data", {}).get("image/png")
            if png:
                path = out / name
                path.write_bytes(base64.b64decode(png))
                saved.append(path)
                break
    return saved


def _summary() -> dict[str, Any]:
    """Counts of the main launch (and its retry) from the journal, on the demo's platform."""
    from toolkit.send.client import Client

    with Client.from_env() as client:
        record = client.journal.find(MAIN_LABEL)
        launch = client.resume(MAIN_LABEL)
        s = launch.summary()
        planned = record.summary or {}
        out: dict[str, Any] = {
            "planned": planned.get("rows", record.n_rows),
            "valid": planned.get("valid"),
            "rejected": planned.get("rejected", 0),
            "rejected_by_rule": planned.get("rejected_by_rule", {}),
            "sent": sum(b.n_rows for b in launch.batches if b.was_sent),
            "imported": s["imported"],
            "failed": s["failed"],
            "unknown": s["unknown"],
            "failures": s["failures"],
            "retried_imported": None,
        }
        with contextlib.suppress(Exception):  # the retry is optional in the story
            out["retried_imported"] = client.resume(RETRY_LABEL).summary()["imported"]
        return out


def _print_summary(s: dict[str, Any]) -> None:
    print("\nSummary of the launch", repr(MAIN_LABEL))
    print(f"  profiles planned : {s['planned']:>7,}")
    rules = ", ".join(f"{rule} {n:,}" for rule, n in s["rejected_by_rule"].items())
    print(f"  rejected         : {s['rejected']:>7,}" + (f"  ({rules})" if rules else ""))
    print(f"  sent             : {s['sent']:>7,}")
    print(f"  imported         : {s['imported']:>7,}")
    print(f"  failed           : {s['failed']:>7,}")
    for reason, n in s["failures"].items():
        print(f"    {n:>6,}  {reason}")
    if s["unknown"]:
        print(f"  unknown          : {s['unknown']:>7,}")
    if s["retried_imported"] is not None:
        print(f"  after the fix, the retry imported {s['retried_imported']:,} more")


def _report(out: Path, summary: dict[str, Any] | None, pages: list[Path], charts: list[Path]) -> Path:
    esc = html.escape
    rows = ""
    if summary is not None:
        items = [
            ("profiles planned", summary["planned"]),
            ("rejected before sending", summary["rejected"]),
            ("sent", summary["sent"]),
            ("imported", summary["imported"]),
            ("failed", summary["failed"]),
            ("unknown", summary["unknown"]),
        ]
        items += [(f"failed: {reason}", n) for reason, n in summary["failures"].items()]
        if summary["retried_imported"] is not None:
            items.append(("imported by the retry after the fix", summary["retried_imported"]))
        rows = "".join(f"<tr><td>{esc(k)}</td><td style='text-align:right'>{v:,}</td></tr>" for k, v in items)
    links = "".join(f"<li><a href='{esc(p.name)}'>{esc(p.stem)}</a></li>" for p in pages)
    images = "".join(
        f"<figure><img src='{esc(p.name)}' alt='{esc(p.stem)}' style='max-width:100%'></figure>"
        for p in charts
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>toolkit demo</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
        "td,th{padding:.2em .8em;border-bottom:1px solid #ddd}</style></head><body>"
        "<h1>toolkit demo: segment to launch to results, on the local sandbox</h1>"
        f"<h2>The launch {esc(MAIN_LABEL)}</h2><table>{rows}</table>"
        f"<h2>Notebooks (executed)</h2><ol>{links}</ol>"
        f"<h2>Charts</h2>{images}</body></html>"
    )
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def run(args: argparse.Namespace) -> int:
    """Run the demo; returns the exit code."""
    from nbclient.exceptions import CellExecutionError

    from toolkit.view.html_export import export_html

    folder = notebooks_dir(args.notebooks)
    sources = [folder / name for name in NOTEBOOKS]
    missing = [str(p) for p in sources if not p.is_file()]
    if missing:
        print(f"notebooks not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    pages: list[Path] = []
    charts: list[Path] = []
    summary = None
    status = 0
    started = time.monotonic()
    with platform_env(fresh=True, processing_rate=args.processing_rate) as where:
        print(f"sandbox: {where} (stopped at the end); journal: a fresh temporary file")
        token = os.environ["TOOLKIT_API_TOKEN"]
        for source in sources:
            t0 = time.monotonic()
            target = out / source.name
            try:
                nb = execute(source, target, timeout=args.timeout)
            except CellExecutionError as exc:
                print(f"  {source.name}: FAILED\n{exc}", file=sys.stderr)
                status = 1
                break
            page = target.with_suffix(".html")
            page.write_text(export_html(nb), encoding="utf-8")
            for written in (target, page):
                if token in written.read_text(encoding="utf-8"):
                    raise RuntimeError(f"{written} holds the API token")  # never expected: stop loudly
            pages.append(page)
            if source.name == "04_results.ipynb":
                charts = _save_charts(nb, out)
            print(f"  {source.name}: executed in {time.monotonic() - t0:.1f} s -> {page}")
        if status == 0:
            summary = _summary()
    report = _report(out, summary, pages, charts)
    if summary is not None:
        _print_summary(summary)
    for chart in charts:
        print(f"  chart: {chart}")
    print(f"\nReport: {report.resolve()}  ({time.monotonic() - started:.0f} s)")
    return status
