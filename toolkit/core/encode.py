"""Encode validated rows as request-body fragments, vectorized (polars string expressions).

Each valid row becomes one fragment: ``{"data":{...}}`` in JSON, ``<data>...</data>`` in
XML. A body is ``prefix + separator.join(fragments) + suffix``, so its size is known
exactly from the fragments' byte lengths before any body is built.

Null fields are left out of a profile (never sent as ``null``). A float column whose
values are all whole numbers (pandas' integers with NaN) is written as integers: a strict
decoder refuses ``1.0`` for an int field.

Example:
    >>> import polars as pl
    >>> from toolkit.core.mapping import Mapping, Subscription, Trigger
    >>> from toolkit.core.validate import prepare
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
    <subscriptions array='true'>
    <channel>email</channel>
    <email>ann@x.io</email>
    <resource_id>21</resource_id>
    </subscriptions>
    </data>
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import polars as pl

from toolkit.core.contract import ARRAY_MARK, Format, is_xml_name, xml_fragment, xml_text
from toolkit.core.mapping import Mapping, Trigger
from toolkit.core.validate import Prepared
from toolkit.errors import InvalidArgumentError

__all__ = ["Envelope", "Fragments", "RowEncoder", "envelope", "json_rows", "take_sorted", "xml_rows"]

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


def _number_text(expr: pl.Expr) -> pl.Expr:
    # polars prints numbers as JSON and XML both read them (no NaN or infinity reaches here)
    return expr.cast(pl.String)


def _json_value(expr: pl.Expr, dtype: pl.DataType, clean: bool = False) -> pl.Expr:
    """A column's values as JSON literals (null stays null)."""
    if dtype == pl.String:
        return _json_string(expr, clean)
    if dtype == pl.Boolean:
        return _bool_text(expr)
    if dtype.is_numeric():
        return _number_text(expr)
    # lists and structs: polars' own encoder, then cut the wrapper {"v": ... }
    wrapped = pl.struct(expr.alias("v")).struct.json_encode()
    return pl.when(expr.is_not_null()).then(wrapped.str.strip_prefix('{"v":').str.strip_suffix("}"))


# A piece of a row: a literal, or an expression (null where the value is left out).
Piece = str | pl.Expr


def _concat(pieces: list[Piece], *, ignore_nulls: bool = True) -> pl.Expr:
    """One ``concat_str`` of pieces, adjacent literals merged."""
    merged: list[Piece] = []
    for piece in pieces:
        if isinstance(piece, str) and merged and isinstance(merged[-1], str):
            merged[-1] += piece
        elif not (isinstance(piece, str) and piece == ""):
            merged.append(piece)
    exprs = [pl.lit(p) if isinstance(p, str) else p for p in merged]
    return pl.concat_str(exprs, ignore_nulls=ignore_nulls) if exprs else pl.lit("")


def _length(pieces: list[Piece]) -> pl.Expr:
    """The byte length of ``_concat(pieces, ignore_nulls=False)``: null where a piece is null.

    Text columns are measured as they are (no string is built); other pieces are built and
    measured.
    """
    fixed = sum(len(p.encode()) for p in pieces if isinstance(p, str))
    total: pl.Expr = pl.lit(fixed, dtype=pl.Int64)
    for piece in pieces:
        if not isinstance(piece, str):
            total = total + piece.str.len_bytes().cast(pl.Int64)
    return total


def _json_pieces(expr: pl.Expr, dtype: pl.DataType, clean: bool) -> list[Piece]:
    """:func:`_json_value` as pieces: text keeps its quotes as literals."""
    if dtype == pl.String:
        return ['"', expr if clean else expr.str.replace_many(*_JSON_ESCAPES), '"']
    return [_json_value(expr, dtype, clean)]


def _xml_escape(expr: pl.Expr, clean: bool = False) -> pl.Expr:
    return expr if clean else expr.str.replace_many(*_XML_ESCAPES)


def _xml_value(expr: pl.Expr, dtype: pl.DataType, tag: str, clean: bool = False) -> pl.Expr:
    """A column's values as complete XML elements ``<tag>...</tag>`` (null stays null)."""
    if isinstance(dtype, pl.List):
        inner = dtype.inner
        # items as text (numbers and booleans print as their scalars do), escaped unless clean
        items = expr.cast(pl.List(pl.String)) if inner != pl.String else expr
        if not clean:
            items = items.list.eval(_xml_escape(pl.element()))
        many = pl.lit(f"<{tag}>") + items.list.join(f"</{tag}>\n<{tag}>") + pl.lit(f"</{tag}>")
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


def _xml_pieces(expr: pl.Expr, dtype: pl.DataType, tag: str, clean: bool) -> list[Piece]:
    """:func:`_xml_value` as pieces: scalar tags are literals around the value."""
    if isinstance(dtype, (pl.List, pl.Struct)):
        return [_xml_value(expr, dtype, tag, clean)]
    return [f"<{tag}>", _xml_scalar(expr, dtype, clean), f"</{tag}>"]


def _xml_scalar(expr: pl.Expr, dtype: pl.DataType, clean: bool = False) -> pl.Expr:
    if dtype == pl.String:
        return _xml_escape(expr, clean)
    if dtype == pl.Boolean:
        return _bool_text(expr)
    return _number_text(expr)


def _escape_free(frame: pl.DataFrame, columns: list[str], pattern: str, *, lists: bool) -> frozenset[str]:
    """The text columns (and, with ``lists``, lists of text) where no value needs escaping,
    checked in one parallel query."""
    kinds = (pl.String, pl.List(pl.String)) if lists else (pl.String,)
    text = [c for c in dict.fromkeys(columns) if frame.schema[c] in kinds]
    if not text:
        return frozenset()
    found = frame.select(
        (pl.col(c).explode() if frame.schema[c] != pl.String else pl.col(c)).str.contains(pattern).any()
        for c in text
    ).row(0)
    return frozenset(c for c, needs in zip(text, found, strict=True) if not needs)


def _json_length(expr: pl.Expr, dtype: pl.DataType, clean: bool) -> pl.Expr:
    """The byte length of :func:`_json_value` (null where the value is null).

    Text that needs no escaping is measured without being built: two quotes and its bytes.
    """
    if dtype == pl.String and clean:
        return expr.str.len_bytes().cast(pl.Int64) + 2
    if isinstance(dtype, (pl.List, pl.Array, pl.Struct)):
        wrapped = pl.struct(expr.alias("v")).struct.json_encode()  # {"v":...}: 6 bytes more
        return pl.when(expr.is_not_null()).then(wrapped.str.len_bytes().cast(pl.Int64) - 6)
    return _json_value(expr, dtype, clean).str.len_bytes().cast(pl.Int64)


class RowEncoder:
    """Encodes rows of a prepared frame as fragments, and sizes them.

    Built once per plan: it decides per column whether values need escaping (one scan), so
    each batch later encodes only its own rows. In JSON the sizes are added up from the
    columns' lengths, without building the fragments; in XML they are measured on them.

    Example:
        >>> import polars as pl
        >>> from toolkit.core.mapping import Mapping, Trigger
        >>> from toolkit.core.validate import prepare
        >>> mapping = Mapping({"email": "email", "name": "_fname"})
        >>> prepared = prepare(pl.DataFrame({"email": ["a@x.io", "b@x.io"], "name": ["Ann", None]}), mapping, Trigger(1))
        >>> encoder = RowEncoder(prepared, mapping, "json")
        >>> encoder.rows(prepared.valid_frame).to_list()
        ['{"data":{"email":"a@x.io","_fname":"Ann"}}', '{"data":{"email":"b@x.io"}}']
        >>> encoder.sizes(prepared.frame, prepared.valid).tolist()
        [42, 27]
    """

    def __init__(
        self, prepared: Prepared, mapping: Mapping, format: Format, *, clean: frozenset[str] | None = None
    ) -> None:
        self.format = format
        frame = prepared.frame
        self._schema = frame.schema
        self._fields = prepared.fields
        self._subscriptions = list(zip(mapping.subscriptions, prepared.subscriptions, strict=True))
        if format == "xml":
            for field, _ in prepared.fields:
                if not is_xml_name(field):
                    raise InvalidArgumentError(
                        f"profile field {field!r} cannot be an XML element name; rename it or plan with format='json'"
                    )
        if clean is None:
            columns = [c for _, c in self._fields] + list(prepared.subscriptions)
            columns = [c for c in columns if c not in prepared.clean]
            # JSON lists go through polars' own encoder: only XML writes their items itself
            pattern = _NEEDS_JSON_ESCAPE if format == "json" else _NEEDS_XML_ESCAPE
            clean = _escape_free(frame, columns, pattern, lists=format == "xml")
        self._clean = clean | prepared.clean

    # -- JSON -------------------------------------------------------------------------------------
    def _json_parts(self) -> list[tuple[str, str, pl.DataType]]:
        """(literal before the value, column, dtype) per field."""
        return [(orjson.dumps(f).decode() + ":", c, self._schema[c]) for f, c in self._fields]

    def _json_subscriptions(self) -> list[tuple[str, str, str, pl.DataType]]:
        """(literal before the contact, column, literal after it, dtype) per subscription."""
        out = []
        for sub, column in self._subscriptions:
            head = orjson.dumps({"channel": sub.channel}).decode()[:-1] + f',"{sub.contact_field}":'
            tail = "," + orjson.dumps({"resource_id": sub.resource_id, **sub.extra}).decode()[1:]
            out.append((head, column, tail, self._schema[column]))
        return out

    def _json_row(self, nullable: frozenset[str] | None = None, end: str = "") -> pl.Expr:
        """The fragment of a row, as one string concatenation.

        Each value is written between literals in a single ``concat_str``, so a column without
        nulls costs no intermediate string column. A column that has nulls (``nullable``, by
        default all) becomes one piece, null where the value is null, which the outer
        concatenation leaves out with its comma. ``end`` is written after every row.
        """
        pieces = self._json_subscription_pieces(nullable) if self._subscriptions else []
        fields: list[Piece] = []
        for head, c, t in self._json_parts():
            value = _json_pieces(pl.col(c), t, c in self._clean)
            if nullable is None or c in nullable:
                fields.append(_concat(["," + head, *value], ignore_nulls=False))
            else:
                fields.extend(["," + head, *value])
        everything = fields + pieces
        first = everything[0] if everything else None
        if isinstance(first, str):  # a column without nulls comes first: it carries no comma
            return _concat(['{"data":{' + first[1:], *everything[1:], "}}" + end])
        # a column with nulls comes first: the first comma is cut after joining
        inner = _concat(everything).str.strip_prefix(",") if everything else pl.lit("")
        return _concat(['{"data":{', inner, "}}" + end])

    def _json_subscription_pieces(self, nullable: frozenset[str] | None) -> list[Piece]:
        items = []
        for head, c, tail, t in self._json_subscriptions():
            items.append((c, [head, *_json_pieces(pl.col(c), t, c in self._clean), tail]))
        if nullable is not None and not any(c in nullable for c, _ in items):
            pieces: list[Piece] = [',"subscriptions":[']
            for i, (_, item) in enumerate(items):
                pieces.extend(["," if i else "", *item])
            return [*pieces, "]"]
        joined = pl.concat_str(
            [_concat(item, ignore_nulls=False) for _, item in items], separator=",", ignore_nulls=True
        )
        return [pl.when(joined.str.len_bytes() > 0).then(_concat([',"subscriptions":[', joined, "]"]))]

    def _json_size(self) -> pl.Expr:
        """The byte size of :meth:`_json_row`, as arithmetic over the columns' lengths."""
        lengths = [
            len(head.encode()) + _json_length(pl.col(c), t, c in self._clean)
            for head, c, t in self._json_parts()
        ]
        subs = [
            len(head.encode()) + len(tail.encode()) + _json_length(pl.col(c), t, c in self._clean)
            for head, c, tail, t in self._json_subscriptions()
        ]
        if subs:
            present = pl.sum_horizontal(s.is_not_null().cast(pl.Int64) for s in subs)
            total = pl.sum_horizontal(s.fill_null(0) for s in subs)
            # '"subscriptions":[' + items joined by ',' + ']'
            lengths.append(pl.when(present > 0).then(len('"subscriptions":[]') + total + present - 1))
        if not lengths:
            return pl.lit(len('{"data":{}}'), dtype=pl.Int64)
        present = pl.sum_horizontal(v.is_not_null().cast(pl.Int64) for v in lengths)
        total = pl.sum_horizontal(v.fill_null(0) for v in lengths)
        return len('{"data":{}}') + total + pl.max_horizontal(present - 1, pl.lit(0, dtype=pl.Int64))

    # -- XML --------------------------------------------------------------------------------------
    def _xml_groups(self, nullable: frozenset[str] | None = None) -> list[list[Piece]]:
        """Per field, then per subscription: its pieces, each starting on a new line."""
        groups: list[list[Piece]] = []
        for f, c in self._fields:
            groups.append(["\n", *_xml_pieces(pl.col(c), self._schema[c], f, c in self._clean)])
        opener = self._subscriptions_opener(nullable)
        for sub, c in self._subscriptions:
            rest = xml_fragment({"resource_id": sub.resource_id, **sub.extra})
            groups.append(
                [
                    opener,
                    f"\n<channel>{xml_text(sub.channel)}</channel>\n",
                    *_xml_pieces(pl.col(c), self._schema[c], sub.contact_field, c in self._clean),
                    f"\n{rest}\n</subscriptions>",
                ]
            )
        return groups

    def _subscriptions_opener(self, nullable: frozenset[str] | None) -> Piece:
        """``<subscriptions>``, marked ``array='true'`` in a row that holds only one of them.

        A subscription is left out where its contact is null, so with several mapped the
        count is per row; ``nullable`` (the columns with nulls in these rows) spares the
        count when no contact can be missing.
        """
        plain, marked = "\n<subscriptions>", f"\n<subscriptions{ARRAY_MARK}>"
        contacts = [c for _, c in self._subscriptions]
        if len(contacts) == 1:
            return marked
        if not contacts or (nullable is not None and not any(c in nullable for c in contacts)):
            return plain
        present = pl.sum_horizontal(pl.col(c).is_not_null().cast(pl.Int64) for c in contacts)
        return pl.when(present == 1).then(pl.lit(marked)).otherwise(pl.lit(plain))

    def _xml_row(self, nullable: frozenset[str] | None = None, end: str = "") -> pl.Expr:
        """The fragment of a row, built like :meth:`_json_row`: one concatenation, nulls left out.

        ``<data>``, then each element on its own line, then ``</data>``; ``<data/>`` for a row
        with nothing to say; ``end`` after every row.
        """
        columns = [c for _, c in self._fields] + [c for _, c in self._subscriptions]
        pieces: list[Piece] = []
        for c, group in zip(columns, self._xml_groups(nullable), strict=True):
            always = nullable is not None and c not in nullable
            pieces.extend(group if always else [_concat(group, ignore_nulls=False)])
        if any(isinstance(p, str) for p in pieces):  # something is always there
            return _concat(["<data>", *pieces, "\n</data>" + end])
        inner = _concat(pieces)
        return (
            pl.when(inner.str.len_bytes() > 0)
            .then(_concat(["<data>", inner, "\n</data>" + end]))
            .otherwise(pl.lit("<data/>" + end))
        )

    def _xml_size(self) -> pl.Expr:
        """The byte size of :meth:`_xml_row`, as arithmetic over the pieces' lengths."""
        lengths = [_length(group) for group in self._xml_groups()]
        if not lengths:
            return pl.lit(len("<data/>"), dtype=pl.Int64)
        present = pl.sum_horizontal(v.is_not_null().cast(pl.Int64) for v in lengths)
        total = pl.sum_horizontal(v.fill_null(0) for v in lengths)
        return pl.when(present > 0).then(len("<data>\n</data>") + total).otherwise(len("<data/>"))

    # -- use --------------------------------------------------------------------------------------
    @property
    def columns(self) -> list[str]:
        """The prepared frame's columns a row is encoded from (gather only these: less to copy)."""
        return [c for _, c in self._fields] + [c for _, c in self._subscriptions]

    def rows(self, frame: pl.DataFrame, *, parallel: bool = False, end: str = "") -> pl.Series:
        """One fragment per row of ``frame`` (rows of the prepared frame), ``end`` after each.

        ``parallel`` runs the streaming engine, which encodes slices of the rows on every core:
        worth it from some ten thousand rows.
        """
        # the expression is fitted to these rows: columns without nulls are written inline
        nullable = frozenset(c for c in frame.columns if frame.get_column(c).has_nulls())
        if self.format == "json":
            row = self._json_row(nullable, end)
        else:
            row = self._xml_row(nullable, end)
        query = frame.lazy().select(row.alias("row"))
        return query.collect(engine="streaming" if parallel else "in-memory").to_series()

    def fragments(self, frame: pl.DataFrame, separator: bytes) -> Fragments:
        """The rows of ``frame`` encoded in parallel, each followed by ``separator``, in one buffer."""
        return Fragments.of(self.rows(frame, parallel=True, end=separator.decode()), separator)

    def sizes(self, frame: pl.DataFrame, rows: np.ndarray) -> np.ndarray:
        """The byte size of the fragment of each of ``frame``'s rows at ``rows``.

        Added up from the pieces' lengths, never from built fragments; the streaming engine
        goes morsel by morsel, so the per-column lengths are never all held at once.
        """
        size = self._json_size() if self.format == "json" else self._xml_size()
        every = frame.lazy().select(size.alias("size")).collect(engine="streaming").to_series().to_numpy()
        return every[rows].astype(np.int64)


class Fragments:
    """Encoded rows, each followed by the body separator, one after the other in one buffer.

    Why: a body is its envelope around one stretch of the buffer, made with a single copy
    (:meth:`Envelope.assemble`); joining the rows as a string, then taking it out as bytes and
    wrapping it, copied every byte three or four times, and bodies are most of the bytes a
    plan moves. Sized like a sequence of rows.

    Example:
        >>> rows = Fragments.of(pl.Series(['{"a":1},', '{"b":22},', '{"c":3},']), b",")
        >>> len(rows), rows.sizes().tolist(), bytes(rows.span(1, 3))
        (3, [7, 8, 7], b'{"b":22},{"c":3},')
    """

    def __init__(self, offsets: np.ndarray, data: memoryview, separator: bytes) -> None:
        self.offsets = offsets  # row i is data[offsets[i]:offsets[i + 1]], its separator last
        self.data = data
        self.separator = separator

    @classmethod
    def of(cls, rows: pl.Series, separator: bytes) -> Fragments:
        """Rows already ending with ``separator`` (``RowEncoder.rows(..., end=)``), copied once
        into Arrow's contiguous layout (the polars series may be let go)."""
        array = rows.to_arrow(compat_level=pl.CompatLevel.oldest())  # large_string: int64 offsets
        if array.null_count:
            raise AssertionError("an encoded row is never null")
        _, offsets, data = array.buffers()
        start = array.offset
        every = np.frombuffer(offsets, dtype=np.int64)[start : start + len(array) + 1]
        return cls(every, memoryview(data) if data is not None else memoryview(b""), separator)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def sizes(self) -> np.ndarray:
        """Each row's encoded size, without its separator."""
        return np.diff(self.offsets) - len(self.separator)

    def span(self, start: int, stop: int) -> memoryview:
        """Rows ``start..stop``, each with its separator (no copy)."""
        return self.data[int(self.offsets[start]) : int(self.offsets[stop])]

    def tail(self, start: int) -> Fragments:
        """Rows ``start..`` in a buffer of their own (a copy), so this one's memory can go."""
        if start == 0:
            return self
        offsets = self.offsets[start:] - self.offsets[start]
        return Fragments(offsets, memoryview(bytes(self.span(start, len(self)))), self.separator)


def take_sorted(frame: pl.DataFrame, rows: np.ndarray) -> pl.DataFrame:
    """The rows of ``frame`` at ``rows`` (ascending row numbers).

    A prepared frame is made of chunks; gathering from all of it would first join them (a
    copy of the whole frame per call). The rows are in order, so the slice they span holds
    them, and only that slice is touched.

    Example:
        >>> take_sorted(pl.DataFrame({"a": [10, 11, 12, 13]}), np.array([1, 3]))["a"].to_list()
        [11, 13]
    """
    if len(rows) == 0:
        return frame.clear()
    low = int(rows[0])
    return frame.slice(low, int(rows[-1]) + 1 - low)[rows - low]


def json_rows(prepared: Prepared, mapping: Mapping) -> pl.Series:
    """One ``{"data":{...}}`` JSON fragment per valid row of ``prepared``."""
    return RowEncoder(prepared, mapping, "json").rows(prepared.valid_frame)


def xml_rows(prepared: Prepared, mapping: Mapping) -> pl.Series:
    """One ``<data>...</data>`` XML fragment per valid row of ``prepared``."""
    return RowEncoder(prepared, mapping, "xml").rows(prepared.valid_frame)


@dataclass(frozen=True)
class Envelope:
    """What surrounds the profiles in every body of a plan.

    In XML a body of one profile holds a lone ``<data>``: it is marked ``array='true'``
    (``lone`` is the opening it starts with and its marked form), which adds
    :meth:`extra` bytes to that body.

    Example:
        >>> from toolkit.core.mapping import Mapping, Trigger
        >>> env = envelope(Mapping({"email": "email"}), Trigger(96), "xml")
        >>> row = memoryview(b"<data>\\n<email>a@x.io</email>\\n</data>\\n")  # ends with the separator
        >>> env.assemble([row], rows=1).count(b"<data array='true'>")
        1
        >>> env.extra(1), env.extra(2)
        (13, 0)
    """

    prefix: bytes
    separator: bytes
    suffix: bytes
    lone: tuple[bytes, bytes] | None = None

    @property
    def overhead(self) -> int:
        """Bytes every body spends around its profiles."""
        return len(self.prefix) + len(self.suffix)

    def extra(self, rows: int) -> int:
        """Bytes a body of ``rows`` profiles has beyond its envelope, fragments and separators."""
        return len(self.lone[1]) - len(self.lone[0]) if self.lone and rows == 1 else 0

    def assemble(self, pieces: list[memoryview], *, rows: int) -> bytes:
        """The body of ``rows`` profiles from stretches of :class:`Fragments`, in order (each row
        followed by the separator; the last one's is left out): the bytes are copied once."""
        cut = len(pieces[-1]) - len(self.separator)
        parts: list[bytes | memoryview] = [self.prefix, *pieces[:-1], pieces[-1][:cut], self.suffix]
        if self.lone and rows == 1:
            opening, marked = self.lone
            only = parts[1]
            assert bytes(only[: len(opening)]) == opening, "a profile fragment starts with its element"
            parts[1:2] = [marked, only[len(opening) :]]
        return b"".join(parts)


def request_options(mapping: Mapping, trigger: Trigger, format: Format) -> dict[str, Any]:
    """The request's top-level fields (everything but ``data`` and ``token``)."""
    return {"format": format, **mapping.request_options(), **trigger.request_options()}


def envelope(mapping: Mapping, trigger: Trigger, format: Format) -> Envelope:
    """The request envelope: options first, then the profiles, ``data`` last.

    Example:
        >>> from toolkit.core.mapping import Mapping, Trigger
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
        lone=(b"<data", b"<data" + ARRAY_MARK.encode()),  # "<data>" and "<data/>" alike
    )
