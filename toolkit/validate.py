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
``invalid_date``            ``_bdate`` / ``_regdate`` that is not ``YYYY-MM-DD`` or RFC 3339
``invalid_number``          an infinite float
``invalid_text``            text holding control characters XML cannot carry (XML plans)
``invalid_subscription``    a subscription contact that is invalid (unless
                            ``skip_invalid_subscriptions``: then only that subscription goes)
``missing_key``             no value to match the profile on, for the matching mode
``duplicate``               the same match key as an earlier row (``duplicates="first"``)
==========================  ==================================================================

Example:
    >>> import polars as pl
    >>> from toolkit.mapping import Mapping, Trigger
    >>> df = pl.DataFrame({"email": ["  Ann@X.io ", "bad@", None], "phone": ["8 (900) 123-45-67", None, "+7 900 1"]})
    >>> prepared = prepare(df, Mapping({"email": "email", "phone": "phones"}), Trigger(1))
    >>> prepared.frame.select("__tk_f0", "__tk_f1").rows()
    [('ann@x.io', '+79001234567')]
    >>> prepared.rejected.get_column(RULE).to_list()
    ['invalid_email', 'invalid_phone']
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import email_validator
import numpy as np
import phonenumbers
import polars as pl

from toolkit.contract import DATE_FIELDS, EMAIL_FIELD, IP_FIELDS, PHONE_FIELD, Format
from toolkit.errors import ColumnNotFoundError, InvalidArgumentError, did_you_mean
from toolkit.mapping import Mapping, Trigger

__all__ = ["RULES", "Duplicates", "Prepared", "prepare"]

Duplicates = Literal["first", "last", "keep"]

RULES = (
    "invalid_email", "invalid_phone", "invalid_ip", "invalid_date", "invalid_number",
    "invalid_text", "invalid_subscription", "missing_key", "duplicate", "too_large",
)  # fmt: skip

# Internal column names carry a prefix no analyst's column is likely to use.
POS, RULE, REASON, KEY = "__tk_pos", "__tk_rule", "__tk_reason", "__tk_key"

# The fast checks. Anything they refuse goes to the exact parser, never straight to rejection.
_EMAIL_FAST = r"^[a-z0-9_%+\-]+(?:\.[a-z0-9_%+\-]+)*@(?:[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
_PHONE_FAST = r"^\+[1-9][0-9]{7,14}$"
_PHONE_SEPARATORS = r"[\s\-().]"
_IPV4 = (
    r"^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])$"
)
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_RFC3339 = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:[Zz]|[+\-][0-9]{2}:[0-9]{2})$"
)
_XML_ILLEGAL = "[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]"
_RFC3339_FORMAT = "%Y-%m-%dT%H:%M:%S%.fZ"


@dataclass(frozen=True)
class Check:
    """A check: rows where ``failed`` is true get ``rule`` and ``reason``.

    ``reason`` is an expression over the original columns (and detail columns); it is
    evaluated on the rejected rows only, so clean rows never pay for the sentence.
    """

    failed: pl.Series
    rule: str
    reason: pl.Expr


@dataclass(frozen=True)
class Prepared:
    """The segment after validation: what the encoder needs, row for row.

    ``frame`` holds the valid rows: ``POS`` (input position), one normalized column per field
    (``__tk_f0``, ... in mapping order), one per subscription contact (``__tk_s0``, ...) and
    the match key ``KEY``. ``rejected`` holds ``POS``, ``RULE`` and ``REASON`` of the others.
    """

    frame: pl.DataFrame
    rejected: pl.DataFrame
    fields: tuple[tuple[str, str], ...]  # (profile field, column in frame)
    subscriptions: tuple[str, ...]  # column in frame per mapping.subscriptions entry


def _quoted(expr: pl.Expr) -> pl.Expr:
    """A value as it appears in a reason: quoted, cut at 60 characters."""
    text = expr.cast(pl.String)
    cut = pl.when(text.str.len_chars() > 60).then(text.str.slice(0, 57) + "...").otherwise(text)
    return pl.lit("'") + cut + pl.lit("'")


def _blank_to_null(expr: pl.Expr) -> pl.Expr:
    stripped = expr.str.strip_chars()
    return pl.when(stripped.str.len_bytes() > 0).then(stripped)


def _slow_map(
    values: pl.Series, parse: Callable[[str], tuple[str | None, str]]
) -> tuple[dict[str, str | None], dict[str, str]]:
    """Run an exact parser once per distinct value: (value -> normalized, value -> why invalid)."""
    normalized: dict[str, str | None] = {}
    problems: dict[str, str] = {}
    for value in values.drop_nulls().unique().to_list():
        result, problem = parse(value)
        normalized[value] = result
        if result is None:
            problems[value] = problem
    return normalized, problems


def _parse_email(value: str) -> tuple[str | None, str]:
    try:
        info = email_validator.validate_email(value, check_deliverability=False)
    except email_validator.EmailNotValidError as exc:
        return None, str(exc).rstrip(".")
    return info.normalized.lower(), ""


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
def _national_pattern(region: str | None) -> tuple[tuple[str, str], ...] | None:
    """(regex, replacement) pairs turning the region's usual national forms international.

    Only plain shapes are rewritten: trunk prefix + a national number of one of the region's
    usual lengths (RU: ``8`` + 10 digits -> ``+7`` + 10 digits), and the country code without
    its ``+`` (RU: ``7`` + 10 digits). Anything else goes to ``phonenumbers``.
    """
    if region is None:
        return None
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    prefix = metadata.national_prefix if metadata is not None else None
    if not prefix or not prefix.isdigit():
        return None
    lengths = sorted(n for n in metadata.general_desc.possible_length if 7 <= n <= 12)
    if not lengths:
        return None
    alternatives = "|".join(f"[0-9]{{{n}}}" for n in lengths)
    code = phonenumbers.country_code_for_region(region)
    return (
        (f"^{prefix}({alternatives})$", f"+{code}${{1}}"),
        (f"^{code}({alternatives})$", f"+{code}${{1}}"),
    )


class _Builder:
    """Collects normalized columns and checks while walking the mapping."""

    def __init__(self, df: pl.DataFrame, format: Format, phone_region: str | None) -> None:
        self.df = df
        self.format = format
        self.phone_region = phone_region
        self.details: dict[str, pl.Series] = {}
        self.checks: list[Check] = []
        self._cache: dict[tuple[str, str], tuple[pl.Series, pl.Series, pl.Series]] = {}

    # -- contacts: (normalized, failed, reason) per (column, kind), computed once -----------
    def contact(self, column: str, kind: str, label: str) -> tuple[pl.Series, pl.Series, pl.Expr]:
        cached = self._cache.get((column, kind))
        if cached is None:
            source = self.df.get_column(column)
            if kind == "email":
                cached = self._email(source)
            elif kind == "phone":
                cached = self._phone(source)
            elif kind == "id":
                text = self.df.select(_blank_to_null(pl.col(column).cast(pl.String))).to_series()
                cached = (
                    text,
                    pl.Series([False] * len(text)),
                    pl.Series([None] * len(text), dtype=pl.String),
                )
            else:  # object: passed as it is
                cached = (
                    source,
                    pl.Series([False] * len(source)),
                    pl.Series([None] * len(source), dtype=pl.String),
                )
            self._cache[(column, kind)] = cached
        normalized, failed, detail = cached
        detail_name = f"__tk_d{len(self.details)}"
        self.details[detail_name] = detail.alias(detail_name)
        reason = pl.format(
            "{}: {} is not a valid {}{}",
            pl.lit(label),
            _quoted(pl.col(column)),
            pl.lit({"email": "email address", "phone": "phone number"}.get(kind, "value")),
            pl.when(pl.col(detail_name).is_not_null())
            .then(pl.lit(" (") + pl.col(detail_name) + pl.lit(")"))
            .otherwise(pl.lit("")),
        )
        return normalized, failed, reason

    def _text(self, source: pl.Series) -> pl.Series:
        if source.dtype not in (pl.String, pl.Categorical) and not isinstance(source.dtype, pl.Enum):
            raise InvalidArgumentError(f"column {source.name!r} ({source.dtype}) must hold text")
        return pl.select(_blank_to_null(pl.lit(source).cast(pl.String))).to_series().alias(source.name)

    def _email(self, source: pl.Series) -> tuple[pl.Series, pl.Series, pl.Series]:
        text = self._text(source).str.to_lowercase()
        fast = text.str.contains(_EMAIL_FAST) & (text.str.len_bytes() <= 254)
        dirty = text.filter(~fast.fill_null(True))
        normalized, problems = _slow_map(dirty, _parse_email)
        return self._merge(text, fast, normalized, problems)

    def _phone(self, source: pl.Series) -> tuple[pl.Series, pl.Series, pl.Series]:
        if source.dtype.is_integer():
            # phones stored as numbers lost their '+': read them as international
            source = pl.select(pl.lit("+") + pl.lit(source).cast(pl.String)).to_series()
        text = self._text(source)
        compact = text.str.replace_all(_PHONE_SEPARATORS, "")
        national = _national_pattern(self.phone_region)
        if national is not None:
            # the region's usual national form (RU: 8 900 123-45-67) is rewritten in bulk
            for pattern, replacement in national:
                compact = compact.str.replace(pattern, replacement)
        # "+44 (0) 7911 ...": the bracketed trunk 0 is not part of the number: exact parser
        fast = compact.str.contains(_PHONE_FAST) & ~text.str.contains(r"\(\s*0\s*\)")
        dirty = text.filter(~fast.fill_null(True))
        normalized, problems = _slow_map(dirty, _phone_parser(self.phone_region))
        return self._merge(text, fast, normalized, problems, fast_values=compact)

    @staticmethod
    def _merge(
        text: pl.Series,
        fast: pl.Series,
        normalized: dict[str, str | None],
        problems: dict[str, str],
        fast_values: pl.Series | None = None,
    ) -> tuple[pl.Series, pl.Series, pl.Series]:
        good = text if fast_values is None else fast_values
        slow = text.replace_strict(normalized, default=None, return_dtype=pl.String) if normalized else None
        frame = pl.DataFrame({"text": text, "fast": fast.fill_null(False), "good": good})
        out = frame.select(
            pl.when(pl.col("fast"))
            .then(pl.col("good"))
            .otherwise(slow if slow is not None else None)
            .alias("v"),
        ).to_series()
        failed = text.is_not_null() & out.is_null()
        detail = (
            text.replace_strict(problems, default=None, return_dtype=pl.String)
            if problems
            else pl.Series([None] * len(text), dtype=pl.String)
        )
        return out, failed, detail

    # -- fields ---------------------------------------------------------------------------------
    def field(self, column: str, field: str) -> pl.Series:
        source = self.df.get_column(column)
        label = f"column {column!r}"
        dtype = source.dtype
        if dtype == pl.Null:
            return source.cast(pl.String)
        if field == EMAIL_FIELD:
            value, failed, reason = self.contact(column, "email", label)
            self.checks.append(Check(failed, "invalid_email", reason))
            return value
        if field == PHONE_FIELD and not isinstance(dtype, pl.List):
            value, failed, reason = self.contact(column, "phone", label)
            self.checks.append(Check(failed, "invalid_phone", reason))
            return value
        if field in IP_FIELDS:
            text = self._text(source)
            failed = text.is_not_null() & ~text.str.contains(_IPV4).fill_null(False)
            self._add(failed, "invalid_ip", column, "is not an IPv4 address (e.g. 203.0.113.7)")
            return text
        if field in DATE_FIELDS:
            return self._date_field(source, column, field)
        return self._by_dtype(source, column)

    def _add(self, failed: pl.Series, rule: str, column: str, what: str) -> None:
        value = pl.col(column)
        if isinstance(self.df.schema[column], (pl.List, pl.Array)):
            value = pl.lit("[") + value.cast(pl.List(pl.String)).list.join(", ") + pl.lit("]")
        reason = pl.format("column {}: {} {}", pl.lit(repr(column)), _quoted(value), pl.lit(what))
        self.checks.append(Check(failed, rule, reason))

    def _date_field(self, source: pl.Series, column: str, field: str) -> pl.Series:
        dtype = source.dtype
        if dtype == pl.Date:
            return source.dt.to_string("%Y-%m-%d")
        if isinstance(dtype, pl.Datetime):
            return _rfc3339(source)
        if dtype not in (pl.String, pl.Categorical):
            raise InvalidArgumentError(
                f"column {column!r} ({dtype}) is mapped to the date field {field!r}: give dates, "
                "datetimes or 'YYYY-MM-DD' text (e.g. pd.to_datetime(df[col]).dt.date)"
            )
        text = self._text(source)
        day = text.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
        shaped = text.str.contains(_DATE) | text.str.contains(_RFC3339)
        failed = text.is_not_null() & ~(shaped.fill_null(False) & day.is_not_null())
        self._add(failed, "invalid_date", column, "is not a date (YYYY-MM-DD or RFC 3339)")
        return text

    def _by_dtype(self, source: pl.Series, column: str) -> pl.Series:
        dtype = source.dtype
        if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
            text = self._text(source)
            if self.format == "xml":
                failed = text.str.contains(_XML_ILLEGAL).fill_null(False)
                self._add(failed, "invalid_text", column, "holds a control character XML cannot carry")
            return text
        if dtype.is_float():
            value = source.fill_nan(None)
            infinite = value.is_infinite().fill_null(False)
            self._add(infinite, "invalid_number", column, "is not a finite number")
            finite = value.filter(~infinite).drop_nulls()
            whole = len(finite) > 0 and bool((finite == finite.round(0)).all())
            if whole and float(finite.abs().max()) < 2**53:  # type: ignore[arg-type]
                # integers that went through NaN (pandas): send them as integers again
                value = pl.select(pl.when(pl.lit(infinite)).then(None).otherwise(pl.lit(value))).to_series()
                return value.cast(pl.Int64)
            return value
        if dtype.is_integer() or dtype == pl.Boolean or dtype.is_decimal():
            return source
        if dtype == pl.Date:
            return source.dt.to_string("%Y-%m-%d")
        if isinstance(dtype, pl.Datetime):
            return _rfc3339(source)
        if isinstance(dtype, (pl.List, pl.Array)):
            inner = dtype.inner
            if not (inner.is_numeric() or inner in (pl.String, pl.Boolean, pl.Categorical)):
                raise InvalidArgumentError(
                    f"column {column!r} holds lists of {inner}; the toolkit sends lists of text, "
                    "numbers or booleans (e.g. tags)"
                )
            items = source.cast(pl.List(pl.String) if inner == pl.Categorical else pl.List(inner))
            if inner.is_float():
                # NaN items are left out like nulls; an infinite item rejects the row
                infinite = items.list.eval(pl.element().is_infinite()).list.any().fill_null(False)
                self._add(infinite, "invalid_number", column, "holds a number that is not finite")
                items = items.list.eval(pl.element().fill_nan(None))
            if self.format == "xml" and items.dtype.inner == pl.String:  # type: ignore[union-attr]
                failed = items.list.eval(pl.element().str.contains(_XML_ILLEGAL)).list.any().fill_null(False)
                self._add(failed, "invalid_text", column, "holds a control character XML cannot carry")
            return items.list.drop_nulls()
        if isinstance(dtype, pl.Struct):
            return source
        raise InvalidArgumentError(
            f"column {column!r} has type {dtype}, which no profile field type takes; convert it to "
            "text, a number, a date or a list first"
        )


def _rfc3339(source: pl.Series) -> pl.Series:
    tz = getattr(source.dtype, "time_zone", None)
    # naive datetimes are taken as UTC: the platform wants an explicit offset
    utc = source.dt.convert_time_zone("UTC") if tz else source
    return utc.dt.to_string(_RFC3339_FORMAT)


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
) -> Prepared:
    """Normalize every mapped column and mark invalid rows (see the module's rules).

    ``positions`` are the input positions of ``df``'s rows (default ``0..n-1``).
    """
    _check_columns(df, mapping)
    if duplicates not in ("first", "last", "keep"):
        raise InvalidArgumentError(f"duplicates must be 'first', 'last' or 'keep', got {duplicates!r}")
    builder = _Builder(df, format, phone_region)
    pos = (
        pl.Series(POS, np.arange(df.height, dtype=np.int64))
        if positions is None
        else pl.Series(POS, np.asarray(positions, dtype=np.int64))
    )
    out: dict[str, pl.Series] = {POS: pos}
    field_columns: list[tuple[str, str]] = []
    by_field: dict[str, pl.Series] = {}
    for i, (column, field) in enumerate(mapping.fields.items()):
        name = f"__tk_f{i}"
        out[name] = builder.field(column, field).alias(name)
        field_columns.append((field, name))
        by_field[field] = out[name]

    sub_columns: list[str] = []
    contacts: dict[str, list[pl.Series]] = {"email": [], "phone": [], "push": []}
    for j, sub in enumerate(mapping.subscriptions):
        label = f"subscription {sub.channel} (column {sub.column!r})"
        value, failed, reason = builder.contact(sub.column, sub.kind, label)
        if trigger.skip_invalid_subscriptions:
            value = pl.select(pl.when(pl.lit(failed)).then(None).otherwise(pl.lit(value))).to_series()
        else:
            builder.checks.append(Check(failed, "invalid_subscription", reason))
        out[f"__tk_s{j}"] = value.alias(f"__tk_s{j}")
        sub_columns.append(f"__tk_s{j}")
        if sub.kind == "email":
            contacts["email"].append(value)
        elif sub.kind == "phone":
            contacts["phone"].append(value)
        elif sub.channel == "push":
            contacts["push"].append(value)

    key, missing_what = _match_key(mapping, by_field, contacts, df.height)
    checks = [*builder.checks, Check(key.is_null(), "missing_key", pl.lit(missing_what))]
    flags = [c.failed.fill_null(False).alias(f"__tk_c{i}") for i, c in enumerate(checks)]
    frame = pl.DataFrame([*out.values(), key.alias(KEY), *flags])
    # the first failed check names the row's rule
    frame = frame.with_columns(
        pl.coalesce(
            [pl.when(pl.col(f.name)).then(pl.lit(c.rule)) for f, c in zip(flags, checks, strict=True)]
        ).alias(RULE)
    )
    bad = frame.get_column(RULE).is_not_null()
    # reasons quote the original values: computed for the rejected rows only
    context = pl.DataFrame([*df.select(mapping.columns), *builder.details.values()]).filter(bad)
    rejected = pl.concat([frame.filter(bad), context], how="horizontal").select(
        POS,
        RULE,
        pl.coalesce(
            [pl.when(pl.col(f.name)).then(c.reason) for f, c in zip(flags, checks, strict=True)]
        ).alias(REASON),
    )
    valid = frame.filter(~bad).drop(RULE, *(f.name for f in flags))
    valid, duplicate_rows = _split_duplicates(valid, duplicates, mapping)
    rejected = pl.concat([rejected, duplicate_rows], how="vertical_relaxed").sort(POS)
    return Prepared(
        frame=valid, rejected=rejected, fields=tuple(field_columns), subscriptions=tuple(sub_columns)
    )


def _match_key(
    mapping: Mapping, by_field: dict[str, pl.Series], contacts: dict[str, list[pl.Series]], height: int
) -> tuple[pl.Series, str]:
    rule = mapping.rule
    mode = mapping.matching

    def first(series: list[pl.Series]) -> pl.Series | None:
        if not series:
            return None
        return (
            pl.select(pl.coalesce([pl.lit(s) for s in series])).to_series() if len(series) > 1 else series[0]
        )

    def profile(field: str) -> pl.Series | None:
        value = by_field.get(field)
        return None if value is None else value.cast(pl.String)

    email = first([s for s in (profile(EMAIL_FIELD),) if s is not None and not rule.in_subscription]
                  + (contacts["email"] if rule.in_subscription or mode in ("email", "email_phone") else []))  # fmt: skip
    phone = first([s for s in (profile(PHONE_FIELD),) if s is not None and not rule.in_subscription]
                  + (contacts["phone"] if rule.in_subscription or mode == "email_phone" else []))  # fmt: skip
    where = "a subscription" if rule.in_subscription else "the profile"
    if rule.needs == "email":
        key, what = email, f"no email to match on (matching={mode!r}) in {where}"
    elif rule.needs == "phone":
        key, what = phone, f"no phone to match on (matching={mode!r}) in {where}"
    elif rule.needs == "email_or_phone":
        both = [s for s in (email, phone) if s is not None]
        key, what = first(both), f"neither email nor phone to match on (matching={mode!r})"
    elif rule.needs == "profile_id":
        key, what = profile("profile_id"), "no profile_id to match on (matching='profile_id')"
    elif rule.needs == "push":
        key, what = first(contacts["push"]), "no push subscription id to match on (matching='push_sub')"
    else:
        assert mapping.match_field is not None
        key = profile(mapping.match_field)
        what = (
            f"no {mapping.match_field} value to match on (matching={mode!r}, column {mapping.match_column!r})"
        )
    if key is None:
        key = pl.Series([None] * height, dtype=pl.String)
    return key, what


def _split_duplicates(
    valid: pl.DataFrame, duplicates: Duplicates, mapping: Mapping
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Valid rows sharing a match key: keep one, reject the rest (unless ``"keep"``)."""
    empty = pl.DataFrame(schema={POS: pl.Int64, RULE: pl.String, REASON: pl.String})
    if duplicates == "keep":
        return valid, empty
    keys = valid.get_column(KEY)
    kept = keys.is_first_distinct() if duplicates == "first" else keys.is_last_distinct()
    if kept.all():
        return valid, empty
    pick = "first" if duplicates == "first" else "last"
    kept_pos = getattr(pl.col(POS), pick)().over(KEY)
    dups = (
        valid.with_columns(kept_pos.alias("__tk_kept"))
        .filter(~kept)
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
    return valid.filter(kept), dups
