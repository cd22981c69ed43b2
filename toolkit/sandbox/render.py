"""Answers in the platform's two formats: JSON envelopes and their XML twins.

Example:
    >>> render({"error": 0, "error_text": "Successful operation", "task_id": "t"}, "json")
    b'{"error":0,"error_text":"Successful operation","task_id":"t"}'
    >>> task = {"status": "completed", "total": 1, "done": 1, "results": [{"profile_id": "p1"}]}
    >>> status_payload(task)["data"]
    {'status': 'completed', 'progress': 100, 'result': {'error': 0, 'error_text': '', 'result': [{'profile_id': 'p1'}]}}
"""

from __future__ import annotations

from typing import Any

import orjson

from toolkit.core.contract import BODY_TOO_LARGE, Format, TaskState, dumps_xml, ok_envelope, xml_text

__all__ = ["body_too_large", "http_status", "progress", "render", "status_payload", "status_xml"]


def render(payload: dict[str, Any], fmt: Format) -> bytes:
    """An envelope as response bytes in ``fmt``."""
    return dumps_xml(payload) if fmt == "xml" else orjson.dumps(payload)


def http_status(code: int) -> int:
    """The HTTP status for an envelope ``error`` code: the code itself when it is one.

    Example:
        >>> http_status(0), http_status(429), http_status(7)
        (200, 429, 400)
    """
    if code == 0:
        return 200
    return code if 400 <= code <= 599 else 400


def body_too_large(fmt: Format) -> bytes:
    """The seed's exact over-limit answer; its XML example carries no ``error_debug``.

    Example:
        >>> body_too_large("xml")
        b'<xml>\\n<error>400</error>\\n<error_text>Invalid request</error_text>\\n</xml>\\n'
    """
    if fmt == "xml":
        return dumps_xml({k: v for k, v in BODY_TOO_LARGE.items() if k != "error_debug"})
    return orjson.dumps(BODY_TOO_LARGE)


#: The states a sandbox task ends in.
_OVER = frozenset({TaskState.COMPLETED, TaskState.FAILED})


def progress(task: dict[str, Any]) -> int:
    """0..100, rising with the profiles done; 100 only once the task is over."""
    if task["status"] in _OVER:
        return 100
    return min(99, task["done"] * 100 // max(1, task["total"]))


def status_payload(task: dict[str, Any]) -> dict[str, Any]:
    """The JSON ``tasks/status`` answer (the seed's example shape); ``result`` once over."""
    data: dict[str, Any] = {"status": task["status"], "progress": progress(task)}
    if task["status"] == TaskState.COMPLETED:
        data["result"] = {"error": 0, "error_text": "", "result": task["results"]}
    elif task["status"] == TaskState.FAILED:
        data["result"] = {"error": 500, "error_text": task.get("error_text") or "the task failed"}
    return {"data": data, **ok_envelope()}


def _leaf(name: str, value: Any) -> str:
    return f"<{name}>{xml_text(value)}</{name}>"


def status_xml(task: dict[str, Any]) -> bytes:
    """The XML ``tasks/status`` answer in the seed's XML shape, plus one ``<result>`` per profile.

    ``<result>`` holds ``<captured>`` (profiles imported), ``<errors>`` (one per failed
    profile: index, error, error_text; ``<errors/>`` when none), ``<status>ok</status>``
    and the repeated per-profile ``<result>`` elements, in input order, which
    ``loads_xml(body, STATUS_LIST_PATHS)`` reads as ``data.result.result``.

    Example:
        >>> task = {"status": "completed", "total": 2, "done": 2,
        ...         "results": [{"profile_id": "p1"}, {"error": 400, "error_text": "invalid email"}]}
        >>> from toolkit.core.contract import loads_xml, STATUS_LIST_PATHS
        >>> loads_xml(status_xml(task), STATUS_LIST_PATHS)["data"]["result"]["result"]
        [{'profile_id': 'p1'}, {'error': '400', 'error_text': 'invalid email'}]
    """
    out = ["<xml>", "<data>", _leaf("progress", progress(task))]
    if task["status"] == TaskState.COMPLETED:
        results = task["results"]
        failed = [(i, r) for i, r in enumerate(results) if "profile_id" not in r]
        out += ["<result>", _leaf("captured", len(results) - len(failed))]
        if failed:
            for i, r in failed:
                out += ["<errors>", _leaf("index", i), _leaf("error", r["error"])]
                out += [_leaf("error_text", r["error_text"]), "</errors>"]
        else:
            out.append("<errors/>")
        out.append(_leaf("status", "ok"))
        for r in results:
            if "profile_id" in r:
                out += ["<result>", _leaf("profile_id", r["profile_id"]), "</result>"]
            else:
                out += [
                    "<result>",
                    _leaf("error", r["error"]),
                    _leaf("error_text", r["error_text"]),
                    "</result>",
                ]
        out.append("</result>")
    elif task["status"] == TaskState.FAILED:
        text = task.get("error_text") or "the task failed"
        out += ["<result>", _leaf("error", 500), _leaf("error_text", text), "</result>"]
    out += [_leaf("status", task["status"]), "</data>", _leaf("error", 0)]
    out += [_leaf("error_text", "Successful operation"), "</xml>"]
    return ("\n".join(out) + "\n").encode("utf-8")
