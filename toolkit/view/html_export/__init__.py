"""A notebook as one HTML page that works offline: what ``toolkit demo`` writes to ``out/``.

nbconvert's "lab" page loads require.js, the widget renderer
(``@jupyter-widgets/html-manager/dist/embed-amd.js``) and MathJax from CDNs: opened without the
internet, its widgets (the launch form, the monitor, the results view saved in the notebook's
widget state) stay blank. :func:`export_html` renders the template :data:`TEMPLATE` instead (in
:data:`TEMPLATES`; it extends "lab", see its header), which loads nothing from outside the file:

- the widget renderer is html-manager's self-contained ``dist/embed.js`` (the standard controls
  and the Output widget, no require.js), vendored in ``vendor/`` (version, sha256 and how it was
  fetched: ``vendor/README.md``) and given to nbconvert as its ``widget_renderer_url``, a
  ``data:`` URL: the page carries it;
- the Font Awesome fonts of the widgets' icons are inlined the same way;
- no MathJax, no mermaid, no require.js (the notebooks have no math and no diagrams).

Why inlined rather than written once beside the pages: a page is sent on its own (an e-mail
attachment, a chat upload) and then has no folder beside it. It costs 2.6 MB per page that has
widgets (the bundle, base64); a page without widget state gets none of it.

Example:
    >>> import nbformat
    >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Segment")])
    >>> page = export_html(nb)
    >>> 'id="Segment"' in page, "cdnjs" in page, "embed" in page  # no widgets: no renderer either
    (True, False, False)
"""

from __future__ import annotations

import base64
import functools
from pathlib import Path
from typing import Any, Final

__all__ = [
    "ICON_FONTS",
    "TEMPLATE",
    "TEMPLATES",
    "VENDOR",
    "WIDGET_RENDERER",
    "WIDGET_RENDERER_VERSION",
    "export_html",
]

_HERE: Final = Path(__file__).resolve().parent
#: Where the vendored files are (each with its licence; ``README.md`` says where they come from).
VENDOR: Final = _HERE / "vendor"
#: nbconvert templates folder (``extra_template_basedirs``) holding ``TEMPLATE``.
TEMPLATES: Final = _HERE / "templates"
#: The page template: nbconvert's "lab" without anything from a CDN.
TEMPLATE: Final = "toolkit-offline"
#: ``@jupyter-widgets/html-manager``'s ``dist/embed.js``: the release of ipywidgets 8.1.9 (its
#: controls 5.0.13 and base 6.0.12 are what the installed ipywidgets' widget state names).
WIDGET_RENDERER: Final = VENDOR / "html-manager-embed.js"
WIDGET_RENDERER_VERSION: Final = "1.0.15"
#: (font family, weight, file) of the icon fonts embed.js declares at URLs a lone page cannot
#: serve, declared again in the page as data: URLs (see the template): Font Awesome 5.15.4, the
#: version bundled in embed.js. Solid (900) draws ``fa`` icons, regular (400) the outlined ones.
ICON_FONTS: Final = (
    ("Font Awesome 5 Free", 900, "fa-solid-900.woff2"),
    ("Font Awesome 5 Free", 400, "fa-regular-400.woff2"),
)


@functools.cache
def _data_url(path: Path, mime_type: str) -> str:
    """The file as a ``data:`` URL (base64), read once per process."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"toolkit's bundled file {path} is missing: the install is incomplete. Reinstall it: "
            "pip install --force-reinstall 'toolkit[notebook]' (from a clone: pip install -e '.[notebook]')"
        ) from None
    return f"data:{mime_type};base64,{base64.b64encode(data).decode('ascii')}"


def export_html(nb: Any) -> str:
    """The notebook node ``nb`` as a self-contained HTML page (str), its widgets rendered from
    the widget state saved in ``nb.metadata.widgets`` (executed with ``store_widget_state``).

    Example:
        >>> import nbformat
        >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
        >>> "<script src=" in export_html(nb)  # nothing to fetch: no widgets, no require.js
        False
    """
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        template_name=TEMPLATE,
        extra_template_basedirs=[str(TEMPLATES)],
        widget_renderer_url=_data_url(WIDGET_RENDERER, "text/javascript"),
        # Unused by the template; empty so that no block it does not override can name a CDN.
        require_js_url="",
        mathjax_url="",
        jquery_url="",
    )
    fonts = [
        {"family": family, "weight": weight, "url": _data_url(VENDOR / name, "font/woff2")}
        for family, weight, name in ICON_FONTS
    ]
    body, _resources = exporter.from_notebook_node(nb, resources={"toolkit_icon_fonts": fonts})
    return str(body)
