"""Launch end to end against a sandbox in its own process, side by side in one run.

(a) a bare ``requests`` loop posting the plan's bodies, then polling each task to ``completed``;
(b) ``client.launch(plan)`` -> ``wait()`` -> ``results()`` of the same plan (fresh journal);
(c) the sandbox's own throughput at ``--million`` profiles (bare posts, first POST to last
``completed``) and the sandbox process's RSS afterwards (VmRSS, VmHWM from /proc).
Targets: (b) at most 1.3x (a); (c) at least 50,000 profiles/s. Exit 1 when one is missed.

    PYTHONPATH=. .venv/bin/python bench/launch_e2e.py --rows 200000 --million 1000000
"""

from __future__ import annotations

import argparse
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
from plan_throughput import EMAIL_RESOURCE, FIELDS, SMS_RESOURCE, TRIGGER_ID


def _plan(rows: int) -> toolkit.Plan:
    mapping = toolkit.Mapping(
        fields=FIELDS,
        subscriptions=(
            toolkit.Subscription("email", "email", EMAIL_RESOURCE),
            toolkit.Subscription("sms", "phone", SMS_RESOURCE),
        ),
        matching="email",
    )
    return toolkit.plan(
        sample_customers(rows, kind="polars"), mapping, toolkit.Trigger(TRIGGER_ID), max_rows=10_000
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


def main() -> int:
    args = argparse.ArgumentParser()
    args.add_argument("--rows", type=int, default=200_000)
    args.add_argument("--million", type=int, default=1_000_000, help="profiles for (c); 0 skips it")
    opts = args.parse_args()
    port, token = _free_port(), secrets.token_hex(8)
    url = f"http://127.0.0.1:{port}"
    code = f"import toolkit.cli as c; c.main(['sandbox','--port','{port}','--token','{token}','--log-level','warning'])"
    server = subprocess.Popen([sys.executable, "-c", code])
    try:
        auth = {"Authorization": f"Bearer {token}"}
        for _ in range(200):
            try:
                requests.get(url + "/_sandbox/health", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
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
        print(
            f"(b) toolkit       {toolkit_s:7.2f} s  {n / toolkit_s:9,.0f} profiles/s  {ratio:.2f}x (a)  target <= 1.3x"
        )
        ok = ratio <= 1.3
        if opts.million:
            requests.post(url + "/_sandbox/reset", headers=auth).raise_for_status()
            big = _plan(opts.million)
            big_bodies = [b.body for b in big.batches]
            m = sum(len(b) for b in big.batches)
            del big
            big_s = _bare(url, token, big_bodies)
            rss, hwm = _rss_mb(server.pid)
            check = requests.get(url + "/_sandbox/tasks", headers=auth).json()
            imported = sum(t["imported"] for t in check)
            print(
                f"(c) sandbox       {big_s:7.2f} s  {m / big_s:9,.0f} profiles/s  ({m:,} profiles, {imported:,} imported)"
                f"  target >= 50,000/s"
            )
            print(f"    sandbox RSS after: {rss:,.0f} MB (peak {hwm:,.0f} MB)")
            ok = ok and m / big_s >= 50_000 and imported == m
        return 0 if ok else 1
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    sys.exit(main())
