"""sample_customers(): the bundled realistic, dirty customer segment.

Notebooks, tests and benchmarks all need a segment that looks like a real CRM export: Latin and
Cyrillic names, phones typed every way people type them, a few broken e-mails, people imported
twice. This module builds one, deterministically, from ``(n, seed)`` alone.

What is in it (fractions are per row, drawn independently, so they are approximate):

================  ==========================================================================
column            content
================  ==========================================================================
``crm_id``        ``"CRM-000001"``, ``"CRM-000002"``, ...: unique per row (a re-imported
                  person is a second CRM record, with its own id)
``first_name``    ~30% Cyrillic (``Анна``), the rest Latin; ~2% padded with spaces; one row in
``last_name``     2,000 (0-based rows 17, 2017, ...) has an emoji in ``first_name``
``email``         ``first.last123@domain`` and similar, on domains reserved for examples
                  (RFC 2606: mail.example, example.net, example.org, example.com), so no
                  message can reach a real person; ~3% padded and/or upper-case, ~1.5%
                  malformed, ~2% null, ~1% repeat an earlier row's address (maybe in another
                  case): the same person imported twice, with the same names and phone
``phone``         ``+79001234567``, ``8 (900) 123-45-67``, ``+7 900 123-45-67``, ``89001234567``,
                  ``+44 7911 123456``, ``+1 (415) 555-0134``, ``+49 151 23456789``; ~1.5%
                  malformed (``12345``, ``+000000000000``, ``call me``, too long), ~5% null
``city``          Moscow / Москва, Saint Petersburg, Kazan, Novosibirsk, London, Berlin, ...;
                  a little dirt (``moscow``, ``"Moscow "``) and ~1% null
``signup_date``   a date in 2018-01-01 .. 2025-06-30
``last_order_at`` a datetime (whole seconds) after the signup, before 2026-01-01; null when
                  ``orders`` is 0 or null
``orders``        integer >= 0, ~4% null
``revenue``       float rounded to cents; 0.0 when ``orders`` is 0; null when ``orders`` is
                  null and for ~2% more
``tags``          list of strings (``vip``, ``newsletter``, ...), empty for ~29% of rows
``email_opt_in``  bool, ~80% true
================  ==========================================================================

Properties worth relying on:

* Same ``(n, seed)`` gives the same frame, on every run and machine: all randomness is numpy
  ``PCG64`` uniforms, whose stream numpy keeps stable across versions.
* Every column is drawn from its own random stream, one value per row in row order, so
  ``sample_customers(100)`` is exactly the first 100 rows of ``sample_customers(1000)``.
* ``kind="pandas"`` is the polars frame converted, value for value.
* Clean e-mails are unique: the trailing number is the row's own, so the only repeated
  addresses (after trimming and lower-casing) are the deliberate duplicates and malformed
  leftovers such as ``"@example.com"``.
* **Made-up people.** Every address is on a reserved domain. The phones look real and may
  belong to someone (no numbering plan reserves valid mobile numbers in all four
  countries), so the frame is *flagged*: :func:`is_sample` recognises it (and pandas frames
  derived from it, through ``DataFrame.attrs``), and a plan built from it, or whose every
  address is reserved, is refused by ``Client.launch`` on a platform that is not the
  toolkit's sandbox unless ``allow_sample=True``.

The content is pinned by ``tests/test_sample.py``: notebooks print counts from it, so any change
to the tables or draws below is a visible, deliberate change.

Example:
    >>> from toolkit.core.sample import sample_customers
    >>> df = sample_customers(6, seed=1)
    >>> df.shape
    (6, 12)
    >>> list(df.columns)  # doctest: +NORMALIZE_WHITESPACE
    ['crm_id', 'first_name', 'last_name', 'email', 'phone', 'city', 'signup_date',
     'last_order_at', 'orders', 'revenue', 'tags', 'email_opt_in']
    >>> str(df["orders"].dtype), str(df["signup_date"].dtype), str(df["email_opt_in"].dtype)
    ('Int64', 'datetime64[ms]', 'bool')
    >>> pl_df = sample_customers(6, seed=1, kind="polars")
    >>> pl_df["crm_id"].to_list()[:3]
    ['CRM-000001', 'CRM-000002', 'CRM-000003']
    >>> pl_df.equals(sample_customers(6, seed=1, kind="polars"))
    True
"""

from __future__ import annotations

import datetime as dt
import re
import weakref
from typing import TYPE_CHECKING, Final, Literal, overload

import numpy as np
import polars as pl

from toolkit.errors import InvalidArgumentError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "COLUMNS",
    "RESERVED_EMAIL_DOMAINS",
    "SAMPLE_ATTR",
    "is_reserved_email_domain",
    "is_sample",
    "sample_customers",
]

Kind = Literal["pandas", "polars"]

#: Column names, in frame order.
COLUMNS: Final = (
    "crm_id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "city",
    "signup_date",
    "last_order_at",
    "orders",
    "revenue",
    "tags",
    "email_opt_in",
)

#: The key under which a pandas frame of the sample says so (``frame.attrs``): pandas keeps
#: ``attrs`` through filters, slices and copies of the frame.
SAMPLE_ATTR: Final = "toolkit_sample"
# Polars frames carry no metadata: the sample frames themselves are remembered, by identity.
_POLARS_SAMPLES: weakref.WeakValueDictionary[int, pl.DataFrame] = weakref.WeakValueDictionary()

#: Domains no one can own (RFC 2606 and 6761): the second-level ``example`` names and the
#: ``example``, ``test``, ``invalid`` and ``localhost`` top-level names.
RESERVED_EMAIL_DOMAINS: Final = re.compile(
    r"(?i)^(?:example\.(?:com|org|net)|(?:[^@\s]+\.)?(?:example|test|invalid|localhost))\.?$"
)


def is_reserved_email_domain(domain: str) -> bool:
    """True when an address on ``domain`` can reach no one (a domain reserved for examples).

    Example:
        >>> [is_reserved_email_domain(d) for d in ("example.com", "shop.test", "mail.example", "gmail.com")]
        [True, True, True, False]
    """
    return bool(RESERVED_EMAIL_DOMAINS.match(domain.strip()))


def is_sample(frame: object) -> bool:
    """True when ``frame`` is :func:`sample_customers`' output (a pandas frame derived from it
    by filtering or slicing keeps the flag; a polars frame only as returned).

    Example:
        >>> is_sample(sample_customers(3)), is_sample(sample_customers(3).head(2))
        (True, True)
        >>> is_sample(sample_customers(3, kind="polars")), is_sample(pl.DataFrame({"a": [1]}))
        (True, False)
    """
    attrs = getattr(frame, "attrs", None)
    if isinstance(attrs, dict) and attrs.get(SAMPLE_ATTR):
        return True
    return _POLARS_SAMPLES.get(id(frame)) is frame


# --- vocabulary ----------------------------------------------------------------------------
# Names come as (as written, ASCII transliteration for the e-mail). The tables are part of the
# sample's content: appending to or reordering them changes every frame.
_LATIN_MALE: Final = (
    "John", "Michael", "David", "James", "Robert", "William", "Thomas", "Daniel", "Oliver", "Harry",
    "George", "Lukas", "Paul", "Mark", "Peter", "Alex", "Max", "Leon", "Jack", "Samuel",
)  # fmt: skip
_LATIN_FEMALE: Final = (
    "Mary", "Emma", "Olivia", "Sophie", "Emily", "Anna", "Laura", "Sarah", "Kate", "Julia",
    "Hannah", "Lena", "Chloe", "Grace", "Amelia", "Lucy", "Mia", "Clara", "Alice", "Victoria",
)  # fmt: skip
_LATIN_LAST: Final = (
    "Smith", "Johnson", "Brown", "Taylor", "Wilson", "Davies", "Evans", "Thomas", "Roberts", "Walker",
    "Beckham", "Wright", "Green", "Hall", "Wood", "Clarke", "Muller", "Schmidt", "Schneider", "Fischer",
    "Weber", "Becker", "Miller", "Moore", "Jackson", "White", "Harris", "Martin", "Thompson", "Young",
)  # fmt: skip
_CYR_MALE: Final = (
    ("Иван", "ivan"), ("Алексей", "aleksey"), ("Дмитрий", "dmitry"), ("Сергей", "sergey"),
    ("Андрей", "andrey"), ("Михаил", "mikhail"), ("Николай", "nikolay"), ("Павел", "pavel"),
    ("Владимир", "vladimir"), ("Артём", "artem"), ("Максим", "maksim"), ("Егор", "egor"),
    ("Олег", "oleg"), ("Юрий", "yury"), ("Константин", "konstantin"), ("Никита", "nikita"),
)  # fmt: skip
_CYR_FEMALE: Final = (
    ("Анна", "anna"), ("Мария", "maria"), ("Елена", "elena"), ("Ольга", "olga"), ("Наталья", "natalya"),
    ("Татьяна", "tatyana"), ("Ирина", "irina"), ("Екатерина", "ekaterina"), ("Светлана", "svetlana"),
    ("Юлия", "yulia"), ("Дарья", "darya"), ("Ксения", "ksenia"), ("Полина", "polina"),
    ("Алёна", "alena"), ("Виктория", "viktoria"), ("Софья", "sofya"),
)  # fmt: skip
# Russian surnames: (masculine, transliteration). The feminine adds "а" (Петров -> Петрова), and its
# transliteration adds "a": every surname here follows that rule.
_CYR_LAST: Final = (
    ("Петров", "petrov"), ("Иванов", "ivanov"), ("Смирнов", "smirnov"), ("Кузнецов", "kuznetsov"),
    ("Попов", "popov"), ("Васильев", "vasilyev"), ("Соколов", "sokolov"), ("Михайлов", "mikhaylov"),
    ("Новиков", "novikov"), ("Фёдоров", "fedorov"), ("Морозов", "morozov"), ("Волков", "volkov"),
    ("Алексеев", "alekseev"), ("Лебедев", "lebedev"), ("Семёнов", "semenov"), ("Егоров", "egorov"),
    ("Павлов", "pavlov"), ("Козлов", "kozlov"), ("Степанов", "stepanov"), ("Николаев", "nikolaev"),
)  # fmt: skip
_EMOJI: Final = ("🌸", "🔥", "⭐", "😀", "🎉", "💎")

# First names laid end to end: [latin male | latin female | cyrillic male | cyrillic female], each
# as (written, e-mail form). Surnames: [latin | cyrillic masculine | cyrillic feminine].
_FIRST_TABLES: Final = (
    tuple((s, s.lower()) for s in _LATIN_MALE),
    tuple((s, s.lower()) for s in _LATIN_FEMALE),
    _CYR_MALE,
    _CYR_FEMALE,
)
_FIRST_NAMES: Final = tuple(s for t in _FIRST_TABLES for s, _ in t)
_FIRST_LATIN: Final = tuple(a for t in _FIRST_TABLES for _, a in t)
_LAST_NAMES: Final = (*_LATIN_LAST, *(m for m, _ in _CYR_LAST), *(m + "а" for m, _ in _CYR_LAST))
_LAST_LATIN: Final = (
    *(s.lower() for s in _LATIN_LAST),
    *(t for _, t in _CYR_LAST),
    *(t + "a" for _, t in _CYR_LAST),
)

# Reserved for examples (RFC 2606 / 6761): no address here belongs to anyone.
_DOMAINS: Final = ("mail.example", "example.net", "example.org", "example.com")
_DOMAIN_P: Final = (0.40, 0.22, 0.23, 0.15)
# Local-part styles: first.last12, firstlast12, f.last12, first_last12 (separator, initial only).
_STYLES: Final = ((".", False), ("", False), (".", True), ("_", False))
_STYLE_P: Final = (0.55, 0.15, 0.15, 0.15)

# (city, phone country, weight); None is a missing city. Dirty spellings are on purpose.
_CITIES: Final = (
    ("Moscow", "RU", 0.20), ("Москва", "RU", 0.08), ("Saint Petersburg", "RU", 0.12),
    ("Санкт-Петербург", "RU", 0.04), ("Kazan", "RU", 0.06), ("Novosibirsk", "RU", 0.06),
    ("Yekaterinburg", "RU", 0.05), ("Екатеринбург", "RU", 0.02), ("Nizhny Novgorod", "RU", 0.04),
    ("Krasnodar", "RU", 0.05), ("Samara", "RU", 0.04), ("Rostov-on-Don", "RU", 0.02), ("Sochi", "RU", 0.03),
    ("London", "UK", 0.08), ("Berlin", "DE", 0.05), ("New York", "US", 0.03),
    ("moscow", "RU", 0.01), ("Moscow ", "RU", 0.01), (None, "RU", 0.01),
)  # fmt: skip
_COUNTRIES: Final = ("RU", "UK", "US", "DE")
# Country of the 5% whose phone is not from their city's country.
_ELSEWHERE_P: Final = (0.4, 0.3, 0.2, 0.1)

# Mobile prefixes that libphonenumber accepts for every subscriber number, so that a phone
# meant to be clean really is valid (tests check it), per country in _COUNTRIES order.
_PHONE_CODES: Final = (
    (900, 901, 902, 903, 904, 905, 906, 908, 909, *range(910, 930), 950, 951, 952, 953, 958,
     *range(960, 970), 977, 978, *range(980, 990), *range(991, 1000)),
    (*range(7400, 7600), *range(7701, 7911), *range(7912, 8000)),
    (212, 310, 415, 646, 617, 312, 206, 512),
    (151, 152, 157, 176, 177, 178, 179),
)  # fmt: skip
# Subscriber digits per country (the US ones are exchange 200-999 + line).
_PHONE_WIDTH: Final = (7, 6, 7, 8)
# How people type them: (country, weight, prefix, sep1, sep2, sep3, group1, group2); the phone is
# prefix + code + sep1 + digits[:g1] + sep2 + digits[g1:g1+g2] + sep3 + digits[g1+g2:].
_PHONE_TEMPLATES: Final = (
    (0, 0.40, "+7", "", "", "", 3, 2),  # +79001234567
    (0, 0.20, "8 (", ") ", "-", "-", 3, 2),  # 8 (900) 123-45-67
    (0, 0.20, "+7 ", " ", "-", "-", 3, 2),  # +7 900 123-45-67
    (0, 0.15, "8", "", "", "", 3, 2),  # 89001234567
    (0, 0.05, "7", "", "", "", 3, 2),  # 79001234567
    (1, 0.70, "+44 ", " ", "", "", 6, 0),  # +44 7911 123456
    (1, 0.30, "+44", "", "", "", 6, 0),  # +447911123456
    (2, 0.50, "+1 (", ") ", "-", "", 3, 4),  # +1 (415) 555-0134
    (2, 0.50, "+1 ", " ", " ", "", 3, 4),  # +1 415 555 0134
    (3, 1.00, "+49 ", " ", "", "", 8, 0),  # +49 151 23456789
)
_BAD_PHONES: Final = ("12345", "+000000000000", "call me", "+7900123456789012", "8 (900) 123-45", "n/a")

_TAGS: Final = ("newsletter", "vip", "loyalty", "mobile_app", "black_friday", "churn_risk", "b2b")
_TAG_P: Final = (0.35, 0.05, 0.20, 0.25, 0.10, 0.08, 0.03)
# Every subset of _TAGS, indexed by its bit mask: a row's tags are one gather from this list.
_TAG_COMBOS: Final = pl.Series(
    "tags",
    [[t for j, t in enumerate(_TAGS) if mask >> j & 1] for mask in range(1 << len(_TAGS))],
    dtype=pl.List(pl.String),
)

# Dirt rates (per row). E-mail states are exclusive: one uniform per row picks one of them.
_EMAIL_MISSING: Final = 0.02
_EMAIL_MALFORMED: Final = 0.015
_EMAIL_PADDED: Final = 0.03
_EMAIL_DUPLICATE: Final = 0.01
_PHONE_MISSING: Final = 0.05
_PHONE_MALFORMED: Final = 0.015
_NAME_PADDED: Final = 0.02
_EMOJI_EVERY: Final = 2000  # one emoji first name per this many rows, at row 17 of each block
_EMOJI_AT: Final = 17

_SIGNUP_START: Final = dt.date(2018, 1, 1)
_SIGNUP_END: Final = dt.date(2025, 6, 30)
_ORDERS_END: Final = dt.datetime(2026, 1, 1)

# E-mail states (the work frame's `state` column).
_CLEAN, _MISSING, _MALFORMED, _PADDED, _DUP = 0, 1, 2, 3, 4


# --- random streams ------------------------------------------------------------------------
# One stream per purpose, each used by exactly one draw of shape (n,) or (n, k). Row i therefore
# only ever sees the first values of each stream, whatever n is: prefixes are stable, and adding
# a new stream later does not shift the others. The ids are part of the content: never reuse one.
_S_SCRIPT, _S_NAMES, _S_EMAIL, _S_DUP, _S_PHONE, _S_CITY, _S_DATES, _S_ORDERS, _S_TAGS, _S_OPT = range(10)


def _uniform(seed: int, stream: int, n: int, k: int = 1) -> np.ndarray:
    """``(n, k)`` uniforms in [0, 1) from the stream ``stream`` of ``seed``."""
    return np.random.default_rng([stream, seed]).random((n, k))


def _pick(u: np.ndarray, size: int) -> np.ndarray:
    """Uniform index in ``range(size)`` from uniforms (floor keeps it < size: u < 1)."""
    return (u * size).astype(np.int64)


def _weighted(u: np.ndarray, weights: tuple[float, ...]) -> np.ndarray:
    """Index drawn with the given weights (normalized) from uniforms."""
    cdf = np.cumsum(weights) / np.sum(weights)
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(weights) - 1)


def _roots(u: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pick, for each duplicate row, the earlier row it copies; return (root, state).

    A duplicate copies a row whose e-mail is usable (clean, padded, or itself a duplicate), so a
    duplicate is always detectable as one. Up to ``u.shape[1]`` tries per row; a duplicate with
    no usable earlier row (row 0, or all tries dirty: ~1e-6) becomes a clean row. ``root`` is the
    first row of the chain (a duplicate of a duplicate copies the original).
    """
    n = len(state)
    rows = np.arange(n)
    usable = (state == _CLEAN) | (state == _PADDED) | (state == _DUP)
    src = rows.copy()
    pending = state == _DUP
    for t in range(u.shape[1]):
        cand = np.minimum((u[:, t] * rows).astype(np.int64), np.maximum(rows - 1, 0))
        ok = pending & (rows > 0) & usable[cand]
        src[ok] = cand[ok]
        pending &= ~ok
    state = np.where(pending, _CLEAN, state)
    # Pointer jumping: src[i] < i for duplicates, so log2(n) rounds reach the original row.
    root = src
    while True:
        nxt = root[root]
        if np.array_equal(nxt, root):
            return root, state
        root = nxt


# --- the builder ---------------------------------------------------------------------------
@overload
def sample_customers(n: int = ..., seed: int = ..., kind: Literal["pandas"] = ...) -> pd.DataFrame: ...
@overload
def sample_customers(n: int = ..., seed: int = ..., *, kind: Literal["polars"]) -> pl.DataFrame: ...
@overload
def sample_customers(n: int, seed: int, kind: Literal["polars"]) -> pl.DataFrame: ...
@overload
def sample_customers(n: int = ..., seed: int = ..., kind: Kind = ...) -> pd.DataFrame | pl.DataFrame: ...
def sample_customers(n: int = 5000, seed: int = 0, kind: Kind = "pandas") -> pd.DataFrame | pl.DataFrame:
    """A deterministic, realistic and dirty customer segment of ``n`` rows.

    Args:
        n: number of rows (0 is allowed).
        seed: any non-negative integer; the same ``(n, seed)`` always gives the same frame.
        kind: ``"pandas"`` (default) or ``"polars"``.

    Returns:
        A frame with the columns of :data:`COLUMNS`. Polars dtypes: ``String`` for the text
        columns, ``Date``, ``Datetime("us")``, ``Int64``, ``Float64``, ``List(String)``,
        ``Boolean``. Pandas dtypes: ``str`` for text (NaN for missing), ``datetime64[ms]`` for
        ``signup_date``, ``datetime64[us]`` for ``last_order_at`` (NaT for missing), nullable
        ``Int64`` for ``orders``, ``float64`` for ``revenue`` (NaN for missing), ``bool``, and
        ``tags`` as Python lists of str.

    Raises:
        InvalidArgumentError: ``n`` or ``seed`` is not a non-negative integer, or ``kind`` is
            neither ``"pandas"`` nor ``"polars"``.

    Example:
        >>> df = sample_customers(4, seed=7, kind="polars")
        >>> df.shape, df["orders"].dtype, df["tags"].dtype
        ((4, 12), Int64, List(String))
        >>> sample_customers(0).shape
        (0, 12)
    """
    for name, value in (("n", n), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
            raise InvalidArgumentError(
                f"sample_customers: {name} must be a non-negative integer, got {value!r}"
            )
    if kind not in ("pandas", "polars"):
        raise InvalidArgumentError(f"sample_customers: kind must be 'pandas' or 'polars', got {kind!r}")
    frame = _build(int(n), int(seed))
    if kind == "polars":
        _POLARS_SAMPLES[id(frame)] = frame
        return frame
    out = _to_pandas(frame)
    out.attrs[SAMPLE_ATTR] = True
    return out


def _build(n: int, seed: int) -> pl.DataFrame:
    rows = np.arange(n, dtype=np.int64)

    # -- e-mail state first: a duplicate copies an earlier person, so every person attribute
    # below is gathered through `root` before any text is built.
    u = _uniform(seed, _S_EMAIL, n, 3)
    state = _weighted(
        u[:, 0],
        (
            1 - _EMAIL_MISSING - _EMAIL_MALFORMED - _EMAIL_PADDED - _EMAIL_DUPLICATE,
            _EMAIL_MISSING,
            _EMAIL_MALFORMED,
            _EMAIL_PADDED,
            _EMAIL_DUPLICATE,
        ),
    )
    email_variant = _pick(u[:, 1], 4)  # which kind of dirt (or of case change, for a duplicate)
    style = _weighted(u[:, 2], _STYLE_P)
    root, state = _roots(_uniform(seed, _S_DUP, n, 4), state)

    # -- who each row is: script, gender, names, e-mail domain --------------------------------
    u = _uniform(seed, _S_SCRIPT, n, 2)
    cyrillic = u[:, 0] < 0.30
    female = u[:, 1] < 0.5
    u = _uniform(seed, _S_NAMES, n, 5)
    sizes = np.array([len(t) for t in _FIRST_TABLES])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    group = cyrillic * 2 + female
    first_idx = offsets[group] + (u[:, 0] * sizes[group]).astype(np.int64)
    n_lat, n_cyr = len(_LATIN_LAST), len(_CYR_LAST)
    last_idx = np.where(cyrillic, n_lat + _pick(u[:, 1], n_cyr) + female * n_cyr, _pick(u[:, 1], n_lat))
    pad_first = _weighted(u[:, 2], (1 - _NAME_PADDED, _NAME_PADDED / 2, _NAME_PADDED / 2))
    pad_last = _weighted(u[:, 3], (1 - _NAME_PADDED, _NAME_PADDED / 2, _NAME_PADDED / 2))
    domain = _weighted(u[:, 4], _DOMAIN_P)

    # -- city, and a phone from the city's country (5% carry one from elsewhere) ---------------
    city_idx = _weighted(_uniform(seed, _S_CITY, n)[:, 0], tuple(w for _, _, w in _CITIES))
    u = _uniform(seed, _S_PHONE, n, 6)
    city_country = np.array([_COUNTRIES.index(c) for _, c, _ in _CITIES], dtype=np.int64)[city_idx]
    country = np.where(u[:, 0] < 0.95, city_country, _weighted(u[:, 1], _ELSEWHERE_P))
    phone_state = _weighted(
        u[:, 2], (1 - _PHONE_MISSING - _PHONE_MALFORMED, _PHONE_MISSING, _PHONE_MALFORMED)
    )
    phone_u = u[:, 3:6]  # template, operator code, subscriber number

    # The e-mail number is the row's own (plus one): it makes every clean address unique.
    person = [
        first_idx,
        last_idx,
        pad_first,
        pad_last,
        domain,
        style,
        rows + 1,
        country,
        phone_state,
        phone_u,
    ]
    first_idx, last_idx, pad_first, pad_last, domain, style, number, country, phone_state, phone_u = (
        a[root] for a in person
    )

    # -- dates and money ----------------------------------------------------------------------
    u = _uniform(seed, _S_DATES, n, 2)
    days = _pick(u[:, 0], (_SIGNUP_END - _SIGNUP_START).days + 1)
    signup = np.datetime64(_SIGNUP_START, "D") + days.astype("timedelta64[D]")
    # A whole second between the signup's midnight and _ORDERS_END.
    window_s = (np.datetime64(_ORDERS_END, "s") - signup.astype("datetime64[s]")).astype(np.int64)
    last_order = signup.astype("datetime64[us]") + (u[:, 1] * window_s).astype("timedelta64[s]")

    u = _uniform(seed, _S_ORDERS, n, 5)
    orders_null = u[:, 0] < 0.04
    # 15% never ordered; the rest Geometric(p=0.3) counts (inverse CDF: one uniform per row).
    orders = np.where(u[:, 1] < 0.15, 0, 1 + np.floor(np.log1p(-u[:, 2]) / np.log(0.7)).astype(np.int64))
    # Baskets log-normal around 2,500 with a long tail (normal quantile of a uniform), to cents.
    revenue = np.round(orders * 2500.0 * np.exp(0.9 * _norm_ppf(u[:, 3])), 2)
    revenue_null = orders_null | (u[:, 4] < 0.02)

    u = _uniform(seed, _S_TAGS, n, len(_TAGS))
    tag_mask = ((u < np.array(_TAG_P)) << np.arange(len(_TAGS))).sum(axis=1)
    opt_in = _uniform(seed, _S_OPT, n)[:, 0] < 0.80

    # -- text, vectorized in polars -------------------------------------------------------------
    # polars computes every branch of a when/then for every row, so clean text is one concat_str
    # of looked-up pieces, and only the few dirty rows are rewritten, on their own.
    work = pl.DataFrame(
        {
            "row": rows,
            "first_idx": first_idx,
            "last_idx": last_idx,
            "pad_first": pad_first,
            "pad_last": pad_last,
            "domain": domain,
            "style": style,
            "number": number,
            "state": state,
            "variant": email_variant,
            **_phone_parts(country, phone_u),
            "phone_state": phone_state,
            "city_idx": city_idx,
            "signup": signup,
            "last_order": last_order,
            "no_last_order": orders_null | (orders == 0),
            "orders": orders,
            "orders_null": orders_null,
            "revenue": revenue,
            "revenue_null": revenue_null,
            "tag_mask": tag_mask,
            "opt_in": opt_in,
        },
        schema_overrides={"row": pl.Int64, "signup": pl.Date, "last_order": pl.Datetime("us")},
    ).with_columns(_email_parts())
    dirty = work.filter(pl.col("state") != _CLEAN).select("row", _dirty_email().alias("email"))
    email = work["clean"].scatter(dirty["row"], dirty["email"]) if len(dirty) else work["clean"]

    return work.select(
        pl.concat_str(pl.lit("CRM-"), (pl.col("row") + 1).cast(pl.String).str.zfill(6)).alias("crm_id"),
        _first_name().alias("first_name"),
        _padded(_lookup(_LAST_NAMES, "last_idx"), pl.col("pad_last")).alias("last_name"),
        pl.lit(email.alias("email")),
        _phone().alias("phone"),
        _lookup(tuple(c for c, _, _ in _CITIES), "city_idx").alias("city"),
        pl.col("signup").alias("signup_date"),
        pl.when(~pl.col("no_last_order")).then(pl.col("last_order")).alias("last_order_at"),
        pl.when(~pl.col("orders_null")).then(pl.col("orders")).alias("orders"),
        pl.when(~pl.col("revenue_null")).then(pl.col("revenue")).alias("revenue"),
        pl.lit(_TAG_COMBOS).gather(pl.col("tag_mask")).alias("tags"),
        pl.col("opt_in").alias("email_opt_in"),
    )


def _norm_ppf(u: np.ndarray) -> np.ndarray:
    """Standard normal quantile (Acklam's rational approximation, relative error < 1.2e-9).

    numpy has no quantile function and scipy is not a dependency; a quantile spends exactly one
    uniform per row, which keeps row prefixes stable (``rng.normal`` makes no such promise).
    """
    a = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02, 1.383577518672690e02,
         -3.066479806614716e01, 2.506628277459239e00)  # fmt: skip
    b = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02, 6.680131188771972e01,
         -1.328068155288572e01)  # fmt: skip
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00, -2.549732539343734e00,
         4.374664141464968e00, 2.938163982698783e00)  # fmt: skip
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
    u = np.clip(u, 1e-12, 1 - 1e-12)
    low = 0.02425
    out = np.empty_like(u)
    mid = (u >= low) & (u <= 1 - low)
    q = u[mid] - 0.5
    r = q * q
    out[mid] = (
        (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5])
        * q
        / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    )
    for tail, sign, p in ((u < low, 1.0, u), (u > 1 - low, -1.0, 1 - u)):
        q = np.sqrt(-2 * np.log(p[tail]))
        out[tail] = (
            sign
            * (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5])
            / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
        )
    return out


def _phone_parts(country: np.ndarray, u: np.ndarray) -> dict[str, np.ndarray]:
    """Integer columns from which :func:`_phone` assembles each row's phone text.

    ``u`` holds three uniforms per row: typing template (also the malformed value), operator
    code, subscriber number.
    """
    n = len(country)
    tpl = np.zeros(n, dtype=np.int64)
    code = np.zeros(n, dtype=np.int64)
    digits = np.zeros(n, dtype=np.int64)
    code_offset = 0
    for c, (codes, width) in enumerate(zip(_PHONE_CODES, _PHONE_WIDTH, strict=True)):
        here = country == c
        ids = [i for i, t in enumerate(_PHONE_TEMPLATES) if t[0] == c]
        tpl[here] = ids[0] + _weighted(u[here, 0], tuple(_PHONE_TEMPLATES[i][1] for i in ids))
        code[here] = code_offset + _pick(u[here, 1], len(codes))
        sub = _pick(u[here, 2], 10**width)
        if _COUNTRIES[c] == "US":  # exchange 200..999, then a 4-digit line
            sub = (200 + sub // 10_000 % 800) * 10_000 + sub % 10_000
        digits[here] = sub
        code_offset += len(codes)
    width = np.array(_PHONE_WIDTH)[country]
    g1 = np.array([t[6] for t in _PHONE_TEMPLATES])[tpl]
    g2 = np.array([t[7] for t in _PHONE_TEMPLATES])[tpl]
    # Digits are zero-padded to 8 characters; a country's own digits start at 8 - width.
    start = 8 - width
    return {
        "tpl": tpl,
        "code": code,
        "digits": digits,
        "o1": start,
        "l1": g1,
        "o2": start + g1,
        "l2": g2,
        "o3": start + g1 + g2,
        "l3": width - g1 - g2,
        "bad": _pick(u[:, 0], len(_BAD_PHONES)),
    }


def _lookup(values: tuple[str | None, ...], index: str) -> pl.Expr:
    """``values[index]`` per row, as a String column."""
    return pl.lit(pl.Series(values, dtype=pl.String)).gather(pl.col(index))


def _phone() -> pl.Expr:
    d = pl.col("digits").cast(pl.String).str.zfill(8)
    valid = pl.concat_str(
        _lookup(tuple(t[2] for t in _PHONE_TEMPLATES), "tpl"),
        _lookup(tuple(str(c) for codes in _PHONE_CODES for c in codes), "code"),
        _lookup(tuple(t[3] for t in _PHONE_TEMPLATES), "tpl"),
        d.str.slice(pl.col("o1"), pl.col("l1")),
        _lookup(tuple(t[4] for t in _PHONE_TEMPLATES), "tpl"),
        d.str.slice(pl.col("o2"), pl.col("l2")),
        _lookup(tuple(t[5] for t in _PHONE_TEMPLATES), "tpl"),
        d.str.slice(pl.col("o3"), pl.col("l3")),
    )
    state = pl.col("phone_state")  # 0 valid, 1 missing, 2 malformed
    return pl.when(state == 0).then(valid).when(state == 2).then(_lookup(_BAD_PHONES, "bad"))


def _email_parts() -> list[pl.Expr]:
    """The local part (``ivan.petrov12``) and the clean address, for every row."""
    first = _lookup(_FIRST_LATIN, "first_idx")
    initial_only = pl.lit(pl.Series([i for _, i in _STYLES], dtype=pl.Boolean)).gather(pl.col("style"))
    local = pl.concat_str(
        pl.when(initial_only).then(first.str.slice(0, 1)).otherwise(first),
        _lookup(tuple(sep for sep, _ in _STYLES), "style"),
        _lookup(_LAST_LATIN, "last_idx"),
        pl.col("number").cast(pl.String),
    )
    return [
        local.alias("local"),
        pl.concat_str(local, pl.lit("@"), _lookup(_DOMAINS, "domain")).alias("clean"),
    ]


def _dirty_email() -> pl.Expr:
    """The address of a row whose e-mail state is not clean (evaluated on those rows only)."""
    local, clean, dom = pl.col("local"), pl.col("clean"), _lookup(_DOMAINS, "domain")
    first, last = _lookup(_FIRST_LATIN, "first_idx"), _lookup(_LAST_LATIN, "last_idx")
    title = clean.str.to_titlecase()  # "John.Smith12@Mail.Example"
    v = pl.col("variant")
    padded = (
        pl.when(v == 0)
        .then(pl.concat_str(pl.lit("  "), clean, pl.lit(" ")))  # "  john.smith12@mail.example "
        .when(v == 1)
        .then(clean.str.to_uppercase())  # "JOHN.SMITH12@MAIL.EXAMPLE"
        .when(v == 2)
        .then(pl.concat_str(pl.lit("  "), local.str.to_titlecase(), pl.lit("@"), dom.str.to_uppercase()))
        .otherwise(pl.concat_str(title, pl.lit(" ")))  # "John.Smith12@Mail.Example "
    )
    malformed = (
        pl.when(v == 0)
        .then(pl.concat_str(local, pl.lit("@")))  # "john.smith12@"
        .when(v == 1)
        .then(pl.concat_str(first, pl.lit(" "), last, pl.col("number").cast(pl.String), pl.lit("@"), dom))
        .when(v == 2)
        .then(pl.concat_str(pl.lit("@"), dom))  # "@example.com"
        .otherwise(pl.concat_str(first, pl.lit(".."), last, pl.lit("@x.example")))  # "john..smith@x.example"
    )
    # The same person imported twice: half keep the exact address, the rest change its case.
    duplicate = pl.when(v <= 1).then(clean).when(v == 2).then(clean.str.to_uppercase()).otherwise(title)
    state = pl.col("state")
    return (
        pl.when(state == _PADDED)
        .then(padded)
        .when(state == _MALFORMED)
        .then(malformed)
        .when(state == _DUP)
        .then(duplicate)
        .otherwise(pl.lit(None, dtype=pl.String))  # _MISSING
    )


def _padded(text: pl.Expr, pad: pl.Expr) -> pl.Expr:
    """Pad 0 = as is, 1 = a leading space (``" Beckham"``), 2 = a trailing one."""
    return (
        pl.when(pad == 1)
        .then(pl.concat_str(pl.lit(" "), text))
        .when(pad == 2)
        .then(pl.concat_str(text, pl.lit(" ")))
        .otherwise(text)
    )


def _first_name() -> pl.Expr:
    name = _padded(_lookup(_FIRST_NAMES, "first_idx"), pl.col("pad_first"))
    row = pl.col("row")
    emoji = pl.lit(pl.Series(_EMOJI, dtype=pl.String)).gather(row // _EMOJI_EVERY % len(_EMOJI))
    return (
        pl.when(row % _EMOJI_EVERY == _EMOJI_AT).then(pl.concat_str(name, pl.lit(" "), emoji)).otherwise(name)
    )


def _to_pandas(frame: pl.DataFrame) -> pd.DataFrame:
    """Convert with pandas-native dtypes: nullable ``Int64`` counts, lists (not arrays) for tags."""
    import pandas as pd
    import pyarrow as pa

    # By default pyarrow turns an int column with nulls into float64 and a list into a numpy
    # array per cell; both surprise analysts (``3.0`` orders, ``array([...], dtype=object)``).
    out = frame.drop("tags").to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    out.insert(COLUMNS.index("tags"), "tags", pd.Series(frame["tags"].to_list(), dtype=object))
    return out
