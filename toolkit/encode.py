"""Encode validated rows as request-body fragments, vectorized (polars string expressions).

Each valid row becomes one fragment: ``{"data":{...}}`` in JSON, ``<data>...</data>`` in
XML. A body is ``prefix + separator.join(fragments) + suffix``, so its size is known
exactly from the fragments' byte lengths before any body is built.

Null fields are left out of a profile (never sent as ``null``). A float column whose
values are all whole numbers (pandas' integers with NaN) is written as integers: a strict
decoder refuses ``1.0`` for an int field.

Example:
    >>> import polars as pl
    >>> from toolkit.mapping import Mapping, Subscription, Trigger
    >>> from toolkit.validate import prepare
    >>> df = pl.DataFrame({"email": ["ann@x.io"], "name": [' Ann "A"'], "n": [2.0]})
    >>> mapping = Mapping({"email": "email", "name": "_fname", "n": "orders"},
    ...                   subscriptions=[Subscription("email", "email", 21)])
    >>> prepared = prepare(df, mapping, Trigger(1))
    >>> json_rows(prepared, mapping).to_list()
    ['{"data":{"email":"ann@x.io","_fname":"Ann \\\\"A\\\\"","orders":2,"subscriptions":[{"channel":"email","email":"ann@x.io","resource_id":21}]}}']
    >>> print(xml_rows(prepared, mapping).item())
    <data>
    <email>ann@x.io</email>
    <_fname>Ann "A"</_fname>
    <orders>2</orders>
    <subscriptions>
    <channel>email</channel>
    <email>ann@x.io</email>
    <resource_id>21</resource_id>
    </subscriptions>
    </data>
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import polars as pl

from toolkit.contract import Format, is_xml_name, xml_fragment, xml_text
from toolkit.errors import InvalidArgumentError
from toolkit.mapping import Mapping, Trigger
from toolkit.validate import Prepared

__all__ = ["Envelope", "envelope", "json_rows", "rows", "xml_rows"]

_JSON_ESCAPES = (
    ["\\", '"'] + [chr(i) for i in range(32)],
    ["\\\\", '\\"'] + [f"\\u{i:04x}" for i in range(32)],
)
# \r is escaped so that it survives XML's line-end normalization
_XML_ESCAPES = (["&", "<", ">", "\r"], ["&amp;", "&lt;", "&gt;", "&#13;"])


_NEEDS_JSON_ESCAPE = '["\\\\\x00-\x1f]'
_NEEDS_XML_ESCAPE = "[&<>\r]"


def _json_string(expr: pl.Expr, clean: bool = False) -> pl.Expr:
    # most columns (emails, phones, dates, names) hold nothing to escape: skip the pass
    escaped = expr if clean else expr.str.replace_many(*_JSON_ESCAPES)
    return pl.lit('"') + escaped + pl.lit('"')


def _bool_text(expr: pl.Expr) -> pl.Expr:
    # a null stays null (left out of the profile), never "false"
    return pl.when(expr).then(pl.lit("true")).when(expr.not_()).then(pl.lit("false"))


def _number_text(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    return expr.cast(pl.String)


def _json_value(expr: pl.Expr, dtype: pl.DataType, clean: bool = False) -> pl.Expr:
    """A column's values as JSON literals (null stays null)."""
    if dtype == pl.String:
        return _json_string(expr, clean)
    if dtype == pl.Boolean:
        return _bool_text(expr)
    if dtype.is_numeric():
        return _number_text(expr, dtype)
    # lists and structs: polars' own encoder, then cut the wrapper {"v": ... }
    wrapped = pl.struct(expr.alias("v")).struct.json_encode()
    # (slice counts characters, not bytes: non-ASCII items must not shift the cut)
    return pl.when(expr.is_not_null()).then(wrapped.str.slice(5, wrapped.str.len_chars() - 6))


def _xml_escape(expr: pl.Expr, clean: bool = False) -> pl.Expr:
    return expr if clean else expr.str.replace_many(*_XML_ESCAPES)


def _clean(frame: pl.DataFrame, column: str, pattern: str) -> bool:
    """True when no value of a text column needs escaping (checked once per column)."""
    series = frame.get_column(column)
    return series.dtype == pl.String and not series.str.contains(pattern).any()


def _xml_value(expr: pl.Expr, dtype: pl.DataType, tag: str, clean: bool = False) -> pl.Expr:
    """A column's values as complete XML elements ``<tag>...</tag>`` (null stays null)."""
    if isinstance(dtype, pl.List):
        inner = dtype.inner
        item = _xml_escape(pl.element()) if inner == pl.String else _xml_scalar(pl.element(), inner)
        many = expr.list.eval(pl.lit(f"<{tag}>") + item + pl.lit(f"</{tag}>")).list.join("\n")
        one = (
            pl.lit(f"<{tag} array='true'>")
            + _xml_escape(expr.list.first().cast(pl.String))
            + pl.lit(f"</{tag}>")
        )
        size = expr.list.len()
        return (
            pl.when(size == 0)
            .then(pl.lit(f"<{tag} array='true'/>"))
            .when(size == 1)
            .then(one)
            .otherwise(many)
        )
    if isinstance(dtype, pl.Struct):
        # nested objects are rare in segments: the exact (per-row) encoder is fine here
        return expr.map_elements(lambda v: xml_fragment({tag: v}), return_dtype=pl.String)
    return pl.lit(f"<{tag}>") + _xml_scalar(expr, dtype, clean) + pl.lit(f"</{tag}>")


def _xml_scalar(expr: pl.Expr, dtype: pl.DataType, clean: bool = False) -> pl.Expr:
    if dtype == pl.String:
        return _xml_escape(expr, clean)
    if dtype == pl.Boolean:
        return _bool_text(expr)
    return _number_text(expr, dtype)


def _subscription_json(mapping: Mapping, prepared: Prepared, frame: pl.DataFrame) -> pl.Expr | None:
    parts = []
    for sub, column in zip(mapping.subscriptions, prepared.subscriptions, strict=True):
        head = orjson.dumps({"channel": sub.channel}).decode()[:-1] + f',"{sub.contact_field}":'
        tail = orjson.dumps({"resource_id": sub.resource_id, **sub.extra}).decode()[1:]
        clean = _clean(frame, column, _NEEDS_JSON_ESCAPE)
        value = _json_value(pl.col(column), frame.schema[column], clean)
        parts.append(pl.lit(head) + value + pl.lit("," + tail))
    if not parts:
        return None
    joined = pl.concat_str(parts, separator=",", ignore_nulls=True)
    return pl.when(joined.str.len_bytes() > 0).then(pl.lit('"subscriptions":[') + joined + pl.lit("]"))


def _subscription_xml(mapping: Mapping, prepared: Prepared, frame: pl.DataFrame) -> pl.Expr | None:
    parts = []
    for sub, column in zip(mapping.subscriptions, prepared.subscriptions, strict=True):
        rest = xml_fragment({"resource_id": sub.resource_id, **sub.extra})
        clean = _clean(frame, column, _NEEDS_XML_ESCAPE)
        value = _xml_value(pl.col(column), frame.schema[column], sub.contact_field, clean)
        parts.append(
            pl.lit(f"<subscriptions>\n<channel>{xml_text(sub.channel)}</channel>\n")
            + value
            + pl.lit(f"\n{rest}\n</subscriptions>")
        )
    if not parts:
        return None
    joined = pl.concat_str(parts, separator="\n", ignore_nulls=True)
    return pl.when(joined.str.len_bytes() > 0).then(joined)


def json_rows(prepared: Prepared, mapping: Mapping) -> pl.Series:
    """One ``{"data":{...}}`` JSON fragment per row of ``prepared.frame``."""
    frame = prepared.frame
    parts = [
        pl.lit(orjson.dumps(field).decode() + ":")
        + _json_value(pl.col(column), frame.schema[column], _clean(frame, column, _NEEDS_JSON_ESCAPE))
        for field, column in prepared.fields
    ]
    subs = _subscription_json(mapping, prepared, frame)
    if subs is not None:
        parts.append(subs)
    body = pl.concat_str(parts, separator=",", ignore_nulls=True)
    return frame.select((pl.lit('{"data":{') + body + pl.lit("}}")).alias("row")).to_series()


def xml_rows(prepared: Prepared, mapping: Mapping) -> pl.Series:
    """One ``<data>...</data>`` XML fragment per row of ``prepared.frame``."""
    frame = prepared.frame
    for field, _ in prepared.fields:
        if not is_xml_name(field):
            raise InvalidArgumentError(
                f"profile field {field!r} cannot be an XML element name; rename it or plan with format='json'"
            )
    parts = [
        _xml_value(pl.col(column), frame.schema[column], field, _clean(frame, column, _NEEDS_XML_ESCAPE))
        for field, column in prepared.fields
    ]
    subs = _subscription_xml(mapping, prepared, frame)
    if subs is not None:
        parts.append(subs)
    body = pl.concat_str(parts, separator="\n", ignore_nulls=True)
    row = pl.when(body.str.len_bytes() > 0).then(pl.lit("<data>\n") + body + pl.lit("\n</data>"))
    return frame.select(row.otherwise(pl.lit("<data/>")).alias("row")).to_series()


def rows(prepared: Prepared, mapping: Mapping, format: Format) -> pl.Series:
    """The fragments of ``format``."""
    return json_rows(prepared, mapping) if format == "json" else xml_rows(prepared, mapping)


@dataclass(frozen=True)
class Envelope:
    """What surrounds the profiles in every body of a plan."""

    prefix: bytes
    separator: bytes
    suffix: bytes

    @property
    def overhead(self) -> int:
        return len(self.prefix) + len(self.suffix)

    def body(self, joined_rows: str) -> bytes:
        return self.prefix + joined_rows.encode("utf-8") + self.suffix


def request_options(mapping: Mapping, trigger: Trigger, format: Format) -> dict[str, Any]:
    """The request's top-level fields (everything but ``data`` and ``token``)."""
    return {"format": format, **mapping.request_options(), **trigger.request_options()}


def envelope(mapping: Mapping, trigger: Trigger, format: Format) -> Envelope:
    """The request envelope: options first, then the profiles, ``data`` last.

    Example:
        >>> from toolkit.mapping import Mapping, Trigger
        >>> env = envelope(Mapping({"email": "email"}), Trigger(96), "json")
        >>> (env.prefix + b"{}" + env.suffix).decode()
        '{"format":"json","matching":"email","trigger_id":96,"skip_triggers":false,"skip_invalid_subscriptions":false,"detect_geo":false,"data":[{}]}'
    """
    options = request_options(mapping, trigger, format)
    if format == "json":
        head = orjson.dumps(options)[:-1]
        return Envelope(prefix=head + b',"data":[', separator=b",", suffix=b"]}")
    return Envelope(
        prefix=f"<xml>\n{xml_fragment(options)}\n".encode(),
        separator=b"\n",
        suffix=b"\n</xml>\n",
    )
