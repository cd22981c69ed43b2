"""Browser tests: the launch form in JupyterLab and in Voila (``toolkit app``), driven through
Debian's chromium with Playwright.

Each server runs in its own process group on 127.0.0.1, with isolated ``JUPYTER_CONFIG_DIR`` /
``JUPYTER_DATA_DIR`` / ``JUPYTER_RUNTIME_DIR`` / ``IPYTHONDIR`` (the venv's ``share/jupyter``
stays on the data path, so the ipywidgets extension loads), a copy of ``notebooks/`` (the tests
never write into the repository), and a dedicated sandbox (``toolkit.sandbox.serve``, in this
process) that the kernels reach through ``TOOLKIT_API_URL`` / ``TOOLKIT_API_TOKEN``, with a fresh
``TOOLKIT_JOURNAL``. JupyterLab gets a random token; ``toolkit app`` is run exactly as analysts
run it: it picks its own random access token, read back from the URL it prints once ready.

Chromium: ``shutil.which("chromium")``; Playwright never downloads a browser. Without it the
tests are skipped with a message saying how to enable them, except under ``CI=true``, where a
missing browser fails the run.

Fixtures: ``chromium`` (session), ``page`` (per test), ``lab_server`` and ``app_server`` (per
module, each with its own sandbox; ``.sandbox`` reads its send log; ``app_process`` is the same
``toolkit app`` without chromium, for plain HTTP tests; its kernels reach the sandbox through
``.network``, a :class:`NetworkSwitch` a test turns ``down()`` for an outage), ``launch_form(page)``
(the form, driven as a user would), ``offsite_requests(page)`` (every request the page makes
beyond 127.0.0.1) and ``shoot(page, name)`` (``out/screenshots/<name>.png``). A
failed test leaves ``out/screenshots/<test>-FAILED.png`` and gets the browser console and the
server's log in its report.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from toolkit.sandbox import SandboxServer, serve

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
LAUNCH_NOTEBOOK = "03_launch.ipynb"
SCREENSHOTS = REPO / "out" / "screenshots"

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SKIP_HINT = (
    "chromium not found: browser tests skipped. To run them: `sudo apt-get install chromium` "
    "(or `sudo make browser-deps`); Playwright uses that browser, never a downloaded one"
)
CI_FAILURE = (
    "chromium not found, and CI=true: the browser tests must run in CI. Install it with "
    "`apt-get install chromium` (.ci/run does so before `make test`)"
)
APP_PROCESSING_RATE = 500.0  # profiles per second: the sandbox `toolkit app` starts by default
SERVER_START_TIMEOUT = 60.0  # seconds; a cold JupyterLab on 2 busy cores takes ~5 s
EXPECT_TIMEOUT = 15_000  # ms for each expect(...): a kernel round trip on a loaded machine
VIEWPORT = {"width": 1280, "height": 2400}  # tall: JupyterLab renders only what is on screen

# JupyterLab settings for a quiet, deterministic page: no news/update toast (it would cover the
# form), every cell rendered (no windowing), no autosave writing outputs back into the notebook.
LAB_OVERRIDES: dict[str, dict[str, Any]] = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension:plugin": {"autosave": False},
}


# --- chromium -----------------------------------------------------------------------------------
def chromium_executable() -> str:
    """Debian's chromium, or skip (developer machine) / fail (``CI=true``) with how to get it."""
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(CI_FAILURE, pytrace=False)
        pytest.skip(SKIP_HINT)
    return path


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """A headless chromium (a Playwright ``Browser``) for the whole session."""
    executable = chromium_executable()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=EXPECT_TIMEOUT)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(chromium: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh page (own context: no cookies shared between tests) with a tall viewport."""
    (SCREENSHOTS / f"{request.node.name}-FAILED.png").unlink(missing_ok=True)  # stale: misleading
    context = chromium.new_context(viewport=VIEWPORT)
    context.set_default_timeout(30_000)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda msg: console.append(f"[{msg.type}] {msg.text}"))
    page.on("pageerror", lambda exc: console.append(f"[pageerror] {exc}"))
    request.node.browser_console = console  # read by pytest_runtest_makereport on failure
    try:
        yield page
    finally:
        context.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed browser test: screenshot the page, add the browser console and server logs."""
    report = yield
    if report.when == "call" and report.failed:
        funcargs = getattr(item, "funcargs", {})
        if "page" in funcargs:
            with contextlib.suppress(Exception):
                shot = screenshot(funcargs["page"], f"{item.name}-FAILED")
                report.sections.append(("browser screenshot", str(shot)))
        console = getattr(item, "browser_console", None)
        if console:
            report.sections.append(("browser console", "\n".join(console[-100:])))
        for value in funcargs.values():
            if isinstance(value, JupyterServer):
                report.sections.append((f"{value.name} log (last lines)", value.log_tail()))
    return report


# The height of everything the page could scroll to, whichever element scrolls (Voila's page
# scrolls in a container, so Playwright's full_page alone would stop at the viewport).
_CONTENT_HEIGHT = """() => Math.max(document.documentElement.scrollHeight,
    ...Array.from(document.querySelectorAll('*'), e => e.scrollHeight > e.clientHeight
        && /(auto|scroll)/.test(getComputedStyle(e).overflowY) ? e.scrollHeight : 0))"""
MAX_SHOT_HEIGHT = 8000


def screenshot(page: Any, name: str, *, full_page: bool = False) -> Path:
    """Save ``out/screenshots/<name>.png`` and return its path.

    ``full_page``: grow the viewport to the content's height for the shot, then put it back.
    """
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    size = page.viewport_size
    if full_page and size:
        height = min(int(page.evaluate(_CONTENT_HEIGHT)) + 40, MAX_SHOT_HEIGHT)
        if height > size["height"]:
            page.set_viewport_size({"width": size["width"], "height": height})
            page.wait_for_timeout(200)  # relayout (the widgets measure themselves)
    try:
        page.screenshot(path=str(path), full_page=full_page)
    finally:
        if size and page.viewport_size != size:
            page.set_viewport_size(size)
    return path


# --- the sandbox beside each server -----------------------------------------------------------------
@dataclass
class SandboxLog:
    """The sandbox's inspection routes, as a test reads them."""

    server: SandboxServer

    def _get(self, route: str, **params: Any) -> Any:
        answer = requests.get(
            f"{self.server.url}/_sandbox/{route}",
            params={k: v for k, v in params.items() if v is not None},
            headers={"Authorization": f"Bearer {self.server.token}"},
            timeout=10,
        )
        answer.raise_for_status()
        return answer.json()

    def sends(self, trigger_id: int | None = None) -> list[dict[str, Any]]:
        """Trigger sends, oldest first (optionally one trigger's)."""
        return self._get("sends", trigger_id=trigger_id)  # type: ignore[no-any-return]

    def tasks(self) -> list[dict[str, Any]]:
        """Tasks (one per batch the client sent), oldest first."""
        return self._get("tasks")  # type: ignore[no-any-return]

    def sends_per_profile(self, trigger_id: int | None = None) -> Counter[str]:
        """How many times each profile was sent the trigger."""
        return Counter(send["profile_id"] for send in self.sends(trigger_id))

    def assert_sent_once_each(self, trigger_id: int, outcome: Outcome, n_profiles: int) -> Counter[str]:
        """The launch the form reported finished, and the sandbox got each imported profile once."""
        assert outcome.unknown == outcome.pending == 0
        assert outcome.imported > 0 and outcome.imported + outcome.failed == n_profiles
        sends = self.sends_per_profile(trigger_id)
        assert len(sends) == outcome.imported, "one profile sent per imported row"
        assert set(sends.values()) == {1}, f"profiles sent more than once: {sends.most_common(3)}"
        return sends


class NetworkSwitch:
    """A TCP relay between the kernels and their sandbox, as the network between an analyst and the
    platform: ``down()`` makes the platform unreachable (new connections refused, open ones cut),
    ``up()`` brings it back on the same address. ``url`` is what the kernels are given."""

    def __init__(self, upstream: str) -> None:
        parts = urllib.parse.urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._port = _free_port()
        self.url = f"http://127.0.0.1:{self._port}"
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self.up()

    def up(self) -> None:
        """Listen again (the same port): the platform answers."""
        with self._lock:
            if self._listener is not None:
                return
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self._port))
            listener.listen(64)
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        """Stop listening and cut every open connection: a request now is refused, never sent."""
        with self._lock:
            listener, self._listener = self._listener, None
            open_sockets, self._open = self._open, set()
        for sock in ([listener] if listener else []) + list(open_sockets):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed by down()
                return
            try:
                server = socket.create_connection(self._upstream, timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._open |= {client, server}
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        with self._lock:
            self._open -= {source, target}


# --- Jupyter servers ------------------------------------------------------------------------------
@dataclass
class JupyterServer:
    """A running JupyterLab or Voila, its sandbox and where its files are."""

    name: str  # "jupyterlab" or "voila"
    process: subprocess.Popen[bytes]
    base_url: str  # no trailing slash
    token: str
    root: Path  # the served copy of notebooks/
    notebook: str  # the notebook the test opens (Voila: the one it renders)
    log_path: Path
    sandbox: SandboxLog
    network: NetworkSwitch | None = None  # Voila: between its kernels and the sandbox

    @property
    def page_url(self) -> str:
        """The notebook's page, the token in the query (the server then sets its cookie)."""
        if self.name == "voila":
            return f"{self.base_url}/" + (f"?token={self.token}" if self.token else "")
        return f"{self.base_url}/lab/tree/{self.notebook}?token={self.token}"

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (Jupyter shuts its kernels down), then SIGKILL it."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def _isolated_env(home: Path, sandbox: SandboxServer) -> dict[str, str]:
    """The servers' environment: isolated Jupyter dirs, the dedicated sandbox, a fresh journal."""
    env = dict(os.environ)
    for name in ("config", "data", "runtime", "ipython"):
        (home / name).mkdir()
    env.update(
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),  # user-level only: the venv's share/jupyter stays
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        IPYTHONDIR=str(home / "ipython"),
        JUPYTER_PLATFORM_DIRS="1",
        TOOLKIT_API_URL=sandbox.url,
        TOOLKIT_API_TOKEN=sandbox.token,
        TOOLKIT_JOURNAL=str(home / "journal.sqlite"),
        PYTHONUNBUFFERED="1",
    )
    for name in ("JUPYTER_PATH", "JUPYTER_TOKEN", "JUPYTER_PORT", "MPLBACKEND"):
        env.pop(name, None)
    return env


def _wait_ready(
    process: subprocess.Popen[bytes],
    log_path: Path,
    probe: Callable[[], str | None],
    what: str,
) -> str:
    """Call ``probe`` until it returns something (the base URL, the token); fail early (with the
    log) if the server dies."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"{what} exited with code {process.returncode} while starting:\n{tail}")
        with contextlib.suppress(OSError, ValueError, requests.RequestException):
            url = probe()
            if url:
                return url
        time.sleep(0.1)
    tail = log_path.read_text(errors="replace")[-4000:]
    raise RuntimeError(f"{what} not ready after {SERVER_START_TIMEOUT:.0f} s:\n{tail}")


@contextlib.contextmanager
def _served_copy(source: Path) -> Iterator[tuple[Path, Path]]:
    """(home, root): a temp home for the Jupyter dirs and a copy of ``source`` to serve.

    A copy, so a test never writes into the repository's notebooks (checkpoints, outputs).
    """
    home = Path(tempfile.mkdtemp(prefix="toolkit-browser-"))
    try:
        root = home / "notebooks"
        shutil.copytree(source, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "*.sqlite*"))
        yield home, root
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _launch(cmd: list[str], env: dict[str, str], cwd: Path, log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


@contextlib.contextmanager
def run_lab(notebook: str = LAUNCH_NOTEBOOK, source: Path = NOTEBOOKS) -> Iterator[JupyterServer]:
    """JupyterLab on 127.0.0.1 (a free port, a random token) serving a copy of ``source``."""
    with contextlib.ExitStack() as stack:
        home, root = stack.enter_context(_served_copy(source))
        sandbox = stack.enter_context(serve())
        env = _isolated_env(home, sandbox)
        settings = home / "lab-settings"
        settings.mkdir()
        (settings / "overrides.json").write_text(json.dumps(LAB_OVERRIDES, indent=2))
        token = secrets.token_hex(24)
        log_path = home / "jupyterlab.log"
        cmd = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",  # CI runs as root
            "--ip=127.0.0.1",
            "--port=0",  # a free port, read back from the runtime file
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--ServerApp.terminals_enabled=False",
            f"--LabApp.app_settings_dir={settings}",
        ]
        process = _launch(cmd, env, root, log_path)
        stack.callback(_stop, process)
        runtime_file = home / "runtime" / f"jpserver-{process.pid}.json"

        def probe() -> str | None:
            if not runtime_file.exists():
                return None
            info = json.loads(runtime_file.read_text())
            url = f"http://127.0.0.1:{info['port']}"
            answer = requests.get(f"{url}/api/status", headers={"Authorization": f"token {token}"}, timeout=5)
            return url if answer.ok else None

        url = _wait_ready(process, log_path, probe, "JupyterLab")
        yield JupyterServer("jupyterlab", process, url, token, root, notebook, log_path, SandboxLog(sandbox))


@contextlib.contextmanager
def run_app(source: Path = NOTEBOOKS) -> Iterator[JupyterServer]:
    """``toolkit app`` (Voila on the ``app`` cells of 03_launch.ipynb) on a copy of ``source``.

    The very command analysts run, on a free port, talking to this module's sandbox through the
    environment (``toolkit app`` then starts none of its own). The sandbox advances 500 profiles a
    second, as the one ``toolkit app`` would start, so progress moves as it does for analysts.
    Ready once it prints the page's URL (``.token``: the access token in that URL).
    """
    with contextlib.ExitStack() as stack:
        home, root = stack.enter_context(_served_copy(source))
        sandbox = stack.enter_context(serve(processing_rate=APP_PROCESSING_RATE))
        network = NetworkSwitch(sandbox.url)
        stack.callback(network.down)
        env = _isolated_env(home, sandbox)
        env["TOOLKIT_API_URL"] = network.url  # the kernels reach the sandbox through the switch
        env.pop("TOOLKIT_APP_TOKEN", None)  # the default: a random token
        log_path = home / "toolkit-app.log"
        # toolkit app needs a given port (it never moves elsewhere): pick a free one (a tiny race:
        # it would then exit, and _wait_ready fails with its log).
        port = _free_port()
        cmd = [sys.executable, "-m", "toolkit", "app", f"--port={port}", f"--dir={root}"]
        process = _launch(cmd, env, root, log_path)
        stack.callback(_stop, process)
        url = f"http://127.0.0.1:{port}"
        ready = re.compile(rf"the launch form is ready: {re.escape(url)}/\?token=(\S+)")

        def probe() -> str | None:
            match = ready.search(log_path.read_text(errors="replace"))
            return match.group(1) if match else None

        token = urllib.parse.unquote(_wait_ready(process, log_path, probe, "toolkit app (Voila)"))
        yield JupyterServer(
            "voila", process, url, token, root, LAUNCH_NOTEBOOK, log_path, SandboxLog(sandbox), network
        )


@pytest.fixture(scope="module")
def lab_server(chromium: Any) -> Iterator[JupyterServer]:
    """JupyterLab serving a copy of notebooks/, with its own sandbox (chromium checked first)."""
    with run_lab() as server:
        yield server


@pytest.fixture(scope="module")
def app_process() -> Iterator[JupyterServer]:
    """``toolkit app`` (Voila) on a copy of notebooks/, with its own sandbox (no chromium needed)."""
    with run_app() as server:
        yield server


@pytest.fixture(scope="module")
def app_server(chromium: Any, app_process: JupyterServer) -> JupyterServer:
    """``app_process``, for a browser test (chromium checked first)."""
    return app_process


# --- the launch form, as a user drives it ------------------------------------------------------------
FORM_TIMEOUT = 90_000  # ms: kernel start plus the notebook's cells on a loaded 2-core machine
LAUNCH_TIMEOUT = 90_000  # ms: send, follow the tasks, draw the charts
FINISHED = re.compile(r"finished: ([\d,]+) imported, ([\d,]+) failed, ([\d,]+) unknown, ([\d,]+) pending")
CONFIRM = re.compile(r"Send trigger (\d+) to ([\d,]+) profiles")


def _number(text: str) -> int:
    return int(text.replace(",", ""))


@dataclass(frozen=True)
class Outcome:
    """What the form's status line says of a finished launch."""

    imported: int
    failed: int
    unknown: int
    pending: int


@dataclass
class LaunchFormPage:
    """``toolkit.view.widgets.LaunchForm`` in a page (JupyterLab's notebook or Voila's), found by the
    CSS classes of ``toolkit.view.widgets.CSS_CLASSES``, driven and read as a user would."""

    page: Any
    form: Any  # Locator of .toolkit-launch-form

    @classmethod
    def find(cls, page: Any, timeout: float = FORM_TIMEOUT) -> LaunchFormPage:
        """Wait until the form is on screen; fail with the page's error output if it never is."""
        from playwright.sync_api import Error as PlaywrightError

        form = page.locator(".toolkit-launch-form")
        try:
            form.locator(".toolkit-launch-button").wait_for(state="visible", timeout=timeout)
        except PlaywrightError:
            errors = page.locator('[data-mime-type="application/vnd.jupyter.stderr"]').all_inner_texts()
            shown = "\n".join(errors) or page.locator("body").inner_text()[-3000:]
            pytest.fail(
                f"the launch form did not appear within {timeout / 1000:.0f} s; the page shows:\n{shown}"
            )
        return cls(page, form)

    def part(self, name: str) -> Any:
        """The widget with CSS class ``toolkit-<name>`` (e.g. ``launch-button``, ``status``)."""
        return self.form.locator(f".toolkit-{name}")

    def fill(self, *, trigger_id: int, matching: str) -> None:
        """Type the trigger id and pick the matching; wait until the kernel's plan shows both."""
        from playwright.sync_api import expect

        box = self.part("trigger-id").locator("input")
        box.fill(str(trigger_id))
        box.press("Tab")  # IntText sends its value on change (blur), like a user leaving the field
        expect(self.part("confirm")).to_contain_text(f"Send trigger {trigger_id} to ")
        select = self.part("matching").locator("select")  # options read "email_profile (by email ...)"
        select.select_option(label=select.locator("option", has_text=f"{matching} (").first.inner_text())
        expect(self.part("preview")).to_contain_text(f"(matching {matching})")
        expect(self.part("preview")).to_contain_text(f"Trigger {trigger_id},")

    def confirm(self) -> int:
        """Tick the confirmation box; return the number of profiles it says will be sent."""
        from playwright.sync_api import expect

        self.part("confirm").locator("input[type=checkbox]").check()
        expect(self.part("launch-button")).to_be_enabled()
        match = CONFIRM.search(self.part("confirm").inner_text())
        assert match, f"confirmation text: {self.part('confirm').inner_text()!r}"
        return _number(match.group(2))

    def wait_finished(self) -> Outcome:
        """Wait for the status line of a finished launch and read its counts."""
        from playwright.sync_api import expect

        status = self.part("status")
        expect(status).to_contain_text("finished:", timeout=LAUNCH_TIMEOUT)
        match = FINISHED.search(status.inner_text())
        assert match, f"status line: {status.inner_text()!r}"
        return Outcome(*(_number(g) for g in match.groups()))

    def expect_progress_complete(self, n_profiles: int) -> None:
        """Every progress bar full, and the overall line says all rows were processed."""
        from playwright.sync_api import expect

        progress = self.part("progress")
        expect(progress).to_contain_text(f"{n_profiles:,} of {n_profiles:,} rows processed")
        bars = progress.locator(".progress-bar")
        assert bars.count() >= 2, "a bar per batch plus one for all rows"
        for bar in bars.all():
            expect(bar).to_have_attribute("style", re.compile(r"width: 100%"))
        for line in progress.locator(".widget-label").filter(has_text=" rows · ").all():
            expect(line).to_contain_text("completed")

    def expect_results(self, outcome: Outcome) -> None:
        """The results table (status counts) and both charts, drawn and decoded."""
        from playwright.sync_api import expect

        results = self.part("results")
        table = results.locator("table.toolkit-table").first
        expect(table).to_be_visible(timeout=LAUNCH_TIMEOUT)
        expect(table.locator("tr", has_text="imported")).to_contain_text(f"{outcome.imported:,}")
        charts = results.locator("img")
        expect(charts).to_have_count(2)
        for chart in charts.all():
            expect(chart).to_be_visible()
            size = chart.evaluate("img => [img.complete, img.naturalWidth, img.naturalHeight]")
            assert size[0] and size[1] > 100 and size[2] > 100, f"chart not drawn: {size}"

    def label(self) -> str:
        """The launch's name as the label box shows it now."""
        return str(self.part("label").locator("input").input_value())

    def launch_again(self, first_label: str) -> None:
        """After a launch named ``first_label``: the button is off until a new confirmation;
        confirm, click again, and see the form refuse by that launch's own name ("Already
        launched ... as the launch 'NAME'") and show the earlier launch instead."""
        from playwright.sync_api import expect

        button = self.part("launch-button")
        expect(button).to_be_disabled()  # the confirmation was for the launch that just ran
        assert self.label() != first_label, "the next launch gets a name of its own"
        self.confirm()
        button.click()
        status = self.part("status")
        expect(status).to_contain_text("Already launched", timeout=LAUNCH_TIMEOUT)
        expect(status).to_contain_text(f"as the launch {first_label!r}")
        expect(self.part("results")).to_contain_text(
            "The earlier launch of this plan", timeout=LAUNCH_TIMEOUT
        )
        expect(button).to_have_text("Launch")  # the form is idle again (not "Launching...")
        expect(button).to_be_disabled()


# Why an element is not wholly on screen: cut by an ancestor that clips (overflow other than
# visible: e.g. a widget box narrower than its children), or inside one that must be scrolled
# sideways to see it. Every sideways scroll is put back to 0 first, as a user finds the page.
_CLIPPED_BY = """el => {
    const name = a => `${a.tagName.toLowerCase()}.${[...a.classList].join('.')}`;
    const ancestors = [];
    for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) ancestors.push(a);
    for (const a of ancestors) a.scrollLeft = 0;
    const r = el.getBoundingClientRect(), cut = [];
    if (r.width === 0 || r.height === 0) cut.push('zero size');
    for (const a of ancestors) {
        const s = getComputedStyle(a), p = a.getBoundingClientRect();
        if (s.overflowX !== 'visible' && (r.left < p.left - 1 || r.right > p.right + 1))
            cut.push(`${name(a)} (x ${Math.round(p.left)}-${Math.round(p.right)})`);
        else if (s.overflowY !== 'visible' && (r.top < p.top - 1 || r.bottom > p.bottom + 1))
            cut.push(`${name(a)} (y ${Math.round(p.top)}-${Math.round(p.bottom)})`);
    }
    return cut;
}"""


def why_not_in_view(page: Any, locator: Any) -> str | None:
    """Why ``locator`` is not wholly visible (None when it is): scrolled into view (up or down),
    then its bounding box is checked against the viewport and against clipping ancestors."""
    locator.scroll_into_view_if_needed()
    cut = locator.evaluate(_CLIPPED_BY)  # puts sideways scrolls back first
    box = locator.bounding_box()
    size = page.viewport_size
    if box is None or size is None:
        return "not rendered"
    if cut:
        return f"cut off by {'; '.join(cut)} (bounding box {box})"
    right, bottom = box["x"] + box["width"], box["y"] + box["height"]
    if box["x"] < 0 or box["y"] < 0 or right > size["width"] or bottom > size["height"]:
        return f"bounding box {box} outside the {size['width']}x{size['height']} viewport"
    return None


@pytest.fixture
def launch_form() -> Callable[..., LaunchFormPage]:
    """``launch_form(page)``: wait for the launch form in the page and drive it."""
    return LaunchFormPage.find


@pytest.fixture
def outside_view() -> Callable[[Any, Any], str | None]:
    """``outside_view(page, locator)``: why the element is not wholly on screen, or None."""
    return why_not_in_view


def _offsite(url: str) -> bool:
    """A request that leaves this machine (blob:/data: URLs of the page itself stay)."""
    if url.startswith(("data:", "blob:http://127.0.0.1")):
        return False
    return urllib.parse.urlsplit(url).hostname not in ("127.0.0.1", None)


@pytest.fixture
def offsite_requests() -> Callable[[Any], list[str]]:
    """``offsite_requests(page)``: a list that fills with the URL of every request the page makes
    beyond 127.0.0.1 from now on (assets from a CDN, news, fonts): it must stay empty offline."""

    def record(page: Any) -> list[str]:
        outside: list[str] = []
        page.on("request", lambda request: outside.append(request.url) if _offsite(request.url) else None)
        return outside

    return record


@pytest.fixture
def shoot() -> Callable[..., Path]:
    """``shoot(page, name, full_page=False)``: a screenshot in ``out/screenshots/<name>.png``."""
    return screenshot
