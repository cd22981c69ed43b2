"""What the analyst declares: which columns become which profile fields, how profiles are
matched, which subscriptions each row carries, and which trigger to start.

Every check that needs no data happens here, at construction, so a bad call fails at
once with a message that names the argument and says what to do.

Example:
    >>> m = Mapping({"first_name": "_fname", "email": "email"},
    ...             subscriptions=[Subscription("email", "email", 21)])
    >>> m.matching, m.subscriptions[0].contact_field
    ('email', 'email')
    >>> Trigger(96, content={"page": "registration_form"}).request_options()["trigger_id"]
    96
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import json
import mimetypes
import os
from collections.abc import Iterable, Sequence
from collections.abc import Mapping as AbcMapping
from dataclasses import dataclass, field
from typing import Any

from toolkit.core.contract import (
    CHANNELS,
    CONTACT_FIELDS,
    MATCHING_MODES,
    MAX_FILE_BYTES,
    PROFILE_ID_FIELD,
    MatchingMode,
    MatchingRule,
)
from toolkit.errors import InvalidArgumentError, SerializationError, did_you_mean

__all__ = ["Attachment", "Mapping", "Subscription", "Trigger", "check_attachment_size"]

_RESERVED_SUBSCRIPTION_KEYS = frozenset({"channel", "resource_id"})

# How a missing key is named, and an example that maps one, per kind of key (MatchingRule.needs).
_WANTED = {
    "email": "an email", "phone": "a phone", "email_or_phone": "an email or a phone",
    "profile_id": "a profile_id", "push": "a push subscription id",
}  # fmt: skip
_EXAMPLE = {
    "email": "fields={'email': 'email'}",
    "phone": "fields={'phone': 'phones'}",
    "email_or_phone": "fields={'email': 'email'}",
    "profile_id": "fields={'profile_id': 'profile_id'}",
    "push": "Subscription('push', 'push_id', 1, provider='...')",
}


def _one_of(name: str, choices: Iterable[str]) -> str:
    """A hint for an unknown name: the close one, else every choice.

    Example:
        >>> _one_of("emial", ["email", "sms"]), _one_of("fax", ["email", "sms"])
        ("; did you mean 'email'?", "; use one of ['email', 'sms']")
    """
    names = sorted(map(str, choices))
    return did_you_mean(name, names) or f"; use one of {names}"


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidArgumentError(f"{name} must be a positive integer, got {value!r}")
    return value


def _json_object(name: str, value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, AbcMapping):
        raise SerializationError(f"{name} must be a dict of JSON values, got {type(value).__name__}")
    try:
        # stdlib json with allow_nan=False: orjson would quietly turn NaN into null
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise SerializationError(
            f"{name} is not JSON-serializable ({exc}); use str, int, float, bool, list and dict values"
        ) from exc
    return dict(value)


@dataclass(frozen=True, init=False)
class Subscription:
    """One subscription per row: its contact comes from ``column``.

    Args:
        channel: one of ``email``, ``sms``, ``phone`` (the seed's name), ``push``, ``notify``,
            ``viber``, ``whatsapp``, ``telegram_bot``.
        column: the frame column holding the contact (email, phone, push id, ...).
        resource_id: the platform resource the subscription belongs to.
        **extra: more subscription fields sent as they are (``status``, ``priority``,
            ``provider`` for push, ``custom_fields``, ``cats``).

    Example:
        >>> s = Subscription("sms", "phone", 20, priority=1)
        >>> s.contact_field, s.kind, s.extra
        ('phone', 'phone', {'priority': 1})
        >>> Subscription("emial", "email", 21)
        Traceback (most recent call last):
        ...
        toolkit.errors.InvalidArgumentError: unknown subscription channel 'emial'; did you mean 'email'?
    """

    channel: str
    column: str
    resource_id: int
    extra: dict[str, Any] = field(default_factory=dict)

    def __init__(self, channel: str, column: str, resource_id: int, **extra: Any) -> None:
        if not isinstance(channel, str) or channel not in CHANNELS:
            raise InvalidArgumentError(
                f"unknown subscription channel {channel!r}" + _one_of(channel, CHANNELS)
            )
        if not isinstance(column, str) or not column:
            raise InvalidArgumentError(f"Subscription column must be a column name, got {column!r}")
        _positive_int("Subscription resource_id", resource_id)
        clash = (_RESERVED_SUBSCRIPTION_KEYS | {CHANNELS[channel].contact_field}) & set(extra)
        if clash:
            raise InvalidArgumentError(
                f"Subscription extra fields {sorted(clash)} are set by the toolkit; remove them"
            )
        # a plain str, so reprs and messages read 'sms', never <Channel.SMS: 'sms'>
        object.__setattr__(self, "channel", str(channel))
        object.__setattr__(self, "column", column)
        object.__setattr__(self, "resource_id", resource_id)
        object.__setattr__(self, "extra", _json_object("Subscription extra", extra) or {})

    @property
    def contact_field(self) -> str:
        """The subscription field the contact goes in (``email``, ``phone``, ...)."""
        return CHANNELS[self.channel].contact_field

    @property
    def kind(self) -> str:
        """How the contact is checked: ``email``, ``phone``, ``id`` or ``object``."""
        return CHANNELS[self.channel].kind


@dataclass(frozen=True)
class Mapping:
    """Columns to profile fields, the matching mode and the subscriptions.

    Args:
        fields: frame column -> profile field, e.g. ``{"first_name": "_fname", "crm_id": "CRM_ID"}``.
        subscriptions: :class:`Subscription` objects, one subscription per row each.
        matching: one of the platform's 11 modes (``email``, ``email_profile``, ``email_sub``,
            ``phone``, ``phone_sub``, ``profile_id``, ``push_sub``, ``custom``, ``custom_sub``,
            ``email_phone``, ``email_phone_sub``).
        match_field: the profile field to match on for ``custom`` / ``custom_sub``.
        resource_id: the resource for email and phone matching.

    Example:
        >>> Mapping({"crm_id": "CRM_ID"}, matching="custom", match_field="CRM_ID").match_column
        'crm_id'
        >>> Mapping({"email": "email"}, matching="emali")
        Traceback (most recent call last):
        ...
        toolkit.errors.InvalidArgumentError: unknown matching mode 'emali'; did you mean 'email'?
    """

    fields: AbcMapping[str, str]
    subscriptions: Sequence[Subscription] = ()  # a list or any sequence; kept as a tuple
    matching: str = MatchingMode.EMAIL.value
    match_field: str | None = None
    resource_id: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.fields, AbcMapping) or not self.fields:
            raise InvalidArgumentError(
                "fields must be a non-empty dict of column -> profile field, e.g. {'email': 'email'}"
            )
        targets: dict[str, str] = {}
        for column, target in self.fields.items():
            if not isinstance(column, str) or not isinstance(target, str) or not column or not target:
                raise InvalidArgumentError(f"fields entry {column!r}: {target!r} must map a name to a name")
            if target in targets:
                raise InvalidArgumentError(
                    f"columns {targets[target]!r} and {column!r} both map to field {target!r}; keep one"
                )
            targets[target] = column
        object.__setattr__(self, "fields", dict(self.fields))
        subs = tuple(self.subscriptions)
        for sub in subs:
            if not isinstance(sub, Subscription):
                raise InvalidArgumentError(f"subscriptions must hold Subscription objects, got {sub!r}")
        object.__setattr__(self, "subscriptions", subs)
        if subs and "subscriptions" in targets:
            raise InvalidArgumentError(
                f"column {targets['subscriptions']!r} is mapped to the field 'subscriptions', which the "
                "Subscription objects write: the profile would hold the key twice. Map the column to "
                "another field, or drop the Subscription objects and send your column's subscriptions"
            )
        if not isinstance(self.matching, str) or self.matching not in MATCHING_MODES:
            raise InvalidArgumentError(
                f"unknown matching mode {self.matching!r}" + _one_of(self.matching, MATCHING_MODES)
            )
        object.__setattr__(self, "matching", str(self.matching))  # a MatchingMode reads as its text
        if self.resource_id is not None:
            _positive_int("resource_id", self.resource_id)
        self._check_match_key(targets)

    def _check_match_key(self, targets: dict[str, str]) -> None:
        rule = self.rule
        if rule.needs_match_field:
            if not self.match_field:
                raise InvalidArgumentError(
                    f"matching={self.matching!r} needs match_field, the profile field to match on "
                    "(e.g. match_field='CRM_ID' with fields={'crm_id': 'CRM_ID'})"
                )
            if self.match_field not in targets:
                raise InvalidArgumentError(
                    f"match_field {self.match_field!r} is not a target of fields"
                    f"{did_you_mean(self.match_field, targets)}; map a column to it"
                )
            return
        if self.match_field is not None:
            custom = " or ".join(repr(str(mode)) for mode, r in MATCHING_MODES.items() if r.needs_match_field)
            raise InvalidArgumentError(
                f"match_field is only used with matching={custom}, not {self.matching!r}"
            )
        kinds = set(rule.contact_kinds)
        own = [CONTACT_FIELDS[k] for k in rule.contact_kinds if k in CONTACT_FIELDS]
        if rule.needs == "profile_id":
            own = [PROFILE_ID_FIELD]
        in_fields = rule.from_profile and any(f in targets for f in own)
        in_subscriptions = rule.from_subscriptions and bool(kinds & {s.kind for s in self.subscriptions})
        if in_fields or in_subscriptions:
            return
        where = " or ".join(
            side
            for side, used in (("fields", rule.from_profile), ("a subscription", rule.from_subscriptions))
            if used
        )
        raise InvalidArgumentError(
            f"matching={self.matching!r} needs {_WANTED[rule.needs]} in {where}; map one, "
            f"e.g. {_EXAMPLE[rule.needs]}"
        )

    @property
    def rule(self) -> MatchingRule:
        """The facts of the matching mode (:data:`~toolkit.core.contract.MATCHING_MODES`)."""
        return MATCHING_MODES[self.matching]

    @property
    def columns(self) -> list[str]:
        """Every frame column the mapping reads, in order, without repeats."""
        seen = dict.fromkeys([*self.fields, *(s.column for s in self.subscriptions)])
        return list(seen)

    @property
    def match_column(self) -> str | None:
        """The column holding the custom match field (``custom`` modes), else ``None``."""
        if self.match_field is None:
            return None
        return next(c for c, f in self.fields.items() if f == self.match_field)

    def request_options(self) -> dict[str, Any]:
        """The request's top-level matching fields."""
        options: dict[str, Any] = {"matching": self.matching}
        if self.match_field is not None:
            options["field_name"] = self.match_field
        if self.resource_id is not None:
            options["resource_id"] = self.resource_id
        return options


@functools.cache
def _mime_types() -> mimetypes.MimeTypes:
    # Python's own table only, never the machine's /etc/mime.types: the same file name gives
    # the same body (and digest) on every machine
    return mimetypes.MimeTypes()


def check_attachment_size(name: str, size: int) -> None:
    """Refuse an attachment over the platform's file limit, by its length alone.

    Example:
        >>> check_attachment_size("a.pdf", 1_000)
        >>> check_attachment_size("big.zip", MAX_FILE_BYTES + 1)
        Traceback (most recent call last):
        ...
        toolkit.errors.InvalidArgumentError: attachment 'big.zip' is 104,857,601 bytes; the platform's file limit is 104,857,600 bytes: attach a link instead
    """
    if size > MAX_FILE_BYTES:
        raise InvalidArgumentError(
            f"attachment {name!r} is {size:,} bytes; the platform's file limit is "
            f"{MAX_FILE_BYTES:,} bytes: attach a link instead"
        )


@dataclass(frozen=True)
class Attachment:
    """An email attachment, encoded as the platform wants it: a ``data:`` URI.

    Built from bytes: the core reads no files. To attach a file, read it with
    :func:`toolkit.io.read_attachment` (which checks its size before reading it).

    Example:
        >>> a = Attachment.from_bytes("Attach.txt", "今日は\\n".encode())
        >>> a.data_uri
        'data:text/plain;base64,5LuK5pel44GvCg=='
        >>> a
        Attachment(name='Attach.txt', mime='text/plain', size=10)
    """

    name: str
    mime: str
    size: int
    data_uri: str = field(repr=False)

    @classmethod
    def from_bytes(
        cls, name: str, data: bytes | bytearray | memoryview, mime: str | None = None
    ) -> Attachment:
        """An attachment of ``data`` named ``name``; ``mime`` is guessed from the name if not given."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InvalidArgumentError(f"attachment {name!r}: expected bytes, got {type(data).__name__}")
        size = memoryview(data).nbytes
        check_attachment_size(name, size)
        mime = mime or _mime_types().guess_type(name)[0] or "application/octet-stream"
        encoded = base64.b64encode(data).decode("ascii")
        return cls(name=name, mime=mime, size=size, data_uri=f"data:{mime};base64,{encoded}")

    @classmethod
    def coerce(cls, item: Any) -> Attachment:
        """An :class:`Attachment` as it is, or a ``(name, bytes)`` pair made into one."""
        if isinstance(item, Attachment):
            return item
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            return cls.from_bytes(item[0], item[1])
        if isinstance(item, (str, os.PathLike)):
            raise InvalidArgumentError(
                f"attach takes attachments, not the path {os.fspath(item)!r}: read the file first with "
                "toolkit.io.read_attachment(path) (or pass a (name, bytes) pair)"
            )
        raise InvalidArgumentError(
            f"attach takes Attachment objects or (name, bytes) pairs, got {type(item).__name__}"
        )

    def as_request(self) -> dict[str, str]:
        """The request's ``attach`` item."""
        return {"data": self.data_uri, "name": self.name}


def _timeout(value: Any) -> dict[str, int] | None:
    if value is None:
        return None
    if isinstance(value, dt.timedelta):
        minutes = int(value.total_seconds() // 60)
        return {"days": minutes // 1440, "hours": minutes % 1440 // 60, "minutes": minutes % 60}
    if isinstance(value, AbcMapping) and set(value) <= {"days", "hours", "minutes"}:
        out = {k: int(value.get(k, 0)) for k in ("days", "hours", "minutes")}
        if any(v < 0 for v in out.values()):
            raise InvalidArgumentError(f"timeout values must not be negative, got {dict(value)!r}")
        return out
    raise InvalidArgumentError(
        f"timeout must be a datetime.timedelta or a dict with days/hours/minutes, got {value!r}"
    )


@dataclass(frozen=True, init=False)
class Trigger:
    """The trigger campaign to start for every imported profile.

    Args:
        trigger_id: the trigger campaign.
        content: values for ``{apicontent.name}`` in the message template.
        custom_data: data for the campaign's action hooks.
        attach: email attachments: :class:`Attachment` objects or ``(name, bytes)`` pairs
            (a file: ``toolkit.io.read_attachment(path)``).
        timeout: a ``datetime.timedelta`` or ``{"days", "hours", "minutes"}``.
        skip_triggers, skip_invalid_subscriptions, detect_geo: the platform's flags, always
            sent explicitly.

    Example:
        >>> t = Trigger(96, content={"page": "registration_form"}, attach=[("Attach.txt", b"hi")],
        ...             timeout={"minutes": 5})
        >>> sorted(t.request_options())
        ['attach', 'content', 'detect_geo', 'skip_invalid_subscriptions', 'skip_triggers', 'timeout', 'trigger_id']
        >>> Trigger(0)
        Traceback (most recent call last):
        ...
        toolkit.errors.InvalidArgumentError: trigger_id must be a positive integer, got 0
    """

    trigger_id: int
    content: dict[str, Any] | None
    custom_data: dict[str, Any] | None
    attach: tuple[Attachment, ...]
    timeout: dict[str, int] | None
    skip_triggers: bool
    skip_invalid_subscriptions: bool
    detect_geo: bool

    def __init__(
        self,
        trigger_id: int,
        *,
        content: AbcMapping[str, Any] | None = None,
        custom_data: AbcMapping[str, Any] | None = None,
        attach: Iterable[Any] = (),
        timeout: dt.timedelta | AbcMapping[str, int] | None = None,
        skip_triggers: bool = False,
        skip_invalid_subscriptions: bool = False,
        detect_geo: bool = False,
    ) -> None:
        values = {
            "trigger_id": _positive_int("trigger_id", trigger_id),
            "content": _json_object("content", content),
            "custom_data": _json_object("custom_data", custom_data),
            "attach": tuple(Attachment.coerce(a) for a in attach),
            "timeout": _timeout(timeout),
            "skip_triggers": bool(skip_triggers),
            "skip_invalid_subscriptions": bool(skip_invalid_subscriptions),
            "detect_geo": bool(detect_geo),
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def request_options(self) -> dict[str, Any]:
        """The request's top-level trigger fields, in the seed's order (``None`` left out)."""
        options: dict[str, Any] = {
            "trigger_id": self.trigger_id,
            "skip_triggers": self.skip_triggers,
            "skip_invalid_subscriptions": self.skip_invalid_subscriptions,
            "detect_geo": self.detect_geo,
        }
        if self.timeout is not None:
            options["timeout"] = self.timeout
        if self.content is not None:
            options["content"] = self.content
        if self.custom_data is not None:
            options["custom_data"] = self.custom_data
        if self.attach:
            options["attach"] = [a.as_request() for a in self.attach]
        return options
