"""The pages ``toolkit demo`` writes (``out/*.html``) work offline: opened from disk with the
network off, a page loads nothing but itself and its widgets are drawn from their saved state.

``03_launch.ipynb`` is executed as the demo executes it (``toolkit.cli.notebooks.execute``, widget
state saved, its own sandbox and journal) and exported by the demo's function
(``toolkit.view.html_export.export_html``); the rest of the demo is not run (tests/test_demo.py
does). Screenshot: ``out/screenshots/exported-03_launch.png``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from toolkit.cli.notebooks import execute, platform_env
from toolkit.view.html_export import export_html

LAUNCH_NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "03_launch.ipynb"
NOTEBOOK_TIMEOUT = 300  # seconds a cell may run, as `toolkit demo`'s default
FORM_TIMEOUT = 30_000  # ms: the page is on disk; drawing ~650 saved widgets takes a second or two


@pytest.fixture(scope="module")
def exported_launch_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``out/03_launch.html`` as ``toolkit demo`` writes it, in a temporary folder alone."""
    out = tmp_path_factory.mktemp("exported")
    with platform_env(fresh=True):
        nb = execute(LAUNCH_NOTEBOOK, out / LAUNCH_NOTEBOOK.name, timeout=NOTEBOOK_TIMEOUT)
    assert "widgets" in nb.metadata, "the demo's execution saves the widget state"
    page = out / f"{LAUNCH_NOTEBOOK.stem}.html"
    page.write_text(export_html(nb), encoding="utf-8")
    (out / LAUNCH_NOTEBOOK.name).unlink()  # the page alone, as an e-mail attachment arrives
    return page


@pytest.mark.browser
def test_exported_page_draws_its_widgets_with_the_network_off(
    exported_launch_page: Path,
    page: Any,
    launch_form: Callable[..., Any],
    offsite_requests: Callable[[Any], list[str]],
    shoot: Callable[..., Path],
) -> None:
    """The launch form of the exported page is drawn (its banner, its button, its icons), and the
    page asks for nothing beyond its own file: the network is off and every other request refused."""
    page_url = exported_launch_page.as_uri()
    outside = offsite_requests(page)
    refused: list[str] = []

    def only_the_file(route: Any) -> None:
        if route.request.url == page_url:
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort("internetdisconnected")

    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.context.set_offline(True)
    page.route("**/*", only_the_file)
    page.goto(page_url)

    # the saved widget state drawn (the stock page's CDN renderer leaves the output blank offline)
    form = launch_form(page, timeout=FORM_TIMEOUT)
    expect(form.part("banner")).to_contain_text("SANDBOX at 127.0.0.1")
    expect(form.part("confirm")).to_contain_text("Send trigger 96 ")
    expect(form.part("launch-button")).to_have_text("Launch")
    views = page.locator('script[type="application/vnd.jupyter.widget-view+json"]')
    expect(page.locator(".widget-subarea")).to_have_count(views.count())  # every widget output drawn

    # the icons are not blank: the upload button's icon is drawn with the page's own Font Awesome
    icon = form.part("upload").locator("i.fa")
    expect(icon).to_have_count(1)
    assert "Font Awesome 5 Free" in icon.evaluate("i => getComputedStyle(i, '::before').fontFamily")
    solid = page.evaluate("""async () => { await document.fonts.ready;  // every font load settled
        return Array.from(document.fonts)
            .filter(f => f.family.includes('Font Awesome 5 Free') && f.weight === '900').map(f => f.status); }""")
    assert "loaded" in solid, f"Font Awesome's solid font: {solid}"

    page.wait_for_load_state("networkidle")
    shoot(page, "exported-03_launch", full_page=True)
    assert not outside, f"requests left this machine: {outside}"
    assert not refused, f"the page asked for more than its own file: {refused}"
    assert not errors, f"errors in the page: {errors}"
