"""The launch form as a stand-alone page (Voila, what ``toolkit app`` serves): the notebook runs
on page load, the code is hidden, the analyst only sees the form.

Same flow as in JupyterLab: fill the form, launch (an impatient double click), watch it finish,
then try again. The page must show the progress complete, the results table and both charts; the
sandbox's send log must hold exactly one send per imported profile, before and after the second
attempt. Screenshots (whole page): ``out/screenshots/voila-*.png``.

``toolkit app`` serves that page behind a random access token (printed in its URL, never the
API token): without the token the page, the kernels and their channels are refused (plain HTTP,
no browser needed).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from playwright.sync_api import expect

TRIGGER_ID = 9602
MATCHING = "email_profile"  # not the notebook's (email): proves the dropdown reaches the kernel


WEBSOCKET_UPGRADE = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


def _refused(answer: requests.Response) -> bool:
    """403, or a redirect to the login page (what Voila answers a page request without token)."""
    if answer.status_code == 302:
        return urlsplit(answer.headers["Location"]).path == "/login"
    return answer.status_code == 403


def test_app_refuses_requests_without_its_token(app_process: Any) -> None:
    base, token = app_process.base_url, app_process.token
    assert len(token) >= 32, "toolkit app picks a random token by default"
    log = app_process.log_path.read_text(errors="replace")
    assert log.count(f"{base}/?token={token}") == log.count(token) == 1, "printed once, in the URL"
    assert app_process.sandbox.server.token not in log, "the API token is never printed"

    for query in ("", "?token=", "?token=wrong", f"?token={token[:-1]}"):
        answer = requests.get(f"{base}/{query}", allow_redirects=False, timeout=30)
        assert _refused(answer), f"GET /{query}: {answer.status_code} {answer.headers}"
        assert "kernelId" not in answer.text, f"GET /{query} started a kernel"

    # the kernels and their channels (what the form's buttons go through): refused without the
    # token, let through with it (then "not found": no such kernel)
    kernel = f"{base}/api/kernels/{uuid.uuid4()}"
    for url, headers in ((kernel, {}), (f"{kernel}/channels", WEBSOCKET_UPGRADE)):
        answer = requests.get(url, headers=headers, allow_redirects=False, timeout=30)
        assert _refused(answer), f"GET {url}: {answer.status_code}"
        wrong = requests.get(url, headers={**headers, "Authorization": "token wrong"}, timeout=30)
        assert _refused(wrong), f"GET {url} with a wrong token: {wrong.status_code}"
        right = requests.get(url, headers={**headers, "Authorization": f"token {token}"}, timeout=30)
        assert right.status_code == 404, f"GET {url} with the token: {right.status_code}"


@pytest.mark.browser
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

    sends = sandbox.assert_sent_once_each(TRIGGER_ID, outcome, n_profiles)
    n_tasks = len(sandbox.tasks())

    form.launch_again()
    form.expect_progress_complete(n_profiles)  # the launch that happened, not "planned" again
    shoot(page, "voila-3-second-click", full_page=True)
    assert sandbox.sends_per_profile(TRIGGER_ID) == sends, "the second click sent again"
    assert len(sandbox.tasks()) == n_tasks, "the second click started a task"
