"""One profile's import: validation, match keys, merge. Pure functions; the store does I/O.

Example:
    >>> env = ImportEnvelope(trigger_id=1, matching="email", profiles=[])
    >>> checked = check_profile({"email": "A@Example.com", "_fname": "Ann"}, env)
    >>> checked.keys
    [(('email', 'sub_email'), 'a@example.com')]
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any, Final

from toolkit.core.contract import (
    CHANNELS,
    DATE_FIELDS,
    EMAIL_FIELD,
    IP_FIELDS,
    MATCHING_MODES,
    PHONE_FIELD,
    PROFILE_ID_FIELD,
)

from .envelope import ImportEnvelope
from .validators import is_date, is_email, is_ipv4, normalize_phone

__all__ = ["FIELD_KIND_PREFIXES", "Checked", "ProfileError", "check_profile", "index_keys", "merge"]

#: A lookup: the index kinds to search, and the normalized value to find.
Lookup = tuple[tuple[str, ...], str]

# The index kind of each kind of contact (contract.ChannelRule.kind), in profile data and in
# subscriptions. Stored in --db files: renaming one orphans the keys indexed under it.
_PROFILE_INDEX: Final = {"email": "email", "phone": "phone"}
_SUBSCRIPTION_INDEX: Final = {"email": "sub_email", "phone": "sub_phone", "id": "sub_push"}

#: Index kinds of custom fields (``field:NAME``, ``subfield:NAME``): a profile holds one per
#: field, so they are indexed only once a custom matching asks for that field (see the store).
FIELD_KIND_PREFIXES: Final = ("field:", "subfield:")

_DIGITS: Final = re.compile(r"^[+-]?\d{1,18}$")
# Values longer than this are not indexed for custom matching: nobody matches on a novel.
_MAX_INDEXED: Final = 512


class ProfileError(Exception):
    """A problem with one profile: it fails alone, the rest of the batch goes on."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


@dataclass
class Checked:
    """A valid profile, split into what is stored and what it is matched by."""

    fields: dict[str, Any]
    subscriptions: list[dict[str, Any]]
    keys: list[Lookup] = field(default_factory=list)
    profile_id: str | None = None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _scalar_key(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        text = str(value).strip()
        return text if text and len(text) <= _MAX_INDEXED else None
    return None


def _phones(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    phones = []
    for item in items:
        if item is None or item == "":
            continue
        phone = normalize_phone(item)
        if phone is None:
            raise ProfileError(
                400, f"invalid phone {_short(item)}: must be international, '+' then 8 to 15 digits"
            )
        phones.append(phone)
    return phones


def _subscription(sub: Any, i: int) -> dict[str, Any]:
    if not isinstance(sub, dict):
        raise ValueError(f"subscriptions[{i}] must be an object")
    channel = sub.get("channel")
    rule = CHANNELS.get(channel) if isinstance(channel, str) else None
    if rule is None:
        raise ValueError(
            f"subscriptions[{i}] has unknown channel {_short(channel)}; one of: {', '.join(CHANNELS)}"
        )
    contact = sub.get(rule.contact_field)
    clean = dict(sub)
    if rule.kind == "email":
        if not isinstance(contact, str) or not is_email(contact):
            raise ValueError(f"subscriptions[{i}] ({channel}) has an invalid email {_short(contact)}")
        clean["email"] = contact.strip()
    elif rule.kind == "phone":
        phone = normalize_phone(contact)
        if phone is None:
            raise ValueError(
                f"subscriptions[{i}] ({channel}) has an invalid phone {_short(contact)}: "
                "must be international, '+' then 8 to 15 digits"
            )
        clean["phone"] = phone
    elif rule.kind == "id":
        if not isinstance(contact, (str, int)) or isinstance(contact, bool) or not str(contact).strip():
            raise ValueError(f"subscriptions[{i}] ({channel}) needs a {rule.contact_field}")
    elif not isinstance(contact, dict) or not contact:
        raise ValueError(f"subscriptions[{i}] ({channel}) needs {rule.contact_field} (an object)")
    resource = sub.get("resource_id")
    if resource is not None and resource != "":
        if isinstance(resource, str) and _DIGITS.match(resource.strip()):
            resource = int(resource)  # XML sends every value as text
        if not isinstance(resource, int) or isinstance(resource, bool):
            raise ValueError(
                f"subscriptions[{i}] ({channel}) has a non-integer resource_id {_short(resource)}"
            )
        clean["resource_id"] = resource
    return clean


def _check_fields(fields: dict[str, Any]) -> None:
    email = fields.get(EMAIL_FIELD)
    if email not in (None, "") and not is_email(email):
        raise ProfileError(400, f"invalid email {_short(email)}")
    _phones(fields.get(PHONE_FIELD))
    for name in sorted(IP_FIELDS):
        value = fields.get(name)
        if value not in (None, "") and not is_ipv4(value):
            raise ProfileError(400, f"invalid {name} {_short(value)}: must be an IPv4 address")
    for name in sorted(DATE_FIELDS):
        value = fields.get(name)
        if value not in (None, "") and not is_date(value):
            raise ProfileError(
                400, f"invalid {name} {_short(value)}: must be YYYY-MM-DD or an RFC 3339 date-time"
            )


def _sub_values(subs: list[dict[str, Any]], kind: str) -> list[str]:
    out = []
    for sub in subs:
        rule = CHANNELS[sub["channel"]]
        if rule.kind == kind:
            value = sub[rule.contact_field]
            out.append(value.lower() if kind == "email" else str(value).strip())
    return out


def _own_values(fields: dict[str, Any], kind: str) -> list[str]:
    """The profile's own contacts of one kind, normalized as the index holds them."""
    if kind == "email":
        email = fields.get(EMAIL_FIELD)
        return [email.strip().lower()] if isinstance(email, str) and email.strip() else []
    if kind == "phone":
        return _phones(fields.get(PHONE_FIELD))
    return []


def _lookups(fields: dict[str, Any], subs: list[dict[str, Any]], env: ImportEnvelope) -> list[Lookup]:
    """What a profile is looked up by, as :data:`~toolkit.core.contract.MATCHING_MODES` says.

    A key from the profile's own data is looked for in profile data (and, when the mode falls
    back to subscriptions, in subscriptions too: ``email`` finds a profile by either); a key
    read from subscriptions (the ``*_sub`` modes) is looked for in subscriptions only, one
    lookup per subscription contact.
    """
    rule = MATCHING_MODES[env.matching]
    if rule.needs_match_field:
        name = env.field_name or ""
        if rule.in_subscription:
            values = [_scalar_key((s.get("custom_fields") or {}).get(name)) for s in subs]
            return [((f"subfield:{name}",), v) for v in values if v]
        key = _scalar_key(fields.get(name))
        return [((f"field:{name}",), key)] if key else []
    lookups: list[Lookup] = []
    for kind in rule.contact_kinds:
        from_subs = _sub_values(subs, kind) if rule.from_subscriptions else []
        if rule.in_subscription:
            lookups += [((_SUBSCRIPTION_INDEX[kind],), value) for value in from_subs]
            continue
        found = _own_values(fields, kind) + from_subs  # the profile's own value first
        kinds: tuple[str, ...] = (_PROFILE_INDEX[kind],)
        if rule.subscription_fallback:
            kinds += (_SUBSCRIPTION_INDEX[kind],)
        if found:
            lookups.append((kinds, found[0]))
    return lookups


def check_profile(fields: dict[str, Any], env: ImportEnvelope) -> Checked:
    """Validate one profile and find what it is matched by; raises :class:`ProfileError`.

    Example:
        >>> env = ImportEnvelope(trigger_id=1, matching="phone", profiles=[])
        >>> check_profile({"email": "a@b.co"}, env)
        Traceback (most recent call last):
        ...
        toolkit.sandbox.profiles.ProfileError: no key to match on: matching 'phone' needs a 'phones' field or a phone subscription (sms, viber, whatsapp)
    """
    own = {k: v for k, v in fields.items() if k != "subscriptions"}
    _check_fields(own)
    raw_subs = fields.get("subscriptions")
    if raw_subs in (None, ""):
        raw_subs = []
    if isinstance(raw_subs, dict):  # one XML <subscriptions> element
        raw_subs = [raw_subs]
    if not isinstance(raw_subs, list):
        raise ProfileError(400, "subscriptions must be a list of objects")
    subs = []
    for i, sub in enumerate(raw_subs):
        try:
            subs.append(_subscription(sub, i))
        except ValueError as exc:
            if not env.skip_invalid_subscriptions:
                raise ProfileError(400, str(exc)) from None
    rule = MATCHING_MODES[env.matching]
    missing = f"no key to match on: matching {env.matching!r} needs {rule.requirement}"
    if rule.needs == "profile_id":
        pid = own.pop(PROFILE_ID_FIELD, None)
        if not isinstance(pid, str) or not pid.strip():
            raise ProfileError(400, missing)
        return Checked(own, subs, profile_id=pid.strip())
    keys = _lookups(own, subs, env)
    if not keys:
        raise ProfileError(400, missing)
    return Checked(own, subs, keys=keys)


def index_keys(
    fields: dict[str, Any], subs: list[dict[str, Any]], field_kinds: Container[str] | None = None
) -> set[tuple[str, str]]:
    """Every (kind, value) a stored profile can be found by, for all matching modes; the custom
    field kinds (:data:`FIELD_KIND_PREFIXES`) only when in ``field_kinds`` (None: all of them).

    Example:
        >>> sorted(index_keys({"email": "A@b.co", "CRM": 7}, [{"channel": "sms", "phone": "+79000000000"}]))
        [('email', 'a@b.co'), ('field:CRM', '7'), ('field:email', 'A@b.co'), ('sub_phone', '+79000000000')]
    """
    keys: set[tuple[str, str]] = {(_PROFILE_INDEX["email"], e) for e in _own_values(fields, "email")}
    with contextlib.suppress(ProfileError):  # an invalid phone is simply not findable
        keys.update((_PROFILE_INDEX["phone"], p) for p in _own_values(fields, "phone"))
    # No custom field indexed (the usual case): skip the per-field loop, a profile's largest cost here.
    every_field = () if field_kinds is not None and not field_kinds else fields.items()
    for name, value in every_field:
        kind = f"field:{name}"
        if field_kinds is not None and kind not in field_kinds:
            continue
        key = _scalar_key(value)
        if key is not None:
            keys.add((kind, key))
    for sub in subs:
        rule = CHANNELS.get(sub.get("channel", ""))
        if rule is None:
            continue
        contact = sub.get(rule.contact_field)
        if rule.kind == "email" and isinstance(contact, str):
            keys.add((_SUBSCRIPTION_INDEX["email"], contact.strip().lower()))
        elif rule.kind == "phone" and isinstance(contact, str):
            keys.add((_SUBSCRIPTION_INDEX["phone"], contact))
        elif rule.kind == "id" and contact is not None:
            keys.add((_SUBSCRIPTION_INDEX["id"], str(contact).strip()))
        for name, value in (sub.get("custom_fields") or {}).items():
            kind = f"subfield:{name}"
            if field_kinds is not None and kind not in field_kinds:
                continue
            key = _scalar_key(value)
            if key is not None:
                keys.add((kind, key))
    return keys


def _sub_identity(sub: dict[str, Any]) -> tuple[Any, ...]:
    rule = CHANNELS[sub["channel"]]
    contact = sub.get(rule.contact_field)
    channel = rule.same_as or sub["channel"]  # sms and the seed's "phone" are one channel
    return (str(channel), repr(contact).lower(), sub.get("resource_id"))


def merge(
    old_fields: dict[str, Any], old_subs: list[dict[str, Any]], new: Checked
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """An update: new field values win, subscriptions are merged by channel, contact and resource.

    Example:
        >>> new = Checked({"_fname": "Bo"}, [{"channel": "email", "email": "x@y.co", "status": "active"}])
        >>> merge({"_fname": "Al", "CRM": 1}, [{"channel": "email", "email": "x@y.co"}], new)
        ({'_fname': 'Bo', 'CRM': 1}, [{'channel': 'email', 'email': 'x@y.co', 'status': 'active'}])
    """
    fields = {**old_fields, **new.fields}
    subs = list(old_subs)
    where = {_sub_identity(s): i for i, s in enumerate(subs)}
    for sub in new.subscriptions:
        ident = _sub_identity(sub)
        if ident in where:
            subs[where[ident]] = {**subs[where[ident]], **sub}
        else:
            where[ident] = len(subs)
            subs.append(sub)
    return fields, subs
