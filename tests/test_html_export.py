"""The exported notebook pages (``toolkit demo``'s ``out/*.html``) name nothing to fetch beyond
the file, carry the vendored widget renderer, and the package carries what they inline.

The page is read as HTML (every attribute that makes a browser fetch, every CSS ``url()``), not
searched as text: the theme's CSS comments hold links that no browser follows. The browser side
(the widgets drawn with the network off) is tests/browser/test_exported_html.py.
"""

from __future__ import annotations

import base64
import hashlib
import re
import tomllib
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import ipywidgets
import nbformat
import pytest
from ipywidgets.embed import embed_data

from toolkit.view import html_export
from toolkit.view.html_export import VENDOR, WIDGET_RENDERER, export_html

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "03_launch.ipynb"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
# Attributes whose URL a browser fetches by itself (<a href> is a link the reader may follow: not fetched)
FETCHED = {
    "script": ("src",),
    "link": ("href",),
    "img": ("src", "srcset"),
    "iframe": ("src",),
    "frame": ("src",),
    "embed": ("src",),
    "object": ("data",),
    "source": ("src", "srcset"),
    "audio": ("src",),
    "video": ("src", "poster"),
    "track": ("src",),
    "input": ("src",),
    "image": ("href", "xlink:href"),
    "use": ("href", "xlink:href"),
}
CSS_URL = re.compile(r"""url\(\s*['"]?([^'")\s]+)|@import\s+['"]([^'"]+)""")
CSS_COMMENT = re.compile(r"/\*.*?\*/", re.S)
JS_IMPORT = re.compile(r"""\bimport\s*\(\s*['"]([^'"]+)""")


class _Fetches(HTMLParser):
    """The URLs a page makes the browser fetch: tag attributes, <style> and style="" CSS, import()."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[tuple[str, str]] = []  # (where, url)
        self.renderers: list[str] = []  # <script src> values
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        for name in FETCHED.get(tag, ()):
            if values.get(name):
                urls = (
                    [part.split()[0] for part in values[name].split(",")]
                    if "srcset" in name
                    else [values[name]]
                )
                self.urls += [(f"<{tag} {name}>", url) for url in urls]
        if tag == "script" and values.get("src"):
            self.renderers.append(values["src"])
        if values.get("style"):
            self._css(values["style"], f"<{tag} style>")
        self._in = tag if tag in ("style", "script") else None

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "style":
            self._css(data, "<style>")
        elif self._in == "script":
            self.urls += [("<script> import()", url) for url in JS_IMPORT.findall(data)]

    def _css(self, css: str, where: str) -> None:
        for found in CSS_URL.findall(CSS_COMMENT.sub("", css)):
            self.urls.append((where, found[0] or found[1]))


def _leaves_the_file(url: str) -> bool:
    """A URL that would go to a server other than this machine (data: and relative URLs stay)."""
    parts = urlsplit(url)
    if parts.scheme in ("", "data", "blob") or url.startswith("#"):
        return False
    return parts.scheme not in ("http", "https", "file") or parts.hostname not in ("127.0.0.1", None)


def _notebook_with_widgets() -> nbformat.NotebookNode:
    """notebooks/03_launch.ipynb as committed, with a widget state as the demo's execution saves
    one (made here by ipywidgets itself, no kernel: a box, a button with an icon, an HTML text)."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    box = ipywidgets.VBox(
        [
            ipywidgets.HTML("<b>SANDBOX at 127.0.0.1</b>"),
            ipywidgets.Button(description="Launch", icon="upload"),
        ]
    )
    data = embed_data(views=[box])
    nb.metadata["widgets"] = {WIDGET_STATE: data["manager_state"]}
    view = nbformat.v4.new_output("display_data", data={WIDGET_VIEW: data["view_specs"][0]})
    nb.cells.append(nbformat.v4.new_code_cell("box", outputs=[view]))
    return nb


@pytest.fixture(scope="module")
def page_with_widgets() -> str:
    return export_html(_notebook_with_widgets())


def test_the_page_names_nothing_to_fetch_beyond_the_file(page_with_widgets: str) -> None:
    fetches = _Fetches()
    fetches.feed(page_with_widgets)
    assert fetches.urls, "the parser sees the page's fetches (at least the renderer's script)"
    outside = [(where, url[:120]) for where, url in fetches.urls if _leaves_the_file(url)]
    assert not outside, f"the page would fetch from outside the file: {outside}"
    for cdn in ("cdnjs.cloudflare.com", "cdn.jsdelivr.net", "unpkg.com"):  # nbconvert's defaults
        assert cdn not in page_with_widgets, f"the page names {cdn}"
    assert "MathJax" not in page_with_widgets and "require.min.js" not in page_with_widgets


def test_the_page_carries_the_vendored_renderer_and_the_saved_state(page_with_widgets: str) -> None:
    fetches = _Fetches()
    fetches.feed(page_with_widgets)
    assert len(fetches.renderers) == 1, (
        f"one script to load, the renderer: {[s[:60] for s in fetches.renderers]}"
    )
    prefix = "data:text/javascript;base64,"
    assert fetches.renderers[0].startswith(prefix)
    assert base64.b64decode(fetches.renderers[0][len(prefix) :]) == WIDGET_RENDERER.read_bytes()
    assert f'<script type="{WIDGET_STATE}">' in page_with_widgets
    for _family, _weight, name in html_export.ICON_FONTS:  # the icons' fonts, inlined
        font = base64.b64encode((VENDOR / name).read_bytes()).decode("ascii")
        assert f'url("data:font/woff2;base64,{font}")' in page_with_widgets, name


def test_a_page_without_widget_state_gets_no_renderer() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)  # as committed: outputs, no widget state
    assert "widgets" not in nb.metadata
    page = export_html(nb)
    assert "<script src=" not in page and "Font Awesome" not in page
    assert len(page) < 1_000_000  # the 2.5 MB bundle is not there
    # its widget output is not left blank: nbconvert shows its text form when there is no state
    assert "<pre>LaunchForm(segment='opted-in customers" in page


def test_vendored_files_match_their_readme() -> None:
    """vendor/README.md's table names every vendored file with its sha256: the record of what
    was fetched cannot drift from what is shipped."""
    readme = (VENDOR / "README.md").read_text(encoding="utf-8")
    table = dict(re.findall(r"^\| `([^`]+)` \|.*\| `([0-9a-f]{64})` \|$", readme, re.M))
    shipped = {p.name for p in VENDOR.iterdir() if p.is_file() and p.name != "README.md"}
    assert set(table) == shipped, "every vendored file has a row in vendor/README.md, and only those"
    for name, sha256 in table.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == sha256, name
    assert f"html-manager {html_export.WIDGET_RENDERER_VERSION}" in readme
    assert f"@jupyter-widgets/html-manager@{html_export.WIDGET_RENDERER_VERSION}" in readme


def test_package_data_carries_the_template_and_the_vendored_files() -> None:
    """A wheel holds every file the export reads: setuptools expands the package-data globs
    relative to the package folder, as Path.glob does."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    globs = config["tool"]["setuptools"]["package-data"]["toolkit"]
    package = ROOT / "toolkit"
    carried = {p for g in globs for p in package.glob(g) if p.is_file()}
    files = [
        p
        for folder in (html_export.TEMPLATES, VENDOR)
        for p in folder.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    ]
    assert any(p.name == "index.html.j2" for p in files) and WIDGET_RENDERER in files
    missing = [str(p.relative_to(package)) for p in files if p not in carried]
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"
