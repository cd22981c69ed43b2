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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Final, overload
from xml.parsers import expat

import msgspec
import numpy as np
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
    "MAX_ID",
    "MAX_XML_ELEMENTS",
    "SINGLE_LISTS",
    "STATUS_LISTS",
    "ApiFailure",
    "ImportEnvelope",
    "RawProfiles",
    "accepted_matching",
    "check_xml_shape",
    "decode",
    "detect_format",
    "parse_import",
    "parse_status",
    "read_bool",
    "read_int",
    "response_format",
    "with_raw_profiles",
]

#: Deepest nesting accepted in a body. Profiles are shallow (a field may hold an object or an
#: array of objects); the bound keeps every later recursive step (orjson.dumps stops at 255,
#: Python at ~1000 frames) far from its limit.
MAX_DEPTH: Final = 64
#: Most elements an XML body may hold (A: the platform's own bound is not documented). A 10 MB
#: body of real profiles (10,000 profiles of 20 fields) holds about 200,000; the bound keeps a hostile body of empty
#: elements from growing a tree hundreds of megabytes large (about 160 bytes per element).
MAX_XML_ELEMENTS: Final = 500_000
#: Largest id (trigger, resource, database) the sandbox takes. Ids are positive; the bound is
#: the largest integer a double holds exactly (2**53 - 1), so a JSON reader that reads numbers as
#: doubles (JavaScript, many validators) and this server agree on every id, and none reaches
#: SQLite's 64-bit limit. The platform's ids are far below it.
MAX_ID: Final = 2**53 - 1
#: Bytes fed to the XML shape check at a time.
_SCAN_CHUNK: Final = 1 << 16

# A batch's <data> elements are its profiles: one <data> (even an empty one) is one profile, so the
# list is made by _profiles, not by the reader (which reads a bare empty list element as no items).
BATCH_LISTS: Final = REQUEST_LIST_PATHS - {("data",)}
# The single-profile route carries one <data> object, optionally wrapped in a second <data>.
SINGLE_LISTS: Final = frozenset({("data", "subscriptions"), ("data", "data", "subscriptions"), ("attach",)})
STATUS_LISTS: Final = frozenset[tuple[str, ...]]()

# An integer as XML text; a whole number written as a float ("96.0") counts, as in JSON Schema.
_INT: Final = re.compile(r"^[+-]?\d{1,19}(?:\.0*)?$")


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
    # Iterative on purpose: a recursive walk is exactly what a deep body would break. Level by
    # level, each level one comprehension over the containers of the one above (scalars cannot
    # nest): a 10,000-profile body costs ~1 us a profile instead of a stack push per container.
    level = [value]
    for _ in range(limit):
        level = [
            child
            for item in level
            for child in (item.values() if type(item) is dict else item)
            if type(child) is dict or type(child) is list
        ]
        if not level:
            return True
    return False


_QUOTE, _BACKSLASH = ord('"'), ord("\\")
_OPENS, _CLOSES = (ord("{"), ord("[")), (ord("}"), ord("]"))


def _escaped(raw: bytes, quote: int) -> bool:
    """True when an odd number of backslashes stands right before ``raw[quote]``."""
    count = 0
    while quote - count > 0 and raw[quote - count - 1] == _BACKSLASH:
        count += 1
    return count % 2 == 1


def _json_depth_ok(raw: bytes, limit: int) -> bool:
    """:func:`_depth_ok` of a body read from ``raw``, a JSON document ``orjson`` has just parsed,
    counted on its bytes: the deepest nesting of brackets outside strings. Vectorized (a 10 MB
    body in milliseconds) where walking its parsed containers costs a few microseconds a profile.

    Example:
        >>> _json_depth_ok(orjson.dumps({"a": [{"b": '[[[["]]'}]}), 3), _json_depth_ok(b'{"a": [[[]]]}', 3)
        (True, False)
    """
    data = np.frombuffer(raw, dtype=np.uint8)
    quotes = np.flatnonzero(data == _QUOTE)
    # A quote after a backslash may be escaped (a quote inside a string): rare, so those are
    # told apart one by one (each backslash is looked at once at most: runs end at a quote).
    after_backslash = quotes[(quotes > 0) & (data[np.maximum(quotes - 1, 0)] == _BACKSLASH)]
    escaped = [q for q in after_backslash.tolist() if _escaped(raw, q)]
    if escaped:
        quotes = np.setdiff1d(quotes, np.array(escaped, dtype=quotes.dtype), assume_unique=True)
    opens = (data == _OPENS[0]) | (data == _OPENS[1])
    brackets = np.flatnonzero(opens | (data == _CLOSES[0]) | (data == _CLOSES[1]))
    # Outside strings: an even number of (unescaped) quotes stands before the bracket.
    brackets = brackets[np.searchsorted(quotes, brackets) % 2 == 0]
    steps = np.where(opens[brackets], 1, -1)
    return int(np.cumsum(steps).max(initial=0)) <= limit


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
    if fmt == "xml":
        check_xml_shape(raw)
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
    except (ValueError, LookupError) as exc:  # e.g. XML declaring an encoding Python does not know
        raise ApiFailure(400, f"malformed {fmt.upper()}: {exc}"[:300]) from None
    if not isinstance(body, dict):
        raise ApiFailure(400, f"the JSON body must be an object, not {_kind(body)}")
    if not (_json_depth_ok(raw, MAX_DEPTH) if fmt == "json" else _depth_ok(body, MAX_DEPTH)):
        raise ApiFailure(400, f"the body nests deeper than {MAX_DEPTH} levels")
    return body


class RawProfiles(Sequence[dict[str, Any]]):
    """A batch's profiles kept as their JSON text (:func:`with_raw_profiles`), parsed a slice
    at a time: each process parses only the chunks it imports, when it imports them.

    Example:
        >>> import msgspec
        >>> profiles = RawProfiles(msgspec.json.decode(b'[{"email": "a@b.co"}, {}]', type=list[msgspec.Raw]))
        >>> len(profiles), profiles[0:2], profiles[1], profiles.joined(0, 2)
        (2, [{'email': 'a@b.co'}, {}], {}, b'{"email": "a@b.co"},{}')
    """

    __slots__ = ("_raws",)

    def __init__(self, raws: list[msgspec.Raw]) -> None:
        self._raws = raws

    def __len__(self) -> int:
        return len(self._raws)

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...
    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            profiles: list[dict[str, Any]] = orjson.loads(b"[" + b",".join(self._raws[index]) + b"]")
            return profiles
        profile: dict[str, Any] = orjson.loads(memoryview(self._raws[index]))
        return profile

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for start in range(0, len(self._raws), 1000):
            yield from self[start : start + 1000]

    def joined(self, start: int, stop: int) -> bytes:
        """The JSON text of profiles ``start..stop``, comma-separated (for the second process)."""
        return b",".join(self._raws[start:stop])


class _Item(msgspec.Struct, gc=False):
    data: msgspec.Raw


_SKIM_TOP: Final = msgspec.json.Decoder(dict[str, msgspec.Raw])
_SKIM_ITEMS: Final = msgspec.json.Decoder(list[_Item])


def with_raw_profiles(env: ImportEnvelope, raw: bytes) -> ImportEnvelope:
    """``env``, parsed from the JSON body ``raw``, with its profiles as :class:`RawProfiles`
    read from ``raw``: the parsed ones can go at once (while they are in the processor's cache),
    and each process parses again only the chunks it imports. ``env`` itself when the skim does
    not find the same profiles one for one.

    The body was decoded and checked whole already (:func:`decode`, :func:`parse_import`), so
    the answers stay those of the exact parse; ``msgspec`` only finds where each profile's text
    is (a skim, ~0.7 us a profile, where orjson's full parse is ~2.5). Both read a repeated key
    as its last value, so each text is the profile parsed (a test compares them).

    Example:
        >>> raw = b'{"trigger_id": 1, "data": [{"data": {"email": "a@b.co"}}, {"data": {}}]}'
        >>> env = with_raw_profiles(parse_import(orjson.loads(raw), xml=False, single=False), raw)
        >>> type(env.profiles).__name__, env.profiles[0:2]
        ('RawProfiles', [{'email': 'a@b.co'}, {}])
    """
    try:
        items = _SKIM_ITEMS.decode(_SKIM_TOP.decode(raw)["data"])
    except (msgspec.DecodeError, KeyError):
        return env
    if len(items) != len(env.profiles):
        return env
    return replace(env, profiles=RawProfiles([item.data for item in items]))


class _TooBig(Exception):
    """Raised inside the XML scan's handlers: the body is refused before a tree is built."""


def check_xml_shape(raw: bytes) -> None:
    """Refuse an XML body before building its tree: nested deeper than :data:`MAX_DEPTH`, more than
    :data:`MAX_XML_ELEMENTS` elements, a DTD, or an encoding Python does not know (all 400).

    A streaming scan (expat, no tree), so a hostile body is refused after reading only as far as
    it takes to see the problem: a 10 MiB body nested 1.5 million deep costs kilobytes, not the
    half gigabyte its tree would.

    Example:
        >>> check_xml_shape(b"<xml>" + b"<a>" * 70 + b"</a>" * 70 + b"</xml>")
        Traceback (most recent call last):
        ...
        toolkit.sandbox.envelope.ApiFailure: the body nests deeper than 64 levels
        >>> check_xml_shape(b'<?xml version="1.0" encoding="x-bogus"?><xml/>')
        Traceback (most recent call last):
        ...
        toolkit.sandbox.envelope.ApiFailure: the XML declares an encoding this server does not know ('x-bogus'): send UTF-8
    """
    parser = expat.ParserCreate()
    depth = elements = 0
    root_text = False

    def text(data: str) -> None:
        nonlocal root_text
        root_text = root_text or (depth == 1 and bool(data.strip()))

    def start(name: str, attrs: Any) -> None:
        nonlocal depth, elements
        depth += 1
        elements += 1
        if depth > MAX_DEPTH:
            raise _TooBig(f"the body nests deeper than {MAX_DEPTH} levels")
        if elements > MAX_XML_ELEMENTS:
            raise _TooBig(f"the body holds more than {MAX_XML_ELEMENTS:,} XML elements")

    def end(name: str) -> None:
        nonlocal depth
        depth -= 1

    def doctype(*_: Any) -> None:
        raise _TooBig("forbidden XML construct: a DTD (entities and DTDs are refused)")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    parser.StartDoctypeDeclHandler = doctype
    declared = _declared_encoding(raw)
    try:
        for offset in range(0, len(raw), _SCAN_CHUNK):
            parser.Parse(raw[offset : offset + _SCAN_CHUNK], False)
        parser.Parse(b"", True)
    except _TooBig as exc:
        raise ApiFailure(400, str(exc)) from None
    except LookupError:
        raise ApiFailure(
            400, f"the XML declares an encoding this server does not know ({declared!r}): send UTF-8"
        ) from None
    except expat.ExpatError as exc:
        if declared is not None and "encoding" in str(exc):
            raise ApiFailure(
                400, f"the XML's bytes do not match the encoding it declares ({declared!r}): send UTF-8"
            ) from None
        raise ApiFailure(400, f"malformed XML: {exc}") from None
    if root_text and elements == 1:
        raise ApiFailure(400, "the XML body must hold one element per field, not text")


_DECLARED: Final = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([^"']{0,60})["']""")


def _declared_encoding(raw: bytes) -> str | None:
    found = _DECLARED.match(raw[:200])
    return found[1].decode("latin-1") if found else None


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
    if value is None or (request_format == "xml" and value == ""):
        return request_format
    if value not in ("json", "xml"):
        raise ApiFailure(400, f"format must be 'json' or 'xml', not {value!r}")
    return value


def read_int(
    body: dict[str, Any], name: str, *, xml: bool, required: bool, low: int = 1, high: int = MAX_ID
) -> int | None:
    """An integer field of a request, checked against ``low..high`` (ids: 1 to 2**63-1).

    Example:
        >>> read_int({"trigger_id": " 96 "}, "trigger_id", xml=True, required=True)
        96
        >>> read_int({"trigger_id": 2**63}, "trigger_id", xml=False, required=True)
        Traceback (most recent call last):
        ...
        toolkit.sandbox.envelope.ApiFailure: trigger_id must be between 1 and 9007199254740991, not 9223372036854775808
    """
    value = body.get(name)
    if value is None or (xml and value == ""):
        if required:
            raise ApiFailure(400, f"{name} is required")
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():  # JSON Schema: 96.0 is an integer
        number = int(value)
    elif xml and isinstance(value, str) and _INT.match(value.strip()):
        number = int(value.strip().partition(".")[0])
    else:
        raise ApiFailure(400, f"{name} must be an integer, not {_kind(value)} {value!r}"[:300])
    if not low <= number <= high:
        raise ApiFailure(400, f"{name} must be between {low} and {high}, not {number}")
    return number


def read_bool(body: dict[str, Any], name: str, *, xml: bool) -> bool:
    """A true/false field (absent: false); XML sends it as text.

    Example:
        >>> read_bool({"is_active": "true"}, "is_active", xml=True), read_bool({}, "is_active", xml=False)
        (True, False)
    """
    value = body.get(name)
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if xml and isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", ""):
        return value.strip().lower() in ("true", "1")
    raise ApiFailure(400, f"{name} must be true or false, not {value!r}"[:300])


def _object(body: dict[str, Any], name: str, *, xml: bool) -> dict[str, Any] | None:
    value = body.get(name)
    if value is None or (xml and value == ""):  # an empty XML element
        return None
    if not isinstance(value, dict):
        raise ApiFailure(400, f"{name} must be an object, not {_kind(value)}")
    return value


@dataclass
class ImportEnvelope:
    """A checked import request: everything a task needs to run (never the token)."""

    trigger_id: int
    matching: str
    #: a list, or :class:`RawProfiles` (:func:`with_raw_profiles`)
    profiles: Sequence[dict[str, Any]]
    field_name: str | None = None
    resource_id: int | None = None
    skip_triggers: bool = False
    skip_invalid_subscriptions: bool = False
    detect_geo: bool = False
    content: dict[str, Any] | None = None
    custom_data: dict[str, Any] | None = None
    attachments: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy, as stored with the task so a restart can resume it.

        Shallow on purpose: the profiles are only serialized (``orjson.dumps``), never changed, so
        copying 10,000 profiles field by field (``dataclasses.asdict``) would be pure cost.
        """
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImportEnvelope:
        """The inverse of :meth:`to_dict`."""
        return cls(**data)


def _profiles(body: dict[str, Any], *, xml: bool, single: bool) -> Sequence[dict[str, Any]]:
    data = body.get("data")
    if data is None or (data == "" and not xml):
        raise ApiFailure(400, "data is required")
    if single:
        if xml and data == "":
            data = {}  # <data></data>: a profile without fields
        if isinstance(data, list) and len(data) == 1:
            data = data[0]
        if isinstance(data, dict) and set(data) == {"data"} and isinstance(data["data"], dict):
            data = data["data"]
        if not isinstance(data, dict):
            raise ApiFailure(400, f"data must be one profile object {{...fields...}}, not {_kind(data)}")
        return [data]
    if xml and isinstance(data, dict | str):  # one <data> element: one profile (<data/>: no fields)
        data = [data or {}]
    if not isinstance(data, list):
        raise ApiFailure(400, f'data must be a list of {{"data": {{...}}}} objects, not {_kind(data)}')
    if not data:
        raise ApiFailure(400, "data is empty: send at least one profile")
    profiles: list[dict[str, Any]] = []
    for i, item in enumerate(data):
        # In XML each <data> element holds the fields directly; in JSON each item wraps them.
        if xml and item == "":
            item = {}  # <data></data>: a profile without fields (it fails alone, for want of a key)
        fields = item if xml else item.get("data") if isinstance(item, dict) else None
        if not isinstance(fields, dict):
            shape = "a <data> element holding profile fields" if xml else 'an object {"data": {...fields...}}'
            raise ApiFailure(400, f"data[{i}] must be {shape}")
        profiles.append(fields)
    return profiles


def accepted_matching(undocumented: bool = False) -> tuple[str, ...]:
    """The matching modes the import routes take: the five the page of
    ``import_and_start_batch_task`` documents, or all eleven with ``undocumented``.

    Example:
        >>> accepted_matching()
        ('email', 'email_profile', 'phone', 'profile_id', 'custom')
    """
    return tuple(str(m) for m, rule in MATCHING_MODES.items() if undocumented or rule.documented_for_batch)


def _matching(body: dict[str, Any], *, xml: bool, undocumented: bool) -> str:
    matching = body.get("matching")
    if matching is None or (xml and matching == ""):
        matching = MatchingMode.EMAIL.value
    accepted = accepted_matching(undocumented)
    if isinstance(matching, str) and matching in MATCHING_MODES and matching not in accepted:
        raise ApiFailure(
            400,
            f"matching {matching!r} is not documented for this method, whose page lists "
            f"{', '.join(accepted)}; a sandbox started with allow_undocumented_matching "
            "(--allow-undocumented-matching) accepts it",
        )
    if not isinstance(matching, str) or matching not in accepted:
        raise ApiFailure(400, f"unknown matching {matching!r}; one of: {', '.join(accepted)}"[:400])
    return matching


def parse_import(
    body: dict[str, Any],
    *,
    xml: bool,
    single: bool,
    max_file_bytes: int = MAX_FILE_BYTES,
    undocumented_matching: bool = False,
) -> ImportEnvelope:
    """Check an import request's envelope; per-profile problems are left to processing.

    Only the matching modes documented for the method are taken, unless ``undocumented_matching``.

    Example:
        >>> parse_import({"trigger_id": "7", "matching": "custom", "data": [{}]}, xml=True, single=False)
        Traceback (most recent call last):
        ...
        toolkit.sandbox.envelope.ApiFailure: matching 'custom' needs field_name (the custom field to match on)
    """
    trigger_id = read_int(body, "trigger_id", xml=xml, required=True)
    assert trigger_id is not None
    matching = _matching(body, xml=xml, undocumented=undocumented_matching)
    field_name = body.get("field_name")
    if MATCHING_MODES[matching].needs_match_field:
        if not isinstance(field_name, str) or not field_name.strip():
            raise ApiFailure(400, f"matching {matching!r} needs field_name (the custom field to match on)")
    elif field_name is not None and not isinstance(field_name, str):
        raise ApiFailure(400, "field_name must be a string")
    attach = body.get("attach")
    if attach is None or (xml and attach == ""):
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
        resource_id=read_int(body, "resource_id", xml=xml, required=False),
        skip_triggers=read_bool(body, "skip_triggers", xml=xml),
        skip_invalid_subscriptions=read_bool(body, "skip_invalid_subscriptions", xml=xml),
        detect_geo=read_bool(body, "detect_geo", xml=xml),
        content=_object(body, "content", xml=xml),
        custom_data=_object(body, "custom_data", xml=xml),
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
