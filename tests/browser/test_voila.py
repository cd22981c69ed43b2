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
OUTAGE_TIMEOUT = 90_000  # ms: the client tries the platform several times, backing off, before it gives up
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
    offsite_requests: Callable[[Any], list[str]],
) -> None:
    """A whole launch in the app: each profile sent once, the repeat refused by the launch's own
    name, and no request from the page leaves 127.0.0.1 meanwhile."""
    sandbox = app_server.sandbox
    outside = offsite_requests(page)
    page.set_viewport_size({"width": 1280, "height": 900})  # whole-page screenshots: no blank tail
    page.goto(app_server.page_url)
    form = launch_form(page)
    expect(page.locator(".jp-CodeCell .jp-InputArea")).to_have_count(0)  # stand-alone: no code shown

    form.fill(trigger_id=TRIGGER_ID, matching=MATCHING)
    n_profiles = form.confirm()
    assert n_profiles > 0
    label = form.label()
    shoot(page, "voila-1-filled", full_page=True)

    form.part("launch-button").dblclick()  # two clicks before the kernel disables the button
    outcome = form.wait_finished()
    form.expect_progress_complete(n_profiles)
    form.expect_results(outcome)
    shoot(page, "voila-2-launched", full_page=True)

    sends = sandbox.assert_sent_once_each(TRIGGER_ID, outcome, n_profiles)
    n_tasks = len(sandbox.tasks())

    form.launch_again(label)
    form.expect_progress_complete(n_profiles)  # the launch that happened, not "planned" again
    shoot(page, "voila-3-second-click", full_page=True)
    assert sandbox.sends_per_profile(TRIGGER_ID) == sends, "the second click sent again"
    assert len(sandbox.tasks()) == n_tasks, "the second click started a task"
    page.wait_for_load_state("networkidle")
    assert not outside, f"requests left 127.0.0.1 during the launch: {outside}"


UPLOAD_TRIGGER_ID = 9603


@pytest.mark.browser
def test_own_cp1251_file_in_voila_at_1024x700(
    app_server: Any,
    page: Any,
    launch_form: Callable[..., Any],
    shoot: Callable[..., Path],
    tmp_path: Path,
) -> None:
    """A colleague's own cp1251 ';' CSV: chosen, read right, mapped, sent once to the sandbox the
    banner names, the results downloaded (joined to the file's columns); Launch stays in view at
    1024x700."""
    sandbox = app_server.sandbox
    page.set_viewport_size({"width": 1024, "height": 700})
    page.goto(app_server.page_url)
    form = launch_form(page)
    expect(page).to_have_title("Launch a campaign")
    expect(form.part("banner").locator(".toolkit-banner-sandbox")).to_contain_text("SANDBOX at 127.0.0.1")

    n_rows = 25
    marker = uuid.uuid4().hex[:8]
    lines = ["Email;Имя;Город"] + [f"{marker}.{i}@mail.example;Анна {i};Москва" for i in range(n_rows)]
    csv_file = tmp_path / "клиенты.csv"
    csv_file.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1251"))
    with page.expect_file_chooser() as chooser:  # as a user: the button opens the file dialog
        form.part("upload").click()
    chooser.value.set_files(str(csv_file))
    info = form.part("data-info")
    expect(info).to_contain_text(f"{n_rows} rows, 3 columns")
    expect(info).to_contain_text("Анна 0")  # the letters read right
    shoot(page, "voila-own-file-1024x700")
    assert page.locator(".toolkit-launch-button").is_visible()
    box = page.locator(".toolkit-launch-button").bounding_box()
    assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 700, box  # no scrolling needed

    field = form.form.locator(".toolkit-field input").nth(1)  # the column "Имя"
    field.fill("_fname")
    field.press("Tab")
    box_id = form.part("trigger-id").locator("input")
    box_id.fill("96.7")
    box_id.press("Tab")
    expect(form.part("trigger-error")).to_contain_text("must be a whole number")
    box_id.fill(str(UPLOAD_TRIGGER_ID))
    box_id.press("Tab")
    expect(form.part("confirm")).to_contain_text(f"Send trigger {UPLOAD_TRIGGER_ID} to ")
    form.part("confirm").locator("input[type=checkbox]").check()
    button = form.part("launch-button")
    expect(button).to_be_enabled()
    button.click()
    outcome = form.wait_finished()
    assert outcome.imported + outcome.failed == n_rows
    sends = sandbox.assert_sent_once_each(UPLOAD_TRIGGER_ID, outcome, n_rows)
    assert len(sends) == n_rows

    with page.expect_download() as download:
        form.part("results").get_by_text("Download results (CSV)").click()
    text = Path(download.value.path()).read_text(encoding="utf-8-sig")
    assert "Анна 0" in text and f"{marker}.0@mail.example" in text  # joined to the uploaded columns


@pytest.mark.browser
def test_app_page_makes_no_request_beyond_127_0_0_1(
    app_server: Any, page: Any, launch_form: Callable[..., Any], offsite_requests: Callable[[Any], list[str]]
) -> None:
    """Every request the app's page makes (assets, kernel, widgets) goes to 127.0.0.1: it works offline."""
    outside = offsite_requests(page)
    page.goto(app_server.page_url)
    form = launch_form(page)
    page.wait_for_load_state("networkidle")
    assert not outside, f"requests left 127.0.0.1: {outside}"
    # the icons are not blank: the upload button's icon is drawn with Font Awesome, served locally
    icon = form.part("upload").locator("i.fa")
    expect(icon).to_have_count(1)
    assert "Font Awesome 5" in icon.evaluate("i => getComputedStyle(i, '::before').fontFamily")
    faces = page.evaluate("""async () => (await document.fonts.load('900 16px "Font Awesome 5 Free"'))
        .map(f => f.status)""")
    assert faces and set(faces) == {"loaded"}, f"Font Awesome's font: {faces}"


@pytest.mark.browser
def test_app_login_page_says_where_the_link_is(
    app_server: Any, page: Any, launch_form: Callable[..., Any]
) -> None:
    """Opened without its token, the app says where its link comes from (not Jupyter's generic
    page), refuses a wrong key in those words, and a pasted right key opens the form."""
    page.goto(f"{app_server.base_url}/")
    where = page.locator(".toolkit-login-where")
    expect(where).to_contain_text("the link that toolkit app printed when it started")
    body = page.locator("body")
    for generic in ("jupyter server list", "Jupyter Server", "password"):
        expect(body).not_to_contain_text(generic, ignore_case=True)

    page.locator("#password_input").fill("not-the-key")
    page.locator("#login_submit").click()
    expect(page.locator(".toolkit-login-error")).to_contain_text("not this page's key")

    page.locator("#password_input").fill(app_server.token)
    page.locator("#login_submit").click()
    launch_form(page)


def _field_row(form: Any, column: str) -> tuple[Any, Any]:
    """(tick box, profile field box) of a column's row in "Columns -> profile fields"."""
    check = form.form.locator(".widget-checkbox").filter(has=form.page.get_by_text(column, exact=True))
    row = check.locator("xpath=..")
    return row.locator("input[type=checkbox]"), row.locator(".toolkit-field input")


@pytest.mark.browser
def test_switching_segments_keeps_edits_in_voila(
    app_server: Any, page: Any, launch_form: Callable[..., Any], tmp_path: Path
) -> None:
    """An unticked column, a renamed field and an added sms subscription survive a switch to the
    user's own file (which lacks some of those columns: the subscription waits, unsent) and back."""
    page.goto(app_server.page_url)
    form = launch_form(page)
    segment = form.part("segment").locator("select")
    practice = segment.input_value()
    records = form.part("records")

    city_tick, _ = _field_row(form, "city")
    city_tick.uncheck()
    _, last_name = _field_row(form, "last_name")
    last_name.fill("surname")
    last_name.press("Tab")
    form.form.get_by_role("button", name="Add a subscription").click()
    added = form.part("subscription").last
    added.locator(".widget-dropdown", has_text="Channel").locator("select").select_option("sms")
    added.locator(".widget-dropdown", has_text="address from column").locator("select").select_option("phone")
    resource = added.locator(".widget-inline-hbox", has_text="resource number").locator("input")
    resource.fill("7")
    resource.press("Tab")
    expect(records).to_contain_text('"sms"')
    expect(records).to_contain_text('"surname"')

    own = tmp_path / "few.csv"
    own.write_text("email;last_name\nann@mail.example;Smith\nbob@mail.example;Jones\n", encoding="utf-8")
    with page.expect_file_chooser() as chooser:
        form.part("upload").click()
    chooser.value.set_files(str(own))
    expect(form.part("data-info")).to_contain_text("2 rows, 2 columns")
    expect(_field_row(form, "last_name")[1]).to_have_value("surname")  # the same column: the edit stays
    expect(records).to_contain_text('"surname"')
    expect(records).not_to_contain_text('"sms"')  # no phone column here: the subscription waits

    segment.select_option(practice)
    expect(form.part("data-info")).not_to_contain_text("2 rows, 2 columns")
    expect(_field_row(form, "city")[0]).not_to_be_checked()
    expect(_field_row(form, "last_name")[1]).to_have_value("surname")
    channels = form.part("subscription").locator(".widget-dropdown", has_text="Channel").locator("select")
    expect(records).to_contain_text('"sms"')
    assert "sms" in [c.input_value() for c in channels.all() if c.is_visible()]


OUTAGE_TRIGGER_ID = 9604


@pytest.mark.browser
def test_outage_in_voila_says_nothing_was_sent_then_sends_once(
    app_server: Any, page: Any, launch_form: Callable[..., Any]
) -> None:
    """The platform unreachable at Launch: the page says "Nothing was sent. Launching again is
    safe.", the sandbox got nothing; once it is back, the same form sends each profile once."""
    sandbox, network = app_server.sandbox, app_server.network
    page.goto(app_server.page_url)
    form = launch_form(page)
    form.fill(trigger_id=OUTAGE_TRIGGER_ID, matching=MATCHING)
    n_profiles = form.confirm()
    status = form.part("status")
    network.down()
    try:
        form.part("launch-button").click()
        expect(status).to_contain_text("Nothing was sent. Launching again is safe", timeout=OUTAGE_TIMEOUT)
    finally:
        network.up()
    expect(status).not_to_contain_text("HTTPConnectionPool")
    assert sandbox.sends(OUTAGE_TRIGGER_ID) == [], "the outage sent something"

    assert form.confirm() == n_profiles
    form.part("launch-button").click()
    outcome = form.wait_finished()
    sandbox.assert_sent_once_each(OUTAGE_TRIGGER_ID, outcome, n_profiles)
