"""What preflight adds to a launch, on a local sandbox: the time of ``client.preflight(plan)``.

Preflight reads the trigger (``campaigns/triggers/get``), its database's fields and each
resource the mapping uses before a launch sends anything. This times it on the toolkit's
sandbox over HTTP (median and worst of ``--repeat`` runs, after a warm-up) for the README's
mapping (two subscriptions: two resources), and prints how many requests it made. A sandbox
that serves no catalog answers the first reads "not found": preflight then stops after two
requests, with one warning.

Targets: at most 2 + (resources used) requests (trigger, fields, one per resource), and the
median under 60 ms per request. The sandbox answers each request in ~44 ms on Linux (its
server does not set TCP_NODELAY: the answer's second segment waits for a delayed ACK), so
the time is mostly that wait; with TCP_NODELAY it is ~3 ms a request.

    PYTHONPATH=. .venv/bin/python bench/preflight_cost.py --repeat 50
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import toolkit
from toolkit.sandbox import serve
from toolkit.send.client import Client

TARGET_MS_PER_REQUEST = 60.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=50, help="timed runs (default 50)")
    args = parser.parse_args(argv)
    mapping = toolkit.Mapping(
        {
            "first_name": "_fname",
            "last_name": "_lname",
            "email": "email",
            "phone": "phones",
            "crm_id": "CRM_ID",
        },
        subscriptions=[toolkit.Subscription("email", "email", 21), toolkit.Subscription("sms", "phone", 20)],
    )
    plan = toolkit.plan(toolkit.sample_customers(1000), mapping, toolkit.Trigger(96))
    with serve() as server, Client(server.url, server.token, journal=":memory:") as client:
        problems = client.preflight(plan)  # warm-up: connections, the sandbox's first answers
        counted = _requests(client)
        client.preflight(plan)
        per_run = _requests(client) - counted
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            client.preflight(plan)
            times.append((time.perf_counter() - start) * 1000)
    median, worst = statistics.median(times), max(times)
    print(f"preflight on the sandbox: median {median:.1f} ms, worst {worst:.1f} ms over {args.repeat} runs, "
          f"{per_run} request(s) per run")  # fmt: skip
    for p in problems:
        print(f"  {p.severity}: {p.message}")
    most = 2 + len({s.resource_id for s in mapping.subscriptions})
    ok_requests = per_run <= most
    ok_time = median <= TARGET_MS_PER_REQUEST * max(per_run, 1)
    print(f"{'PASS' if ok_requests else 'FAIL'}: at most {most} requests per launch")
    print(f"{'PASS' if ok_time else 'FAIL'}: median <= {TARGET_MS_PER_REQUEST:.0f} ms per request")
    return 0 if ok_requests and ok_time else 1


class _Counting:
    """Counts the POSTs of a client's session (the bench's only instrument)."""

    def __init__(self, session: object) -> None:
        self.session, self.count = session, 0

    def post(self, *args: object, **kwargs: object) -> object:
        self.count += 1
        return self.session.post(*args, **kwargs)  # type: ignore[attr-defined]

    def close(self) -> None:
        self.session.close()  # type: ignore[attr-defined]


def _requests(client: Client) -> int:
    transport = client._transport
    if not isinstance(transport._session, _Counting):
        transport._session = _Counting(transport._session)  # type: ignore[assignment]
    return transport._session.count  # type: ignore[union-attr]


if __name__ == "__main__":
    sys.exit(main())
