"""Launch end to end against a sandbox in its own process, side by side in one run.

(a) a bare ``requests`` loop posting the plan's bodies, then polling each task to ``completed``;
(b) ``client.launch(plan)`` -> ``wait()`` -> ``results()`` of the same plan (fresh journal);
(c) the sandbox's own throughput at ``--million`` profiles (bare posts, first POST to last
``completed``) on ``toolkit sandbox --one-process``, the sandbox process's RSS afterwards (VmRSS,
VmHWM from /proc), its CPU seconds per profile, and how long ``/_sandbox/sends`` and
``/_sandbox/profiles`` then take to answer;
(c2) the same on ``toolkit sandbox --two-processes`` (large tasks shared with a second process;
the default on three cores or more), side by side;
(d) the same with the SQLite store (``--db``) at ``--db-rows`` profiles;
(e) the floor: uvicorn (the sandbox's own h11 protocol) receiving the same bodies and parsing
them with ``orjson``, nothing else, in its own process.
Targets: (b) at most 1.3x (a); (c) or (c2) at least 50,000 profiles/s, every profile imported.
Exit 1 when one is missed.

    PYTHONPATH=. .venv/bin/python bench/launch_e2e.py --rows 200000 --million 1000000
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

import toolkit
from toolkit.core.contract import BATCH_PATH, STATUS_PATH
from toolkit.core.sample import sample_customers

sys.path.insert(0, str(Path(__file__).parent))
from plan_throughput import TRIGGER_ID, sample_mapping


def _plan(rows: int) -> toolkit.Plan:
    return toolkit.plan(
        sample_customers(rows, kind="polars"), sample_mapping(), toolkit.Trigger(TRIGGER_ID), max_rows=10_000
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mb(pid: int) -> tuple[float, float]:
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    """The processes ``pid`` started (the sandbox's preparer: toolkit/sandbox/prepare.py)."""
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if stat.read_text().rsplit(")", 1)[1].split()[1] == str(pid):
                kids.append(int(stat.parent.name))
        except (OSError, IndexError):
            continue  # gone meanwhile
    return kids


def _tree_cpu_s(pid: int) -> tuple[float, float]:
    """CPU seconds of a process and of its children (each alive now)."""
    return _cpu_s(pid), sum(_cpu_s(kid) for kid in _children(pid))


def _load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


#: (e)'s server: the sandbox's uvicorn protocol, each body read whole and parsed by orjson, a
#: task id answered, every task already ``completed``: what any Python sandbox on uvicorn pays.
FLOOR_SERVER = """
import sys, orjson, uvicorn
from toolkit.sandbox.server import AbortableH11Protocol
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    chunks, more = [], True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    raw = b"".join(chunks)
    body = orjson.loads(raw) if raw else {}
    if "data" in body:
        answer = {"task_id": f"t{len(body['data'])}"}
    else:
        answer = {"data": {"status": "completed"}}
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": orjson.dumps(answer)})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), http=AbortableH11Protocol,
            log_level="warning", lifespan="off")
"""


def _start(args: list[str], url: str) -> subprocess.Popen[bytes]:
    """A server in its own process (``python ARGS``), once ``url`` answers (30 s at most)."""
    server = subprocess.Popen([sys.executable, *args])
    for _ in range(300):
        try:
            requests.get(url, timeout=1)
            break
        except requests.ConnectionError:
            time.sleep(0.1)
    return server


def _sandbox_args(port: int, token: str, *extra: str) -> list[str]:
    argv = ["sandbox", "--port", str(port), "--token", token, "--log-level", "warning", *extra]
    return ["-c", f"import toolkit.cli as c; c.main({argv!r})"]


def _timed_get(url: str, auth: dict[str, str], params: dict[str, int] | None = None) -> tuple[float, int]:
    start = time.perf_counter()
    answer = requests.get(url, headers=auth, params=params, timeout=600)
    answer.raise_for_status()
    return time.perf_counter() - start, len(answer.json())


def _bare(url: str, token: str, bodies: list[bytes]) -> float:
    auth = {"Authorization": f"Bearer {token}"}
    start = time.perf_counter()
    with requests.Session() as http:
        tasks = []
        for body in bodies:
            answer = http.post(
                url + BATCH_PATH, data=body, headers={**auth, "Content-Type": "application/json"}
            )
            answer.raise_for_status()
            tasks.append(answer.json()["task_id"])
        for task_id in tasks:
            while (
                http.post(url + STATUS_PATH, json={"task_id": task_id}, headers=auth).json()["data"]["status"]
                != "completed"
            ):
                time.sleep(0.05)
    return time.perf_counter() - start


def _print_inspection(url: str, auth: dict[str, str], *paths: str) -> None:
    """How long each ``/_sandbox/...`` listing takes to answer after a million profiles."""
    for path in paths:
        params = {"trigger_id": TRIGGER_ID} if path == "/_sandbox/sends" else None
        took, items = _timed_get(url + path, auth, params)
        print(f"    GET {path:<18} {took:6.2f} s  ({items:,} items)")


def main() -> int:
    args = argparse.ArgumentParser()
    args.add_argument("--rows", type=int, default=200_000, help="profiles for (a) and (b); 0 skips them")
    args.add_argument("--million", type=int, default=1_000_000, help="profiles for (c) and (e); 0 skips them")
    args.add_argument(
        "--db-rows", type=int, default=200_000, help="profiles for (d), the SQLite store; 0 skips it"
    )
    args.add_argument(
        "--two-processes",
        type=int,
        choices=(0, 1),
        default=1,
        help="1: also (c2), the same --million profiles on `toolkit sandbox --two-processes`",
    )
    opts = args.parse_args()
    port, token = _free_port(), secrets.token_hex(8)
    url = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {token}"}
    print(f"{os.cpu_count()} cores, {_load()} at the start")
    ok = sandbox_ok = True
    # (a) and (b) on the sandbox as `toolkit sandbox` runs here by default; (c) on one process.
    server = _start(_sandbox_args(port, token), url + "/_sandbox/health")
    try:
        if opts.rows:
            plan = _plan(opts.rows)
            bodies = [b.body for b in plan.batches]
            n = sum(len(b) for b in plan.batches)
            bare_s = _bare(url, token, bodies)
            requests.post(url + "/_sandbox/reset", headers=auth).raise_for_status()
            with tempfile.TemporaryDirectory() as tmp:
                client = toolkit.Client(url, token, journal=Path(tmp) / "journal.sqlite")
                start = time.perf_counter()
                launch = client.launch(plan)
                launch.wait()
                launch.results()
                toolkit_s = time.perf_counter() - start
            ratio = toolkit_s / bare_s
            print(f"{n:,} profiles in {len(bodies)} bodies")
            print(f"(a) bare loop     {bare_s:7.2f} s  {n / bare_s:9,.0f} profiles/s")
            verdict = "PASS" if ratio <= 1.3 else "FAIL"
            print(
                f"(b) toolkit       {toolkit_s:7.2f} s  {n / toolkit_s:9,.0f} profiles/s  {ratio:.2f}x (a)"
                f"  target <= 1.3x  {verdict}"
            )
            ok = ratio <= 1.3
    finally:
        server.terminate()
        server.wait(30)
    server = _start(_sandbox_args(port, token, "--one-process"), url + "/_sandbox/health")
    try:
        if opts.million:
            big = _plan(opts.million)
            big_bodies = [b.body for b in big.batches]
            m = sum(len(b) for b in big.batches)
            del big
            cpu0 = _cpu_s(server.pid)
            big_s = _bare(url, token, big_bodies)
            cpu = _cpu_s(server.pid) - cpu0
            rss, hwm = _rss_mb(server.pid)
            check = requests.get(url + "/_sandbox/tasks", headers=auth).json()
            imported = sum(t["imported"] for t in check)
            rate = m / big_s
            verdict = "PASS" if rate >= 50_000 and imported == m else "FAIL"
            print(
                f"(c) one process   {big_s:7.2f} s  {rate:9,.0f} profiles/s  target >= 50,000/s  {verdict}"
                f"  ({m:,} profiles, {imported:,} imported; {cpu / m * 1e6:.1f} us CPU a profile; {_load()})"
            )
            print(f"    sandbox RSS after: {rss:,.0f} MB (peak {hwm:,.0f} MB)")
            _print_inspection(url, auth, "/_sandbox/sends", "/_sandbox/tasks", "/_sandbox/profiles")
            sandbox_ok = verdict == "PASS"
    finally:
        server.terminate()
        server.wait(30)
    if opts.million and opts.two_processes:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        server = _start(_sandbox_args(port, token, "--two-processes"), url + "/_sandbox/health")
        try:
            cpu0, kids0 = _tree_cpu_s(server.pid)
            two_s = _bare(url, token, big_bodies)
            cpu1, kids1 = _tree_cpu_s(server.pid)
            rss, hwm = _rss_mb(server.pid)
            kids_rss = sum(_rss_mb(kid)[0] for kid in _children(server.pid))
            check = requests.get(url + "/_sandbox/tasks", headers=auth).json()
            imported = sum(t["imported"] for t in check)
            verdict = "PASS" if m / two_s >= 50_000 and imported == m else "FAIL"
            sandbox_ok = sandbox_ok or verdict == "PASS"
            print(
                f"(c2) two processes {two_s:6.2f} s  {m / two_s:9,.0f} profiles/s  {big_s / two_s:.2f}x (c)  {verdict}"
                f"  ({imported:,} imported; {(cpu1 - cpu0) / m * 1e6:.1f} us CPU a profile in the sandbox's process"
                f" + {(kids1 - kids0) / m * 1e6:.1f} in its preparer; `toolkit sandbox --two-processes`; {_load()})"
            )
            print(f"    RSS after: {rss:,.0f} MB (peak {hwm:,.0f} MB) + its preparer {kids_rss:,.0f} MB")
            _print_inspection(url, auth, "/_sandbox/sends", "/_sandbox/profiles")
        finally:
            server.terminate()
            server.wait(30)
    if opts.db_rows:
        with tempfile.TemporaryDirectory() as tmp:
            port = _free_port()
            url = f"http://127.0.0.1:{port}"
            server = _start(
                _sandbox_args(port, token, "--db", str(Path(tmp) / "sandbox.sqlite")),
                url + "/_sandbox/health",
            )
            try:
                db_plan = _plan(opts.db_rows)
                db_bodies = [b.body for b in db_plan.batches]
                d = sum(len(b) for b in db_plan.batches)
                db_s = _bare(url, token, db_bodies)
                print(
                    f"(d) sandbox --db  {db_s:7.2f} s  {d / db_s:9,.0f} profiles/s  ({d:,} profiles, SQLite file)"
                )
            finally:
                server.terminate()
                server.wait(30)
    if opts.million:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        floor = _start(["-c", FLOOR_SERVER, str(port)], url + "/")
        try:
            floor_s = _bare(url, token, big_bodies)
            print(
                f"(e) floor         {floor_s:7.2f} s  {m / floor_s:9,.0f} profiles/s  "
                f"(uvicorn + orjson.loads of the same bodies, nothing else; {_load()})"
            )
        finally:
            floor.terminate()
            floor.wait(30)
    return 0 if ok and sandbox_ok else 1


if __name__ == "__main__":
    sys.exit(main())
