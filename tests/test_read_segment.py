"""read_segment() on the files analysts really have, written here as real files, then planned."""

from __future__ import annotations

import datetime as dt
import io
import mmap
from pathlib import Path

import pandas as pd
import polars as pl
import pytest

import toolkit
from toolkit import Mapping, SegmentFileError, Subscription, Trigger, read_segment
from toolkit.io import segments
from toolkit.io.segments import load_segment

RUSSIAN_CSV = (
    "crm_id;Имя;Фамилия;email;Телефон;orders;revenue;signup\n"
    "007;Анна;Петрова;anna@example.ru;+7 900 123-45-67;3;12,5;01.02.2024\n"
    "012;Иван;Сидоров;ivan@example.ru;89001234568;;7;15.03.2023\n"
    "113;Пётр;Ёлкин;bad-email;8 (900) 123-45-69;1;0,99;31.12.2022\n"
)
MAPPING = Mapping(
    {"crm_id": "CRM_ID", "Имя": "_fname", "email": "email", "Телефон": "phones", "orders": "orders"},
    subscriptions=[Subscription("sms", "Телефон", 20)],
)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_cp1251_semicolon_csv_from_excel_is_read_and_typed(tmp_path: Path) -> None:
    """Excel's Russian CSV (cp1251, ';', decimal commas, dd.mm.yyyy) reads as typed text, ids kept."""
    path = write(tmp_path, "export.csv", RUSSIAN_CSV.encode("cp1251"))
    seg = load_segment(path)
    assert (seg.encoding, seg.separator) == ("cp1251", ";")
    frame = seg.frame
    assert frame.schema == {
        "crm_id": pl.String, "Имя": pl.String, "Фамилия": pl.String, "email": pl.String,
        "Телефон": pl.String, "orders": pl.Int64, "revenue": pl.Float64, "signup": pl.Date,
    }  # fmt: skip
    assert frame["Имя"].to_list() == ["Анна", "Иван", "Пётр"]
    assert frame["crm_id"].to_list() == ["007", "012", "113"]
    assert frame["revenue"].to_list() == [12.5, 7.0, 0.99]
    assert frame["signup"].to_list() == [dt.date(2024, 2, 1), dt.date(2023, 3, 15), dt.date(2022, 12, 31)]
    assert seg.kept_as_text == {"crm_id": "leading zeros", "Телефон": "phone-like"}
    assert seg.describe() == f"{path}: 3 rows, 8 columns (cp1251, ';' separated)"

    planned = toolkit.plan(read_segment(path), MAPPING, Trigger(96))
    assert planned.n_valid == 2 and planned.rejected_by_rule() == {"invalid_email": 1}
    assert planned.records(1) == [
        {"CRM_ID": "007", "_fname": "Анна", "email": "anna@example.ru", "phones": "+79001234567", "orders": 3,
         "subscriptions": [{"channel": "sms", "phone": "+79001234567", "resource_id": 20}]},
    ]  # fmt: skip


@pytest.mark.parametrize("encoding", ["koi8_r", "cp866", "utf-8", "utf-8-sig"])
def test_other_cyrillic_encodings_are_detected(tmp_path: Path, encoding: str) -> None:
    """koi8-r, DOS cp866 and UTF-8 with or without BOM all give the same names back."""
    path = write(tmp_path, "names.csv", "name,city\nИван,Москва\nПётр,Казань\n".encode(encoding))
    frame = read_segment(path, kind="polars")
    assert frame.rows() == [("Иван", "Москва"), ("Пётр", "Казань")]


def test_utf16_tsv_with_bom(tmp_path: Path) -> None:
    """Excel's "Unicode text" (UTF-16 with BOM, tab-separated) reads like any CSV."""
    text = "email\tname\torders\nann@x.io\tЁжик\t2\nbob@x.io\tBob\t\n"
    path = write(tmp_path, "unicode.txt", text.encode("utf-16"))
    seg = load_segment(path)
    assert (seg.encoding, seg.separator) == ("utf-16", "\t")
    assert seg.frame.rows() == [("ann@x.io", "Ёжик", 2), ("bob@x.io", "Bob", None)]
    planned = toolkit.plan(seg.frame, Mapping({"email": "email", "name": "_fname"}), Trigger(1))
    assert planned.n_valid == 2


def test_xlsx_with_two_sheets_and_a_date_column(tmp_path: Path) -> None:
    """An .xlsx is read sheet by sheet (first by default, by name or 1-based number), dates typed."""
    import xlsxwriter

    path = tmp_path / "book.xlsx"
    with xlsxwriter.Workbook(path) as book:
        pl.DataFrame({"note": ["not the segment"]}).write_excel(book, worksheet="readme")
        pl.DataFrame(
            {
                "email": ["ann@x.io", "bob@x.io"],
                "phone": [79001234567, None],
                "crm_id": [15, 16],
                "birthday": [dt.date(1990, 5, 17), None],
            }
        ).write_excel(book, worksheet="segment")
    assert read_segment(path, kind="polars").columns == ["note"]
    for sheet in ("segment", 2):
        seg = load_segment(path, sheet=sheet)
        assert seg.sheet == "segment"
        assert seg.frame.schema == {
            "email": pl.String,
            "phone": pl.String,
            "crm_id": pl.String,
            "birthday": pl.Date,
        }
        assert seg.frame.rows()[0] == ("ann@x.io", "79001234567", "15", dt.date(1990, 5, 17))
    with pytest.raises(
        SegmentFileError, match=r"no sheet 'segmnt'; did you mean 'segment'\?.*1: 'readme', 2: 'segment'"
    ):
        read_segment(path, sheet="segmnt")
    planned = toolkit.plan(
        read_segment(path, sheet="segment"),
        Mapping({"email": "email", "phone": "phones", "crm_id": "CRM_ID", "birthday": "_bdate"}),
        Trigger(1),
    )
    assert planned.records(2) == [
        {"email": "ann@x.io", "phones": "+79001234567", "CRM_ID": "15", "_bdate": "1990-05-17"},
        {"email": "bob@x.io", "CRM_ID": "16"},
    ]


def test_phones_pandas_reads_as_float_stay_text(tmp_path: Path) -> None:
    """A phone column with a blank cell: pandas makes it float64, read_segment keeps the digits."""
    path = write(
        tmp_path, "phones.csv", b"email,phone\nann@x.io,79001234567\nbob@x.io,\ncid@x.io,89001234568\n"
    )
    assert pd.read_csv(path)["phone"].dtype == "float64"
    frame = read_segment(path)
    assert frame["phone"].tolist()[::2] == ["79001234567", "89001234568"]
    planned = toolkit.plan(frame, Mapping({"email": "email", "phone": "phones"}), Trigger(1))
    assert [r.get("phones") for r in planned.records(3)] == ["+79001234567", None, "+79001234568"]


def test_a_ragged_row_names_its_line_and_field_counts(tmp_path: Path) -> None:
    """A row with more fields than the header is an error naming the line, both counts, the fix."""
    path = write(tmp_path, "ragged.csv", b"email,name,city\nann@x.io,Ann,Paris\nbob@x.io,Bob,Rome,Italy\n")
    with pytest.raises(
        SegmentFileError, match=r"ragged.csv: the header has 3 columns, line 3 has 4 \(separator ','\)"
    ):
        read_segment(path)


@pytest.mark.parametrize(
    "data", [b"", b"\n\n", "\ufeff".encode()], ids=["zero bytes", "blank lines", "only a BOM"]
)
def test_an_empty_file_says_so(tmp_path: Path, data: bytes) -> None:
    """A file with nothing in it is a clear error, not a parser's traceback."""
    path = write(tmp_path, "empty.csv", data)
    with pytest.raises(SegmentFileError, match=r"empty.csv: the file is empty"):
        read_segment(path)


def test_a_header_only_file_is_a_frame_without_rows(tmp_path: Path) -> None:
    """A header and no rows reads as zero rows with its columns (the CLI refuses to launch it)."""
    frame = read_segment(write(tmp_path, "header.csv", b"email;name\n"), kind="polars")
    assert frame.height == 0 and frame.columns == ["email", "name"]
    assert toolkit.plan(frame, Mapping({"email": "email"}), Trigger(1)).batches == ()


def test_parquet_and_json_lines_keep_their_own_types(tmp_path: Path) -> None:
    """Typed formats are read as written; text_columns still turns a number column into digits."""
    source = pl.DataFrame({"email": ["a@x.io", "b@x.io"], "crm": [10.0, None], "n": [1, 2]})
    source.write_parquet(tmp_path / "s.parquet")
    source.write_ndjson(tmp_path / "s.jsonl")
    for name in ("s.parquet", "s.jsonl"):
        frame = read_segment(tmp_path / name, kind="polars", text_columns=["crm"])
        assert frame.schema == {"email": pl.String, "crm": pl.String, "n": pl.Int64}
        assert frame["crm"].to_list() == ["10", None]


def test_bytes_and_uploads_are_recognised_by_their_content() -> None:
    """The form's upload gives bytes or a file object: parquet, xlsx and CSV are told apart by content."""
    buffer = io.BytesIO()
    pl.DataFrame({"email": ["a@x.io"]}).write_parquet(buffer)
    assert read_segment(buffer.getvalue(), kind="polars").columns == ["email"]
    upload = io.BytesIO("почта;имя\na@x.io;Аня\n".encode("cp1251"))
    upload.name = "upload.csv"
    seg = load_segment(upload)
    assert seg.frame.rows() == [("a@x.io", "Аня")] and seg.name == "upload.csv"


def test_identifier_columns_stay_text_and_numbers_are_typed() -> None:
    """Leading zeros, '+', ten or more digits, id-like names and text_columns stay text; the rest is typed."""
    data = (
        b"zip,plus,long,crm_id,orders,score,active,seen_at\n"
        b"01234,+12,12345678901,5,3,1.5,true,2024-01-05T10:00:00+03:00\n"
        b"99999,+13,12345678902,6,4,2,false,2024-01-06T00:00:00Z\n"
    )
    seg = load_segment(data, text_columns=["orders"])
    assert seg.frame.schema == {
        "zip": pl.String, "plus": pl.String, "long": pl.String, "crm_id": pl.String, "orders": pl.String,
        "score": pl.Float64, "active": pl.Boolean, "seen_at": pl.Datetime("us", "UTC"),
    }  # fmt: skip
    assert seg.kept_as_text == {
        "zip": "leading zeros", "plus": "a '+' sign", "long": "ten or more digits",
        "crm_id": "its name says identifier", "orders": "named in text_columns",
    }  # fmt: skip
    assert seg.frame["seen_at"].to_list()[0] == dt.datetime(2024, 1, 5, 7, 0, tzinfo=dt.UTC)


def test_a_leading_zero_far_down_the_file_keeps_the_column_text() -> None:
    """A column is typed from its first values, then confirmed on all of them: one '007' keeps it text."""
    rows = "\n".join(str(i + 1) for i in range(3000))
    seg = load_segment(f"code\n{rows}\n007\n".encode())
    assert seg.frame.schema == {"code": pl.String} and seg.kept_as_text == {"code": "leading zeros"}


def test_pandas_kind_keeps_integers_with_blanks_as_integers() -> None:
    """kind='pandas' gives nullable Int64 for an integer column with a blank, not float64."""
    frame = read_segment(b"email,orders\na@x.io,3\nb@x.io,\n")
    assert str(frame["orders"].dtype) == "Int64" and frame["orders"].tolist() == [3, pd.NA]


def test_wrong_encoding_or_separator_given_is_explained(tmp_path: Path) -> None:
    """A given encoding that cannot read the file, or a bad separator, names what was tried."""
    path = write(tmp_path, "x.csv", "name\nАнна\n".encode("cp1251"))
    with pytest.raises(SegmentFileError, match=r"column 'name' is not valid utf-8 text .* e\.g\. cp1251"):
        read_segment(path, encoding="utf-8")
    with pytest.raises(
        SegmentFileError, match=r"unknown encoding 'cp1215'; did you mean 'cp125[12]'\? \(common ones: utf-8"
    ):
        read_segment(path, encoding="cp1215")
    with pytest.raises(SegmentFileError, match=r"separator ';;' must be one character"):
        read_segment(path, separator=";;")
    with pytest.raises(
        SegmentFileError, match=r"segment file '.*nope.csv' not found; did you mean 'x.csv'\?"
    ):
        read_segment(tmp_path / "nope.csv")


def test_undefined_byte_in_the_detected_encoding_lists_the_encodings_tried() -> None:
    """A byte with no character in cp1251 (0x98) is an error naming the column, the row and the encodings."""
    data = "name\nАнна\nОльга\n".encode("cp1251") + "Ма".encode("cp1251") + b"\x98" + "рия\n".encode("cp1251")
    with pytest.raises(
        SegmentFileError,
        match=r"column 'name', row 3: byte 0x98 is no character in cp1251 \(encodings tried: utf-8, cp1251\)",
    ):
        read_segment(data)


def test_a_header_naming_a_column_twice_is_refused() -> None:
    """Duplicate header names are named with their positions, before any frame is built."""
    with pytest.raises(SegmentFileError, match=r"'email' \(columns 1, 3\)"):
        read_segment(b"email,name,email\na@x.io,Ann,b@x.io\n")


def test_quoted_values_may_hold_separators_and_line_breaks(tmp_path: Path) -> None:
    """RFC 4180 quoting: a separator or a line break inside quotes is part of the value, also where a
    large file is cut into parts read side by side."""
    rows = "".join(f'{i};"Street {i}; flat 2\nsecond ""line"""\n' for i in range(400_000))
    path = write(tmp_path, "quoted.csv", f"n;address\n{rows}".encode())
    assert path.stat().st_size > 2 * segments._PART_BYTES  # read in parts
    frame = read_segment(path, kind="polars")
    assert frame.height == 400_000
    assert frame.row(0) == (0, 'Street 0; flat 2\nsecond "line"')
    assert frame.row(399_999) == (399_999, 'Street 399999; flat 2\nsecond "line"')
    assert frame["n"].is_sorted() and frame["n"].n_unique() == 400_000


def test_utf8_is_recognised_when_the_sample_cuts_a_character_in_two() -> None:
    """The detector samples 64 KB of each column: a two-byte letter cut at the sample's end is no
    sign of another encoding (a large UTF-8 file once read as cp1251 mojibake)."""
    value = "Аяx"  # 5 bytes in UTF-8: 65,536 = 5 * 13,107 + 1 cuts the next 'А' after its first byte
    data = ("name\n" + f"{value}\n" * 20_000).encode()
    seg = load_segment(data)
    assert seg.encoding == "utf-8" and seg.frame["name"].unique().to_list() == [value]


def test_a_column_of_few_distinct_names_reads_the_same_in_cp1251_and_utf8() -> None:
    """Columns of few distinct values are decoded once per value: the result is the same text,
    blanks and all, as the same file in UTF-8."""
    names = ["Анна", "Иван", "", "Пётр «Ёж»", "Мария-Елена"]
    text = "n;name;city\n" + "".join(
        f"{i};{names[i % 5]};{'Москва' if i % 3 else ''}\n" for i in range(60_000)
    )
    cp1251, utf8 = load_segment(text.encode("cp1251")), load_segment(text.encode())
    assert cp1251.encoding == "cp1251" and cp1251.frame.equals(utf8.frame)
    assert cp1251.frame["name"].to_list()[:5] == ["Анна", "Иван", None, "Пётр «Ёж»", "Мария-Елена"]


def test_a_large_file_with_several_cyrillic_columns_reads_the_same_in_cp1251_and_utf8() -> None:
    """Past ``_PARALLEL_DECODE_ROWS`` the Cyrillic columns are decoded side by side: each keeps
    its own values, in order (a name column, a column of distinct values, a city column)."""
    rows = segments._PARALLEL_DECODE_ROWS + 10_000
    frame = pl.DataFrame({"n": range(rows)}).select(
        pl.col("n"),
        pl.format("Имя{}", pl.col("n") % 7).alias("имя"),
        pl.format("Улица {} дом {}", pl.col("n"), pl.col("n") % 13).alias("адрес"),
        pl.when(pl.col("n") % 3 == 0)
        .then(None)
        .otherwise(pl.format("Город{}", pl.col("n") % 5))
        .alias("город"),
    )
    text = frame.write_csv(separator=";")
    cp1251, utf8 = load_segment(text.encode("cp1251")), load_segment(text.encode())
    assert cp1251.encoding == "cp1251"
    assert cp1251.frame.equals(utf8.frame) and cp1251.frame.equals(frame)


@pytest.mark.parametrize(
    ("file_name", "data"),
    [
        ("export.csv", RUSSIAN_CSV.encode("cp1251")),
        ("bom.csv", b"\xef\xbb\xbf" + RUSSIAN_CSV.encode()),
        ("wide.tsv", RUSSIAN_CSV.replace(";", "\t").encode("utf-16")),
        ("quoted.csv", b'id,note\n1,"a, b"\n2,"two\nlines"\n3,plain\n' * 50),
        ("empty.csv", b""),
        ("ragged.csv", b"a,b\n1,2\n3,4,5\n"),
    ],
)
def test_a_large_file_is_mapped_not_copied_and_reads_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file_name: str, data: bytes
) -> None:
    """Files from ``_MAP_BYTES`` on are mapped into memory (cut in parts of ``_PART_BYTES`` at
    line ends): the frame, or the error, is the same as from the same bytes read whole."""
    path = write(tmp_path, file_name, data)

    def outcome(source: Path | bytes) -> tuple[pl.DataFrame, str | None, str | None] | str:
        try:
            seg = load_segment(source)
        except SegmentFileError as exc:
            return str(exc).split(": ", 1)[1]  # (the name differs: the path vs "the data given")
        return seg.frame, seg.encoding, seg.separator

    whole = outcome(data)
    monkeypatch.setattr(segments, "_MAP_BYTES", 1)
    monkeypatch.setattr(segments, "_PART_BYTES", 64)
    if data:
        assert isinstance(segments._read_file(path), mmap.mmap)
    mapped = outcome(path)
    if isinstance(whole, tuple) and isinstance(mapped, tuple):
        assert mapped[0].equals(whole[0]) and mapped[1:] == whole[1:]
    else:
        assert mapped == whole
