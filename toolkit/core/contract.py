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
from enum import StrEnum
from typing import Any, Final, Literal
from xml.sax.saxutils import escape as _xml_escape

import defusedxml.ElementTree as _safe_et

__all__ = [
    "API_PREFIX",
    "BATCH_PATH",
    "BATCH_SENT_STATES",
    "BATCH_SETTLED_STATES",
    "BODY_TOO_LARGE",
    "CHANNELS",
    "CONTACT_FIELDS",
    "DATE_FIELDS",
    "DONE_STATES",
    "EMAIL_FIELD",
    "FAILED_STATES",
    "IP_FIELDS",
    "MATCHING_MODES",
    "MAX_BODY_BYTES",
    "MAX_FILE_BYTES",
    "PHONE_FIELD",
    "PROFILE_ID_FIELD",
    "RECOMMENDED_MAX_ROWS",
    "REQUEST_LIST_PATHS",
    "SINGLE_PATH",
    "STATUS_LIST_PATHS",
    "STATUS_PATH",
    "SYSTEM_FIELDS",
    "BatchState",
    "Channel",
    "ChannelRule",
    "ContactKind",
    "Format",
    "MatchingMode",
    "MatchingRule",
    "RowStatus",
    "TaskState",
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
#: The field a ``profile_id`` match reads (the profile's platform id, never stored as data).
PROFILE_ID_FIELD: Final = "profile_id"
DATE_FIELDS: Final = frozenset({"_bdate", "_regdate"})
IP_FIELDS: Final = frozenset({"_ip", "_regip"})
SYSTEM_FIELDS: Final = frozenset(
    {
        "email", "phones", "_fname", "_lname", "_bdate", "_sex", "_regdate", "_regip",
        "_regcity", "_regcountry", "_regurl", "_ip", "_city", "_country", "_region",
        "_postal_code", "_tz", "_vendor",
    }
)  # fmt: skip

#: What a subscription's contact is, hence how it is checked (see :data:`CHANNELS`).
ContactKind = Literal["email", "phone", "id", "object"]
#: The profile's own field holding each kind of contact (push ids and objects have none).
CONTACT_FIELDS: Final[Mapping[str, str]] = {"email": EMAIL_FIELD, "phone": PHONE_FIELD}


class MatchingMode(StrEnum):
    """How the platform finds the profile a row updates (the body's ``matching``).

    A ``StrEnum``: each member *is* its string (``MatchingMode.EMAIL == "email"``), so
    bodies, the journal and user code that pass plain strings keep working. The facts
    about each mode live in one table, :data:`MATCHING_MODES`.
    """

    EMAIL = "email"
    EMAIL_PROFILE = "email_profile"
    EMAIL_SUB = "email_sub"
    PHONE = "phone"
    PHONE_SUB = "phone_sub"
    PROFILE_ID = "profile_id"
    PUSH_SUB = "push_sub"
    CUSTOM = "custom"
    CUSTOM_SUB = "custom_sub"
    EMAIL_PHONE = "email_phone"
    EMAIL_PHONE_SUB = "email_phone_sub"


#: The kind of key a matching mode looks for.
Needs = Literal["email", "phone", "email_or_phone", "profile_id", "field", "push"]

# Per kind of key: the kinds of subscription contact that can hold it, and how messages name
# it in a profile's own fields and in its subscriptions.
_NEEDS_CONTACTS: Final[Mapping[str, tuple[ContactKind, ...]]] = {
    "email": ("email",), "phone": ("phone",), "email_or_phone": ("email", "phone"), "push": ("id",),
    "profile_id": (), "field": (),
}  # fmt: skip
_IN_PROFILE: Final = {
    "email": f"an {EMAIL_FIELD!r} field",
    "phone": f"a {PHONE_FIELD!r} field",
    "email_or_phone": f"an {EMAIL_FIELD!r} or a {PHONE_FIELD!r} field",
    "profile_id": f"a {PROFILE_ID_FIELD!r} field",
    "field": "the custom field named by field_name",
}
_IN_SUBSCRIPTION: Final = {
    "email": "an email subscription",
    "phone": "a phone subscription (sms, viber, whatsapp)",
    "email_or_phone": "an email or phone subscription",
    "push": "a push subscription with a subscription_id",
    "field": "a subscription whose custom_fields hold the field named by field_name",
}


@dataclass(frozen=True)
class MatchingRule:
    """What a matching mode looks for in each profile, and where.

    A key is read from the profile's own fields (:attr:`from_profile`) and/or from its
    subscriptions' contacts (:attr:`from_subscriptions`); with both, the profile's own value
    comes first.

    Example:
        >>> MATCHING_MODES[MatchingMode.CUSTOM].needs_match_field
        True
        >>> rule = MATCHING_MODES[MatchingMode.PHONE]
        >>> rule.contact_kinds, rule.from_profile, rule.from_subscriptions
        (('phone',), True, True)
        >>> rule.requirement
        "a 'phones' field or a phone subscription (sms, viber, whatsapp)"
    """

    needs: Needs
    #: True when the key is taken from a subscription rather than the profile's own data.
    in_subscription: bool
    #: True when the mode may create a profile (``profile_id`` only updates).
    creates: bool = True
    #: True when the page of ``import_and_start_batch_task`` lists the mode (V); the others are
    #: documented only for the start-without-import methods (A for this method).
    documented_for_batch: bool = False
    #: True when a profile without the key in its own fields is matched by a subscription's
    #: contact instead (A: ``email`` and ``phone`` cover both, their ``*_profile`` /
    #: ``*_sub`` variants one side each).
    subscription_fallback: bool = False

    @property
    def needs_match_field(self) -> bool:
        """True when the body must name the custom field that holds the key (``match_field``)."""
        return self.needs == "field"

    @property
    def from_profile(self) -> bool:
        """True when the key may come from the profile's own fields."""
        return not self.in_subscription

    @property
    def from_subscriptions(self) -> bool:
        """True when the key may come from the profile's subscriptions."""
        return self.in_subscription or self.subscription_fallback

    @property
    def contact_kinds(self) -> tuple[ContactKind, ...]:
        """The kinds of contact (:attr:`ChannelRule.kind`) that can hold the key, in order."""
        return _NEEDS_CONTACTS[self.needs]

    @property
    def requirement(self) -> str:
        """What a profile must carry to be matched, as a phrase for messages."""
        sides = [_IN_PROFILE.get(self.needs) if self.from_profile else None]
        sides.append(_IN_SUBSCRIPTION.get(self.needs) if self.from_subscriptions else None)
        return " or ".join(side for side in sides if side)

    @property
    def single_key(self) -> str | None:
        """The top-level name of the key in a single ``import_and_start`` body, if any."""
        return {"email": "email", "phone": "phone", "profile_id": "profile_id", "field": "field_value"}.get(
            self.needs
        )


#: Every matching mode's facts: the one table mapping, validate, launch and the sandbox consult.
MATCHING_MODES: Final[Mapping[str, MatchingRule]] = {
    MatchingMode.EMAIL: MatchingRule(
        "email", in_subscription=False, documented_for_batch=True, subscription_fallback=True
    ),
    MatchingMode.EMAIL_PROFILE: MatchingRule("email", in_subscription=False, documented_for_batch=True),
    MatchingMode.EMAIL_SUB: MatchingRule("email", in_subscription=True),
    MatchingMode.PHONE: MatchingRule(
        "phone", in_subscription=False, documented_for_batch=True, subscription_fallback=True
    ),
    MatchingMode.PHONE_SUB: MatchingRule("phone", in_subscription=True),
    MatchingMode.PROFILE_ID: MatchingRule(
        "profile_id", in_subscription=False, creates=False, documented_for_batch=True
    ),
    MatchingMode.PUSH_SUB: MatchingRule("push", in_subscription=True),
    MatchingMode.CUSTOM: MatchingRule("field", in_subscription=False, documented_for_batch=True),
    MatchingMode.CUSTOM_SUB: MatchingRule("field", in_subscription=True),
    # A: the docs do not say whether both keys are required; one is enough here.
    MatchingMode.EMAIL_PHONE: MatchingRule(
        "email_or_phone", in_subscription=False, subscription_fallback=True
    ),
    MatchingMode.EMAIL_PHONE_SUB: MatchingRule("email_or_phone", in_subscription=True),
}


class Channel(StrEnum):
    """A subscription's channel (the body's ``channel``); facts per channel in :data:`CHANNELS`."""

    EMAIL = "email"
    SMS = "sms"
    PHONE = "phone"
    PUSH = "push"
    NOTIFY = "notify"
    VIBER = "viber"
    WHATSAPP = "whatsapp"
    TELEGRAM_BOT = "telegram_bot"


@dataclass(frozen=True)
class ChannelRule:
    """Which field of a subscription holds the contact, and how it is checked.

    Example:
        >>> CHANNELS["phone"].same_as == Channel.SMS, CHANNELS["push"].kind
        (True, 'id')
    """

    contact_field: str
    kind: ContactKind
    #: Another name of the same channel: a platform keeps one subscription for both.
    same_as: Channel | None = None


#: Subscription channels. ``phone`` is the seed's name for an SMS-style phone subscription.
CHANNELS: Final[Mapping[str, ChannelRule]] = {
    Channel.EMAIL: ChannelRule("email", "email"),
    Channel.SMS: ChannelRule("phone", "phone"),
    Channel.PHONE: ChannelRule("phone", "phone", same_as=Channel.SMS),
    Channel.VIBER: ChannelRule("phone", "phone"),
    Channel.WHATSAPP: ChannelRule("phone", "phone"),
    Channel.PUSH: ChannelRule("subscription_id", "id"),
    Channel.NOTIFY: ChannelRule("subscription_id", "id"),
    Channel.TELEGRAM_BOT: ChannelRule("cc_data", "object"),
}


# --- states --------------------------------------------------------------------------------
class TaskState(StrEnum):
    """A platform task's ``status`` as ``tasks/status`` reports it (unknown ones are kept raw)."""

    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    #: an older revision of the docs says ``success`` for ``completed``
    SUCCESS = "success"
    FAILED = "failed"
    ERROR = "error"


#: Terminal success states.
DONE_STATES: Final = frozenset({TaskState.COMPLETED, TaskState.SUCCESS})
FAILED_STATES: Final = frozenset({TaskState.FAILED, TaskState.ERROR})


class BatchState(StrEnum):
    """Where a batch of a launch stands, as the journal records it::

    planned --> sending --> sent --> completed
                   |          \\--> failed    (the task ran and failed: it was sent)
                   |--> unknown              (the answer was lost after sending)
                   \\--> failed               (refused / never delivered: no task id)
    """

    PLANNED = "planned"
    SENDING = "sending"
    SENT = "sent"
    UNKNOWN = "unknown"
    COMPLETED = "completed"
    FAILED = "failed"


#: The platform has (or may have) the batch: never send it again by itself.
BATCH_SENT_STATES: Final = frozenset(
    {BatchState.SENDING, BatchState.SENT, BatchState.UNKNOWN, BatchState.COMPLETED}
)
#: Nothing more will happen to the batch without the user (``unknown`` waits for a decision).
BATCH_SETTLED_STATES: Final = frozenset({BatchState.COMPLETED, BatchState.FAILED, BatchState.UNKNOWN})


class RowStatus(StrEnum):
    """One input row's outcome in a launch's results (``Launch.results()["status"]``)."""

    IMPORTED = "imported"
    FAILED = "failed"
    REJECTED = "rejected"
    UNKNOWN = "unknown"
    PENDING = "pending"


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
