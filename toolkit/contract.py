"""The platform API's vocabulary, limits and body shapes (JSON and XML).

This module is the one piece the client side and the sandbox share. It does no I/O.
Everything here follows ``docs/CONTRACT.md``; values marked *A* there are our
assumptions and are kept tolerant.

Example:
    >>> MATCHING_MODES["custom"].needs
    'field'
    >>> dumps_xml({"trigger_id": 96, "skip_triggers": False})
    b'<xml>\\n<trigger_id>96</trigger_id>\\n<skip_triggers>false</skip_triggers>\\n</xml>\\n'
    >>> loads_xml(b"<xml><data><email>a@b.c</email></data></xml>", REQUEST_LIST_PATHS)
    {'data': [{'email': 'a@b.c'}]}
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal
from xml.sax.saxutils import escape as _xml_escape

import defusedxml.ElementTree as _safe_et

__all__ = [
    "API_PREFIX",
    "BATCH_PATH",
    "BODY_TOO_LARGE",
    "CHANNELS",
    "DATE_FIELDS",
    "DONE_STATES",
    "EMAIL_FIELD",
    "FAILED_STATES",
    "IP_FIELDS",
    "MATCHING_MODES",
    "MAX_BODY_BYTES",
    "MAX_FILE_BYTES",
    "PHONE_FIELD",
    "RECOMMENDED_MAX_ROWS",
    "REQUEST_LIST_PATHS",
    "SINGLE_PATH",
    "STATUS_LIST_PATHS",
    "STATUS_PATH",
    "SYSTEM_FIELDS",
    "Channel",
    "Format",
    "MatchingMode",
    "dumps_xml",
    "error_envelope",
    "is_xml_name",
    "loads_xml",
    "ok_envelope",
    "xml_fragment",
    "xml_text",
]

Format = Literal["json", "xml"]

# --- endpoints ---------------------------------------------------------------------------
API_PREFIX: Final = "/api/v1.1/"
BATCH_PATH: Final = API_PREFIX + "campaigns/triggers/import_and_start_batch_task"
SINGLE_PATH: Final = API_PREFIX + "campaigns/triggers/import_and_start"
STATUS_PATH: Final = API_PREFIX + "tasks/status"

# --- limits --------------------------------------------------------------------------------
#: The platform's documented body limit ("10 Mb"); the server enforces it in bytes.
MAX_BODY_BYTES: Final = 10 * 1024 * 1024
#: The limit for a file (attachment) in a request.
MAX_FILE_BYTES: Final = 100 * 1024 * 1024
#: More profiles than this in one request is "not recommended" by the platform.
RECOMMENDED_MAX_ROWS: Final = 10_000

# --- profile data model ------------------------------------------------------------------
EMAIL_FIELD: Final = "email"
PHONE_FIELD: Final = "phones"
DATE_FIELDS: Final = frozenset({"_bdate", "_regdate"})
IP_FIELDS: Final = frozenset({"_ip", "_regip"})
SYSTEM_FIELDS: Final = frozenset(
    {
        "email", "phones", "_fname", "_lname", "_bdate", "_sex", "_regdate", "_regip",
        "_regcity", "_regcountry", "_regurl", "_ip", "_city", "_country", "_region",
        "_postal_code", "_tz", "_vendor",
    }
)  # fmt: skip

MatchingMode = Literal[
    "email", "email_profile", "email_sub", "phone", "phone_sub", "profile_id",
    "push_sub", "custom", "custom_sub", "email_phone", "email_phone_sub",
]  # fmt: skip

Needs = Literal["email", "phone", "email_or_phone", "profile_id", "field", "push"]


@dataclass(frozen=True)
class MatchingRule:
    """What a matching mode looks for in each profile, and where."""

    needs: Needs
    #: True when the key is taken from a subscription rather than the profile's own data.
    in_subscription: bool
    #: True when the mode may create a profile (``profile_id`` only updates).
    creates: bool = True


MATCHING_MODES: Final[Mapping[str, MatchingRule]] = {
    "email": MatchingRule("email", in_subscription=False),
    "email_profile": MatchingRule("email", in_subscription=False),
    "email_sub": MatchingRule("email", in_subscription=True),
    "phone": MatchingRule("phone", in_subscription=False),
    "phone_sub": MatchingRule("phone", in_subscription=True),
    "profile_id": MatchingRule("profile_id", in_subscription=False, creates=False),
    "push_sub": MatchingRule("push", in_subscription=True),
    "custom": MatchingRule("field", in_subscription=False),
    "custom_sub": MatchingRule("field", in_subscription=True),
    # A: the docs do not say whether both keys are required; one is enough here.
    "email_phone": MatchingRule("email_or_phone", in_subscription=False),
    "email_phone_sub": MatchingRule("email_or_phone", in_subscription=True),
}

Channel = Literal["email", "sms", "phone", "push", "notify", "viber", "whatsapp", "telegram_bot"]


@dataclass(frozen=True)
class ChannelRule:
    """Which field of a subscription holds the contact, and how it is checked."""

    contact_field: str
    kind: Literal["email", "phone", "id", "object"]


#: Subscription channels. ``phone`` is the seed's name for an SMS-style phone subscription.
CHANNELS: Final[Mapping[str, ChannelRule]] = {
    "email": ChannelRule("email", "email"),
    "sms": ChannelRule("phone", "phone"),
    "phone": ChannelRule("phone", "phone"),
    "viber": ChannelRule("phone", "phone"),
    "whatsapp": ChannelRule("phone", "phone"),
    "push": ChannelRule("subscription_id", "id"),
    "notify": ChannelRule("subscription_id", "id"),
    "telegram_bot": ChannelRule("cc_data", "object"),
}

# --- task states ---------------------------------------------------------------------------
#: Terminal success states (an older revision of the docs says ``success``).
DONE_STATES: Final = frozenset({"completed", "success"})
FAILED_STATES: Final = frozenset({"failed", "error"})


# --- envelopes -----------------------------------------------------------------------------
def ok_envelope(**fields: Any) -> dict[str, Any]:
    """The platform's success answer, with extra fields (``task_id``, ``data``).

    Example:
        >>> ok_envelope(task_id="t1")
        {'error': 0, 'error_text': 'Successful operation', 'task_id': 't1'}
    """
    return {"error": 0, "error_text": "Successful operation", **fields}


def error_envelope(code: int, text: str, debug: str | None = None) -> dict[str, Any]:
    """The platform's error answer.

    Example:
        >>> error_envelope(403, "Forbidden")
        {'error': 403, 'error_text': 'Forbidden'}
    """
    body: dict[str, Any] = {"error": code, "error_text": text}
    if debug is not None:
        body["error_debug"] = debug
    return body


#: The seed's exact answer to an over-limit body.
BODY_TOO_LARGE: Final = error_envelope(400, "Invalid request", "http: request body too large")

# --- XML -----------------------------------------------------------------------------------
# Paths (element names from the root, list indices left out) whose elements are always
# arrays, even when one element or none is present.
REQUEST_LIST_PATHS: Final = frozenset({("data",), ("data", "subscriptions"), ("attach",)})
STATUS_LIST_PATHS: Final = frozenset({("data", "result", "result"), ("data", "result", "errors")})
# Arrays the platform knows by name are written as plain repeated elements; any other
# one-item or empty array carries array='true' so a reader knows it is an array.
_IMPLICIT_ARRAYS: Final = frozenset({"data", "subscriptions"})
# Arrays the platform writes empty as a bare element (the seed's ``<errors/>``).
_BARE_EMPTY_ARRAYS: Final = frozenset({"errors"})

_XML_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def is_xml_name(name: str) -> bool:
    """True when ``name`` can be an XML element name (field names become elements).

    Example:
        >>> is_xml_name("_fname"), is_xml_name("first name")
        (True, False)
    """
    return bool(_XML_NAME.match(name)) and not name.lower().startswith("xml")


def xml_text(value: Any) -> str:
    """A scalar as XML element text (escaped). Raises ``ValueError`` for characters XML
    cannot carry (control characters other than tab and newlines).

    Example:
        >>> xml_text("Tom & Jerry <3"), xml_text(True), xml_text(2.5)
        ('Tom &amp; Jerry &lt;3', 'true', '2.5')
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    text = value if isinstance(value, str) else repr(value) if isinstance(value, float) else str(value)
    if _XML_ILLEGAL.search(text):
        raise ValueError(f"text {text[:40]!r} holds a control character that XML cannot carry")
    return _xml_escape(text)


def _xml_lines(key: str, value: Any, out: list[str]) -> None:
    if value is None:
        return
    if isinstance(value, Mapping):
        out.append(f"<{key}>")
        for k, v in value.items():
            _xml_lines(str(k), v, out)
        out.append(f"</{key}>")
    elif isinstance(value, (list, tuple)):
        if not value:
            out.append(f"<{key}/>" if key in _BARE_EMPTY_ARRAYS else f"<{key} array='true'/>")
            return
        marker = " array='true'" if len(value) == 1 and key not in _IMPLICIT_ARRAYS else ""
        for item in value:
            if isinstance(item, Mapping):
                out.append(f"<{key}{marker}>")
                for k, v in item.items():
                    _xml_lines(str(k), v, out)
                out.append(f"</{key}>")
            else:
                out.append(f"<{key}{marker}>{xml_text(item)}</{key}>")
    else:
        out.append(f"<{key}>{xml_text(value)}</{key}>")


def xml_fragment(obj: Mapping[str, Any]) -> str:
    """The XML lines of a mapping's items without a root element (joined by newlines).

    Example:
        >>> xml_fragment({"status": "active", "cats": ["a"]})
        "<status>active</status>\\n<cats array='true'>a</cats>"
    """
    out: list[str] = []
    for key, value in obj.items():
        _xml_lines(str(key), value, out)
    return "\n".join(out)


def dumps_xml(obj: Mapping[str, Any], root: str = "xml") -> bytes:
    """Encode a JSON-shaped mapping the way the platform writes XML (UTF-8 bytes).

    ``None`` values are left out; lists become repeated elements.

    Example:
        >>> print(dumps_xml({"attach": [{"data": "x", "name": "a.txt"}]}).decode())
        <xml>
        <attach array='true'>
        <data>x</data>
        <name>a.txt</name>
        </attach>
        </xml>
        <BLANKLINE>
    """
    inner = xml_fragment(obj)
    return (f"<{root}>\n{inner}\n</{root}>\n" if inner else f"<{root}>\n</{root}>\n").encode("utf-8")


def _element_value(elem: Any, path: tuple[str, ...], list_paths: frozenset[tuple[str, ...]]) -> Any:
    children = list(elem)
    if not children:
        if elem.get("array") == "true":
            return [elem.text] if (elem.text or "").strip() else []
        if path in list_paths:
            return []  # <errors/>: an empty array
        return elem.text or ""
    grouped: dict[str, list[Any]] = {}
    for child in children:
        grouped.setdefault(child.tag, []).append(child)
    result: dict[str, Any] = {}
    for tag, elems in grouped.items():
        child_path = (*path, tag)
        marked = any(e.get("array") == "true" for e in elems)
        if child_path in list_paths or marked or len(elems) > 1:
            items: list[Any] = []
            for e in elems:
                value = _element_value(e, child_path, list_paths)
                if isinstance(value, list):  # a leaf: [] (empty array) or [text]
                    items.extend(value)
                else:
                    items.append(value)
            result[tag] = items
        else:
            result[tag] = _element_value(elems[0], child_path, list_paths)
    return result


def loads_xml(
    body: bytes | str, list_paths: Iterable[tuple[str, ...]] = REQUEST_LIST_PATHS
) -> dict[str, Any]:
    """Parse a platform XML body into a JSON-shaped dict (values stay strings).

    Parsing is done with ``defusedxml``: entity expansion and external entities raise
    (``defusedxml.DefusedXmlException``, a ``ValueError``), as does malformed XML
    (``xml.etree.ElementTree.ParseError``).

    Example:
        >>> loads_xml(b"<xml><data><progress>100</progress><result><errors/></result></data></xml>",
        ...           STATUS_LIST_PATHS)
        {'data': {'progress': '100', 'result': {'errors': []}}}
    """
    root = _safe_et.fromstring(body, forbid_dtd=True)
    paths = frozenset(list_paths)
    value = _element_value(root, (), paths)
    return value if isinstance(value, dict) else {}
