"""One launch's counts, from the journal alone, for ``launch``, ``status``, ``resume`` and ``history``.

:func:`launch_counts` is the one function that counts a launch; every command that shows a
launch calls it, so the same launch reads the same everywhere, whether its plan is at hand
or not: ``rows`` and ``rejected`` come from the plan's summary the journal kept; ``sent``
from the batches that reached (or may have reached) the platform; ``imported``, ``failed``,
``unknown`` and ``pending`` from the per-row results and the batches' states, the way
``Launch.results()`` reads them.

Example:
    >>> from toolkit.send.journal import Journal
    >>> j = Journal(":memory:")
    >>> lid = j.create_launch(label="x", trigger_id=1, host="http://h", fingerprint="0" * 64, format="json",
    ...                       n_rows=3, summary={"rows": 3, "rejected": 1, "rejected_by_rule": {"duplicate": 1}},
    ...                       batches=[(0, "a" * 64, (0, 2))])
    >>> c = launch_counts(j, j.find("x"))
    >>> c.rows, c.rejected, c.sent, c.pending
    (3, 1, 0, 2)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from toolkit.cli.output import WIDTH, cli_terms, say, short_reason, shorten, table
from toolkit.send.journal import KEY_MARK, Journal, LaunchRecord

__all__ = ["LaunchCounts", "history_lines", "launch_counts", "report_lines"]

COUNTS = ("rows", "rejected", "sent", "imported", "failed", "unknown", "pending")


@dataclass(frozen=True)
class LaunchCounts:
    """A launch as the journal knows it: identity, row counts, and why rows did not go through."""

    launch_id: str
    label: str | None
    trigger_id: int | None
    host: str
    created: str
    rows: int
    rejected: int
    sent: int
    imported: int
    failed: int
    unknown: int
    pending: int
    never_sent: int = 0
    """Rows of batches that never reached the platform (planned, or refused before sending)."""
    batches: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    rejections: dict[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.label or self.launch_id

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def launch_counts(journal: Journal, record: LaunchRecord) -> LaunchCounts:
    """Count one launch from the journal (no request is made)."""
    batches = journal.batches(record.launch_id)
    results = journal.row_result_columns(record.launch_id)
    by_position = dict(zip(results["position"], results["row_status"], strict=True))
    texts = dict(zip(results["position"], results["row_text"], strict=True))
    statuses: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    sent = never = 0
    for batch in batches:
        if batch.was_sent:
            sent += batch.n_rows
        if batch.state in ("completed", "failed"):
            known = [by_position.get(p) for p in batch.rows]
            if any(s is not None for s in known):
                for position, status in zip(batch.rows, known, strict=True):
                    status = status or "unknown"
                    statuses[status] += 1
                    if status == "failed":  # one line per kind: each row's key mark (its hash) read as <key>
                        text = KEY_MARK.sub("<key>", texts.get(position) or "failed")
                        failures[shorten(text, 80)] += 1
                continue
            if batch.state == "failed":
                statuses["failed"] += batch.n_rows
                if batch.task_id is None and batch.error_code is None:  # never reached the platform
                    never += batch.n_rows
                    failures[f"not sent: {short_reason(batch.error or '')}"] += batch.n_rows
                else:
                    failures[shorten(cli_terms(batch.error or "refused"), 80)] += batch.n_rows
            else:  # completed, yet no per-profile answer was kept
                statuses["unknown"] += batch.n_rows
        elif batch.state == "unknown":
            statuses["unknown"] += batch.n_rows
        else:  # planned, sending, sent: the platform has not finished them (or never got them)
            statuses["pending"] += batch.n_rows
            if batch.state == "planned":
                never += batch.n_rows
    batched = sum(b.n_rows for b in batches)
    summary = record.summary or {}
    rows = int(summary.get("rows", record.n_rows) or record.n_rows)
    rejected = int(summary.get("rejected", rows - batched))
    return LaunchCounts(
        launch_id=record.launch_id, label=record.label, trigger_id=record.trigger_id, host=record.host,
        created=record.created, rows=rows, rejected=rejected, sent=sent, imported=statuses["imported"],
        failed=statuses["failed"], unknown=statuses["unknown"], pending=statuses["pending"], never_sent=never,
        batches=dict(Counter(b.state for b in batches)), failures=dict(failures.most_common()),
        rejections=dict(summary.get("rejected_by_rule") or {}),
    )  # fmt: skip


def _when(created: str) -> str:
    return created[:16].replace("T", " ")


def report_lines(counts: LaunchCounts) -> list[str]:
    """The launch's report, within the output width.

    Example:
        >>> c = LaunchCounts("6e263da144e4", "spring", 96, "http://127.0.0.1:8080", "2024-05-01T12:00:00",
        ...                  20, 6, 14, 13, 1, 0, 0, failures={"invalid phone": 1}, rejections={"invalid_email": 6})
        >>> print("\\n".join(report_lines(c)))
        launch 'spring' (id 6e263da144e4), trigger 96 on http://127.0.0.1:8080, 2024-05-01 12:00 UTC
          rows           20    rejected        6    sent           14
          imported       13    failed          1    unknown         0    pending         0
          rejected by rule: invalid_email 6
          failed: invalid phone (1)
    """
    name = f"{counts.label!r} (id {counts.launch_id})" if counts.label else counts.launch_id
    head = f"launch {name}, trigger {counts.trigger_id} on {counts.host}, {_when(counts.created)} UTC"
    lines = [shorten(head)]

    def cells(names: tuple[str, ...]) -> str:
        return "  " + "    ".join(f"{n:<9}{getattr(counts, n):>8,}" for n in names)

    lines.append(cells(("rows", "rejected", "sent")))
    lines.append(cells(("imported", "failed", "unknown", "pending")))
    if counts.rejections:
        lines.append(
            shorten("  rejected by rule: " + ", ".join(f"{r} {n:,}" for r, n in counts.rejections.items()))
        )
    for text, n in list(counts.failures.items())[:5]:
        lines.append(shorten(f"  failed: {text} ({n:,})"))
    if len(counts.failures) > 5:
        lines.append(f"  ... and {len(counts.failures) - 5} more kinds of failure")
    return lines


def history_lines(all_counts: list[LaunchCounts]) -> list[str]:
    """The journal's launches as a table within the output width (newest first).

    Example:
        >>> c = LaunchCounts("6e263da144e4", None, 96, "http://h", "2024-05-01T12:00:00", 20, 6, 14, 14, 0, 0, 0)
        >>> print("\\n".join(history_lines([c])))
        created (UTC)     launch        trigger  rows  rejected  sent  imported  failed  unknown  pending
        2024-05-01 12:00  6e263da144e4       96    20         6    14        14       0        0        0
    """
    rows = [
        {"created": _when(c.created), "launch": c.name, "trigger": c.trigger_id or 0,
         **{k: getattr(c, k) for k in COUNTS}}
        for c in all_counts
    ]  # fmt: skip
    columns = [("created", "created (UTC)"), ("launch", "launch"), ("trigger", "trigger")]
    columns += [(k, k) for k in COUNTS]
    return table(rows, columns, flexible="launch")


def print_lines(lines: list[str]) -> None:
    for line in lines:
        say(line[:WIDTH])
