"""The platform's answers read as documented, never optimistically.

A row of a launch counts as ``imported`` only on evidence: its own per-profile result with a
``profile_id``, or the short form's count of captured profiles equal to the batch's rows
with no error. Every other answer leaves the rows ``unknown``, with a reason quoting what the
platform said, so nothing invites a re-send that would mail people twice.

==========================================================  =========================  ==============================
answer                                                      source                     rows of the batch
==========================================================  =========================  ==============================
``{"task_id": ...}`` at the top level                       seed (V)                   the task id
``{"data": {"task_id": ...}}``                              ``tasks/status`` of the    the task id
                                                            profile export (V)
status ``completed`` or ``success``                         seed / older revision (V)  done: results read below
status ``failed`` / ``error``                               sandbox (A)                ``failed``, the task's error
``result.result``: one ``{profile_id}`` or ``{error}``      seed's JSON example (V;    by position, only when the
per profile                                                 errors' shape A)           list has one item per row
a per-profile list of another length                        (A)                        ``unknown``: cannot be matched
``result = {captured, errors, status}``                     seed's XML example (V)     ``imported`` only when
                                                                                       captured == rows, no error,
                                                                                       status ok; else ``unknown``
                                                                                       quoting the counts
anything else (no result, another shape)                    (A)                        ``unknown``, the raw result kept
==========================================================  =========================  ==============================

Example:
    >>> task_id_of({"error": 0, "data": {"task_id": "task_1"}})
    'task_1'
    >>> from toolkit.send.transport import TaskStatus
    >>> short = TaskStatus.from_payload("t", {"data": {"status": "completed", "progress": "100",
    ...     "result": {"captured": "0", "errors": [], "status": "ok"}}})
    >>> outcomes, reason = row_outcomes(0, (10, 11, 12), short)
    >>> sorted({r.status.value for r in outcomes}), reason
    (['unknown'], "the platform reported captured=0 of 3 rows, 0 errors, status 'ok': it does not say which rows were imported")
    >>> task_figures(short)["captured"], task_figures(short)["errors"]
    (0, 0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import orjson

from toolkit.core.contract import RowStatus
from toolkit.send.journal import RowResult
from toolkit.send.transport import TaskStatus

__all__ = ["row_outcomes", "task_figures", "task_id_of"]

#: Statuses of the short form's own ``status`` that mean the import went well (the seed: ``ok``).
_SHORT_OK = frozenset({"", "ok", "completed", "success"})
#: Characters of a raw result quoted in a reason.
_RAW_EXCERPT = 200


def task_id_of(payload: Mapping[str, Any]) -> str | None:
    """The task id of an answer: at the top level (the seed) or under ``data`` (the platform's
    other asynchronous task, the profile export); ``None`` when neither holds one.

    Example:
        >>> task_id_of({"task_id": "t1"}), task_id_of({"data": {"task_id": 7}}), task_id_of({"data": []})
        ('t1', '7', None)
    """
    for where in (payload, payload.get("data")):
        if isinstance(where, Mapping):
            value = where.get("task_id")
            if value not in (None, ""):
                return str(value)
    return None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _short_form(result: Mapping[str, Any]) -> tuple[int | None, list[Any], str] | None:
    """``(captured, errors, status)`` of the short form, or ``None`` when ``result`` is not one."""
    if "captured" not in result:
        return None
    errors = result.get("errors")
    if errors in (None, ""):
        errors = []
    elif not isinstance(errors, list):
        errors = [errors]
    return _int(result.get("captured")), errors, str(result.get("status") or "").strip()


def _excerpt(value: Any) -> str:
    text = orjson.dumps(value, default=str).decode()
    return text if len(text) <= _RAW_EXCERPT else text[:_RAW_EXCERPT] + "..."


def task_figures(status: TaskStatus) -> dict[str, Any]:
    """The platform's own figures of a task, as it gave them (``None`` where it did not):
    status, progress, ``captured``, ``errors`` (a count), the short form's ``result_status``,
    and ``results`` (how many per-profile results it listed).

    Example:
        >>> s = TaskStatus.from_payload("t", {"data": {"status": "processing", "progress": 40}})
        >>> task_figures(s)
        {'task_id': 't', 'status': 'processing', 'progress': 40.0, 'captured': None, 'errors': None, 'result_status': None, 'results': None}
    """
    short = _short_form(status.result)
    errors = status.errors if status.errors is not None else (short[1] if short else None)
    return {
        "task_id": status.task_id,
        "status": status.status,
        "progress": status.progress,
        "captured": short[0] if short else None,
        "errors": None if errors is None else len(errors),
        "result_status": short[2] if short else None,
        "results": None if status.results is None else len(status.results),
    }


def row_outcomes(
    batch_index: int, rows: Sequence[int], status: TaskStatus
) -> tuple[list[RowResult], str | None]:
    """Each row's outcome from a finished task's answer, in the batch's row order, and the
    batch's reason when the answer does not settle its rows one by one (see the module's table).

    Example:
        >>> done = TaskStatus.from_payload("t", {"data": {"status": "completed", "result": {"result": [
        ...     {"profile_id": "p1"}, {"error": 400, "error_text": "invalid phone"}]}}})
        >>> [(r.status.value, r.profile_id, r.error_code) for r in row_outcomes(0, (4, 5), done)[0]]
        [('imported', 'p1', None), ('failed', None, 400)]
        >>> row_outcomes(0, (4, 5, 6), done)[1]
        'the platform gave 2 per-profile results for 3 rows: they cannot be matched to rows by position'
    """
    n = len(rows)

    def every(row_status: RowStatus, code: int | None, text: str) -> list[RowResult]:
        return [RowResult(pos, batch_index, row_status, None, code, text) for pos in rows]

    if status.failed:
        text = str(status.result.get("error_text") or f"the task ended {status.status!r}")
        return every(RowStatus.FAILED, _int(status.result.get("error")), text), text
    items = status.results
    if items is not None:
        if len(items) != n:
            text = (
                f"the platform gave {len(items)} per-profile results for {n} rows: they cannot be "
                "matched to rows by position"
            )
            return every(RowStatus.UNKNOWN, None, text), text
        imported = RowStatus.IMPORTED
        outcomes = []
        for pos, item in zip(rows, items, strict=True):
            # the usual row inline (a task holds up to 10,000): no error and a profile id
            profile_id = item.get("profile_id")
            if item.get("error") in _NO_ERROR and profile_id not in (None, ""):
                outcomes.append(RowResult(pos, batch_index, imported, str(profile_id)))
            else:
                outcomes.append(_one(pos, batch_index, item))
        return outcomes, None
    short = _short_form(status.result)
    if short is not None:
        captured, errors, result_status = short
        if captured == n and not errors and result_status.lower() in _SHORT_OK:
            return [RowResult(pos, batch_index, RowStatus.IMPORTED) for pos in rows], None
        text = (
            f"the platform reported captured={'?' if captured is None else captured} of {n} rows, "
            f"{len(errors)} error{'' if len(errors) == 1 else 's'}, status {result_status!r}: it does not "
            "say which rows were imported"
        )
        if errors:
            text += f" (errors: {_excerpt(errors)})"
        return every(RowStatus.UNKNOWN, None, text), text
    raw = status.result or None
    text = f"the platform's answer holds no per-profile results (result: {_excerpt(raw)})"
    return every(RowStatus.UNKNOWN, None, text), text


#: The per-profile ``error`` values that mean "no error".
_NO_ERROR: Final = (None, 0, "0", "")


def _one(position: int, batch_index: int, item: Mapping[str, Any]) -> RowResult:
    """One row from its own per-profile result: imported only with a profile id."""
    code = item.get("error")
    if code not in _NO_ERROR:
        return RowResult(
            position, batch_index, RowStatus.FAILED, None, _int(code), str(item.get("error_text") or "")
        )
    profile_id = item.get("profile_id")
    if profile_id in (None, ""):
        text = (
            f"the platform's result for this profile has neither a profile_id nor an error: {_excerpt(item)}"
        )
        return RowResult(position, batch_index, RowStatus.UNKNOWN, None, None, text)
    return RowResult(position, batch_index, RowStatus.IMPORTED, str(profile_id))
