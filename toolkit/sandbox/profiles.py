"""One profile's import: validation, match keys, merge. Pure functions; the store does I/O.

Example:
    >>> env = ImportEnvelope(trigger_id=1, matching="email", profiles=[])
    >>> checked = check_profile({"email": "A@Example.com", "_fname": "Ann"}, env)
    >>> checked.keys
    [(('email', 'sub_email'), 'a@example.com')]
"""

from __future__ import annotations

import re
from collections.abc import Callable, Container, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import polars as pl

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

__all__ = [
    "EXACT",
    "FIELD_KIND_PREFIXES",
    "Checked",
    "Checks",
    "ProfileError",
    "check_profile",
    "check_profiles",
    "checked_profiles",
    "index_keys",
    "merge",
]

#: A lookup: the index kinds to search, and the normalized value to find.
Lookup = tuple[tuple[str, ...], str]

# The index kind of each kind of contact (contract.ChannelRule.kind), in profile data and in
# subscriptions. Stored in --db files: renaming one orphans the keys indexed under it.
_PROFILE_INDEX: Final = {"email": "email", "phone": "phone"}
_SUBSCRIPTION_INDEX: Final = {"email": "sub_email", "phone": "sub_phone", "id": "sub_push"}
_EMAIL_KIND, _PHONE_KIND = _PROFILE_INDEX["email"], _PROFILE_INDEX["phone"]
_SUB_EMAIL_KIND, _SUB_PHONE_KIND, _SUB_PUSH_KIND = (_SUBSCRIPTION_INDEX[k] for k in ("email", "phone", "id"))

#: Index kinds of custom fields (``field:NAME``, ``subfield:NAME``): a profile holds one per
#: field, so they are indexed only once a custom matching asks for that field (see the store).
FIELD_KIND_PREFIXES: Final = ("field:", "subfield:")

_DIGITS: Final = re.compile(r"^[+-]?\d{1,18}$")
# Checked in this order, so the first failed field named in an error never varies.
_IP_NAMES: Final = tuple(sorted(IP_FIELDS))
_DATE_NAMES: Final = tuple(sorted(DATE_FIELDS))
# Values longer than this are not indexed for custom matching: nobody matches on a novel.
_MAX_INDEXED: Final = 512


class ProfileError(Exception):
    """A problem with one profile: it fails alone, the rest of the batch goes on."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


@dataclass(slots=True)
class Checked:
    """A valid profile, split into what is stored and what it is matched by.

    ``index``: the keys the profile is stored under when it is created as it is (what
    :func:`index_keys` gives for its fields and subscriptions, without custom-field kinds),
    found by :func:`check_profile` on the same walk; None when not computed.
    """

    fields: dict[str, Any]
    subscriptions: list[dict[str, Any]]
    keys: list[Lookup] = field(default_factory=list)
    profile_id: str | None = None
    index: set[tuple[str, str]] | None = None


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


@dataclass(frozen=True)
class Checks:
    """The two value checks a profile's validation makes most: the exact ones (:data:`EXACT`), or
    the same answers read from tables computed over a whole chunk at once (:func:`chunk_checks`):
    ``emails`` and ``phones`` hold the tables themselves (empty for :data:`EXACT`)."""

    is_email: Callable[[object], bool] = is_email
    normalize_phone: Callable[[object], str | None] = normalize_phone
    emails: Mapping[str, bool] = field(default_factory=dict)
    phones: Mapping[str, str | None] = field(default_factory=dict)


#: The validators themselves, one value at a time.
EXACT: Final = Checks()


def _phones(value: Any, checks: Checks = EXACT) -> list[str]:
    items = value if isinstance(value, list) else [value]
    phones = []
    for item in items:
        if item is None or item == "":
            continue
        phone = checks.normalize_phone(item)
        if phone is None:
            raise ProfileError(
                400, f"invalid phone {_short(item)}: must be international, '+' then 8 to 15 digits"
            )
        phones.append(phone)
    return phones


def _subscription(sub: Any, i: int, checks: Checks = EXACT) -> tuple[dict[str, Any], tuple[str, str] | None]:
    """A subscription checked and cleaned, and the key it is indexed under (as :func:`index_keys`)."""
    if type(sub) is not dict and not isinstance(sub, dict):
        raise ValueError(f"subscriptions[{i}] must be an object")
    channel = sub.get("channel")
    rule = CHANNELS.get(channel) if isinstance(channel, str) else None
    if rule is None:
        raise ValueError(
            f"subscriptions[{i}] has unknown channel {_short(channel)}; one of: {', '.join(CHANNELS)}"
        )
    contact_field, kind = rule.contact_field, rule.kind
    contact = sub.get(contact_field)
    clean = dict(sub)
    key: tuple[str, str] | None = None
    if kind == "email":
        if not isinstance(contact, str) or not checks.is_email(contact):
            raise ValueError(f"subscriptions[{i}] ({channel}) has an invalid email {_short(contact)}")
        clean["email"] = email = contact.strip()
        key = (_SUB_EMAIL_KIND, email.lower())
    elif kind == "phone":
        phone = checks.normalize_phone(contact)
        if phone is None:
            raise ValueError(
                f"subscriptions[{i}] ({channel}) has an invalid phone {_short(contact)}: "
                "must be international, '+' then 8 to 15 digits"
            )
        clean["phone"] = phone
        key = (_SUB_PHONE_KIND, phone)
    elif kind == "id":
        if not isinstance(contact, (str, int)) or isinstance(contact, bool) or not str(contact).strip():
            raise ValueError(f"subscriptions[{i}] ({channel}) needs a {contact_field}")
        key = (_SUB_PUSH_KIND, str(contact).strip())
    elif not isinstance(contact, dict) or not contact:
        raise ValueError(f"subscriptions[{i}] ({channel}) needs {contact_field} (an object)")
    resource = sub.get("resource_id")
    if resource is not None and resource != "":
        if isinstance(resource, str) and _DIGITS.match(resource.strip()):
            resource = int(resource)  # XML sends every value as text
        if not isinstance(resource, int) or isinstance(resource, bool):
            raise ValueError(
                f"subscriptions[{i}] ({channel}) has a non-integer resource_id {_short(resource)}"
            )
        clean["resource_id"] = resource
    return clean, key


def _check_fields(fields: dict[str, Any], checks: Checks = EXACT) -> list[str]:
    """Check a profile's own contacts, IPs and dates; its phones, normalized."""
    email = fields.get(EMAIL_FIELD)
    if email not in (None, "") and not checks.is_email(email):
        raise ProfileError(400, f"invalid email {_short(email)}")
    phone = fields.get(PHONE_FIELD)
    phones = [] if phone is None else _phones(phone, checks)
    for name in _IP_NAMES:
        value = fields.get(name)
        if value not in (None, "") and not is_ipv4(value):
            raise ProfileError(400, f"invalid {name} {_short(value)}: must be an IPv4 address")
    for name in _DATE_NAMES:
        value = fields.get(name)
        if value not in (None, "") and not is_date(value):
            raise ProfileError(
                400, f"invalid {name} {_short(value)}: must be YYYY-MM-DD or an RFC 3339 date-time"
            )
    return phones


def _lookups(
    fields: dict[str, Any],
    subs: list[dict[str, Any]],
    env: ImportEnvelope,
    own: dict[str, list[str]],
    sub_keys: list[tuple[str, str]],
) -> list[Lookup]:
    """What a profile is looked up by, as :data:`~toolkit.core.contract.MATCHING_MODES` says.

    ``own``: the profile's own contacts of each kind, normalized as the index holds them;
    ``sub_keys``: its subscriptions' index keys, in order (both found by :func:`check_profile`).
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
        sub_kind = _SUBSCRIPTION_INDEX[kind]
        if rule.in_subscription:
            lookups += [((sub_kind,), value) for found, value in sub_keys if found == sub_kind]
            continue
        contacts = own.get(kind) or []  # the profile's own value first
        if not contacts and rule.from_subscriptions:
            contacts = [value for found, value in sub_keys if found == sub_kind]
        kinds: tuple[str, ...] = (_PROFILE_INDEX[kind],)
        if rule.subscription_fallback:
            kinds += (sub_kind,)
        if contacts:
            lookups.append((kinds, contacts[0]))
    return lookups


def check_profile(fields: dict[str, Any], env: ImportEnvelope, checks: Checks = EXACT) -> Checked:
    """Validate one profile and find what it is matched by and indexed under (one walk over
    it); raises :class:`ProfileError`.

    Example:
        >>> env = ImportEnvelope(trigger_id=1, matching="phone", profiles=[])
        >>> check_profile({"email": "a@b.co"}, env)
        Traceback (most recent call last):
        ...
        toolkit.sandbox.profiles.ProfileError: no key to match on: matching 'phone' needs a 'phones' field or a phone subscription (sms, viber, whatsapp)
        >>> sorted(check_profile({"email": " A@b.co", "phones": "+7 900 000-00-00"}, env).index)
        [('email', 'a@b.co'), ('phone', '+79000000000')]
    """
    own = dict(fields)
    raw_subs = own.pop("subscriptions", None)
    phones = _check_fields(own, checks)
    if raw_subs in (None, ""):
        raw_subs = []
    if isinstance(raw_subs, dict):  # one XML <subscriptions> element
        raw_subs = [raw_subs]
    if not isinstance(raw_subs, list):
        raise ProfileError(400, "subscriptions must be a list of objects")
    subs = []
    sub_keys: list[tuple[str, str]] = []
    for i, sub in enumerate(raw_subs):
        try:
            clean, key = _subscription(sub, i, checks)
        except ValueError as exc:
            if not env.skip_invalid_subscriptions:
                raise ProfileError(400, str(exc)) from None
            continue
        subs.append(clean)
        if key is not None:
            sub_keys.append(key)
    # The index keys of index_keys(own, subs, no custom kinds), from what was just checked.
    email = own.get(EMAIL_FIELD)
    email = email.strip().lower() if isinstance(email, str) else ""
    index = {(_PHONE_KIND, phone) for phone in phones}
    index.update(sub_keys)
    if email:
        index.add((_EMAIL_KIND, email))
    rule = MATCHING_MODES[env.matching]
    if rule.needs == "profile_id":
        pid = own.pop(PROFILE_ID_FIELD, None)
        if not isinstance(pid, str) or not pid.strip():
            raise _no_key(env)
        return Checked(own, subs, profile_id=pid.strip(), index=index)
    keys = _lookups(own, subs, env, {"email": [email] if email else [], "phone": phones}, sub_keys)
    if not keys:
        raise _no_key(env)
    return Checked(own, subs, keys=keys, index=index)


def _no_key(env: ImportEnvelope) -> ProfileError:
    # Built only when needed: the phrase is composed anew each time.
    needs = MATCHING_MODES[env.matching].requirement
    return ProfileError(400, f"no key to match on: matching {env.matching!r} needs {needs}")


def index_keys(
    fields: dict[str, Any],
    subs: list[dict[str, Any]],
    field_kinds: Container[str] | None = None,
    checks: Checks = EXACT,
) -> set[tuple[str, str]]:
    """Every (kind, value) a stored profile can be found by, for all matching modes; the custom
    field kinds (:data:`FIELD_KIND_PREFIXES`) only when in ``field_kinds`` (None: all of them).

    Example:
        >>> sorted(index_keys({"email": "A@b.co", "CRM": 7}, [{"channel": "sms", "phone": "+79000000000"}]))
        [('email', 'a@b.co'), ('field:CRM', '7'), ('field:email', 'A@b.co'), ('sub_phone', '+79000000000')]
    """
    keys: set[tuple[str, str]] = set()
    email = fields.get(EMAIL_FIELD)
    if isinstance(email, str) and (email := email.strip().lower()):  # as check_profile's email key
        keys.add((_EMAIL_KIND, email))
    try:
        phones = _phones(fields.get(PHONE_FIELD), checks)
    except ProfileError:  # an invalid phone is simply not findable
        phones = []
    for phone in phones:
        keys.add((_PHONE_KIND, phone))
    # No custom field indexed (the usual case): skip the per-field loops, a profile's largest cost here.
    every_kind = field_kinds is None or bool(field_kinds)
    if every_kind:
        _add_custom_keys(keys, "field:", fields, field_kinds)
    for sub in subs:
        rule = CHANNELS.get(sub.get("channel", ""))
        if rule is None:
            continue
        contact = sub.get(rule.contact_field)
        contact_kind = rule.kind
        if contact_kind == "email" and isinstance(contact, str):
            keys.add((_SUB_EMAIL_KIND, contact.strip().lower()))
        elif contact_kind == "phone" and isinstance(contact, str):
            keys.add((_SUB_PHONE_KIND, contact))
        elif contact_kind == "id" and contact is not None:
            keys.add((_SUB_PUSH_KIND, str(contact).strip()))
        if every_kind:
            _add_custom_keys(keys, "subfield:", sub.get("custom_fields") or {}, field_kinds)
    return keys


def _add_custom_keys(
    keys: set[tuple[str, str]], prefix: str, values: dict[str, Any], field_kinds: Container[str] | None
) -> None:
    """Add the ``prefix + name`` keys of custom ``values`` (those in ``field_kinds``; None: all)."""
    for name, value in values.items():
        kind = prefix + name
        if field_kinds is not None and kind not in field_kinds:
            continue
        key = _scalar_key(value)
        if key is not None:
            keys.add((kind, key))


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


# --- a chunk at once -------------------------------------------------------------------------
# ASCII-only forms of the validators' patterns (validators.py). An ASCII value they accept is one
# the exact check accepts too (each class here is the ASCII part of the Unicode class there, and
# nothing here matches whitespace, so ``strip()`` changes nothing); every other value is sent to
# the exact check. So the tables answer exactly as the validators do, at vectorized speed.
_ATOM_ASCII = r"[A-Za-z0-9_!#$%&'*+/=?^`{|}~-]+"
_LABEL_ASCII = r"[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
_EMAIL_ASCII: Final = rf"^{_ATOM_ASCII}(?:\.{_ATOM_ASCII})*@(?:{_LABEL_ASCII}\.)+(?:[A-Za-z]{{2,63}}|xn--[A-Za-z0-9_-]{{1,59}})$"
# A phone written with digits, '+' and the separators the validator removes, and nothing else
# (no tab, no Unicode space or digit: those go to the exact check).
_PHONE_PLAIN: Final = r"^[0-9+ ().\-]*$"
_PHONE_SEPARATORS_ASCII: Final = r"[ ().\-]"
_PHONE_ASCII: Final = r"^\+[1-9][0-9]{7,14}$"


def email_table(values: list[str]) -> dict[str, bool]:
    """:func:`~toolkit.sandbox.validators.is_email` of each (distinct) value, checked in one
    vectorized pass; values the fast pattern does not accept are checked exactly.

    Example:
        >>> email_table(["a@b.co", "bad@", "ünï@exämple.org"])
        {'a@b.co': True, 'bad@': False, 'ünï@exämple.org': True}
    """
    if not values:
        return {}
    value = pl.col("value")
    fast = (
        pl.DataFrame({"value": values}, schema={"value": pl.String})
        .select(value.str.contains(_EMAIL_ASCII) & (value.str.len_chars() <= 254))
        .to_series()
        .to_list()
    )
    return {value: ok or is_email(value) for value, ok in zip(values, fast, strict=True)}


def phone_table(values: list[str]) -> dict[str, str | None]:
    """:func:`~toolkit.sandbox.validators.normalize_phone` of each (distinct) value, vectorized;
    a value holding anything but digits, '+' and ASCII separators is normalized exactly.

    Example:
        >>> phone_table(["+7 (900) 000-00-00", "12345", "+7\\t9000000000"])
        {'+7 (900) 000-00-00': '+79000000000', '12345': None, '+7\\t9000000000': '+79000000000'}
    """
    if not values:
        return {}
    value = pl.col("value")
    compact = value.str.replace_all(_PHONE_SEPARATORS_ASCII, "")
    frame = pl.DataFrame({"value": values}, schema={"value": pl.String}).select(
        plain=value.str.contains(_PHONE_PLAIN),
        phone=pl.when(compact.str.contains(_PHONE_ASCII)).then(compact),
    )
    return {
        value: phone if plain else normalize_phone(value)
        for value, plain, phone in zip(
            values, frame["plain"].to_list(), frame["phone"].to_list(), strict=True
        )
    }


def _table_check(table: dict[str, Any], exact: Callable[[object], Any]) -> Callable[[object], Any]:
    missing = object()

    def check(value: object) -> Any:
        if type(value) is str:
            found = table.get(value, missing)
            if found is not missing:
                return found
        return exact(value)

    return check


def chunk_checks(profiles: Sequence[dict[str, Any]]) -> Checks:
    """:class:`Checks` whose answers for every email and phone in ``profiles`` (own fields and
    subscriptions) were computed in one vectorized pass each; any other value is checked exactly.

    Example:
        >>> checks = chunk_checks([{"email": "a@b.co", "phones": ["+7 900 000 00 00"]}])
        >>> checks.is_email("a@b.co"), checks.normalize_phone("+7 900 000 00 00"), checks.is_email("x@")
        (True, '+79000000000', False)
    """
    emails: set[str] = set()
    phones: set[str] = set()
    for fields in profiles:
        value = fields.get(EMAIL_FIELD)
        if type(value) is str:
            emails.add(value)
        value = fields.get(PHONE_FIELD)
        if type(value) is str:
            phones.add(value)
        elif type(value) is list:
            phones.update(item for item in value if type(item) is str)
        subs = fields.get("subscriptions")
        if type(subs) is list:
            for sub in subs:
                if type(sub) is dict:
                    value = sub.get("email")
                    if type(value) is str:
                        emails.add(value)
                    value = sub.get("phone")
                    if type(value) is str:
                        phones.add(value)
    email_answers, phone_answers = email_table(list(emails)), phone_table(list(phones))
    return Checks(
        is_email=_table_check(email_answers, is_email),
        normalize_phone=_table_check(phone_answers, normalize_phone),
        emails=email_answers,
        phones=phone_answers,
    )


def check_profiles(
    profiles: Sequence[dict[str, Any]], env: ImportEnvelope, checks: Checks | None = None
) -> list[Checked | ProfileError]:
    """:func:`check_profile` of every profile of a chunk, in order: the same answers, at a
    fraction of the cost (a chunk of 1,000 usual profiles in ~3 us a profile against ~8).

    The usual profile is settled here in one tight loop, reading the chunk's tables
    (:func:`chunk_checks`, or ``checks`` when given): its email, phone, IPs and dates valid (dates
    and IPs memoized per distinct value), each subscription an email or phone one whose contact
    is valid and already in its stored form (an email without surrounding blanks, a phone as
    normalized) with an integer ``resource_id`` or none. Then nothing is copied or rewritten:
    the profile's fields (less its subscriptions) and its subscriptions are stored as they came.
    Any other profile (an invalid value, a phone list, a push subscription, ``matching``
    ``profile_id``...) goes through :func:`check_profile` itself, which also words every error:
    a test compares both on generated chunks.

    Example:
        >>> env = ImportEnvelope(trigger_id=1, matching="email", profiles=[])
        >>> [type(r).__name__ for r in check_profiles([{"email": "a@b.co"}, {"email": "x@"}], env)]
        ['Checked', 'ProfileError']
    """
    return list(checked_profiles(profiles, env, checks or chunk_checks(profiles)))


# is_ipv4 / is_date of the values met so far: a segment's dates repeat (days, not moments), and a
# regex and a calendar check cost ~1 us a value. Bounded: emptied when full.
_IP_OK: Final[dict[str, bool]] = {}
_DATE_OK: Final[dict[str, bool]] = {}
_MEMO_MAX: Final = 1 << 16


def _memo(table: dict[str, bool]) -> dict[str, bool]:
    if len(table) > _MEMO_MAX:
        table.clear()
    return table


def checked_profiles(
    profiles: Sequence[dict[str, Any]], env: ImportEnvelope, checks: Checks
) -> Iterator[Checked | ProfileError]:
    """:func:`check_profiles`, one profile at a time: the engine places each before the next is
    checked, while its dicts are still in the processor's cache (a second pass over a chunk of
    1,000 profiles costs more than the check saves)."""
    rule = MATCHING_MODES[env.matching]
    if rule.needs == "profile_id":  # its profile_id is taken out of the fields: the exact walk
        for fields in profiles:
            try:
                yield check_profile(fields, env, checks)
            except ProfileError as exc:
                yield exc
        return
    email_ok, phone_as = checks.emails, checks.phones
    # The documented modes email, email_profile and phone look a profile up by one contact: its
    # own, else (email, phone) its first subscription's; _lookups says the same for every mode.
    simple = rule.needs in ("email", "phone") and not rule.in_subscription
    by_email = rule.needs == "email"
    sub_kind = _SUBSCRIPTION_INDEX["email" if by_email else "phone"]
    kinds = (_EMAIL_KIND if by_email else _PHONE_KIND, *((sub_kind,) if rule.subscription_fallback else ()))
    from_subscriptions = rule.from_subscriptions
    memoized = ((_IP_NAMES, _memo(_IP_OK), is_ipv4), (_DATE_NAMES, _memo(_DATE_OK), is_date))
    channels = CHANNELS
    for fields in profiles:
        usual = True
        email = fields.get(EMAIL_FIELD)
        if email is None or email == "":
            email = ""
        elif type(email) is str and email_ok.get(email):
            email = email.strip().lower()
        else:
            usual = False
        phone = fields.get(PHONE_FIELD)
        phones: list[str] = []
        if phone is not None and phone != "":
            phone = phone_as.get(phone) if type(phone) is str else None
            if phone is None:
                usual = False
            else:
                phones.append(phone)
        for names, memo, valid in memoized:
            for name in names:
                value = fields.get(name)
                if value is not None and value != "":
                    ok = memo.get(value) if type(value) is str else False
                    if ok is None:
                        ok = memo[value] = valid(value)
                    if not ok:
                        usual = False
        raw_subs = fields.get("subscriptions")
        sub_keys: list[tuple[str, str]] = []
        if raw_subs is None or raw_subs == "":
            raw_subs = []
        elif type(raw_subs) is not list:
            usual = False
        if usual:
            for sub in raw_subs:
                channel = sub.get("channel") if type(sub) is dict else None
                channel_rule = channels.get(channel) if type(channel) is str else None
                if channel_rule is None:
                    usual = False
                    break
                kind = channel_rule.kind
                contact = sub.get(channel_rule.contact_field)
                if kind == "email":
                    if type(contact) is not str or not email_ok.get(contact) or contact != contact.strip():
                        usual = False
                        break
                    sub_keys.append((_SUB_EMAIL_KIND, contact.lower()))
                elif kind == "phone":
                    if type(contact) is not str or phone_as.get(contact) != contact:
                        usual = False
                        break
                    sub_keys.append((_SUB_PHONE_KIND, contact))
                else:
                    usual = False
                    break
                resource = sub.get("resource_id")
                if resource is not None and resource != "" and type(resource) is not int:
                    usual = False
                    break
        if usual:
            own = dict(fields)
            own.pop("subscriptions", None)
            subs = list(raw_subs)
            if simple:
                contact = email if by_email else phones[0] if phones else ""
                if not contact and from_subscriptions:
                    contact = next((value for found, value in sub_keys if found == sub_kind), "")
                keys = [(kinds, contact)] if contact else []
            else:
                keys = _lookups(
                    own, subs, env, {"email": [email] if email else [], "phone": phones}, sub_keys
                )
            if keys:
                index = set(sub_keys)
                if email:
                    index.add((_EMAIL_KIND, email))
                if phones:
                    index.add((_PHONE_KIND, phones[0]))
                yield Checked(own, subs, keys, None, index)
                continue
        try:
            yield check_profile(fields, env, checks)
        except ProfileError as exc:
            yield exc
