"""``toolkit plan [FILE]``: read and plan a segment file (or the bundled sample); nothing is sent.

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

from toolkit.cli.output import EXIT_OK, guarded, say
from toolkit.cli.report import print_lines
from toolkit.cli.segment import (
    add_plan_arguments,
    add_segment_arguments,
    make_plan,
    plan_lines,
    read_file,
    segment_facts,
    write_rejected,
)
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
        help="plan a segment file (or the bundled sample) and print the summary; sends nothing",
        description="Read and validate a segment, batch it, and print the plan's summary and rejected rows "
        "by rule. Without FILE, the bundled sample segment (--rows, --seed) is planned with its own mapping.",
    )
    p.add_argument(
        "segment", nargs="?", help="the segment file (.csv .tsv .xlsx .parquet .jsonl); default: the sample"
    )
    add_segment_arguments(p)
    add_plan_arguments(p, trigger_default=96)
    p.add_argument("--rows", type=int, default=5000, help="rows of the sample segment (default 5000)")
    p.add_argument("--seed", type=int, default=0, help="the sample segment's seed")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


@guarded
def run(args: argparse.Namespace) -> int:
    """Plan the file (or the sample); print the summary; write the rejected rows if asked."""
    segment = None
    if args.segment:
        segment = read_file(args)
        planned = make_plan(args, segment)
    else:
        planned = plan(
            sample_customers(args.rows, seed=args.seed, kind="polars"),
            sample_mapping(),
            Trigger(args.trigger_id),
            format=args.format,
            max_bytes=args.max_bytes,
            max_rows=args.max_rows,
            phone_region=args.phone_region,
        )
    if args.json:
        summary = planned.summary()
        if segment is not None:
            summary["segment"] = segment_facts(segment)
        if args.rejected and planned.n_rejected:
            write_rejected(planned, args.rejected)
            summary["rejected_file"] = str(args.rejected)
        say(json.dumps(summary, sort_keys=True, ensure_ascii=False))
        return EXIT_OK
    print_lines(plan_lines(planned, segment))
    if args.rejected and planned.n_rejected:
        say(write_rejected(planned, args.rejected))
    return EXIT_OK
