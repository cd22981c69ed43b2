"""The launch form as a stand-alone page (Voila, what ``toolkit app`` serves): the notebook runs
on page load, the code is hidden, the analyst only sees the form.

Same flow as in JupyterLab: fill the form, launch (an impatient double click), watch it finish,
then try again. The page must show the progress complete, the results table and both charts; the
sandbox's send log must hold exactly one send per imported profile, before and after the second
attempt. Screenshots (whole page): ``out/screenshots/voila-*.png``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

TRIGGER_ID = 9602
MATCHING = "email_sub"  # not the notebook's (email): proves the dropdown reaches the kernel


def test_launch_form_in_voila(
    app_server: Any,
    page: Any,
    launch_form: Callable[..., Any],
    shoot: Callable[..., Path],
) -> None:
    sandbox = app_server.sandbox
    page.set_viewport_size({"width": 1280, "height": 900})  # whole-page screenshots: no blank tail
    page.goto(app_server.page_url)
    form = launch_form(page)
    expect(page.locator(".jp-CodeCell .jp-InputArea")).to_have_count(0)  # stand-alone: no code shown

    form.fill(trigger_id=TRIGGER_ID, matching=MATCHING)
    n_profiles = form.confirm()
    assert n_profiles > 0
    shoot(page, "voila-1-filled", full_page=True)

    form.part("launch-button").dblclick()  # two clicks before the kernel disables the button
    outcome = form.wait_finished()
    form.expect_progress_complete(n_profiles)
    form.expect_results(outcome)
    shoot(page, "voila-2-launched", full_page=True)

    assert outcome.unknown == outcome.pending == 0
    assert outcome.imported > 0 and outcome.imported + outcome.failed == n_profiles
    sends = sandbox.sends_per_profile(TRIGGER_ID)
    assert len(sends) == outcome.imported, "one profile sent per imported row"
    assert set(sends.values()) == {1}, f"profiles sent more than once: {sends.most_common(3)}"
    n_tasks = len(sandbox.tasks())

    form.launch_again()
    shoot(page, "voila-3-second-click", full_page=True)
    assert sandbox.sends_per_profile(TRIGGER_ID) == sends, "the second click sent again"
    assert len(sandbox.tasks()) == n_tasks, "the second click started a task"
