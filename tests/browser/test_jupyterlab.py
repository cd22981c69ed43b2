"""The launch form in JupyterLab, as an analyst uses it: open ``03_launch.ipynb``, run all cells,
fill the form, launch (an impatient double click), watch it finish, then try again.

The page must show the progress complete, the results table and both charts; the sandbox's
send log must hold exactly one send per imported profile, before and after the second attempt.
Screenshots: ``out/screenshots/jupyterlab-*.png``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

TRIGGER_ID = 9601
MATCHING = "email_profile"  # not the notebook's (email): proves the dropdown reaches the kernel


KERNEL_IDLE = re.compile(r"^(?!No Kernel).+ \| Idle$")  # the status bar, once the kernel is up


def open_and_run_all(page: Any, server: Any) -> None:
    """Open the server's notebook in JupyterLab, wait for its kernel, run every cell from the menu.

    (A "Run All" issued while the status bar still says "No Kernel | Initializing" is lost.)
    """
    page.goto(server.page_url)
    expect(page.locator(".jp-NotebookPanel .jp-Cell").first).to_be_visible(timeout=60_000)
    expect(page.locator(".jp-StatusBar-Widget").get_by_text(KERNEL_IDLE)).to_be_visible(timeout=60_000)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.locator('.lm-Menu-item[data-command="runmenu:run-all"]').click()


def test_launch_form_in_jupyterlab(
    lab_server: Any,
    page: Any,
    launch_form: Callable[..., Any],
    shoot: Callable[..., Path],
    outside_view: Callable[[Any, Any], str | None],
    offsite_requests: Callable[[Any], list[str]],
) -> None:
    """Notebook 03 in JupyterLab: the form fits 1024x700, launches each profile once, refuses the
    repeat by the launch's name, and the page asks nothing of any host but 127.0.0.1."""
    sandbox = lab_server.sandbox
    outside = offsite_requests(page)  # JupyterLab serves its own assets: nothing from a CDN
    open_and_run_all(page, lab_server)
    form = launch_form(page)
    # Run All queued every cell at once ("[*]"): wait for the cells after the form, as a user would,
    # so the kernel is free to answer the form.
    expect(page.locator(".jp-CodeCell .jp-InputPrompt", has_text="*")).to_have_count(0, timeout=90_000)
    errors = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
    assert not errors.all_inner_texts(), f"the notebook shows errors: {errors.all_inner_texts()}"

    # a small laptop screen: the action button, the trigger id box and a subscription's remove
    # button fit (wrap), nothing is cut off on the right
    tall = page.viewport_size
    page.set_viewport_size({"width": 1024, "height": 700})
    page.wait_for_timeout(300)  # relayout
    remove = form.part("subscriptions").get_by_role("button", name="Remove this subscription").first
    for name, element in (("Launch button", form.part("launch-button")), ("trigger id box", form.part("trigger-id")),
                          ("subscription remove button", remove)):  # fmt: skip
        problem = outside_view(page, element)
        if problem:
            shoot(page, "jupyterlab-0-1024x700-FAILED")
        assert problem is None, f"at 1024x700 the {name} is not fully visible: {problem}"
    shoot(page, "jupyterlab-0-1024x700")
    page.set_viewport_size(tall)
    page.wait_for_timeout(300)

    form.fill(trigger_id=TRIGGER_ID, matching=MATCHING)
    n_profiles = form.confirm()
    assert n_profiles > 0
    label = form.label()
    form.form.scroll_into_view_if_needed()
    shoot(page, "jupyterlab-1-filled")

    form.part("launch-button").dblclick()  # two clicks before the kernel disables the button
    outcome = form.wait_finished()
    form.expect_progress_complete(n_profiles)
    form.expect_results(outcome)
    form.part("results").scroll_into_view_if_needed()
    shoot(page, "jupyterlab-2-launched")

    sends = sandbox.assert_sent_once_each(TRIGGER_ID, outcome, n_profiles)
    n_tasks = len(sandbox.tasks())

    form.launch_again(label)
    form.part("status").scroll_into_view_if_needed()
    form.expect_progress_complete(n_profiles)  # the launch that happened, not "planned" again
    shoot(page, "jupyterlab-3-second-click")
    assert sandbox.sends_per_profile(TRIGGER_ID) == sends, "the second click sent again"
    assert len(sandbox.tasks()) == n_tasks, "the second click started a task"
    assert not outside, f"requests left 127.0.0.1: {outside}"
