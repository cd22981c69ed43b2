"""read_segment(): the files analysts really have, as typed frames.

A segment arrives as a CSV exported from Excel in cp1251 with ``;`` between fields, a
UTF-16 TSV, an ``.xlsx`` with several sheets, a Parquet file, JSON lines, or the bytes of
an upload. :func:`read_segment` reads all of them the same way:

* **format** from the content's magic bytes (zip: Excel, ``PAR1``: Parquet), then from the
  extension; text that starts with ``{`` is JSON lines, any other text is delimited.
* **encoding** (delimited text): a byte-order mark decides (UTF-8, UTF-16, UTF-32); else
  UTF-8 when every non-ASCII value is valid UTF-8; else the single-byte Cyrillic encoding
  (cp1251, koi8-r, cp866, iso-8859-5, mac-cyrillic) whose letters read most like Russian;
  else cp1252. (``charset-normalizer``, installed with requests, was tried first: on the
  few short names of a segment row it answers big5 or cp949, so a letter-frequency score
  decides here instead.)
* **separator**: the one of ``,`` ``;`` tab ``|`` that splits the first lines into the same,
  largest number of fields.
* **types**: numbers, booleans, dates and datetimes are typed, but a column stays text when
  its values look like identifiers: a leading zero (``007``), a ``+`` (``+7 900 ...``), ten
  or more digits (phones without ``+``, tax ids), a phone-like shape, or a name such as
  ``crm_id``, ``phone``, ``zip`` or ``inn``; and any column named in ``text_columns``.

Every problem is a :class:`~toolkit.errors.SegmentFileError` that names the file and says
what was tried: the encodings, the separator, the line whose field count differs from the
header's, or that the file is empty.

Example:
    >>> frame = read_segment("crm_id;name;orders\\n007;Анна;3\\n012;Иван;\\n".encode("cp1251"), kind="polars")
    >>> frame.schema
    Schema([('crm_id', String), ('name', String), ('orders', Int64)])
    >>> frame.rows()
    [('007', 'Анна', 3), ('012', 'Иван', None)]
"""

from __future__ import annotations

import codecs
import csv
import functools
import io
import itertools
import math
import mmap
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, overload

import numpy as np
import polars as pl

from toolkit.core.validate import is_identifier_name
from toolkit.errors import SegmentFileError, did_you_mean

if TYPE_CHECKING:  # pandas is imported on use: a polars-only script never pays for it
    import pandas as pd

__all__ = ["SEPARATORS", "SegmentFile", "load_segment", "read_segment"]

Source = str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes]
FileBytes = bytes | mmap.mmap  # a file as read: its bytes, or a large one mapped

#: The separators sniffed, in the order a tie is decided.
SEPARATORS = (",", ";", "\t", "|")
_SEPARATOR_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
_SHOWN = {"\t": "tab", ",": "','", ";": "';'", "|": "'|'"}

# single-byte encodings tried, in the order a tie is decided (cp1251 is Excel's on Russian Windows)
_CYRILLIC = ("cp1251", "koi8_r", "cp866", "iso8859_5", "mac_cyrillic")
_WESTERN = "cp1252"
_SAMPLE_BYTES = 64 * 1024
_GUESS_BYTES = 8 * 1024  # per column: enough text to tell the encodings apart

# Russian letter frequencies (per cent): a right decoding reads mostly common letters,
# a wrong one (cp1251 read as koi8-r) mostly rare ones and case flips inside words
_RUSSIAN = dict(
    zip(
        "оеаинтсрвлкмдпуяыьгзбчйхжшюцщэфъё",
        (10.97, 8.45, 8.01, 7.35, 6.70, 6.26, 5.47, 4.73, 4.54, 4.40, 3.49, 3.21, 2.98, 2.81, 2.62,
         2.01, 1.90, 1.74, 1.70, 1.65, 1.59, 1.44, 1.21, 0.97, 0.94, 0.73, 0.64, 0.48, 0.36, 0.32,
         0.26, 0.04, 0.04),
        strict=True,
    )
)  # fmt: skip

_MAGIC = ((b"PAR1", "parquet"), (b"PK\x03\x04", "excel"), (b"\xd0\xcf\x11\xe0", "excel"))
_EXTENSIONS = {
    ".csv": "delimited", ".tsv": "delimited", ".tab": "delimited", ".txt": "delimited",
    ".xlsx": "excel", ".xlsm": "excel", ".xlsb": "excel", ".xls": "excel", ".ods": "excel",
    ".parquet": "parquet", ".pq": "parquet",
    ".jsonl": "ndjson", ".ndjson": "ndjson", ".json": "json",
}  # fmt: skip

# the shapes a text value is typed from; anything else stays text
_INT = r"^-?(?:0|[1-9][0-9]{0,8})$"  # up to 9 digits: ten or more are identifiers
_FLOAT = r"^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?$"
_FLOAT_COMMA = r"^-?(?:0|[1-9][0-9]*)(?:,[0-9]+)?$"
_BOOL = r"^(?i:true|false)$"
_DATE_FORMATS = (  # (shape, polars format, kind)
    (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", "%Y-%m-%d", "date"),
    (r"^[0-9]{2}\.[0-9]{2}\.[0-9]{4}$", "%d.%m.%Y", "date"),
    (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?$", "%Y-%m-%d %H:%M:%S%.f", "datetime"),
    (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}$", "%Y-%m-%d %H:%M", "datetime"),
    (r"^[0-9]{2}\.[0-9]{2}\.[0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2}$", "%d.%m.%Y %H:%M:%S", "datetime"),
    (r"^[0-9]{2}\.[0-9]{2}\.[0-9]{4} [0-9]{2}:[0-9]{2}$", "%d.%m.%Y %H:%M", "datetime"),
    (
        r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?(?:Z|[+-][0-9]{2}:?[0-9]{2})$",
        "%Y-%m-%d %H:%M:%S%.f%z",
        "datetime_tz",
    ),
)  # fmt: skip
_SAMPLE_ROWS = 500  # values looked at to pick a column's type; the whole column then confirms it


@dataclass(frozen=True)
class SegmentFile:
    """A segment as read, and how it was read (for messages such as the CLI's first line).

    Attributes:
        frame: the typed polars frame.
        name: the file as given (``"the data given"`` for bytes without a name).
        format: ``"delimited"``, ``"excel"``, ``"parquet"``, ``"ndjson"`` or ``"json"``.
        encoding: the text encoding used (delimited text only), e.g. ``"cp1251"``.
        separator: the field separator used (delimited text only).
        sheet: the sheet read (Excel only).
        kept_as_text: column -> why it was kept as text though its values look like numbers.
    """

    frame: pl.DataFrame
    name: str
    format: str
    encoding: str | None = None
    separator: str | None = None
    sheet: str | None = None
    kept_as_text: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """One line: rows, columns and how the file was read.

        Example:
            >>> load_segment(b"a;b\\n1;2\\n").describe()
            "the data given: 1 row, 2 columns (utf-8, ';' separated)"
        """
        rows, cols = self.frame.height, self.frame.width
        how = [self.encoding] if self.encoding else []
        if self.separator:
            how.append(f"{_SHOWN.get(self.separator, repr(self.separator))} separated")
        if self.sheet:
            how.append(f"sheet {self.sheet!r}")
        shown = f" ({', '.join(how)})" if how else ""
        return f"{self.name}: {rows:,} row{'s' * (rows != 1)}, {cols} column{'s' * (cols != 1)}{shown}"


@overload
def read_segment(
    source: Source,
    *,
    kind: Literal["pandas"] = "pandas",
    encoding: str | None = None,
    separator: str | None = None,
    sheet: str | int | None = None,
    text_columns: Iterable[str] | None = None,
) -> pd.DataFrame: ...
@overload
def read_segment(
    source: Source,
    *,
    kind: Literal["polars"],
    encoding: str | None = None,
    separator: str | None = None,
    sheet: str | int | None = None,
    text_columns: Iterable[str] | None = None,
) -> pl.DataFrame: ...
@overload
def read_segment(
    source: Source,
    *,
    kind: Literal["pandas", "polars"],
    encoding: str | None = None,
    separator: str | None = None,
    sheet: str | int | None = None,
    text_columns: Iterable[str] | None = None,
) -> pd.DataFrame | pl.DataFrame: ...
def read_segment(
    source: Source,
    *,
    kind: Literal["pandas", "polars"] = "pandas",
    encoding: str | None = None,
    separator: str | None = None,
    sheet: str | int | None = None,
    text_columns: Iterable[str] | None = None,
) -> pd.DataFrame | pl.DataFrame:
    """Read a segment file (or its bytes) into a typed pandas or polars frame.

    Args:
        source: a path; the file's bytes; or a binary file-like object (an upload).
        kind: ``"pandas"`` (default) or ``"polars"``. pandas integer columns with blanks
            are nullable ``Int64``, never floats.
        encoding: the text encoding of a delimited file (default: detected; see the module).
        separator: the field separator of a delimited file (default: sniffed among
            ``,`` ``;`` tab ``|``); ``"tab"`` is accepted for ``"\\t"``.
        sheet: the Excel sheet, by name or by 1-based number (default: the first).
        text_columns: columns to keep as text whatever their values look like.

    Returns:
        The segment, one row per data row of the file.

    Raises:
        SegmentFileError: the file is missing, empty, ragged, not text in any encoding
            tried, or an unknown sheet or column was named; the message says what was tried.

    Example:
        >>> df = read_segment(b"email,phone,orders\\nann@x.io,+7 900 123-45-67,3\\nbob@x.io,89001234567,\\n")
        >>> df.dtypes.astype(str).tolist()
        ['str', 'str', 'Int64']
        >>> df["orders"].tolist()
        [3, <NA>]
    """
    if kind not in ("pandas", "polars"):
        raise SegmentFileError(f"kind must be 'pandas' or 'polars', got {kind!r}")
    loaded = load_segment(
        source, encoding=encoding, separator=separator, sheet=sheet, text_columns=text_columns
    )
    return loaded.frame if kind == "polars" else to_pandas(loaded.frame)


def to_pandas(frame: pl.DataFrame) -> pd.DataFrame:
    """A polars frame as pandas, integers and booleans with blanks kept as nullable dtypes.

    (polars' own ``to_pandas`` turns an integer column with a null into float64, the very
    problem a CRM id or a phone then has downstream.)

    Example:
        >>> to_pandas(pl.DataFrame({"n": [1, None]}))["n"].dtype
        Int64Dtype()
    """
    import pandas as pd
    import pyarrow as pa

    nullable = {
        pa.int8(): pd.Int8Dtype(), pa.int16(): pd.Int16Dtype(), pa.int32(): pd.Int32Dtype(),
        pa.int64(): pd.Int64Dtype(), pa.uint8(): pd.UInt8Dtype(), pa.uint16(): pd.UInt16Dtype(),
        pa.uint32(): pd.UInt32Dtype(), pa.uint64(): pd.UInt64Dtype(), pa.bool_(): pd.BooleanDtype(),
    }  # fmt: skip
    # use_threads=False: pyarrow's thread pool, once started beside polars', may abort the
    # interpreter at exit ("terminate called without an active exception")
    return frame.to_arrow().to_pandas(types_mapper=nullable.get, use_threads=False)


def load_segment(
    source: Source,
    *,
    encoding: str | None = None,
    separator: str | None = None,
    sheet: str | int | None = None,
    text_columns: Iterable[str] | None = None,
) -> SegmentFile:
    """:func:`read_segment`'s work, returning the polars frame with how it was read.

    Example:
        >>> seg = load_segment("a\\tb\\n1\\tx\\n".encode("utf-16"))
        >>> seg.encoding, seg.separator, seg.frame.rows()
        ('utf-16', '\\t', [(1, 'x')])
    """
    name, data, suffix = _open(source)
    text = _text_columns(text_columns)
    fmt = _format(data, suffix)
    if fmt != "excel" and sheet is not None:
        raise SegmentFileError(
            f"{name}: sheet={sheet!r} applies to Excel files only; this is {fmt} data", source=name
        )
    if fmt != "delimited" and (separator is not None or encoding is not None):
        what = "separator" if separator is not None else "encoding"
        raise SegmentFileError(
            f"{name}: {what} applies to delimited text (CSV, TSV) only; this is {fmt} data", source=name
        )
    if fmt == "delimited":
        loaded = _read_delimited(data, name, encoding, _separator(separator, name), keep=text)
    elif fmt == "excel":
        loaded = _read_excel(bytes(data), name, sheet)
    else:
        loaded = _read_typed(bytes(data), name, fmt)
    return _keep_text(loaded, text)


# --- opening -------------------------------------------------------------------------------------
def _open(source: Source) -> tuple[str, FileBytes, str]:
    """(name for messages, the bytes (a large file mapped), the lower-case extension or "")."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "the data given", bytes(source), ""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        name = str(source)
        try:
            return name, _read_file(path), path.suffix.lower()
        except FileNotFoundError:
            nearby = [p.name for p in path.parent.iterdir()] if path.parent.is_dir() else []
            raise SegmentFileError(
                f"segment file {name!r} not found{did_you_mean(path.name, nearby)}", source=name
            ) from None
        except IsADirectoryError:
            raise SegmentFileError(f"{name!r} is a folder; give a segment file in it", source=name) from None
        except OSError as exc:
            raise SegmentFileError(
                f"segment file {name!r} cannot be read: {exc.strerror}", source=name
            ) from None
    read = getattr(source, "read", None)
    if read is None:
        raise SegmentFileError(
            f"expected a file path, bytes or a binary file object, got {type(source).__name__}"
        )
    name = str(getattr(source, "name", "") or "the upload")
    data = read()
    if isinstance(data, str):
        raise SegmentFileError(f"{name}: open the file in binary mode ('rb'): its encoding is detected here")
    return name, bytes(data), Path(name).suffix.lower()


def _read_file(path: Path) -> FileBytes:
    """The file's bytes; a large one mapped into memory rather than copied (as polars and
    pyarrow read a path): the CSV reader then parses the page cache itself."""
    with path.open("rb") as file:
        size = os.fstat(file.fileno()).st_size
        if size == 0 or size < _MAP_BYTES:  # (an empty file cannot be mapped)
            return file.read()
        return mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)  # (stays valid once the file is closed)


_MAP_BYTES = 16 << 20  # files from this size on are mapped, not read


def _format(data: FileBytes, suffix: str) -> str:
    for magic, fmt in _MAGIC:
        if data[: len(magic)] == magic:
            return fmt
    by_suffix = _EXTENSIONS.get(suffix)
    if by_suffix in ("excel", "parquet"):
        return by_suffix  # the content said otherwise: let that reader explain
    start = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")[:1]  # (the head only: a strip copies)
    if by_suffix in ("ndjson", "json") or (not suffix and start in (b"{", b"[")):
        return "json" if start == b"[" else "ndjson"
    return "delimited"


def _separator(separator: str | None, name: str) -> str | None:
    if separator is None:
        return None
    value = _SEPARATOR_NAMES.get(separator.lower(), separator)
    if len(value) != 1 or value in '"\r\n':
        raise SegmentFileError(
            f"{name}: separator {separator!r} must be one character, e.g. ',' ';' '|' or 'tab'", source=name
        )
    return value


def _text_columns(columns: Iterable[str] | None) -> tuple[str, ...]:
    if columns is None:
        return ()
    if isinstance(columns, str):
        return (columns,)
    return tuple(columns)


# --- delimited text --------------------------------------------------------------------------
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _read_delimited(
    data: FileBytes, name: str, encoding: str | None, separator: str | None, *, keep: tuple[str, ...] = ()
) -> SegmentFile:
    if _blank(data):
        raise SegmentFileError(f"{name}: the file is empty (no header, no rows)", source=name)
    given = _codec(encoding, name) if encoding else None
    chosen = given or next((enc for bom, enc in _BOMS if data[: len(bom)] == bom), None) or _utf16_guess(data)
    if chosen is not None and not _byte_wise(chosen):
        # UTF-16/32 (or a multi-byte encoding whose bytes may look like separators): the
        # whole text is decoded here, then read as UTF-8
        try:
            data = str(data, chosen).encode("utf-8")
        except UnicodeDecodeError as exc:
            raise SegmentFileError(_undecodable(name, exc, [chosen], data), source=name) from None
        shown = _shown_encoding(chosen)
        chosen = "utf-8"
    else:
        shown = None
    if data[:3] == codecs.BOM_UTF8:
        data, chosen = data[len(codecs.BOM_UTF8) :], chosen or "utf-8"
    if chosen == "utf-8-sig":
        chosen = "utf-8"
    sep, header_fields, header_lines = _header(data, separator, name)
    table = _parse(data, name, sep, len(header_fields), header_lines)
    columns = [table.column(i) for i in range(table.num_columns)]
    ascii_columns = [_is_ascii(c) for c in columns]  # (most are: ids, emails, numbers, dates)
    encoding_used, header_names, tried = _decide_encoding(chosen, header_fields, columns, ascii_columns, name)
    names = _column_names(header_names, name)
    decoded = _decode_columns(columns, ascii_columns, encoding_used, name, names, tried)
    import pyarrow as pa

    frame = pl.from_arrow(pa.table(decoded, names=names))
    assert isinstance(frame, pl.DataFrame)
    frame, kept = _type_text_columns(frame, decimal_comma=sep != ",", keep=frozenset(keep))
    return SegmentFile(
        frame, name, "delimited", shown or _shown_encoding(encoding_used), sep, kept_as_text=kept
    )


def _blank(data: FileBytes) -> bool:
    """Nothing but spaces, line ends, NULs and byte-order marks."""
    blank = b" \t\r\n\x00" + codecs.BOM_UTF8 + codecs.BOM_UTF16_LE + codecs.BOM_UTF16_BE
    return not data[:4096].strip(blank) and not (len(data) > 4096 and data[4096:].strip(blank))


def _codec(encoding: str, name: str) -> str:
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        known = ["utf-8", "utf-16", "cp1251", "koi8-r", "cp866", "cp1252", "latin-1"]
        raise SegmentFileError(
            f"{name}: unknown encoding {encoding!r}{did_you_mean(encoding, known)} "
            f"(common ones: {', '.join(known)})",
            source=name,
        ) from None


def _shown_encoding(codec: str) -> str:
    return {"utf-8-sig": "utf-8 with BOM", "koi8_r": "koi8-r", "iso8859_5": "iso-8859-5",
            "mac_cyrillic": "mac-cyrillic", "latin_1": "latin-1"}.get(codec, codec)  # fmt: skip


@functools.cache
def _byte_wise(codec: str) -> bool:
    """True for UTF-8 and single-byte encodings that keep ASCII as ASCII: the file's fields
    can then be split on the raw bytes and each column decoded on its own."""
    if codec in ("utf-8", "utf-8-sig", "ascii"):
        return True
    try:
        ascii_same = bytes(range(128)).decode(codec) == bytes(range(128)).decode("ascii")
    except (UnicodeDecodeError, LookupError):
        return False
    return ascii_same and _single_byte_table(codec) is not None


@functools.cache
def _single_byte_table(codec: str) -> tuple[np.ndarray, np.ndarray] | None:
    """For a single-byte encoding: each byte's extra UTF-8 length (0-2) and whether it is defined.

    ``None`` for a multi-byte encoding (a byte sequence decodes to fewer characters).
    """
    extra = np.zeros(256, dtype=np.uint8)
    defined = np.ones(256, dtype=bool)
    for byte in range(256):
        try:
            text = bytes([byte]).decode(codec)
        except UnicodeDecodeError:
            defined[byte] = False
            continue
        if len(text) != 1:
            return None
        extra[byte] = len(text.encode("utf-8")) - 1
    sample = bytes(b for b in range(128, 256) if defined[b])
    if len(sample.decode(codec, errors="replace")) != len(sample):
        return None  # bytes that combine: not single-byte
    return extra, defined


def _utf16_guess(data: FileBytes) -> str | None:
    """UTF-16 without a byte-order mark: one NUL beside every ASCII character."""
    head = data[:4096]
    if len(head) < 4 or head.count(0) < len(head) // 4:
        return None
    even, odd = head[0::2].count(0), head[1::2].count(0)
    return "utf-16-le" if odd > even else "utf-16-be"


def _header(data: FileBytes, separator: str | None, name: str) -> tuple[str, list[bytes], int]:
    """The separator, the header's fields (raw bytes) and the lines the header takes."""
    head = data[:_SAMPLE_BYTES]
    cut = head.rfind(b"\n")
    if 0 < cut < len(head) - 1 and len(data) > len(head):
        head = head[: cut + 1]
    # latin-1 maps byte to character one for one: the separators and quotes (ASCII) of any
    # byte-wise encoding are found at their places, whatever the encoding turns out to be
    text = head.decode("latin-1")
    sep = separator or _sniff(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    try:
        fields = next(reader)
    except (StopIteration, csv.Error):
        raise SegmentFileError(f"{name}: the file is empty (no header, no rows)", source=name) from None
    if not any(f.strip() for f in fields):
        raise SegmentFileError(f"{name}: the first line is blank; it should name the columns", source=name)
    return sep, [f.encode("latin-1") for f in fields], reader.line_num


def _sniff(text: str) -> str:
    """The separator that splits the first lines into the same, largest number of fields.

    Example:
        >>> _sniff("email;name\\na@x.io;Ann, B\\n"), _sniff("a\\tb\\n1\\t2\\n"), _sniff("email\\na@x.io\\n")
        (';', '\\t', ',')
    """
    lines = text.splitlines(keepends=True)[:50]
    if len(lines) > 1 and not text.endswith(("\n", "\r")):
        lines = lines[:-1]  # the sample cut a line in two
    best, best_score = ",", (0.0, 0)
    for sep in SEPARATORS:
        try:
            counts = [len(r) for r in csv.reader(io.StringIO("".join(lines), newline=""), delimiter=sep) if r]
        except csv.Error:
            continue
        if not counts or counts[0] < 2:
            continue
        score = (sum(c == counts[0] for c in counts) / len(counts), counts[0])
        if score > best_score:
            best, best_score = sep, score
    return best


def _parse(data: FileBytes, name: str, sep: str, n_columns: int, header_lines: int) -> Any:
    """Every field as bytes (pyarrow's CSV reader), the header skipped.

    pyarrow reads each part on one thread of its own (``use_threads=False``: its thread
    pool, once started beside polars', may abort the interpreter at exit with "terminate
    called without an active exception"); a large file is cut at line ends into one part
    per core, read side by side on threads started here.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = [f"c{i}" for i in range(n_columns)]
    quoted = data.find(b'"') != -1

    def read(part: bytes | memoryview, skip: int) -> Any:
        return pacsv.read_csv(
            pa.BufferReader(part),
            read_options=pacsv.ReadOptions(
                use_threads=False, column_names=names, skip_rows=skip, block_size=16 << 20
            ),
            parse_options=pacsv.ParseOptions(delimiter=sep, newlines_in_values=quoted),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.binary()),
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
                null_values=[""],
            ),
        )

    cuts = _line_cuts(data, max(1, min(pl.thread_pool_size(), len(data) // _PART_BYTES)), quoted)
    view = memoryview(data)
    try:
        if len(cuts) == 2:
            return read(view, header_lines)
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=len(cuts) - 1, thread_name_prefix="toolkit-csv") as pool:
            parts = list(
                pool.map(
                    lambda i: read(view[cuts[i] : cuts[i + 1]], header_lines if i == 0 else 0),
                    range(len(cuts) - 1),
                )
            )
        return pa.concat_tables(parts)
    except pa.ArrowInvalid as exc:
        raise SegmentFileError(_parse_problem(data, name, sep, n_columns, str(exc)), source=name) from None


_PART_BYTES = 8 << 20  # a file is read in parts of at least this size, one per core


def _line_cuts(data: FileBytes, parts: int, quoted: bool) -> list[int]:
    """Offsets cutting ``data`` into about ``parts`` pieces at line ends outside quotes.

    Example:
        >>> _line_cuts(b'a\\n"b\\nc"\\nd\\ne\\n', 3, True)
        [0, 8, 10, 12]
    """
    cuts, quotes, counted = [0], 0, 0
    for i in range(1, parts):
        at = data.find(b"\n", max(cuts[-1], len(data) * i // parts))
        while at != -1 and quoted:
            quotes += data[counted:at].count(b'"')
            counted = at
            if quotes % 2 == 0:  # an even number of quotes before it: outside a value
                break
            at = data.find(b"\n", at + 1)
        if at == -1 or at + 1 >= len(data):
            break
        cuts.append(at + 1)
    return [*cuts, len(data)]


def _parse_problem(data: FileBytes, name: str, sep: str, n_columns: int, arrow_message: str) -> str:
    """Say which line does not fit (found again with the csv module: this is the error path)."""
    text = str(data, "latin-1")  # ASCII structure only: any byte-wise encoding
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    shown = _SHOWN.get(sep, repr(sep))
    try:
        for record in reader:
            if record and len(record) != n_columns and reader.line_num > 1:
                return (
                    f"{name}: the header has {n_columns} columns, line {reader.line_num} has {len(record)} "
                    f"(separator {shown}); a value holding the separator needs quotes, or pass the right "
                    "separator (separator=... / --separator)"
                )
    except csv.Error as exc:
        return f"{name}: line {reader.line_num} cannot be read ({exc}); check its quotes"
    reason = arrow_message.split(":", 2)[-1].strip() if "CSV parse error" in arrow_message else arrow_message
    return f"{name}: the file cannot be read as {shown}-separated text ({reason[:120]})"


def _decide_encoding(
    chosen: str | None, header: list[bytes], columns: list[Any], ascii_columns: list[bool], name: str
) -> tuple[str, list[str], list[str]]:
    """(the encoding, the header's names decoded, the encodings tried, for messages)."""
    raw_header = b"\0".join(header)
    if chosen is not None:
        tried = [chosen]
        try:
            return chosen, raw_header.decode(chosen).split("\0"), tried
        except UnicodeDecodeError as exc:
            raise SegmentFileError(_undecodable(name, exc, tried, raw_header), source=name) from None
    wide = [c for c, ascii_only in zip(columns, ascii_columns, strict=True) if not ascii_only]
    if raw_header.isascii() and not wide:
        return "utf-8", raw_header.decode("ascii").split("\0"), ["utf-8"]
    if _valid_utf8(raw_header, wide):
        return "utf-8", raw_header.decode("utf-8").split("\0"), ["utf-8"]
    sample = raw_header + b"\n" + b"\n".join(_column_bytes(c, _GUESS_BYTES, between=b" ") for c in wide)
    guess = _guess_single_byte(sample)
    tried = ["utf-8", *(c for c in _CYRILLIC if c != guess), guess] if guess else ["utf-8", *_CYRILLIC]
    if guess is None:
        raise SegmentFileError(
            f"{name}: the text is in none of the encodings tried ({', '.join(map(_shown_encoding, tried))}, "
            f"{_WESTERN}); pass the file's encoding (encoding=... / --encoding)",
            source=name,
        )
    return guess, raw_header.decode(guess).split("\0"), ["utf-8", guess]


def _is_ascii(column: Any) -> bool:
    for chunk in column.chunks:
        data = chunk.buffers()[2]
        if data is not None and len(data) and np.frombuffer(data, dtype=np.uint8).max() >= 0x80:
            return False
    return True


def _valid_utf8(header: bytes, columns: list[Any]) -> bool:
    """UTF-8 as far as the header and each column's first values tell (the rest is validated
    when the columns are decoded, and an invalid byte there is an error naming the column)."""
    try:
        header.decode("utf-8")
    except UnicodeDecodeError:
        return False
    for column in columns:
        sample = _column_bytes(column, _SAMPLE_BYTES)
        try:
            sample.decode("utf-8")
        except UnicodeDecodeError as exc:
            if not (exc.reason == "unexpected end of data" and exc.end == len(sample)):
                return False  # a character cut in two at the sample's end is not an error
    return True


def _column_bytes(column: Any, limit: int, *, between: bytes = b"") -> bytes:
    """About ``limit`` bytes of a column's first values, ``between`` each two (a sample)."""
    out = bytearray()
    for chunk in column.chunks:
        _, offsets, data = chunk.buffers()
        if data is None:
            continue
        bounds = np.frombuffer(offsets, dtype=np.int32)[chunk.offset : chunk.offset + len(chunk) + 1]
        if not between:
            out += memoryview(data)[bounds[0] : min(bounds[-1], bounds[0] + limit - len(out))]
        else:
            view = memoryview(data)
            head = bounds[: limit - len(out) + 2].tolist()  # no value is shorter than its separator
            for start, stop in itertools.pairwise(head):
                if stop > start:
                    out += view[start:stop]
                    out += between
                if len(out) >= limit:
                    break
        if len(out) >= limit:
            break
    return bytes(out)


def _guess_single_byte(sample: bytes) -> str | None:
    """The single-byte encoding the non-ASCII bytes read best in (Russian first), or None.

    A byte an encoding does not define counts against it (it reads as a non-letter), so a
    cp1251 file with one stray byte is still found to be cp1251, and then refused with the
    byte named, rather than read as cp1252 mojibake.

    Example:
        >>> [_guess_single_byte("Иван Петров, Москва".encode(e)) for e in ("cp1251", "koi8_r", "cp866")]
        ['cp1251', 'koi8_r', 'cp866']
        >>> _guess_single_byte("Müller, Köln".encode("cp1252"))
        'cp1252'
    """
    best, best_score = None, -math.inf
    for codec in _CYRILLIC:
        score = _russian_score(sample.decode(codec, errors="replace"))
        if score is not None and score > best_score:
            best, best_score = codec, score
    if best is not None and best_score > math.log(0.4):  # mostly common letters, in Cyrillic words
        return best
    for codec in (_WESTERN, "latin_1"):
        try:
            sample.decode(codec)
        except UnicodeDecodeError:
            continue
        return codec
    return best


def _russian_score(text: str) -> float | None:
    """Mean log-likelihood of the non-ASCII characters as Russian text (higher is likelier).

    0 is the likelihood of a common letter; a non-letter, a rare letter or a capital inside
    a word (``иВАН``: ``Иван`` in cp1251 read as koi8-r) pulls it down.
    """
    counts = Counter(text)  # counted in C; the ASCII characters are then dropped
    for char in [c for c in counts if c < "\x80"]:
        del counts[char]
    total = sum(counts.values())
    if not total:
        return None
    score = 0.0
    for char, count in counts.items():
        share = _RUSSIAN.get(char.lower())
        score += count * math.log(share if share is not None else 0.01)
    # "иВАН": a capital inside a word; "Mьller": a Cyrillic letter inside a Latin word
    odd = len(re.findall(r"[а-яё][А-ЯЁ]", text)) + len(
        re.findall(r"[A-Za-z][^\x00-\x7f]|[^\x00-\x7f][A-Za-z]", text)
    )
    return (score + odd * math.log(0.05)) / total - math.log(4.0)


def _column_names(header: list[str], name: str) -> list[str]:
    names = [h.strip().lstrip("\ufeff") or f"column_{i + 1}" for i, h in enumerate(header)]
    repeated = [n for n, count in Counter(names).items() if count > 1]
    if repeated:
        where = {n: [i + 1 for i, m in enumerate(names) if m == n] for n in repeated}
        shown = "; ".join(f"{n!r} (columns {', '.join(map(str, at))})" for n, at in where.items())
        raise SegmentFileError(
            f"{name}: the header names a column more than once: {shown}; rename them so each is unique",
            source=name,
        )
    return names


def _decode_columns(
    columns: list[Any], ascii_columns: list[bool], codec: str, name: str, names: list[str], tried: list[str]
) -> list[Any]:
    """Every column as UTF-8 text in Arrow's string-view layout (polars' own: taken over without
    a copy); in a large file, the columns side by side, one per core.

    (pyarrow's hashing, takes and casts release the GIL: on 2 cores the Cyrillic columns of a
    cp1251 file decode in about 60% of the time they take one after another.)
    """
    jobs = [(i, "ascii" if ascii_only else codec) for i, ascii_only in enumerate(ascii_columns)]
    rows = sum(len(c) for c in columns[0].chunks) if columns else 0
    if len(columns) < 2 or rows < _PARALLEL_DECODE_ROWS or pl.thread_pool_size() < 2:
        return [_decode_column(columns[i], how, name, names[i], tried) for i, how in jobs]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=pl.thread_pool_size(), thread_name_prefix="toolkit-decode") as pool:
        return list(
            pool.map(lambda job: _decode_column(columns[job[0]], job[1], name, names[job[0]], tried), jobs)
        )


_PARALLEL_DECODE_ROWS = 200_000  # below this, threads cost more than they save


def _decode_column(column: Any, codec: str, name: str, column_name: str, tried: list[str]) -> Any:
    """A column of raw field bytes as UTF-8 text, chunk by chunk (ASCII chunks: no copy).

    In a single-byte encoding, a column of few distinct values (first names, cities) is
    decoded once per distinct value (a dictionary, then a take); any other, as one buffer.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    chunks: list[Any] = []
    for chunk in column.chunks:
        rows_before = sum(len(c) for c in chunks)
        validity, offsets, data = chunk.buffers()
        bounds = np.frombuffer(offsets, dtype=np.int32)[chunk.offset : chunk.offset + len(chunk) + 1]
        raw = np.frombuffer(data, dtype=np.uint8)[bounds[0] : bounds[-1]] if data is not None else None
        if codec == "ascii" or raw is None or raw.size == 0 or codec == "utf-8" or raw.max() < 0x80:
            as_text = pa.StringArray.from_buffers(
                len(chunk), offsets, data, validity, chunk.null_count, chunk.offset
            )
            if codec == "utf-8" and raw is not None and raw.size and raw.max() >= 0x80:
                try:
                    as_text.validate(full=True)
                except pa.ArrowInvalid:
                    raise SegmentFileError(
                        f"{name}: column {column_name!r} is not valid utf-8 text (the encoding "
                        f"{'given' if tried == ['utf-8'] else 'found'}); pass the file's encoding "
                        "(encoding=... / --encoding), e.g. cp1251",
                        source=name,
                    ) from None
            chunks.append(as_text)
            continue
        sample = chunk.slice(0, _DICTIONARY_SAMPLE)
        if len(chunk) > 2 * _DICTIONARY_SAMPLE and pc.count_distinct(sample).as_py() * 8 < len(sample):
            encoded = pc.dictionary_encode(chunk)
            words = _transcode(encoded.dictionary, codec, name, column_name, tried, rows_before=None)
            chunks.append(pc.take(words, encoded.indices))
        else:
            chunks.append(_transcode(chunk, codec, name, column_name, tried, rows_before=rows_before))
    if any(isinstance(c, pa.LargeStringArray) for c in chunks):
        chunks = [c.cast(pa.large_string()) if not isinstance(c, pa.LargeStringArray) else c for c in chunks]
    return pa.chunked_array(chunks, type=chunks[0].type if chunks else pa.string()).cast(pa.string_view())


_DICTIONARY_SAMPLE = 20_000  # values looked at to tell a column of few distinct values


def _transcode(
    chunk: Any, codec: str, name: str, column_name: str, tried: list[str], *, rows_before: int | None
) -> Any:
    """A chunk of single-byte-encoded values as UTF-8: the whole buffer decoded at once, each
    value's new offset its old one plus the bytes the characters before it grew by."""
    import pyarrow as pa

    if chunk.offset:  # a slice: its validity bits start mid-byte; a fresh copy starts at 0
        chunk = pa.concat_arrays([chunk])
    validity, offsets, data = chunk.buffers()
    bounds = np.frombuffer(offsets, dtype=np.int32)[: len(chunk) + 1]
    raw = (
        np.frombuffer(data, dtype=np.uint8)[bounds[0] : bounds[-1]]
        if data is not None
        else np.zeros(0, np.uint8)
    )
    table = _single_byte_table(codec)
    assert table is not None
    extra, defined = table
    if not defined[raw].all():
        at = int(np.argmin(defined[raw]))
        where = ""
        if rows_before is not None:  # (a dictionary's values have no row)
            where = f", row {rows_before + int(np.searchsorted(bounds - bounds[0], at, side='right')):,}"
        raise SegmentFileError(
            f"{name}: column {column_name!r}{where}: byte 0x{int(raw[at]):02x} is no character in "
            f"{_shown_encoding(codec)} (encodings tried: {', '.join(map(_shown_encoding, tried))}); "
            "pass the file's encoding (encoding=... / --encoding)",
            source=name,
        )
    text = raw.tobytes().decode(codec).encode("utf-8")
    wide = np.int32 if raw.size < 2**29 else np.int64  # at most 2 extra bytes per byte
    grown = np.concatenate([np.zeros(1, wide), np.cumsum(extra[raw], dtype=wide)])
    relative = bounds.astype(np.int64) - bounds[0]
    new_offsets = relative + grown[relative]
    return pa.LargeStringArray.from_buffers(
        len(chunk),
        pa.py_buffer(new_offsets),
        pa.py_buffer(text),
        validity,
        chunk.null_count,
        0,
    )


def _undecodable(name: str, exc: UnicodeDecodeError, tried: Sequence[str], data: FileBytes) -> str:
    line = data[: exc.start].count(b"\n") + 1
    return (
        f"{name}: line {line}: byte 0x{data[exc.start]:02x} cannot be read as "
        f"{_shown_encoding(exc.encoding)} (encodings tried: {', '.join(map(_shown_encoding, tried))}); "
        "pass the file's encoding (encoding=... / --encoding)"
    )


# --- typing text columns -----------------------------------------------------------------------
def _type_text_columns(
    frame: pl.DataFrame, *, decimal_comma: bool, keep: frozenset[str] = frozenset()
) -> tuple[pl.DataFrame, dict[str, str]]:
    """Type each text column from its values (see the module); identifiers stay text.

    A column's type is picked from its first values, then the whole column is cast in one
    parallel query: a column where a value does not convert, or that turns out to hold an
    identifier (a ``+``, a leading zero, ten or more digits), stays text.
    """
    kept: dict[str, str] = {}
    text = [c for c, t in frame.schema.items() if t == pl.String and c not in keep]
    if not text:
        return frame, kept
    head = frame.head(_SAMPLE_ROWS * 4)
    candidates: dict[str, tuple[str, str | None]] = {}  # column -> (kind, format)
    for column in text:
        values = head.get_column(column).drop_nulls().head(_SAMPLE_ROWS).to_list()
        if not values:  # blank at the top: look further down
            values = frame.get_column(column).drop_nulls().head(_SAMPLE_ROWS).to_list()
        kind, why = _sample_kind(values, decimal_comma)
        if why is not None:
            kept[column] = why
        elif kind is not None and is_identifier_name(column) and kind[0] in ("int", "float"):
            kept[column] = "its name says identifier"
        elif kind is not None:
            candidates[column] = kind
    if not candidates:
        return frame, kept
    # cast every candidate at once; then the checks that may send one back to text
    typed = frame.select(_cast(pl.col(c), kind, fmt).alias(c) for c, (kind, fmt) in candidates.items())
    checks = []
    for column, (target, _) in candidates.items():
        value = pl.col(column)
        refusal: pl.Expr
        if target in ("int", "float"):
            leading_zero = (  # "007", not "0", "0.5" or "0,5" (prefix tests: no regex over every value)
                value.str.starts_with("0")
                & (value != "0")
                & ~value.str.starts_with("0.")
                & ~value.str.starts_with("0,")
            )
            largest = typed.get_column(column).abs().max() if target == "int" else 0
            refusal = (
                pl.when(value.str.starts_with("+").any())
                .then(pl.lit("a '+' sign"))
                .when(leading_zero.any())
                .then(pl.lit("leading zeros"))
                .when(pl.lit(largest is not None and largest >= 10**9))  # type: ignore[operator]  # max() is typed as any literal; an int column gives an int
                .then(pl.lit("ten or more digits"))
            )
        else:
            refusal = pl.lit(None, pl.String)
        checks.append(pl.struct(given=value.count(), why=refusal).alias(column))
    verdicts = frame.select(checks).row(0, named=True)
    typed_columns = []
    for column in candidates:
        verdict = verdicts[column]
        if verdict["why"] is not None:
            kept[column] = verdict["why"]
        elif typed.get_column(column).count() == verdict["given"]:  # every value converted
            typed_columns.append(typed.get_column(column))
    return (frame.with_columns(typed_columns) if typed_columns else frame), kept


def _sample_kind(values: list[str], decimal_comma: bool) -> tuple[tuple[str, str | None] | None, str | None]:
    """The type the first values suggest (None: text), and why they are an identifier, if so.

    Example:
        >>> _sample_kind(["3", "12"], False), _sample_kind(["007", "12"], False)
        ((('int', None), None), (None, 'leading zeros'))
        >>> _sample_kind(["12,5", "7"], True), _sample_kind(["+7 900 123-45-67"], True)
        ((('float', 'comma'), None), (None, 'phone-like'))
    """

    def every(pattern: str) -> bool:
        compiled = re.compile(pattern)
        return all(compiled.match(v) for v in values)

    if not values:
        return None, None
    if every(r"^[-+]?[0-9]+(?:[.,][0-9]+)?$"):  # numbers, unless they are identifiers
        if any(v.startswith("+") for v in values):
            return None, "a '+' sign"
        if any(re.match(r"^-?0[0-9]", v) for v in values):
            return None, "leading zeros"
        if any(len(v.lstrip("-")) >= 10 for v in values if v.lstrip("-").isdigit()):
            return None, "ten or more digits"
    elif any(re.match(r"^\+?[0-9][0-9 ()\-]{6,}[0-9]$", v) for v in values) and every(r"^\+?[0-9 ()\-.]+$"):
        return None, "phone-like"
    if every(_INT):
        return ("int", None), None
    if every(_FLOAT):
        return ("float", None), None
    if decimal_comma and every(_FLOAT_COMMA):
        return ("float", "comma"), None
    if every(_BOOL):
        return ("bool", None), None
    for shape, fmt, kind in _DATE_FORMATS:
        if every(shape):
            return (kind, fmt), None
    return None, None


def _parse_date(value: pl.Expr, kind: str, fmt: str | None) -> pl.Expr:
    assert fmt is not None
    if kind == "date":
        return value.str.to_date(fmt, strict=False)
    text = value.str.replace("T", " ", literal=True)
    if kind == "datetime":
        return text.str.to_datetime(fmt, strict=False, time_unit="us")
    text = text.str.replace(r"Z$", "+00:00")
    if "%.f" in fmt:
        text = text.str.replace(r"^([^.]{19})([+-])", "${1}.0${2}")  # a fraction, so that %.f has one
    return text.str.to_datetime(fmt, strict=False, time_unit="us", time_zone="UTC")


def _cast(value: pl.Expr, kind: str, fmt: str | None) -> pl.Expr:
    """``value`` (text) as ``kind``; null where a value does not convert.

    The reader made blank fields null already; a value with spaces around it does not
    convert, and its column stays text.
    """
    if kind == "int":
        return value.cast(pl.Int64, strict=False)
    if kind == "float":
        if fmt == "comma":
            value = value.str.replace(",", ".", literal=True)
        return value.cast(pl.Float64, strict=False)
    if kind == "bool":
        lower = value.str.to_lowercase()
        return pl.when(lower == "true").then(True).when(lower == "false").then(False)
    return _parse_date(value, kind, fmt)


# --- Excel, Parquet, JSON -------------------------------------------------------------------------
def _read_excel(data: bytes, name: str, sheet: str | int | None) -> SegmentFile:
    try:
        import fastexcel
    except ImportError:  # pragma: no cover - a dependency
        raise SegmentFileError(f"{name}: reading Excel files needs the 'fastexcel' package") from None
    try:
        workbook = fastexcel.read_excel(data)
    except Exception as exc:  # fastexcel raises its own errors for broken files
        raise SegmentFileError(
            f"{name}: not a readable Excel workbook ({_first_line(exc)})", source=name
        ) from None
    sheets = list(workbook.sheet_names)
    if sheet is None:
        chosen = sheets[0] if sheets else None
    elif isinstance(sheet, int) and not isinstance(sheet, bool):
        chosen = sheets[sheet - 1] if 1 <= sheet <= len(sheets) else None
    else:
        chosen = str(sheet) if str(sheet) in sheets else None
    if chosen is None:
        listed = ", ".join(f"{i}: {s!r}" for i, s in enumerate(sheets, start=1))
        raise SegmentFileError(
            f"{name}: no sheet {sheet!r}{did_you_mean(str(sheet), sheets)}; the workbook has {listed or 'no sheets'} "
            "(sheet=... by name or 1-based number / --sheet)",
            source=name,
        )
    try:
        frame = pl.read_excel(data, sheet_name=chosen, engine="calamine", infer_schema_length=None,
                              raise_if_empty=False)  # fmt: skip
    except Exception as exc:
        raise SegmentFileError(
            f"{name}: sheet {chosen!r} cannot be read ({_first_line(exc)})", source=name
        ) from None
    assert isinstance(frame, pl.DataFrame)
    frame = frame.rename({c: c.strip() for c in frame.columns if c != c.strip()})
    kept: dict[str, str] = {}
    casts = []
    for column, dtype in frame.schema.items():
        if not dtype.is_numeric():
            continue
        why = "its name says identifier" if is_identifier_name(column) else None
        if (why is None and frame.get_column(column).abs().max()) or 0:
            largest = frame.get_column(column).abs().max()
            if isinstance(largest, (int, float)) and largest >= 1e9 and _whole(frame.get_column(column)):
                why = "ten or more digits"
        if why:
            kept[column] = why
            casts.append(_digits(column, dtype))
    if casts:
        frame = frame.with_columns(casts)
    return SegmentFile(frame, name, "excel", sheet=chosen, kept_as_text=kept)


def _whole(series: pl.Series) -> bool:
    finite = series.filter(series.is_not_null())
    if finite.dtype.is_float():
        finite = finite.filter(finite.is_finite())
        return bool((finite == finite.round(0)).all())
    return True


def _digits(column: str, dtype: pl.DataType) -> pl.Expr:
    """A numeric column as text: whole floats as their integer digits (no ``.0``)."""
    value = pl.col(column)
    if dtype.is_float():
        whole = value.is_finite() & (value == value.round(0)) & (value.abs() < 2**63)
        return (
            pl.when(whole)
            .then(value.cast(pl.Int64, strict=False).cast(pl.String))
            .otherwise(value.cast(pl.String))
        ).alias(column)
    return value.cast(pl.String).alias(column)


def _read_typed(data: bytes, name: str, fmt: str) -> SegmentFile:
    try:
        if fmt == "parquet":
            frame = pl.read_parquet(data)
        elif fmt == "ndjson":
            if not data.strip():
                raise SegmentFileError(f"{name}: the file is empty (no rows)", source=name)
            frame = pl.read_ndjson(data)
        else:
            frame = pl.read_json(data)
    except SegmentFileError:
        raise
    except Exception as exc:  # polars raises several kinds for a broken file
        what = {
            "parquet": "a Parquet file",
            "ndjson": "JSON lines (one object per line)",
            "json": "a JSON array of objects",
        }[fmt]
        raise SegmentFileError(f"{name}: not readable as {what} ({_first_line(exc)})", source=name) from None
    return SegmentFile(frame, name, fmt)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]


def _keep_text(loaded: SegmentFile, columns: tuple[str, ...]) -> SegmentFile:
    """``text_columns``: back to text, as written (numbers as their digits, dates ISO)."""
    if not columns:
        return loaded
    frame = loaded.frame
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SegmentFileError(
            f"{loaded.name}: text_columns names {missing[0]!r}, which is not a column"
            f"{did_you_mean(missing[0], frame.columns)} (columns: {', '.join(map(repr, frame.columns[:12]))})",
            source=loaded.name,
        )
    casts = []
    kept = dict(loaded.kept_as_text)
    for column in columns:
        dtype = frame.schema[column]
        kept[column] = "named in text_columns"
        if dtype == pl.String:
            continue
        if dtype.is_numeric():
            casts.append(_digits(column, dtype))
        elif dtype == pl.Date:
            casts.append(pl.col(column).dt.to_string("%Y-%m-%d"))
        else:
            casts.append(pl.col(column).cast(pl.String))
    return SegmentFile(
        frame.with_columns(casts) if casts else frame, loaded.name, loaded.format, loaded.encoding,
        loaded.separator, loaded.sheet, kept,
    )  # fmt: skip
