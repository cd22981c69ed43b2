"""Reading a platform request: body bytes -> checked envelope, or an :class:`ApiFailure`.

Everything here is pure (no I/O, no state) so it can run in a worker thread while the
event loop keeps answering status polls.

Example:
    >>> body = decode(b'{"trigger_id": 96, "data": [{"data": {"email": "a@b.co"}}]}', "json", BATCH_LISTS)
    >>> env = parse_import(body, xml=False, single=False)
    >>> env.trigger_id, env.matching, env.profiles
    (96, 'email', [{'email': 'a@b.co'}])
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import orjson
from defusedxml import DefusedXmlException

from toolkit.core.contract import (
    MATCHING_MODES,
    MAX_FILE_BYTES,
    REQUEST_LIST_PATHS,
    Format,
    MatchingMode,
    loads_xml,
)

from .validators import parse_data_uri

__all__ = [
    "BATCH_LISTS",
    "MAX_DEPTH",
    "SINGLE_LISTS",
    "STATUS_LISTS",
    "ApiFailure",
    "ImportEnvelope",
    "decode",
    "detect_format",
    "parse_import",
    "parse_status",
    "response_format",
]

#: Deepest nesting accepted in a body. Profiles are shallow (a field may hold an object or an
#: array of objects); the bound keeps every later recursive step (orjson.dumps stops at 255,
#: Python at ~1000 frames) far from its limit.
MAX_DEPTH: Final = 64

BATCH_LISTS: Final = REQUEST_LIST_PATHS
# The single-profile route carries one <data> object, optionally wrapped in a second <data>.
SINGLE_LISTS: Final = frozenset({("data", "subscriptions"), ("data", "data", "subscriptions"), ("attach",)})
STATUS_LISTS: Final = frozenset[tuple[str, ...]]()

_INT: Final = re.compile(r"^[+-]?\d{1,18}$")


class ApiFailure(Exception):
    """An answer in the platform's error envelope: ``code`` is both ``error`` and the HTTP status.

    Example:
        >>> ApiFailure(400, "trigger_id is required").code
        400
    """

    def __init__(self, code: int, text: str, debug: str | None = None) -> None:
        super().__init__(text)
        self.code = code
        self.text = text
        self.debug = debug


def detect_format(content_type: str | None, body: bytes) -> Format:
    """The request's own format: XML by Content-Type or by a body that starts with ``<``.

    Example:
        >>> detect_format("text/xml; charset=utf-8", b""), detect_format(None, b"  <xml/>"), detect_format(None, b"{}")
        ('xml', 'xml', 'json')
    """
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in ("application/xml", "text/xml"):
        return "xml"
    return "xml" if body.lstrip()[:1] == b"<" else "json"


def _depth_ok(value: Any, limit: int) -> bool:
    # Iterative on purpose: a recursive walk is exactly what a deep body would break.
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return False
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return True


def decode(raw: bytes, fmt: Format, list_paths: frozenset[tuple[str, ...]]) -> dict[str, Any]:
    """Parse a JSON or XML body into a dict; malformed, hostile or over-deep bodies -> 400.

    Example:
        >>> decode(b"<xml><token>t</token></xml>", "xml", STATUS_LISTS)
        {'token': 't'}
        >>> decode(b"[1]", "json", STATUS_LISTS)
        Traceback (most recent call last):
        ...
        toolkit.sandbox.envelope.ApiFailure: the JSON body must be an object, not an array
    """
    if not raw.strip():
        raise ApiFailure(400, "the request body is empty")
    try:
        if fmt == "xml":
            body: Any = loads_xml(raw, list_paths)
        else:
            body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiFailure(400, f"malformed JSON: {exc}") from None
    except DefusedXmlException as exc:
        raise ApiFailure(400, f"forbidden XML construct: {type(exc).__name__} (entities and DTDs)") from None
    except ET.ParseError as exc:
        raise ApiFailure(400, f"malformed XML: {exc}") from None
    except RecursionError:
        raise ApiFailure(400, f"the body nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # e.g. XML declaring an unsupported encoding
        raise ApiFailure(400, f"malformed {fmt.upper()}: {exc}") from None
    if not isinstance(body, dict):
        raise ApiFailure(400, f"the JSON body must be an object, not {_kind(body)}")
    if not _depth_ok(body, MAX_DEPTH):
        raise ApiFailure(400, f"the body nests deeper than {MAX_DEPTH} levels")
    return body


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def response_format(body: dict[str, Any], request_format: Format) -> Format:
    """The format to answer in: the body's ``format`` field, else the request's own.

    Example:
        >>> response_format({"format": "xml"}, "json"), response_format({}, "xml")
        ('xml', 'xml')
    """
    value = body.get("format")
    if value is None or value == "":
        return request_format
    if value not in ("json", "xml"):
        raise ApiFailure(400, f"format must be 'json' or 'xml', not {value!r}")
    return value  # type: ignore[no-any-return]


def _int(body: dict[str, Any], name: str, *, xml: bool, required: bool) -> int | None:
    value = body.get(name)
    if value is None or (xml and value == ""):
        if required:
            raise ApiFailure(400, f"{name} is required")
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if xml and isinstance(value, str) and _INT.match(value.strip()):
        return int(value)
    raise ApiFailure(400, f"{name} must be an integer, not {_kind(value)} {value!r}"[:300])


def _bool(body: dict[str, Any], name: str, *, xml: bool) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if xml and isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", ""):
        return value.strip().lower() in ("true", "1")
    raise ApiFailure(400, f"{name} must be true or false, not {value!r}"[:300])


def _object(body: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, dict):
        raise ApiFailure(400, f"{name} must be an object, not {_kind(value)}")
    return value


@dataclass
class ImportEnvelope:
    """A checked import request: everything a task needs to run (never the token)."""

    trigger_id: int
    matching: str
    profiles: list[dict[str, Any]]
    field_name: str | None = None
    resource_id: int | None = None
    skip_triggers: bool = False
    skip_invalid_subscriptions: bool = False
    detect_geo: bool = False
    content: dict[str, Any] | None = None
    custom_data: dict[str, Any] | None = None
    attachments: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy, as stored with the task so a restart can resume it."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImportEnvelope:
        """The inverse of :meth:`to_dict`."""
        return cls(**data)


def _profiles(body: dict[str, Any], *, xml: bool, single: bool) -> list[dict[str, Any]]:
    data = body.get("data")
    if data is None or data == "":
        raise ApiFailure(400, "data is required")
    if single:
        if isinstance(data, list) and len(data) == 1:
            data = data[0]
        if isinstance(data, dict) and set(data) == {"data"} and isinstance(data["data"], dict):
            data = data["data"]
        if not isinstance(data, dict):
            raise ApiFailure(400, f"data must be one profile object {{...fields...}}, not {_kind(data)}")
        return [data]
    if not isinstance(data, list):
        raise ApiFailure(400, f'data must be a list of {{"data": {{...}}}} objects, not {_kind(data)}')
    if not data:
        raise ApiFailure(400, "data is empty: send at least one profile")
    profiles: list[dict[str, Any]] = []
    for i, item in enumerate(data):
        # In XML each <data> element holds the fields directly; in JSON each item wraps them.
        fields = item if xml else item.get("data") if isinstance(item, dict) else None
        if not isinstance(fields, dict):
            shape = "a <data> element holding profile fields" if xml else 'an object {"data": {...fields...}}'
            raise ApiFailure(400, f"data[{i}] must be {shape}")
        profiles.append(fields)
    return profiles


def parse_import(
    body: dict[str, Any], *, xml: bool, single: bool, max_file_bytes: int = MAX_FILE_BYTES
) -> ImportEnvelope:
    """Check an import request's envelope; per-profile problems are left to processing.

    Example:
        >>> parse_import({"trigger_id": "7", "matching": "custom", "data": [{}]}, xml=True, single=False)
        Traceback (most recent call last):
        ...
        toolkit.sandbox.envelope.ApiFailure: matching 'custom' needs field_name (the custom field to match on)
    """
    trigger_id = _int(body, "trigger_id", xml=xml, required=True)
    assert trigger_id is not None
    matching = body.get("matching") or MatchingMode.EMAIL.value
    if not isinstance(matching, str) or matching not in MATCHING_MODES:
        known = ", ".join(MATCHING_MODES)
        raise ApiFailure(400, f"unknown matching {matching!r}; one of: {known}"[:400])
    field_name = body.get("field_name")
    if MATCHING_MODES[matching].needs_match_field:
        if not isinstance(field_name, str) or not field_name.strip():
            raise ApiFailure(400, f"matching {matching!r} needs field_name (the custom field to match on)")
    elif field_name is not None and not isinstance(field_name, str):
        raise ApiFailure(400, "field_name must be a string")
    attach = body.get("attach")
    if attach is None or attach == "":
        attach = []
    if isinstance(attach, dict):
        attach = [attach]
    if not isinstance(attach, list):
        raise ApiFailure(400, f"attach must be a list of {{data, name}} objects, not {_kind(attach)}")
    attachments = []
    for item in attach:
        if not isinstance(item, dict):
            raise ApiFailure(400, "each attach item must be an object {data, name}")
        try:
            found = parse_data_uri(item.get("data"), item.get("name"), max_file_bytes)
        except ValueError as exc:
            raise ApiFailure(400, str(exc)) from None
        attachments.append({"name": found.name, "mime": found.mime, "size": found.size})
    return ImportEnvelope(
        trigger_id=trigger_id,
        matching=matching,
        profiles=_profiles(body, xml=xml, single=single),
        field_name=field_name.strip() if isinstance(field_name, str) and field_name.strip() else None,
        resource_id=_int(body, "resource_id", xml=xml, required=False),
        skip_triggers=_bool(body, "skip_triggers", xml=xml),
        skip_invalid_subscriptions=_bool(body, "skip_invalid_subscriptions", xml=xml),
        detect_geo=_bool(body, "detect_geo", xml=xml),
        content=_object(body, "content"),
        custom_data=_object(body, "custom_data"),
        attachments=attachments,
    )


def parse_status(body: dict[str, Any]) -> str:
    """The ``task_id`` of a status request.

    Example:
        >>> parse_status({"task_id": " 1c1a5861 "})
        '1c1a5861'
    """
    task_id = body.get("task_id")
    if task_id is None or task_id == "":
        raise ApiFailure(400, "task_id is required")
    if not isinstance(task_id, str):
        raise ApiFailure(400, f"task_id must be a string, not {_kind(task_id)}")
    return task_id.strip()
