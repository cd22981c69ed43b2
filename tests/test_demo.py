"""``toolkit demo`` end to end (its own sandbox and journal), and the notebooks / app helpers."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from toolkit.cli import build_parser
from toolkit.cli.notebooks import APP_TAG, NOTEBOOKS, app_notebook, notebooks_dir

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_runs_the_notebooks_and_writes_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    args = build_parser().parse_args(["demo", "--out", str(out), "--notebooks", str(ROOT / "notebooks")])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    for name in NOTEBOOKS:
        assert (out / name).is_file()
        assert (out / name).with_suffix(".html").stat().st_size > 10_000
    for png in ("launch.png", "errors.png", "funnel.png", "progress.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    report = (out / "index.html").read_text()
    assert "04_results.html" in report and "launch.png" in report
    assert "profiles planned :   3,000" in printed
    assert "rejected         :     136" in printed
    assert "imported         :   2,833" in printed
    assert "more than one profile matches (2 found)" in printed
    assert f"Report: {(out / 'index.html').resolve()}" in printed
    # the token never lands in the report (each run has its own; none may appear at all)
    for path in out.iterdir():
        if path.suffix in (".ipynb", ".html"):
            text = path.read_text().lower()
            assert "bearer " not in text and "authorization:" not in text
    # the pages work offline: nothing from a CDN; the widgets' pages carry their renderer
    # (tests/test_html_export.py reads a page's fetches, tests/browser/test_exported_html.py opens one)
    for name in NOTEBOOKS:
        text = (out / name).with_suffix(".html").read_text()
        assert "cdnjs.cloudflare.com" not in text and "cdn.jsdelivr.net" not in text, name
    for name in ("03_launch.html", "04_results.html"):
        assert '<script src="data:text/javascript;base64,' in (out / name).read_text(), name


def test_committed_notebooks_are_executed_and_clean() -> None:
    folder = notebooks_dir(ROOT / "notebooks")
    for name in NOTEBOOKS:
        nb = nbformat.read(folder / name, as_version=4)
        first, last = nb.cells[0], nb.cells[-1]
        assert first.cell_type == "markdown" and "What this notebook does" in first.source
        assert last.cell_type == "markdown" and "## Next step" in last.source
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(c.execution_count for c in code), (
            f"{name}: commit it executed (toolkit notebooks --refresh)"
        )
        assert not any(o.output_type == "error" for c in code for o in c.outputs), name
        text = json.dumps(nb).lower()
        assert "bearer" not in text and "authorization" not in text, name


def test_app_notebook_keeps_the_form_cells(tmp_path: Path) -> None:
    page = app_notebook(ROOT / "notebooks" / "03_launch.ipynb", tmp_path / "form.ipynb")
    nb = nbformat.read(page, as_version=4)
    assert all(APP_TAG in c.metadata.get("tags", []) for c in nb.cells)
    assert "LaunchForm(" in nb.cells[-1].source
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


def test_cli_registers_the_commands() -> None:
    parser = build_parser()
    assert parser.parse_args(["notebooks"]).refresh is False
    assert parser.parse_args(["lab", "--port", "8899"]).port == 8899
    assert parser.parse_args(["app"]).port == 8866
