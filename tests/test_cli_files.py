"""Real segment files through ``toolkit plan`` and ``toolkit launch``: what is read, planned and sent."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import requests

from toolkit.cli import main


@pytest.fixture
def env(sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The shared sandbox (emptied) in the CLI's environment, and a journal of the test's own."""
    monkeypatch.setenv("TOOLKIT_API_URL", sandbox.url)
    monkeypatch.setenv("TOOLKIT_API_TOKEN", sandbox.token)
    monkeypatch.setenv("TOOLKIT_JOURNAL", str(tmp_path / "journal.sqlite"))
    return sandbox


def cp1251_csv(tmp_path: Path) -> Path:
    path = tmp_path / "excel-export.csv"
    path.write_bytes(
        "Почта;Имя;Телефон\nanna@files.test;Анна;8 900 123-45-67\nivan@files.test;Иван;\n".encode("cp1251")
    )
    return path


def utf16_tsv(tmp_path: Path) -> Path:
    path = tmp_path / "unicode.txt"
    path.write_bytes(
        "Почта\tИмя\tТелефон\nanna@files.test\tАнна\t+79001234567\nivan@files.test\tИван\t\n".encode("utf-16")
    )
    return path


def xlsx(tmp_path: Path) -> Path:
    import xlsxwriter

    path = tmp_path / "book.xlsx"
    with xlsxwriter.Workbook(path) as book:
        pl.DataFrame({"about": ["this sheet is not the segment"]}).write_excel(book, worksheet="notes")
        pl.DataFrame(
            {"Почта": ["anna@files.test", "ivan@files.test"], "Имя": ["Анна", "Иван"],
             "Телефон": [79001234567, None], "born": [dt.date(1990, 5, 17), None]}
        ).write_excel(book, worksheet="segment")  # fmt: skip
    return path


def float_phones(tmp_path: Path) -> Path:
    path = tmp_path / "phones.csv"
    path.write_text("Почта,Имя,Телефон\nanna@files.test,Анна,79001234567\nivan@files.test,Иван,\n")
    return path


def parquet(tmp_path: Path) -> Path:
    path = tmp_path / "segment.parquet"
    pl.DataFrame(
        {
            "Почта": ["anna@files.test", "ivan@files.test"],
            "Имя": ["Анна", "Иван"],
            "Телефон": [79001234567.0, None],
        }
    ).write_parquet(path)
    return path


FILES = {"cp1251 ';' csv": cp1251_csv, "utf-16 tsv": utf16_tsv, "xlsx, sheet 2": xlsx,
         "phones pandas reads as float": float_phones, "parquet": parquet}  # fmt: skip
MAP = ["--map", "Почта=email", "--map", "Имя=_fname", "--map", "Телефон=phones"]


@pytest.mark.parametrize("make", FILES.values(), ids=FILES.keys())
def test_plan_reads_the_file_and_says_how(
    make: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`toolkit plan FILE` reads each kind of file (its encoding, separator or sheet said), plans two
    valid rows, and shows the phones as the platform will get them."""
    path = make(tmp_path)
    sheet = ["--sheet", "2"] if path.suffix == ".xlsx" else []
    assert main(["plan", str(path), *MAP, *sheet]) == 0
    out = capsys.readouterr().out
    assert f"read {path}: 2 rows" in out and "2 valid, 0 rejected, 1 batch," in out
    assert main(["plan", str(path), *MAP, *sheet, "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["valid"] == 2 and facts["segment"]["rows"] == 2
    if path.suffix == ".csv" and path.name.startswith("excel"):
        assert (facts["segment"]["encoding"], facts["segment"]["separator"]) == ("cp1251", ";")
    if path.suffix == ".txt":
        assert (facts["segment"]["encoding"], facts["segment"]["separator"]) == ("utf-16", "\t")


@pytest.mark.parametrize("make", FILES.values(), ids=FILES.keys())
def test_launch_sends_the_profiles_as_written(make: Any, env: Any, tmp_path: Path) -> None:
    """`toolkit launch FILE` imports the profiles with their names intact and phones international."""
    path = make(tmp_path)
    sheet = ["--sheet", "segment"] if path.suffix == ".xlsx" else []
    assert main(["launch", str(path), "--trigger-id", "96", *MAP, *sheet, "--quiet"]) == 0
    answer = requests.get(f"{env.url}/_sandbox/profiles", headers={"Authorization": f"Bearer {env.token}"},
                          timeout=10)  # fmt: skip
    profiles = {p["fields"]["email"]: p["fields"] for p in answer.json()}
    assert profiles["anna@files.test"]["_fname"] == "Анна" and profiles["ivan@files.test"]["_fname"] == "Иван"
    assert profiles["anna@files.test"]["phones"] in ("+79001234567", ["+79001234567"])
    assert "phones" not in profiles["ivan@files.test"]


def test_the_wrong_sheet_or_separator_is_explained(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A sheet the workbook lacks lists the sheets (exit 5); a forced wrong separator finds no column (2)."""
    assert main(["plan", str(xlsx(tmp_path)), *MAP, "--sheet", "segmnt"]) == 5
    assert "no sheet 'segmnt'; did you mean 'segment'?" in " ".join(capsys.readouterr().err.split())
    assert main(["plan", str(cp1251_csv(tmp_path)), *MAP, "--separator", ","]) == 2
    assert "has no column 'Почта'" in " ".join(capsys.readouterr().err.split())
