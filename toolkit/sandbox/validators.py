"""Small, independent checks of profile values, as the platform applies them on import.

The sandbox deliberately does not reuse the client's validation (``toolkit.core.validate``): a
second, separate implementation is what lets the sandbox catch the client's mistakes.

Example:
    >>> normalize_phone("+7 (900) 000-00-00")
    '+79000000000'
    >>> is_email("john@example.com"), is_email("@example.com")
    (True, False)
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

__all__ = [
    "DATA_URI_SCHEMA_PATTERN",
    "Attachment",
    "is_date",
    "is_email",
    "is_ipv4",
    "normalize_phone",
    "parse_data_uri",
]

_ATOM = r"[\w!#$%&'*+/=?^`{|}~-]+"
_LABEL = r"[^\W_](?:[\w-]{0,61}[^\W_])?"
_EMAIL: Final = re.compile(rf"^{_ATOM}(?:\.{_ATOM})*@(?:{_LABEL}\.)+(?:[^\W\d_]{{2,63}}|xn--[\w-]{{1,59}})$")
# Separators people type inside phone numbers; the platform stores digits only.
_PHONE_SEPARATORS: Final = re.compile(r"[\s\-().]")
# International format: a country code never starts with 0; E.164 allows at most 15 digits.
_PHONE: Final = re.compile(r"^\+[1-9]\d{7,14}$")
_DATE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_RFC3339: Final = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$")
#: An attachment's ``data``: a base64 ``data:`` URI (ASCII only; its payload's length is then
#: checked to be a multiple of 4). ``DATA_URI_SCHEMA_PATTERN`` says the same for the API's schema.
_DATA_URI: Final = re.compile(
    r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)(?:;[\w.+-]+=[\w.+\-\"]+)*;base64,(?P<payload>[A-Za-z0-9+/]*={0,2})\Z",
    re.ASCII,
)
#: The same set of URIs as one JSON Schema pattern (the padding rule spelled out).
DATA_URI_SCHEMA_PATTERN: Final = (
    r"^data:[A-Za-z0-9_.+-]+/[A-Za-z0-9_.+-]+(;[A-Za-z0-9_.+-]+=[A-Za-z0-9_.+\-\"]+)*;base64,"
    r"([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
)


def is_email(value: object) -> bool:
    """True when ``value`` is a syntactically valid email address (Unicode allowed).

    Example:
        >>> is_email("a.b+tag@sub.example.org"), is_email("a..b@example.org"), is_email("a@b")
        (True, False, False)
    """
    return isinstance(value, str) and len(value) <= 254 and bool(_EMAIL.match(value.strip()))


def normalize_phone(value: object) -> str | None:
    """The phone in ``+<digits>`` form, or None when it is not an international number
    (8 to 15 digits after ``+``, country code not starting with 0).

    Example:
        >>> normalize_phone("+79000000000"), normalize_phone("12345"), normalize_phone("+000000000000")
        ('+79000000000', None, None)
    """
    if not isinstance(value, str):
        return None
    compact = _PHONE_SEPARATORS.sub("", value)
    return compact if _PHONE.match(compact) else None


def is_ipv4(value: object) -> bool:
    """True for a dotted-quad IPv4 address (no leading zeros, no IPv6).

    Example:
        >>> is_ipv4("192.168.0.1"), is_ipv4("::1"), is_ipv4("300.1.1.1")
        (True, False, False)
    """
    if not isinstance(value, str):
        return False
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


def is_date(value: object) -> bool:
    """True for ``YYYY-MM-DD`` or an RFC 3339 date-time that names a real moment.

    Example:
        >>> is_date("1990-02-28"), is_date("2024-01-31T10:00:00Z"), is_date("1990-02-30"), is_date("31.01.1990")
        (True, True, False, False)
    """
    if not isinstance(value, str):
        return False
    try:
        if _DATE.match(value):
            date.fromisoformat(value)
            return True
        if _RFC3339.match(value):
            datetime.fromisoformat(value.replace("z", "Z"))
            return True
    except ValueError:
        return False
    return False


@dataclass(frozen=True)
class Attachment:
    """What the sandbox keeps of an attachment: never its content, only what a test checks."""

    name: str
    mime: str
    size: int


def parse_data_uri(uri: object, name: object, max_bytes: int) -> Attachment:
    """Check one ``attach`` item and return its name, MIME type and decoded size.

    Raises ``ValueError`` with a readable reason when the URI is not a base64 ``data:`` URI
    or decodes to more than ``max_bytes``. The size is checked before decoding, so an
    oversized attachment costs no memory.

    Example:
        >>> parse_data_uri("data:text/csv;base64,5LuK5pel44GvCg==", "Attach.txt", 100)
        Attachment(name='Attach.txt', mime='text/csv', size=10)
        >>> parse_data_uri("hello", "a.txt", 100)
        Traceback (most recent call last):
        ...
        ValueError: attachment 'a.txt' is not a base64 data URI ('data:<mime>;base64,...')
    """
    label = name if isinstance(name, str) and name else "?"
    if not isinstance(name, str) or not name.strip():
        raise ValueError("attachment has no 'name'")
    match = _DATA_URI.match(uri) if isinstance(uri, str) else None
    if match is None:
        raise ValueError(f"attachment {label!r} is not a base64 data URI ('data:<mime>;base64,...')")
    payload = match["payload"]
    if len(payload) % 4:
        raise ValueError(f"attachment {label!r} has a truncated base64 payload")
    size = len(payload) // 4 * 3 - payload.count("=")
    if size > max_bytes:
        raise ValueError(f"attachment {label!r} is {size} bytes, over the {max_bytes}-byte file limit")
    try:
        base64.b64decode(payload, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"attachment {label!r} has an invalid base64 payload") from exc
    return Attachment(name=name, mime=match["mime"], size=size)
