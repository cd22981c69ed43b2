"""``toolkit plan``: validate a segment and show how it would be sent; nothing is sent.

Example:
    >>> from toolkit.cli import main
    >>> main(["plan", "--rows", "200", "--json"])  # doctest: +ELLIPSIS
    {"batches": 1, "bytes": ...}
    0
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from toolkit.core.mapping import Mapping, Subscription, Trigger
from toolkit.core.plan import plan
from toolkit.core.sample import sample_customers

#: The mapping the demo and the sample segment use.
SAMPLE_FIELDS = {
    "first_name": "_fname",
    "last_name": "_lname",
    "email": "email",
    "phone": "phones",
    "city": "_city",
    "signup_date": "_regdate",
    "orders": "orders",
    "revenue": "revenue",
    "tags": "tags",
    "crm_id": "CRM_ID",
}


def sample_mapping() -> Mapping:
    """The bundled sample segment's mapping: ten fields, an email and an SMS subscription."""
    return Mapping(
        SAMPLE_FIELDS,
        subscriptions=(Subscription("email", "email", 21), Subscription("sms", "phone", 20)),
        matching="email",
    )


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "plan",
        help="plan the bundled sample segment (or a file) and print the summary; sends nothing",
        description="Validate and batch a segment; print the plan's summary and rejected rows by rule.",
    )
    p.add_argument("--rows", type=int, default=5000, help="rows of the sample segment (default 5000)")
    p.add_argument("--seed", type=int, default=0, help="the sample segment's seed")
    p.add_argument("--trigger-id", type=int, default=96, help="the trigger campaign id (default 96)")
    p.add_argument("--format", choices=("json", "xml"), default="json")
    p.add_argument("--max-bytes", type=int, default=10_000_000)
    p.add_argument("--max-rows", type=int, default=10_000)
    p.add_argument("--phone-region", default="RU", help="region for national phone numbers (default RU)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    segment = sample_customers(args.rows, seed=args.seed, kind="polars")
    result = plan(
        segment,
        sample_mapping(),
        Trigger(args.trigger_id),
        format=args.format,
        max_bytes=args.max_bytes,
        max_rows=args.max_rows,
        phone_region=args.phone_region,
    )
    summary = result.summary()
    if args.json:
        print(json.dumps(summary, sort_keys=True))
        return 0
    print(f"Planned {summary['rows']:,} rows for trigger {summary['trigger_id']} ({summary['format']}):")
    print(f"  valid     {summary['valid']:>10,}")
    print(f"  rejected  {summary['rejected']:>10,}")
    for rule, count in summary["rejected_by_rule"].items():
        print(f"    {rule:<22}{count:>8,}")
    print(
        f"  batches   {summary['batches']:>10,}  (largest {summary['largest_batch_rows']:,} rows, "
        f"{summary['largest_batch_bytes']:,} bytes; limits {summary['max_rows']:,} rows, "
        f"{summary['max_bytes']:,} bytes)"
    )
    return 0
