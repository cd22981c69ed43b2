"""``toolkit notebooks | lab | app``: the guided notebooks, on a local sandbox.

* ``notebooks --refresh`` re-executes ``notebooks/*.ipynb`` in place, in order, against a
  fresh sandbox and a fresh temporary journal: that is how the committed outputs (which
  nbval compares) are produced. Without ``--refresh`` it lists the notebooks.
* ``lab`` starts a sandbox and JupyterLab on ``notebooks/`` (the kernels inherit
  ``TOOLKIT_API_URL`` / ``TOOLKIT_API_TOKEN``, so every notebook talks to that sandbox).
* ``app`` serves the launch form of ``03_launch.ipynb`` (its cells tagged ``app``) with
  Voila, as a stand-alone page, on a sandbox, on 127.0.0.1 only and behind an access token:
  ``--token``, else ``TOOLKIT_APP_TOKEN``, else a random one. Once Voila answers it prints the
  page's URL with ``?token=...`` (the Voila access token, never the API token); without it the
  page, its kernel and its files are refused (Voila's own token auth, as in JupyterLab).

With ``TOOLKIT_API_URL`` and ``TOOLKIT_API_TOKEN`` already set to a toolkit sandbox, ``lab`` and
``app`` use it; set to the real platform, they use it only with ``TOOLKIT_USE_REAL_PLATFORM=1``
(else they start a sandbox: the notebooks launch the bundled sample). ``--refresh`` always uses
a fresh sandbox.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser(); sub = parser.add_subparsers()
    >>> register(sub)
    >>> parser.parse_args(["notebooks", "--refresh"]).refresh
    True
    >>> parser.parse_args(["app", "--port", "9000"]).port
    9000
    >>> parser.parse_args(["app", "--token", "s3cret"]).token
    's3cret'
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "APP_PAGE",
    "APP_TAG",
    "APP_TOKEN_ENV",
    "NOTEBOOKS",
    "app_notebook",
    "app_token",
    "execute",
    "notebooks_dir",
    "platform_env",
    "register",
]

#: The guided notebooks, in the order they are meant to be read (and executed).
NOTEBOOKS = (
    "01_build_segment.ipynb",
    "02_payloads.ipynb",
    "03_launch.ipynb",
    "04_results.ipynb",
    "05_any_size.ipynb",
)
#: Cells of 03_launch.ipynb with this tag make up the stand-alone form (``toolkit app``).
APP_TAG = "app"
#: The app's notebook file: Voila names the page (the browser tab) after it.
APP_PAGE = "Launch a campaign.ipynb"
_ENV = ("TOOLKIT_API_URL", "TOOLKIT_API_TOKEN", "TOOLKIT_JOURNAL")
#: ``toolkit app``'s access token when ``--token`` is not given (else a random one).
APP_TOKEN_ENV = "TOOLKIT_APP_TOKEN"
APP_READY_TIMEOUT = 120.0  # seconds Voila may take to answer before ``toolkit app`` gives up


def register(subparsers: Any) -> None:
    """Add the ``notebooks``, ``lab`` and ``app`` sub-commands."""
    n = subparsers.add_parser("notebooks", help="list the notebooks, or --refresh their committed outputs")
    n.add_argument(
        "--refresh",
        action="store_true",
        help="re-execute the notebooks in place against a fresh sandbox and journal",
    )
    n.add_argument("--dir", type=Path, default=None, help="the notebooks folder (default: ./notebooks)")
    n.add_argument("--timeout", type=int, default=300, help="seconds a cell may run (default 300)")
    n.set_defaults(func=cmd_notebooks)

    lab = subparsers.add_parser("lab", help="start a sandbox and JupyterLab on the notebooks")
    lab.add_argument("--port", type=int, default=8888, help="JupyterLab's port (default 8888)")
    lab.add_argument("--dir", type=Path, default=None, help="the notebooks folder (default: ./notebooks)")
    lab.set_defaults(func=cmd_lab)

    app = subparsers.add_parser(
        "app", help="serve the launch form (03_launch.ipynb) with Voila, on a sandbox"
    )
    app.add_argument("--port", type=int, default=8866, help="Voila's port (default 8866)")
    app.add_argument(
        "--token",
        default=None,
        help=f"the page's access token (default: ${APP_TOKEN_ENV}, else a random one); "
        "the environment variable keeps it out of the process list",
    )
    app.add_argument("--dir", type=Path, default=None, help="the notebooks folder (default: ./notebooks)")
    app.add_argument(
        "--processing-rate",
        type=float,
        default=500.0,
        help="sandbox profiles per second, so progress is visible (default 500)",
    )
    app.set_defaults(func=cmd_app)


def notebooks_dir(folder: Path | None = None) -> Path:
    """The notebooks folder: the given one, ./notebooks, or the one next to the package."""
    if folder is not None:
        return folder
    here = Path.cwd() / "notebooks"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[2] / "notebooks"


@contextlib.contextmanager
def platform_env(*, fresh: bool = False, **knobs: Any) -> Iterator[str]:
    """``TOOLKIT_API_URL`` / ``TOOLKIT_API_TOKEN`` / ``TOOLKIT_JOURNAL`` set for the block,
    so kernels started in it talk to the same platform; yields a description (no token).

    Uses the platform already configured in the environment unless ``fresh`` is true or
    none is, and only if it is a toolkit sandbox or ``TOOLKIT_USE_REAL_PLATFORM=1`` is set;
    otherwise starts a sandbox (with ``knobs``) and a temporary journal.
    """
    from toolkit.send.target import real_platform_allowed, url_is_sandbox

    saved = {name: os.environ.get(name) for name in _ENV}
    configured = bool(saved["TOOLKIT_API_URL"] and saved["TOOLKIT_API_TOKEN"]) and not fresh
    if configured and not real_platform_allowed():  # the sample goes to a sandbox unless asked otherwise
        configured = url_is_sandbox(str(saved["TOOLKIT_API_URL"]), str(saved["TOOLKIT_API_TOKEN"]))
    with contextlib.ExitStack() as stack:
        if configured:
            where = f"the platform at {saved['TOOLKIT_API_URL']}"
        else:
            from toolkit.sandbox import serve

            server = stack.enter_context(serve(**knobs))
            folder = Path(tempfile.mkdtemp(prefix="toolkit-journal-"))
            stack.callback(shutil.rmtree, folder, ignore_errors=True)
            os.environ["TOOLKIT_API_URL"] = server.url
            os.environ["TOOLKIT_API_TOKEN"] = server.token
            os.environ["TOOLKIT_JOURNAL"] = str(folder / "journal.sqlite")
            where = f"a local sandbox at {server.url}"
        try:
            yield where
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def execute(
    source: Path,
    target: Path | None = None,
    *,
    timeout: int = 300,
    store_widget_state: bool = True,
) -> Any:
    """Execute one notebook headless (nbclient), in its own folder, with the current
    environment; write it to ``target`` (default: in place). Returns the notebook node.

    Raises ``nbclient.exceptions.CellExecutionError`` when a cell fails.
    """
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(source, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(source.parent.resolve())}},
        record_timing=False,  # no volatile timestamps in the committed notebooks
        store_widget_state=store_widget_state,
    )
    client.execute()
    nb.metadata.pop("papermill", None)
    nbformat.write(nb, target or source)
    return nb


def _check_no_secrets(path: Path, token: str | None) -> None:
    text = path.read_text(encoding="utf-8")
    lowered = text.lower()
    if token and token in text:
        raise RuntimeError(f"{path} holds the API token: not written")
    for word in ("bearer ", "authorization:"):
        if word in lowered:
            raise RuntimeError(f"{path} mentions {word.strip()!r}: check what it prints")


def cmd_notebooks(args: argparse.Namespace) -> int:
    folder = notebooks_dir(args.dir)
    paths = [folder / name for name in NOTEBOOKS]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        print(f"missing notebooks: {', '.join(str(p) for p in missing)}", file=sys.stderr)
        return 2
    if not args.refresh:
        for p in paths:
            print(p)
        print("re-execute them in place (fresh sandbox and journal): toolkit notebooks --refresh")
        return 0
    from nbclient.exceptions import CellExecutionError

    with platform_env(fresh=True) as where:
        token = os.environ["TOOLKIT_API_TOKEN"]
        print(f"executing {len(paths)} notebooks against {where} (fresh journal)")
        for p in paths:
            started = time.monotonic()
            try:
                # no widget state: small diffs (the widgets come back when the notebook runs)
                execute(p, timeout=args.timeout, store_widget_state=False)
            except CellExecutionError as exc:
                print(f"{p.name}: a cell failed; the notebook was not rewritten\n{exc}", file=sys.stderr)
                return 1
            _check_no_secrets(p, token)
            print(f"  {p.name}: {time.monotonic() - started:.1f} s")
    print("done: review with `git diff notebooks/`, then run the nbval tests")
    return 0


def app_notebook(source: Path, target: Path) -> Path:
    """A copy of ``source`` with only its cells tagged ``app``: the stand-alone form.

    Example:
        >>> import nbformat, tempfile
        >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1", metadata={"tags": ["app"]}),
        ...                                      nbformat.v4.new_code_cell("2")])
        >>> d = Path(tempfile.mkdtemp()); nbformat.write(nb, d / "a.ipynb")
        >>> [c.source for c in nbformat.read(app_notebook(d / "a.ipynb", d / "b.ipynb"), 4).cells]
        ['1']
    """
    import nbformat

    nb = nbformat.read(source, as_version=4)
    nb.cells = [c for c in nb.cells if APP_TAG in c.get("metadata", {}).get("tags", [])]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.metadata.pop("widgets", None)
    nb.metadata["title"] = Path(APP_PAGE).stem  # the page's title where a template reads the metadata
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target)
    return target


def _serve(
    command: Sequence[str],
    cwd: Path,
    *,
    env: dict[str, str] | None = None,
    ready: Callable[[], bool] | None = None,
    on_ready: Callable[[], None] | None = None,
) -> int:
    """Run a server in the foreground until it exits, Ctrl-C or SIGTERM (which stop it too).

    ``ready`` (polled while the server runs, up to ``APP_READY_TIMEOUT``): once it is true,
    ``on_ready`` is called (e.g. to print where the server is).
    """

    def stop(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    proc = subprocess.Popen(list(command), cwd=cwd, env=env)
    try:
        if ready is not None:
            deadline = time.monotonic() + APP_READY_TIMEOUT
            while proc.poll() is None and not ready():
                if time.monotonic() > deadline:
                    print(f"no answer after {APP_READY_TIMEOUT:.0f} s: stopping", file=sys.stderr)
                    raise KeyboardInterrupt
                time.sleep(0.2)
            if proc.poll() is None and on_ready is not None:
                on_ready()
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)


def _root_flags() -> list[str]:
    return ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []


def cmd_lab(args: argparse.Namespace) -> int:
    folder = notebooks_dir(args.dir)
    with platform_env() as where:
        print(f"JupyterLab on {folder}, notebooks talk to {where}; Ctrl-C stops both")
        # news_url=None: JupyterLab's news pop-up (fetched from the internet) would cover the form
        command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip", "127.0.0.1",
                   "--port", str(args.port), "--LabApp.news_url=None", *_root_flags()]  # fmt: skip
        return _serve(command, folder)


def app_token(given: str | None = None) -> str:
    """``toolkit app``'s access token: ``given``, else ``$TOOLKIT_APP_TOKEN``, else a random one.

    Example:
        >>> app_token("abc")
        'abc'
        >>> app_token("") != ""  # empty counts as not given: never a page without a token
        True
    """
    return (given or "").strip() or os.environ.get(APP_TOKEN_ENV, "").strip() or secrets.token_urlsafe(32)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Voila (tornado) binds
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _voila_answers(base_url: str) -> bool:
    """Voila is up: its login page answers (a route that starts no kernel)."""
    import requests

    try:
        return requests.get(f"{base_url}/login", timeout=2, allow_redirects=False).status_code == 200
    except requests.RequestException:
        return False


def cmd_app(args: argparse.Namespace) -> int:
    folder = notebooks_dir(args.dir)
    source = folder / "03_launch.ipynb"
    if not source.is_file():
        print(f"{source} not found", file=sys.stderr)
        return 2
    if not 0 < args.port < 65536 or not _port_free(args.port):
        print(f"port {args.port} is not free on 127.0.0.1: choose another with --port", file=sys.stderr)
        return 2
    from toolkit.view import app_page

    token = app_token(args.token)
    base_url = f"http://127.0.0.1:{args.port}"
    page_url = f"{base_url}/?token={urllib.parse.quote(token, safe='')}"
    work = Path(tempfile.mkdtemp(prefix="toolkit-app-"))
    try:
        page = app_notebook(source, work / APP_PAGE)
        with platform_env(processing_rate=args.processing_rate) as where:
            print(f"starting the launch form on {base_url}, talking to {where}", flush=True)
            # Voila's token auth (jupyter_server's IdentityProvider): --Voila.auto_token turns it
            # on and the token comes from JUPYTER_TOKEN, so it is not on the command line, which
            # every user of the machine can read (ps). port_retries=0: never move to another
            # port than the one printed.
            # The app's template (no stylesheet from a CDN: the page works offline) and login page
            # (says where the link comes from): see toolkit.view.app_page.
            command = [sys.executable, "-m", "voila", str(page), "--no-browser", f"--port={args.port}",
                       "--Voila.ip=127.0.0.1", "--Voila.port_retries=0", "--Voila.auto_token=True",
                       f"--template={app_page.TEMPLATE}",
                       f"--Voila.identity_provider_class={app_page.IDENTITY_PROVIDER}"]  # fmt: skip
            jupyter_path = [str(app_page.JUPYTER_DATA), os.environ.get("JUPYTER_PATH", "")]
            env = {
                **os.environ,
                "JUPYTER_TOKEN": token,
                "JUPYTER_PATH": os.pathsep.join(filter(None, jupyter_path)),
            }
            env.pop("JUPYTER_TOKEN_FILE", None)
            env.pop(APP_TOKEN_ENV, None)

            def announce() -> None:
                print(f"the launch form is ready: {page_url}  (Ctrl-C stops it)", flush=True)

            return _serve(command, work, env=env, ready=lambda: _voila_answers(base_url), on_ready=announce)
    finally:
        shutil.rmtree(work, ignore_errors=True)
