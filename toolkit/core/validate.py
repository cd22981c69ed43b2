"""Normalize and validate a segment with vectorized polars expressions.

Well-formed values are settled by one regular expression over the whole column; only the
values that fail it (the dirty rows) go to the exact, slower parsers (``phonenumbers``,
``email-validator``), once per distinct value. So validation cost scales with the dirt,
not with the segment.

Every rejected row gets a ``rule`` (a short code to group by) and a ``reason`` (a sentence
naming the column and the value). Rules, in the order they are checked:

==========================  ==================================================================
``invalid_email``           an ``email`` field that is not an email address
``invalid_phone``           a ``phones`` field that is not a phone number (international, or
                            national in ``phone_region``)
``invalid_ip``              ``_ip`` / ``_regip`` that is not IPv4
``invalid_date``            ``_bdate`` / ``_regdate`` that is not ``YYYY-MM-DD`` or RFC 3339; a
                            date or datetime outside the years 0001-9999 (in UTC)
``invalid_number``          an infinite float
``invalid_value``           a value of a mixed column (pandas ``object``) the field cannot take:
                            text among numbers, a dict, bytes, ...
``invalid_text``            text holding control characters XML cannot carry (XML plans)
``invalid_subscription``    a subscription contact that is invalid (unless
                            ``skip_invalid_subscriptions``: then only that subscription goes)
``missing_key``             no value to match the profile on, for the matching mode
``duplicate``               the same match key as an earlier row (``duplicates="first"``)
==========================  ==================================================================

Example:
    >>> import polars as pl
    >>> from toolkit.core.mapping import Mapping, Trigger
    >>> df = pl.DataFrame({"email": ["  Ann@X.io ", "bad@", None], "phone": ["8 (900) 123-45-67", None, "+7 900 1"]})
    >>> prepared = prepare(df, Mapping({"email": "email", "phone": "phones"}), Trigger(1))
    >>> prepared.valid_frame.select("__tk_f0", "__tk_f1").rows()
    [('ann@x.io', '+79001234567')]
    >>> prepared.rejected.get_column(RULE).to_list()
    ['invalid_email', 'invalid_phone']
"""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import math
import re
from collections.abc import Callable, Sequence
from collections.abc import Mapping as AbcMapping
from dataclasses import dataclass, field, replace
from typing import Literal

import email_validator
import numpy as np
import phonenumbers
import polars as pl

from toolkit.core.contract import (
    CONTACT_FIELDS,
    DATE_FIELDS,
    EMAIL_FIELD,
    IP_FIELDS,
    PHONE_FIELD,
    PROFILE_ID_FIELD,
    SYSTEM_FIELDS,
    Format,
)
from toolkit.core.mapping import Mapping, Trigger
from toolkit.errors import ColumnNotFoundError, InvalidArgumentError, did_you_mean

__all__ = ["RULES", "TEXT_FIELDS", "Duplicates", "Prepared", "is_identifier_name", "prepare", "text_fields"]

Duplicates = Literal["first", "last", "keep"]

RULES = (
    "invalid_email", "invalid_phone", "invalid_ip", "invalid_date", "invalid_number", "invalid_value",
    "invalid_text", "invalid_subscription", "missing_key", "duplicate", "too_large",
)  # fmt: skip

# Internal column names carry a prefix no analyst's column is likely to use.
POS, RULE, REASON, KEY = "__tk_pos", "__tk_rule", "__tk_reason", "__tk_key"

# The fast checks. Anything they refuse goes to the exact parser, never straight to rejection.
_EMAIL_FAST = r"^[a-z0-9_%+\-]+(?:\.[a-z0-9_%+\-]+)*@(?:[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
_PHONE_FAST = r"^\+[1-9][0-9]{7,14}$"
# the usual separators, removed by plain substring replacement (fast); any other character
# (a non-breaking space, a letter) fails the fast check and goes to phonenumbers
_PHONE_SEPARATORS = (" ", "-", "(", ")", ".", "\t")
_IPV4 = (
    r"^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])$"
)
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
# the time and the offset are checked by their ranges (a leap second may be 60); the date by parsing
_RFC3339 = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ](?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)(?:\.[0-9]+)?"
    r"(?:[Zz]|[+\-](?:[01][0-9]|2[0-3]):[0-5][0-9])$"
)
_XML_ILLEGAL = "[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]"
_RFC3339_FORMAT = "%Y-%m-%dT%H:%M:%S%.fZ"
_NEEDS_ESCAPE = '["\\\\\x00-\x1f&<>]'  # in JSON or in XML

#: System fields that hold text: a number mapped to one is sent as its digits (``"12345"``).
TEXT_FIELDS = frozenset(SYSTEM_FIELDS - DATE_FIELDS - IP_FIELDS)
# Words that make a name an identifier (``crm_id``, ``CustomerID``, ``phone``, ``ИНН``).
_ID_WORDS = frozenset(
    [
        "id",
        "phone",
        "phones",
        "tel",
        "telephone",
        "mobile",
        "msisdn",
        "zip",
        "zipcode",
        "postcode",
        "postal",
        "inn",
        "kpp",
        "snils",
        "ogrn",
        "passport",
        "account",
        "телефон",
        "тел",
        "мобильный",
        "инн",
        "индекс",
        "снилс",
        "огрн",
    ]
)


def is_identifier_name(name: str) -> bool:
    """True for names that mean an identifier: ``crm_id``, ``CRM_ID``, ``customerId``, ``Phone``.

    Example:
        >>> [is_identifier_name(n) for n in ("crm_id", "CRM_ID", "customerId", "phone", "paid", "orders")]
        [True, True, True, True, False, False]
    """
    spaced = re.sub(r"(?<=[a-zа-яё])(?=[A-ZА-ЯЁ])", " ", name)
    return any(word in _ID_WORDS for word in re.split(r"[^0-9a-zа-яё]+", spaced.lower()) if word)


def text_fields(mapping: Mapping) -> frozenset[str]:
    """The mapping's fields that take text: system text fields, the custom match field, and
    fields named like identifiers (``CRM_ID``).

    Example:
        >>> sorted(text_fields(Mapping({"a": "CRM_ID", "b": "orders", "c": "_city", "d": "email"})))
        ['CRM_ID', '_city', 'email']
    """
    return frozenset(
        f for f in mapping.fields.values()
        if f in TEXT_FIELDS or f == mapping.match_field or is_identifier_name(f)
    )  # fmt: skip


@dataclass(frozen=True)
class Prepared:
    """The segment after validation: what the encoder needs, row for row.

    ``frame`` holds every input row, normalized: ``POS`` (input position), one column per
    field (``__tk_f0``, ... in mapping order), one per subscription contact (``__tk_s0``,
    ...) and the match key ``KEY``. ``valid`` lists the row numbers of ``frame`` to send, in
    order (rows are not copied: a batch gathers its own). ``rejected`` holds ``POS``,
    ``RULE`` and ``REASON`` of the others, in input order.
    """

    frame: pl.DataFrame
    valid: np.ndarray
    rejected: pl.DataFrame
    fields: tuple[tuple[str, str], ...]  # (profile field, column in frame)
    subscriptions: tuple[str, ...]  # column in frame per mapping.subscriptions entry
    clean: frozenset[str] = frozenset()  # text columns whose valid values need no escaping (JSON, XML)
    whole_floats: frozenset[str] = frozenset()  # float columns sent as integers
    notes: tuple[str, ...] = ()  # how columns were read that the analyst may not expect

    @property
    def valid_frame(self) -> pl.DataFrame:
        """The valid rows only (a copy)."""
        return self.frame[self.valid]

    def keep(self, mask: np.ndarray) -> Prepared:
        """The same, sending only the valid rows where ``mask`` (one flag per valid row) is true."""
        return replace(self, valid=self.valid[mask])


def _quoted(expr: pl.Expr) -> pl.Expr:
    """A value as it appears in a reason: quoted, cut at 60 characters."""
    text = expr.cast(pl.String)
    cut = pl.when(text.str.len_chars() > 60).then(text.str.slice(0, 57) + "...").otherwise(text)
    return pl.lit("'") + cut + pl.lit("'")


def _blank_to_null(expr: pl.Expr) -> pl.Expr:
    stripped = expr.str.strip_chars()
    return pl.when(stripped.str.len_bytes() > 0).then(stripped)


def _parse_email(value: str) -> tuple[str | None, str]:
    try:
        info = email_validator.validate_email(value, check_deliverability=False)
    except email_validator.EmailNotValidError as exc:
        return None, str(exc).rstrip(".")
    return info.normalized.lower(), ""


def _email_shape_problem(texts: pl.Series) -> pl.Series:
    """For the common malformed shapes, the sentence ``email-validator`` would give; else null.

    Only plain text (lower-case letters, digits, ``._%+-``, space, ``@``) is classified, in
    the parser's own order of checks: no @-sign, nothing before it, a space before it, two
    periods in a row before it, nothing after it. The test suite checks every classified
    value against ``email-validator`` itself, exhaustively over a small alphabet.

    Example:
        >>> _email_shape_problem(pl.Series(["ann.x.io", "ann@", "ann@x.io", "@x.io"])).to_list()
        ['An email address must have an @-sign', 'There must be something after the @-sign', None, 'There must be something before the @-sign']
    """
    text = pl.col("t")
    signs = text.str.count_matches("@", literal=True)
    local = text.str.extract(r"^([^@]*)@", 1)
    domain = text.str.extract(r"@([^@]*)$", 1)
    problem = (
        pl.when(~text.str.contains(r"^[a-z0-9._%+\- @]+$"))
        .then(None)
        .when(signs == 0)
        .then(pl.lit("An email address must have an @-sign"))
        .when(signs > 1)
        .then(None)
        .when(local == "")
        .then(pl.lit("There must be something before the @-sign"))
        .when(local.str.contains(" ", literal=True))
        .then(pl.lit("The email address contains invalid characters before the @-sign: SPACE"))
        .when(
            local.str.contains("..", literal=True) & ~local.str.starts_with(".") & ~local.str.ends_with(".")
        )
        .then(pl.lit("An email address cannot have two periods in a row"))
        .when(local.str.contains(r"^[a-z0-9_%+\-]+(?:\.[a-z0-9_%+\-]+)*$") & (domain == ""))
        .then(pl.lit("There must be something after the @-sign"))
    )
    return pl.DataFrame({"t": texts}, schema={"t": pl.String}).select(problem.cast(pl.String)).to_series()


def _phone_parser(region: str | None) -> Callable[[str], tuple[str | None, str]]:
    hint = (
        f"expected +<country code><number>, or a national number of region {region}"
        if region
        else "expected +<country code><number>; pass phone_region='RU' (or yours) to accept national numbers"
    )

    def parse(value: str) -> tuple[str | None, str]:
        try:
            number = phonenumbers.parse(value, region)
        except phonenumbers.NumberParseException:
            return None, hint
        if not phonenumbers.is_valid_number(number):
            return None, hint
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), ""

    return parse


@functools.cache
def _national_pattern(region: str | None) -> tuple[str, str] | None:
    """A (regex, replacement) pair turning the region's usual national forms international.

    Only plain shapes are rewritten: trunk prefix + a national number of one of the region's
    usual lengths (RU: ``8`` + 10 digits -> ``+7`` + 10 digits), and the country code without
    its ``+`` (RU: ``7`` + 10 digits). Anything else goes to ``phonenumbers``.

    Example:
        >>> _national_pattern("RU")
        ('^(?:8|7)([0-9]{10})$', '+7${1}')
    """
    if region is None:
        return None
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None or metadata.general_desc is None:
        return None
    prefix = metadata.national_prefix
    if not prefix or not prefix.isdigit():
        return None
    lengths = sorted(n for n in metadata.general_desc.possible_length if 7 <= n <= 12)
    if not lengths:
        return None
    alternatives = "|".join(f"[0-9]{{{n}}}" for n in lengths)
    code = phonenumbers.country_code_for_region(region)
    return f"^(?:{prefix}|{code})({alternatives})$", f"+{code}${{1}}"


def _chunked_like(series: pl.Series, model: pl.Series) -> pl.Series:
    """``series`` cut into ``model``'s chunks (zero-copy slices).

    A frame whose columns are chunked differently is copied whole by the next ``select``
    to line them up: a million rows would cost their normalized columns twice.
    """
    if model.n_chunks() == series.n_chunks():
        return series
    parts, start = [], 0
    for chunk in model.get_chunks():
        parts.append(series.slice(start, len(chunk)))
        start += len(chunk)
    return pl.concat(parts, rechunk=False)


@functools.cache
def _possible_keys() -> list[int]:
    """``country code * 100 + national number length`` for every length a country's numbers have.

    A code shared by several regions (+1) follows its main region, as ``phonenumbers`` does.
    """
    keys: set[int] = set()
    for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
        main = phonenumbers.region_code_for_country_code(code)
        metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(code, main)
        if metadata is not None and metadata.general_desc is not None:
            keys.update(code * 100 + n for n in metadata.general_desc.possible_length)
    return sorted(keys)


_MAX_DIGITS = 16  # after the '+': E.164 allows 15


@functools.cache
def _possible_table() -> pl.Series:
    """Row ``first three digits * (_MAX_DIGITS + 1) + digit count``: is such a number possible?

    Country codes are one to three digits and none is the start of another, so the first
    three digits and the count settle it.
    """
    keys = set(_possible_keys())
    table = np.zeros(1000 * (_MAX_DIGITS + 1), dtype=bool)
    for prefix in range(1000):
        for count in range(_MAX_DIGITS + 1):
            codes = (prefix // 100, prefix // 10, prefix)
            table[prefix * (_MAX_DIGITS + 1) + count] = any(
                code * 100 + count - k in keys for k, code in enumerate(codes, start=1)
            )
    return pl.Series("possible", table)


def _possible_international(compact: pl.Expr) -> pl.Expr:
    """``+<digits>`` whose country code exists and whose number has a length that country uses.

    What passes is a *possible* number (``phonenumbers.is_possible_number``), settled by one
    table lookup; what fails goes to the exact parser, never straight to rejection.

    Example:
        >>> pl.select(_possible_international(pl.lit(pl.Series(["+79001234567", "+99912345678", "+7900"])))).to_series().to_list()
        [True, False, False]
    """
    prefix = compact.str.slice(1, 3).cast(pl.Int32, strict=False)
    count = (compact.str.len_bytes().cast(pl.Int32) - 1).clip(0, _MAX_DIGITS)
    row = (prefix * (_MAX_DIGITS + 1) + count).fill_null(0)
    return pl.lit(_possible_table()).gather(row).fill_null(False) & prefix.is_not_null()


@dataclass
class _Contact:
    """An email or phone column: settled by the fast check in bulk, the rest by the exact parser.

    The first pass writes ``value`` (the normalized contact where the fast check passed) and
    ``dirty`` (the text where it did not). :meth:`settle` runs the parser once per distinct
    dirty value and writes its results into ``value``.
    """

    column: str
    kind: Literal["email", "phone"]
    text: pl.Expr  # the trimmed (email: lower-cased) text, null when blank
    value: str  # column names in the working frame
    dirty: str
    parse: Callable[[str], tuple[str | None, str]]
    problems: dict[str, str] = field(default_factory=dict)
    clean: bool = True  # no settled value holds a character JSON or XML must escape

    def settle(self, work: pl.DataFrame) -> pl.DataFrame:
        dirty = work.get_column(self.dirty)
        where = dirty.is_not_null().arg_true()
        if len(where) == 0:
            return work
        values = dirty.gather(where)
        distinct = values.unique()
        normalized: dict[str, str | None] = {}
        if self.kind == "email":
            # the usual dirt is told apart in bulk; the parser gets only the rest
            shapes = pl.DataFrame({"text": distinct, "problem": _email_shape_problem(distinct)})
            known = shapes.filter(pl.col("problem").is_not_null())
            self.problems.update(dict(known.iter_rows()))
            normalized.update(dict.fromkeys(self.problems))
            distinct = shapes.filter(pl.col("problem").is_null()).get_column("text")
        for text in distinct.to_list():
            result, problem = self.parse(text)
            normalized[text] = result
            if result is None:
                self.problems[text] = problem
        settled = values.replace_strict(normalized, return_dtype=pl.String)
        # the fast checks admit no such character; the exact parsers may (quoted local parts)
        self.clean = not settled.str.contains(_NEEDS_ESCAPE).any()
        column = work.get_column(self.value).clone()
        column.scatter(where, settled)  # (made contiguous)
        return work.with_columns(_chunked_like(column, work.get_column(POS)))

    @property
    def failed(self) -> pl.Expr:
        return pl.col(self.dirty).is_not_null() & pl.col(self.value).is_null()

    def reason(self, label: str) -> pl.Expr:
        """Why a row failed, quoting its original value (evaluated on rejected rows only)."""
        if self.problems:
            detail = self.text.replace_strict(self.problems, default=None, return_dtype=pl.String)
            because = (
                pl.when(detail.is_not_null()).then(pl.lit(" (") + detail + pl.lit(")")).otherwise(pl.lit(""))
            )
        else:
            because = pl.lit("")
        what = "email address" if self.kind == "email" else "phone number"
        return pl.format(
            "{}: {} is not a valid {}{}", pl.lit(label), _quoted(pl.col(self.column)), pl.lit(what), because
        )


@dataclass(frozen=True)
class _Check:
    """Rows where ``failed`` (an expression over the working frame) is true get ``rule``.

    ``reason`` builds the sentence, an expression over the original columns; it is called
    once the data has been seen and evaluated on the rejected rows only.
    """

    failed: pl.Expr
    rule: str
    reason: Callable[[], pl.Expr]


class _Builder:
    """Walks the mapping once and writes down the expressions of the first pass.

    Nothing is computed here but a few column statistics (whether a float column holds whole
    numbers); the first pass then runs every column's expression in one parallel query.
    """

    def __init__(
        self,
        df: pl.DataFrame,
        format: Format,
        phone_region: str | None,
        whole_floats: frozenset[str] | None = None,
        text: frozenset[str] = frozenset(),
    ) -> None:
        self.df = df
        self.text = text  # profile fields that take text
        self.notes: list[str] = []
        self.schema = df.schema
        self.format = format
        self.phone_region = phone_region
        self.exprs: dict[str, pl.Expr] = {}  # the first pass's output columns
        self.steps: list[dict[str, pl.Expr]] = []  # intermediate columns, by step
        self.checks: list[_Check] = []
        self.contacts: dict[tuple[str, str], _Contact] = {}
        self.shaped: set[str] = set()  # columns whose valid values a strict pattern shaped: nothing to escape
        self.whole = self._whole_floats() if whole_floats is None else whole_floats
        # float columns with no value at all (pandas reads a blank column as NaN floats)
        self.empty = frozenset(
            c
            for c, t in self.schema.items()
            if t.is_float() and df.height and df.get_column(c).is_nan().fill_null(True).all()
        )

    def _whole_floats(self) -> frozenset[str]:
        """Float columns whose finite values are all whole numbers below 2**53 (pandas' ints with NaN)."""
        return whole_floats_of(float_stats(self.df))

    def _new(self, stem: str, expr: pl.Expr) -> str:
        name = f"__tk_{stem}{len(self.exprs)}"
        self.exprs[name] = expr.alias(name)
        return name

    def _step(self, level: int, expr: pl.Expr) -> pl.Expr:
        """An intermediate column, computed once before the outputs that use it.

        The query does not share common subexpressions between outputs by itself: a contact's
        trimmed text, read by its fast check, its value and its dirty part, is built once here.
        """
        while len(self.steps) <= level:
            self.steps.append({})
        name = f"__tk_i{sum(map(len, self.steps))}"
        self.steps[level][name] = expr.alias(name)
        return pl.col(name)

    def first_pass(self, positions: pl.Series) -> pl.DataFrame:
        """Run every expression: intermediate steps in order, each step's columns in parallel."""
        query = self.df.lazy()
        for step in self.steps:
            query = query.with_columns(*step.values())
        return query.select(pl.lit(positions).alias(POS), *self.exprs.values()).collect()

    def _flag(self, failed: pl.Expr, rule: str, column: str, what: str) -> None:
        name = self._new("c", failed.fill_null(False))
        value = pl.col(column)
        if isinstance(self.schema[column], (pl.List, pl.Array)):
            value = pl.lit("[") + value.cast(pl.List(pl.String)).list.join(", ") + pl.lit("]")
        reason = pl.format("column {}: {} {}", pl.lit(repr(column)), _quoted(value), pl.lit(what))
        self.checks.append(_Check(pl.col(name), rule, lambda: reason))

    def _text(self, column: str) -> pl.Expr:
        """The column as trimmed text, blanks null. A number column becomes its digits (a field
        that takes text, or a contact, then checks them like any text)."""
        dtype = self.schema[column]
        if dtype.is_numeric():
            return self._digits(column)
        if dtype == pl.Boolean:
            flag = pl.col(column)
            return pl.when(flag).then(pl.lit("true")).when(~flag).then(pl.lit("false"))
        if dtype not in (pl.String, pl.Categorical) and not isinstance(dtype, pl.Enum):
            raise InvalidArgumentError(
                f"column {column!r} ({dtype}) must hold text for the field it fills: convert it, e.g. "
                f"df[{column!r}] = df[{column!r}].astype('string'), or read the file with "
                "toolkit.read_segment(), which keeps identifiers as text"
            )
        return _blank_to_null(pl.col(column).cast(pl.String))

    def _digits(self, column: str) -> pl.Expr:
        """A number column as text: whole numbers as their digits (``79001234567``, not ``7.9e10``).

        Said once per column in the plan's notes: a float column of whole numbers is what pandas
        makes of an integer column with a blank cell.
        """
        dtype = self.schema[column]
        source = pl.col(column)
        if dtype.is_float():
            self._flag(source.is_infinite(), "invalid_number", column, "is not a finite number")
            finite = pl.when(source.is_finite()).then(source)  # NaN and infinities: left out
            if column in self.whole:
                self._note(column, f"column {column!r} ({dtype}) holds whole numbers: sent as their digits")
                return finite.cast(pl.Int64).cast(pl.String)
            self._note(column, f"column {column!r} ({dtype}) is sent as text, fractions included")
            return finite.cast(pl.String)
        self._note(column, f"column {column!r} ({dtype}) is sent as text (its field takes text)")
        return source.cast(pl.String)

    def _note(self, column: str, note: str) -> None:
        if not any(n.startswith(f"column {column!r} ") for n in self.notes):
            self.notes.append(note)

    def _datetime_text(self, column: str, dtype: pl.DataType) -> pl.Expr:
        """A date or datetime column as the platform's text, rows outside years 1-9999 rejected.

        Naive datetimes are taken as UTC: the platform wants an explicit offset. A year the
        text cannot carry (``0000``, ``+10000``) would be refused by the platform.
        """
        source = pl.col(column)
        if isinstance(dtype, pl.Datetime) and dtype.time_zone:
            source = source.dt.convert_time_zone("UTC")
        year = source.dt.year()
        fits = (year >= 1) & (year <= 9999)
        self._flag(
            ~fits, "invalid_date", column, "is outside the years 0001-9999 (in UTC), which the platform takes"
        )
        text = source.dt.to_string("%Y-%m-%d" if dtype == pl.Date else _RFC3339_FORMAT)
        return pl.when(fits).then(text)

    # -- contacts: computed once per (column, kind), however many fields and subscriptions use it
    def contact(self, column: str, kind: str, label: str, rule: str) -> tuple[str | None, pl.Expr | None]:
        """The contact's working column (None for an all-null column) and, for a subscription, its failure."""
        dtype = self.schema[column]
        if dtype == pl.Null or column in self.empty:
            return None, None
        if kind == "id":
            return self._new("v", _blank_to_null(pl.col(column).cast(pl.String))), None
        if kind == "object":
            return self._new("v", pl.col(column)), None
        contact = self.contacts.get((column, kind))
        if contact is None:
            contact = self._email(column) if kind == "email" else self._phone(column)
            self.contacts[(column, kind)] = contact
        self.checks.append(_Check(contact.failed, rule, lambda: contact.reason(label)))
        return contact.value, contact.failed

    def _email(self, column: str) -> _Contact:
        text = self._text(column).str.to_lowercase()
        trimmed = self._step(0, text)
        fast = self._step(1, trimmed.str.contains(_EMAIL_FAST) & (trimmed.str.len_bytes() <= 254))
        value = self._new("v", pl.when(fast).then(trimmed))
        dirty = self._new("x", pl.when(~fast).then(trimmed))
        return _Contact(column, "email", text, value, dirty, _parse_email)

    def _phone(self, column: str) -> _Contact:
        dtype = self.schema[column]
        text = self._text(column)
        if dtype.is_integer() or (dtype.is_float() and column in self.whole):
            # phones stored as numbers lost their '+' (pandas makes them floats when a cell is
            # blank): the region's national form stays national, any other is international
            national = _national_pattern(self.phone_region)
            international = pl.lit("+") + text
            text = (
                international
                if national is None
                else pl.when(text.str.contains(national[0])).then(text).otherwise(international)
            )
        trimmed = self._step(0, text)
        compact = trimmed.str.replace_many(list(_PHONE_SEPARATORS), [""] * len(_PHONE_SEPARATORS))
        national = _national_pattern(self.phone_region)
        if national is not None:
            # the region's usual national form (RU: 8 900 123-45-67) is rewritten in bulk
            compact = compact.str.replace(*national)
        compact = self._step(1, compact)
        # "+44 (0) 7911 ...": the bracketed trunk 0 is not part of the number: exact parser
        fast = self._step(
            2,
            compact.str.contains(_PHONE_FAST)
            & _possible_international(compact)
            & ~trimmed.str.contains(r"\(\s*0\s*\)"),
        )
        value = self._new("v", pl.when(fast).then(compact))
        dirty = self._new("x", pl.when(~fast).then(trimmed))
        return _Contact(column, "phone", text, value, dirty, _phone_parser(self.phone_region))

    # -- fields ---------------------------------------------------------------------------------
    def field(self, column: str, field: str) -> str | pl.Expr:
        """The field's working column name, or an expression for an all-null column."""
        dtype = self.schema[column]
        if dtype == pl.Null or column in self.empty:
            return pl.lit(None, dtype=pl.String)
        label = f"column {column!r}"
        if field == EMAIL_FIELD or (field == PHONE_FIELD and not isinstance(dtype, pl.List)):
            kind, rule = ("email", "invalid_email") if field == EMAIL_FIELD else ("phone", "invalid_phone")
            working, _ = self.contact(column, kind, label, rule)
            assert working is not None  # contact() says None only for an all-null column, answered above
            return working
        if field in IP_FIELDS:
            text = self._text(column)
            self._flag(text.is_not_null() & ~text.str.contains(_IPV4), "invalid_ip", column,
                       "is not an IPv4 address (e.g. 203.0.113.7)")  # fmt: skip
            name = self._new("v", text)
        elif field in DATE_FIELDS:
            name = self._new("v", self._date_field(column, field))
        elif field in self.text and dtype.is_numeric():
            name = self._new("v", self._digits(column))
            self.shaped.add(name)  # digits, a sign, a point: nothing to escape
        else:
            name = self._new("v", self._by_dtype(column))
        if field in IP_FIELDS or field in DATE_FIELDS or dtype == pl.Date or isinstance(dtype, pl.Datetime):
            self.shaped.add(name)
        return name

    def _date_field(self, column: str, field: str) -> pl.Expr:
        dtype = self.schema[column]
        if dtype == pl.Date or isinstance(dtype, pl.Datetime):
            return self._datetime_text(column, dtype)
        if dtype not in (pl.String, pl.Categorical, pl.Boolean) and not dtype.is_numeric():
            raise InvalidArgumentError(
                f"column {column!r} ({dtype}) is mapped to the date field {field!r}: give dates, "
                "datetimes or 'YYYY-MM-DD' text (e.g. pd.to_datetime(df[col]).dt.date)"
            )
        text = self._text(column)  # numbers too (pandas reads an all-blank column as floats): checked as text
        day = text.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
        shaped = text.str.contains(_DATE) | text.str.contains(_RFC3339)
        self._flag(text.is_not_null() & ~(shaped & day.is_not_null()), "invalid_date", column,
                   "is not a date (YYYY-MM-DD or RFC 3339)")  # fmt: skip
        return text

    def _by_dtype(self, column: str) -> pl.Expr:
        dtype = self.schema[column]
        source = pl.col(column)
        if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
            text = self._text(column)
            if self.format == "xml":
                self._flag(text.str.contains(_XML_ILLEGAL), "invalid_text", column,
                           "holds a control character XML cannot carry")  # fmt: skip
            return text
        if dtype.is_float():
            infinite = source.is_infinite()
            self._flag(infinite, "invalid_number", column, "is not a finite number")
            value = pl.when(source.is_finite()).then(source)  # NaN and infinities: left out
            # integers that went through NaN (pandas): send them as integers again
            return value.cast(pl.Int64) if column in self.whole else value
        if dtype.is_integer() or dtype == pl.Boolean or dtype.is_decimal() or isinstance(dtype, pl.Struct):
            return source
        if dtype == pl.Date or isinstance(dtype, pl.Datetime):
            return self._datetime_text(column, dtype)
        if isinstance(dtype, (pl.List, pl.Array)):
            inner = dtype.inner
            if not (inner.is_numeric() or inner in (pl.String, pl.Boolean, pl.Categorical)):
                raise InvalidArgumentError(
                    f"column {column!r} holds lists of {inner}; the toolkit sends lists of text, "
                    "numbers or booleans (e.g. tags)"
                )
            items = source.cast(pl.List(pl.String) if inner == pl.Categorical else pl.List(inner))
            values = self.df.get_column(column).explode(empty_as_null=False, keep_nulls=False)
            has_null = values.null_count() > 0
            if inner.is_float():
                # NaN items are left out like nulls; an infinite item rejects the row
                self._flag(items.list.eval(pl.element().is_infinite()).list.any(), "invalid_number", column,
                           "holds a number that is not finite")  # fmt: skip
                if values.is_nan().any():
                    items, has_null = items.list.eval(pl.element().fill_nan(None)), True
            if inner in (pl.String, pl.Categorical):
                item_text = values.cast(pl.String)
                if (item_text.str.strip_chars() != item_text).any() or (item_text.str.len_bytes() == 0).any():
                    # items are text like any other: trimmed, and a blank one is left out
                    items, has_null = items.list.eval(_blank_to_null(pl.element())), True
            if self.format == "xml" and inner in (pl.String, pl.Categorical):
                self._flag(items.list.eval(pl.element().str.contains(_XML_ILLEGAL)).list.any(), "invalid_text",
                           column, "holds a control character XML cannot carry")  # fmt: skip
            # dropping null items copies every list: only when there is one to drop
            return items.list.drop_nulls() if has_null else items
        raise InvalidArgumentError(
            f"column {column!r} has type {dtype}, which no profile field type takes; convert it to "
            "text, a number, a date or a list first"
        )


_NUMBER_TEXT = re.compile(r"^\s*-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?\s*$")


FloatStats = dict[str, tuple[bool, int, float]]


def float_stats(df: pl.DataFrame) -> FloatStats:
    """Per float column: (are its finite values all whole, how many, the largest magnitude).

    A streamed plan adds them up window by window (:func:`merge_float_stats`), so a float
    column is sent as integers, or not, whole segment alike.

    Example:
        >>> float_stats(pl.DataFrame({"a": [1.0, None, 3.0], "b": [0.5, 2.0, 1.0], "c": ["x", "y", "z"]}))
        {'a': (True, 2, 3.0), 'b': (False, 3, 2.0)}
    """
    floats = [c for c, t in df.schema.items() if t.is_float()]
    if not floats:
        return {}
    stats = df.select(
        pl.struct(
            whole=((v := pl.col(c).filter(pl.col(c).is_finite())) == v.round(0)).all(),
            count=v.len(),
            largest=v.abs().max(),
        ).alias(c)
        for c in floats
    ).row(0, named=True)
    return {c: (bool(s["whole"]), int(s["count"]), float(s["largest"] or 0.0)) for c, s in stats.items()}


def merge_float_stats(total: FloatStats, more: FloatStats) -> FloatStats:
    """The stats of two parts of a segment, together.

    Example:
        >>> merge_float_stats({"a": (True, 2, 3.0)}, {"a": (False, 1, 9.5)})
        {'a': (False, 3, 9.5)}
    """
    merged = dict(total)
    for column, (whole, count, largest) in more.items():
        was = merged.get(column, (True, 0, 0.0))
        merged[column] = (was[0] and whole, was[1] + count, max(was[2], largest))
    return merged


def whole_floats_of(stats: FloatStats) -> frozenset[str]:
    """The float columns sent as integers: finite values all whole and below 2**53, at least one.

    Example:
        >>> sorted(whole_floats_of({"a": (True, 2, 3.0), "b": (False, 3, 2.0), "c": (True, 0, 0.0)}))
        ['a']
    """
    return frozenset(
        c for c, (whole, count, largest) in stats.items() if whole and count > 0 and largest < 2**53
    )


def _missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return type(value).__name__ in ("NAType", "NaTType") or (
        hasattr(value, "dtype") and not hasattr(value, "__len__") and bool(value != value)  # numpy NaN
    )


def _as_text(value: object) -> tuple[str | None, str | None]:
    """(the value as profile text, or why it cannot be one)."""
    if isinstance(value, str):
        return value, None
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return ("true" if value else "false"), None
    if isinstance(value, (int, np.integer)):
        return str(int(value)), None
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if not math.isfinite(number):
            return None, "is not a finite number"
        return (str(int(number)) if number.is_integer() and abs(number) < 2**53 else repr(number)), None
    if isinstance(value, decimal.Decimal):
        return (str(value) if value.is_finite() else None), (
            None if value.is_finite() else "is not a finite number"
        )
    if isinstance(value, dt.datetime):
        try:
            moment = value.astimezone(dt.UTC) if value.tzinfo else value
        except OverflowError:
            return None, "is outside the years 0001-9999 (in UTC), which the platform takes"
        return moment.strftime("%Y-%m-%dT%H:%M:%S") + (
            f".{moment.microsecond:06d}" if moment.microsecond else ""
        ) + "Z", None
    if isinstance(value, dt.date):
        return value.isoformat(), None
    return None, f"is a {type(value).__name__}, which a profile field cannot take"


def coerce_mixed(values: Sequence[object], *, text: bool) -> tuple[pl.Series, pl.Series]:
    """A column whose values mix types (pandas ``object``), coerced per value for its field.

    For a field that takes ``text``, every value becomes text (numbers as their digits,
    dates ISO, datetimes RFC 3339 in UTC). For another field, numbers win if they are at
    least as many as the text values (text holding a number counts as one); else text wins.
    Returns the coerced values and, per row, why a value cannot be sent (null where it can).

    Example:
        >>> values, why = coerce_mixed([1, "x", 2.0, None, {"a": 1}], text=True)
        >>> values.to_list(), why.to_list()
        (['1', 'x', '2', None, None], [None, None, None, None, 'is a dict, which a profile field cannot take'])
        >>> values, why = coerce_mixed([1, "2", "x", 3.5], text=False)
        >>> values.to_list(), why.to_list()
        ([1.0, 2.0, None, 3.5], [None, None, 'is text in a column of numbers', None])
    """
    present = [v for v in values if not _missing(v)]
    numeric = sum(
        (isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool))
        or (isinstance(v, str) and _NUMBER_TEXT.match(v) is not None)
        for v in present
    )
    words = sum(isinstance(v, str) and _NUMBER_TEXT.match(v) is None for v in present)
    out: list[object] = []
    why: list[str | None] = []
    if text or numeric < words or numeric == 0:
        for value in values:
            shown, problem = (None, None) if _missing(value) else _as_text(value)
            out.append(shown)
            why.append(problem)
        return pl.Series(out, dtype=pl.String), pl.Series(why, dtype=pl.String)
    whole = True
    numbers: list[float | int | None] = []
    for value in values:
        problem = None
        number: float | int | None = None
        if _missing(value):
            pass
        elif isinstance(value, bool) or type(value).__name__ == "bool_":
            problem = "is a bool in a column of numbers"
        elif isinstance(value, (int, np.integer)):
            number = int(value)
        elif isinstance(value, (float, np.floating)) or (
            isinstance(value, str) and _NUMBER_TEXT.match(value)
        ):
            number = float(value)
            if not math.isfinite(number):
                number, problem = None, "is not a finite number"
        elif isinstance(value, str):
            problem = "is text in a column of numbers"
        else:
            problem = f"is a {type(value).__name__}, which a profile field cannot take"
        whole = whole and (number is None or (float(number).is_integer() and abs(number) < 2**53))
        numbers.append(number)
        why.append(problem)
    dtype, to_number = (pl.Int64, int) if whole else (pl.Float64, float)
    return pl.Series([None if v is None else to_number(v) for v in numbers], dtype=dtype), pl.Series(
        why, dtype=pl.String
    )


def _check_columns(df: pl.DataFrame, mapping: Mapping) -> None:
    missing = [c for c in mapping.columns if c not in df.columns]
    if missing:
        column = missing[0]
        raise ColumnNotFoundError(
            f"column {column!r} is not in the frame{did_you_mean(column, df.columns)}"
            f" (the frame has: {', '.join(map(repr, df.columns[:12]))}"
            f"{', ...' if len(df.columns) > 12 else ''})"
        )


def prepare(
    df: pl.DataFrame,
    mapping: Mapping,
    trigger: Trigger,
    *,
    format: Format = "json",
    phone_region: str | None = "RU",
    duplicates: Duplicates = "first",
    positions: Sequence[int] | np.ndarray | None = None,
    whole_floats: frozenset[str] | None = None,
    mixed: AbcMapping[str, Sequence[object]] | None = None,
) -> Prepared:
    """Normalize every mapped column and mark invalid rows (see the module's rules).

    ``positions`` are the input positions of ``df``'s rows (default ``0..n-1``).
    ``whole_floats`` names the float columns sent as integers (default: those whose values
    are all whole numbers); a re-plan of some rows passes the first plan's, so that a row is
    written the same way whichever rows it is planned with. ``mixed`` holds the values of
    columns that mix types (``SourceFrame.mixed``): mapped ones are coerced per value for
    their field (:func:`coerce_mixed`), each value that cannot be sent rejecting its row.

    Three passes over the data: one parallel query normalizes every column and runs the fast
    checks; the exact parsers settle the few values those refused; one more query names each
    row's first failed rule and its match key. Only rejected rows get a reason.
    """
    _check_columns(df, mapping)
    if duplicates not in ("first", "last", "keep"):
        raise InvalidArgumentError(f"duplicates must be 'first', 'last' or 'keep', got {duplicates!r}")
    text = text_fields(mapping)
    df, reasons, notes = _coerce_mixed_columns(df, mapping, mixed or {}, text)
    builder = _Builder(df, format, phone_region, whole_floats, text=text)
    builder.notes.extend(notes)
    for reason in reasons.values():
        flagged = builder._new("c", pl.col(reason).is_not_null())
        builder.checks.append(_Check(pl.col(flagged), "invalid_value", functools.partial(pl.col, reason)))
    pos = pl.Series(
        POS,
        np.arange(df.height, dtype=np.int64) if positions is None else np.asarray(positions, dtype=np.int64),
    )

    fields: list[tuple[str, pl.Expr]] = []  # (profile field, value in the working frame)
    for column, profile_field in mapping.fields.items():
        working = builder.field(column, profile_field)
        fields.append((profile_field, pl.col(working) if isinstance(working, str) else working))
    subscriptions: list[pl.Expr] = []
    contacts: dict[str, list[pl.Expr]] = {}  # subscription contacts by kind, in mapping order
    for sub in mapping.subscriptions:
        label = f"subscription {sub.channel} (column {sub.column!r})"
        ref, failed = builder.contact(sub.column, sub.kind, label, "invalid_subscription")
        value = pl.lit(None, dtype=pl.String) if ref is None else pl.col(ref)
        if failed is not None and trigger.skip_invalid_subscriptions:
            builder.checks.pop()  # only the subscription goes: its value is null where it failed
        subscriptions.append(value)
        contacts.setdefault(sub.kind, []).append(value)

    # pass 1: every column at once; pass 2: the exact parsers, on the dirty values only
    work = builder.first_pass(pos)
    for contact in builder.contacts.values():
        work = contact.settle(work)

    # pass 3: the working frame becomes the normalized frame, with the first failed rule's number
    key, missing_what = _match_key(mapping, dict(fields), contacts)
    checks = [*builder.checks, _Check(key.is_null(), "missing_key", lambda: pl.lit(missing_what))]
    first_failed = pl.coalesce([pl.when(c.failed).then(pl.lit(i, pl.UInt8)) for i, c in enumerate(checks)])
    frame = work.select(
        POS,
        *(value.alias(f"__tk_f{i}") for i, (_, value) in enumerate(fields)),
        *(value.alias(f"__tk_s{j}") for j, value in enumerate(subscriptions)),
        key.alias(KEY),
        first_failed.alias(_FAILED),
    )
    first_rule = frame.get_column(_FAILED)
    bad = first_rule.is_not_null()
    frame = frame.drop(_FAILED)

    # reasons quote the original values: computed for the rejected rows only
    rejected = pl.concat(
        [
            df.select(*mapping.columns, *reasons.values()).filter(bad),
            frame.select(POS).filter(bad),
            first_rule.filter(bad).to_frame(),
        ],
        how="horizontal",
    ).select(
        POS,
        pl.col(_FAILED)
        .replace_strict(list(range(len(checks))), [c.rule for c in checks], return_dtype=pl.String)
        .alias(RULE),
        pl.coalesce([pl.when(pl.col(_FAILED) == i).then(c.reason()) for i, c in enumerate(checks)]).alias(
            REASON
        ),
    )
    valid, duplicate_rows = _split_duplicates(frame, bad, duplicates, mapping)
    if len(duplicate_rows):
        rejected = pl.concat([rejected, duplicate_rows], how="vertical_relaxed").sort(POS)
    clean = builder.shaped | {c.value for c in builder.contacts.values() if c.clean}
    names = {
        **{f"__tk_f{i}": v for i, (_, v) in enumerate(fields)},
        **{f"__tk_s{j}": v for j, v in enumerate(subscriptions)},
    }
    return Prepared(
        frame=frame,
        valid=valid,
        rejected=rejected,
        fields=tuple((name, f"__tk_f{i}") for i, (name, _) in enumerate(fields)),
        subscriptions=tuple(f"__tk_s{j}" for j in range(len(subscriptions))),
        clean=frozenset(
            name
            for name, value in names.items()
            if value.meta.output_name(raise_if_undetermined=False) in clean
        ),
        whole_floats=builder.whole,
        notes=tuple(builder.notes),
    )


_FAILED = "__tk_failed"


def _coerce_mixed_columns(
    df: pl.DataFrame, mapping: Mapping, mixed: AbcMapping[str, Sequence[object]], text: frozenset[str]
) -> tuple[pl.DataFrame, dict[str, str], list[str]]:
    """Mapped mixed columns coerced for their fields; per column, the name of its reasons column."""
    wants_text = {c for c, f in mapping.fields.items() if f in text or f in DATE_FIELDS or f in IP_FIELDS}
    wants_text |= {s.column for s in mapping.subscriptions}
    coerced: list[pl.Series] = []
    reasons: dict[str, str] = {}
    notes: list[str] = []
    for column in mapping.columns:
        if column not in mixed:
            continue
        values, why = coerce_mixed(mixed[column], text=column in wants_text)
        reason = f"__tk_why{len(reasons)}"
        shown = [
            None if problem is None else f"column {column!r}: {_short(repr(value))} {problem}"
            for value, problem in zip(mixed[column], why.to_list(), strict=True)
        ]
        coerced += [values.alias(column), pl.Series(reason, shown, dtype=pl.String)]
        reasons[column] = reason
        notes.append(
            f"column {column!r} mixes types: read value by value as {'text' if values.dtype == pl.String else 'numbers'}"
        )
    return (df.with_columns(coerced) if coerced else df), reasons, notes


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


# How a missing key is named in a rejected row's reason, per kind of key (MatchingRule.needs).
_NO_KEY = {
    "email": "no email", "phone": "no phone", "email_or_phone": "neither email nor phone",
    "profile_id": "no profile_id", "push": "no push subscription id",
}  # fmt: skip


def _match_key(
    mapping: Mapping, by_field: dict[str, pl.Expr], contacts: dict[str, list[pl.Expr]]
) -> tuple[pl.Expr, str]:
    """The row's match key (its first non-null source, in the table's order) and the reason
    given when it has none. Where the key may come from is :data:`MATCHING_MODES`' say."""
    rule = mapping.rule
    mode = mapping.matching

    def first(exprs: list[pl.Expr]) -> pl.Expr | None:
        # a field and a subscription often read the same contact: coalesce it with itself once
        unique: list[pl.Expr] = []
        seen: set[tuple[str, ...]] = set()
        for expr in exprs:
            roots = tuple(expr.meta.root_names())
            if roots and roots in seen:
                continue
            seen.add(roots)
            unique.append(expr)
        return (pl.coalesce(unique) if len(unique) > 1 else unique[0]) if unique else None

    def profile(field: str) -> pl.Expr | None:
        value = by_field.get(field)
        return None if value is None else value.cast(pl.String)

    def contact(kind: str) -> pl.Expr | None:
        """The kind's key: the profile's own field first, then the subscriptions' contacts."""
        own = profile(CONTACT_FIELDS[kind]) if rule.from_profile and kind in CONTACT_FIELDS else None
        found = [] if own is None else [own]
        if rule.from_subscriptions:
            found += [c.cast(pl.String) for c in contacts.get(kind, [])]
        return first(found)

    if rule.needs_match_field:
        assert mapping.match_field is not None
        key = profile(mapping.match_field)
        what = (
            f"no {mapping.match_field} value to match on (matching={mode!r}, column {mapping.match_column!r})"
        )
        return (pl.lit(None, dtype=pl.String) if key is None else key), what
    if rule.needs == "profile_id":
        key = profile(PROFILE_ID_FIELD)
    else:
        key = first([k for kind in rule.contact_kinds if (k := contact(kind)) is not None])
    where = " or ".join(
        side
        for side, used in (("the profile", rule.from_profile), ("a subscription", rule.from_subscriptions))
        if used
    )
    what = f"{_NO_KEY[rule.needs]} to match on (matching={mode!r}) in {where}"
    return (pl.lit(None, dtype=pl.String) if key is None else key), what


def _split_duplicates(
    frame: pl.DataFrame, bad: pl.Series, duplicates: Duplicates, mapping: Mapping
) -> tuple[np.ndarray, pl.DataFrame]:
    """Row numbers to send, and the duplicates rejected: valid rows sharing a match key keep one."""
    empty = pl.DataFrame(schema={POS: pl.Int64, RULE: pl.String, REASON: pl.String})
    ok = ~bad
    if duplicates == "keep":
        return ok.arg_true().to_numpy().astype(np.int64), empty
    pick = "first" if duplicates == "first" else "last"

    def distinct(keys: pl.Series) -> pl.Series:
        return keys.is_first_distinct() if pick == "first" else keys.is_last_distinct()

    keys = frame.get_column(KEY)
    # the keys' 64-bit hashes find the candidates fast (equal keys, equal hashes); the few
    # keys seen more than once are then compared as text among valid rows only, since an
    # invalid row may come first with its key, or a hash may collide
    hashes = keys.hash()
    repeated = ~distinct(hashes)
    if not (repeated & ok).any():
        return ok.arg_true().to_numpy().astype(np.int64), empty
    shared = (ok & hashes.is_in(hashes.filter(repeated).unique().implode())).fill_null(False)
    lost = ~distinct(keys.filter(shared))
    kept = ok.clone()
    kept.scatter(shared.arg_true().filter(lost), False)
    dups = (
        frame.filter(shared)
        .with_columns(getattr(pl.col(POS), pick)().over(KEY).alias("__tk_kept"), lost.alias("__tk_lost"))
        .filter(pl.col("__tk_lost"))
        .select(
            POS,
            pl.lit("duplicate").alias(RULE),
            pl.format(
                "duplicate of row {} (same {} {}); the {} one is kept (duplicates='{}')",
                pl.col("__tk_kept"),
                pl.lit(mapping.match_field or mapping.rule.needs.replace("_or_", " or ")),
                _quoted(pl.col(KEY)),
                pl.lit(pick),
                pl.lit(duplicates),
            ).alias(REASON),
        )
    )
    return kept.arg_true().to_numpy().astype(np.int64), dups
