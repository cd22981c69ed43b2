"""Hypothesis properties of plan(): on random, dirty frames every body parses, respects both limits,
the batches partition the valid rows in order, and every value round-trips to its normalized form."""

from __future__ import annotations

import json
import math
import re
import string
from dataclasses import dataclass
from typing import Any

import pandas as pd
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolkit import Mapping, Trigger, plan
from toolkit.core.contract import loads_xml
from toolkit.core.plan import TOKEN_ROOM

# What the toolkit trims: Unicode White_Space (polars' strip_chars). Python's str.strip also
# takes \x1c-\x1f, which are not white space in Unicode: spell the set out.
WHITE_SPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + "\u2028\u2029\u202f\u205f\u3000"
)
XML_ILLEGAL = {*map(chr, range(0x00, 0x09)), "\x0b", "\x0c", *map(chr, range(0x0E, 0x20)), "\ufffe", "\uffff"}

VALID_EMAILS = ["ann@x.io", "Bob@X.IO", "  carl@example.com ", "d.e+tag@sub.example.org", "ANN@x.io"]
INVALID_EMAILS = ["bad@", "@example.com", "no at sign", "a..b@x.io"]

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

nasty_chars = st.one_of(
    st.sampled_from(list("\"\\<&>'\r\n\t \x00\x01\x1f\x7f\x85\xa0\u2028\ufffe\uffff😀Жé]]>")),
    st.characters(codec="utf-8"),
)
texts = st.one_of(st.none(), st.text(nasty_chars, max_size=12), st.sampled_from(["", "   ", " Beckham"]))
ints = st.one_of(st.none(), st.integers(min_value=-(2**63), max_value=2**63 - 1))
floats = st.one_of(
    st.none(), st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.1 + 0.2, 3.0])
)
emails = st.one_of(st.none(), st.sampled_from(VALID_EMAILS), st.sampled_from(INVALID_EMAILS))


@dataclass
class Case:
    rows: list[dict[str, Any]]
    kind: str
    max_bytes: int
    max_rows: int


@st.composite
def cases(draw: st.DrawFn) -> Case:
    n = draw(st.integers(min_value=0, max_value=14))
    rows = [
        {"email": draw(emails), "a": draw(texts), "b": draw(texts), "n": draw(ints), "x": draw(floats)}
        for _ in range(n)
    ]
    return Case(
        rows=rows,
        kind=draw(st.sampled_from(["polars", "pandas"])),
        max_bytes=draw(st.integers(min_value=700, max_value=2500)),
        max_rows=draw(st.integers(min_value=1, max_value=5)),
    )


MAPPING = Mapping({"email": "email", "a": "_fname", "b": "note", "n": "count", "x": "score"})


def frame(case: Case) -> Any:
    columns = {name: [r[name] for r in case.rows] for name in ("email", "a", "b", "n", "x")}
    if case.kind == "polars":
        return pl.DataFrame(
            columns,
            schema={"email": pl.String, "a": pl.String, "b": pl.String, "n": pl.Int64, "x": pl.Float64},
        )
    return pd.DataFrame(
        {
            "email": pd.array(columns["email"], dtype="string"),
            "a": pd.array(columns["a"], dtype="string"),
            "b": pd.array(columns["b"], dtype="string"),
            "n": pd.array(columns["n"], dtype="Int64"),
            "x": pd.array([math.nan if v is None else v for v in columns["x"]], dtype="float64"),
        }
    )


def normal_text(value: str | None) -> str | None:
    if value is None:
        return None
    stripped = value.strip(WHITE_SPACE)
    return stripped or None


def expected(case: Case, fmt: str) -> tuple[list[int], dict[int, dict[str, Any]]]:
    """The rows that must be valid (in order) and each one's normalized profile."""
    valid: list[int] = []
    profiles: dict[int, dict[str, Any]] = {}
    seen_keys: set[str] = set()
    for i, row in enumerate(case.rows):
        email = row["email"]
        if email is None or email in INVALID_EMAILS:
            continue
        x = row["x"]
        if x is not None and math.isinf(x):
            continue
        a, b = normal_text(row["a"]), normal_text(row["b"])
        if fmt == "xml" and any(set(t) & XML_ILLEGAL for t in (a, b) if t is not None):
            continue
        key = email.strip().lower()
        if key in seen_keys:
            continue
        seen_keys.add(key)
        profile = {"email": key, "_fname": a, "note": b, "count": row["n"]}
        profile["score"] = None if x is None or math.isnan(x) else x
        valid.append(i)
        profiles[i] = {k: v for k, v in profile.items() if v is not None}
    return valid, profiles


def parsed_profiles(body: bytes, fmt: str) -> list[dict[str, Any]]:
    if fmt == "json":
        return [item["data"] for item in json.loads(body)["data"]]
    return loads_xml(body)["data"]


def as_sent(profile: dict[str, Any], fmt: str) -> dict[str, Any]:
    """A normalized profile as its body's parser gives it back (XML: all text)."""
    if fmt == "json":
        return profile
    return {k: (repr(v) if isinstance(v, float) else str(v)) for k, v in profile.items()}


def same_profile(got: dict[str, Any], want: dict[str, Any], fmt: str) -> bool:
    if set(got) != set(want):
        return False
    for key, value in want.items():
        if key == "score":  # whole floats go as integers: compare as numbers
            if float(got[key]) != value:
                return False
        elif key == "count" and fmt == "xml":
            if int(got[key]) != value:
                return False
        elif got[key] != value:
            return False
    return True


def check(case: Case, fmt: str) -> None:
    p = plan(frame(case), MAPPING, Trigger(7), format=fmt, max_bytes=case.max_bytes, max_rows=case.max_rows)
    want_valid, want_profiles = expected(case, fmt)

    sent_rows: list[int] = []
    for batch in p.batches:
        body = batch.body
        assert batch.nbytes == len(body) <= case.max_bytes - TOKEN_ROOM
        assert 1 <= len(batch) <= case.max_rows
        profiles = parsed_profiles(body, fmt)
        assert len(profiles) == len(batch.rows) == len(batch.keys)
        for position, key, got in zip(batch.rows, batch.keys, profiles, strict=True):
            assert key == got["email"]
            assert same_profile(got, want_profiles[position], fmt), (got, want_profiles[position])
        if fmt == "json":
            # no bare NaN/Infinity tokens (not JSON) and no nulls; the *text* "Infinity" is fine
            assert not re.search(rb":-?(NaN|Infinity)[,}\]]|:null", body), body
        sent_rows.extend(batch.rows)

    rejected = pl.from_pandas(p.rejected) if case.kind == "pandas" else p.rejected
    rejected_rows = rejected.get_column("position").to_list()
    rules = dict(zip(rejected_rows, rejected.get_column("rule").to_list(), strict=True))
    # the batches partition the valid rows exactly, in input order
    assert sent_rows == sorted(sent_rows)
    assert not set(sent_rows) & set(rejected_rows)
    assert sorted(sent_rows + rejected_rows) == list(range(len(case.rows)))
    too_large = [r for r, rule in rules.items() if rule == "too_large"]
    assert sorted(sent_rows + too_large) == want_valid
    assert all(reason for reason in rejected.get_column("reason").to_list())
    assert p.summary()["valid"] == len(sent_rows)


@SETTINGS
@given(cases())
def test_json_plans(case: Case) -> None:
    check(case, "json")


@SETTINGS
@given(cases())
def test_xml_plans(case: Case) -> None:
    check(case, "xml")


@settings(max_examples=30, deadline=None)
@given(cases(), st.sampled_from(["json", "xml"]))
def test_pandas_and_polars_give_identical_bodies(case: Case, fmt: str) -> None:
    bodies = []
    for kind in ("polars", "pandas"):
        frame_ = frame(Case(case.rows, kind, case.max_bytes, case.max_rows))
        p = plan(frame_, MAPPING, Trigger(7), format=fmt, max_bytes=case.max_bytes, max_rows=case.max_rows)
        bodies.append([b.body for b in p.batches])
    assert bodies[0] == bodies[1]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(st.characters(codec="utf-8"), max_size=20), max_size=6))
def test_text_lists_round_trip_in_json(items: list[str]) -> None:
    """List items are text like any other: trimmed, blank ones left out, the rest intact."""
    df = pl.DataFrame(
        {"email": ["a@x.io"], "tags": [items]}, schema={"email": pl.String, "tags": pl.List(pl.String)}
    )
    p = plan(df, Mapping({"email": "email", "tags": "tags"}), Trigger(7))
    expected = [t for t in map(normal_text, items) if t is not None]
    assert parsed_profiles(p.batches[0].body, "json")[0]["tags"] == expected


def test_white_space_set_matches_the_builder() -> None:
    # the reference above must agree with what plan() trims
    chars = [c for c in map(chr, range(0x3100)) if c not in XML_ILLEGAL or c in "\t\n\r"]
    value = "x" + "".join(chars) + "x"
    padded = (
        "".join(c for c in chars if c in WHITE_SPACE) + value + "".join(c for c in chars if c in WHITE_SPACE)
    )
    df = pl.DataFrame({"email": ["a@x.io"], "v": [padded]})
    p = plan(df, Mapping({"email": "email", "v": "v"}), Trigger(7))
    assert parsed_profiles(p.batches[0].body, "json")[0]["v"] == value
    edge = [c for c in string.printable if c.isspace()]
    assert all(c in WHITE_SPACE for c in edge)
