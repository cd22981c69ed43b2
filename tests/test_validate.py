"""toolkit.core.validate: normalization and every validation rule, as a user sees them in a plan."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import narwhals.stable.v2 as nw
import pandas as pd
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import toolkit.core.validate as validate
from toolkit import Mapping, Subscription, Trigger, plan
from toolkit.errors import ColumnNotFoundError, InvalidArgumentError


def sent(p: Any) -> list[dict[str, Any]]:
    """Every profile of a JSON plan, as parsed from the bodies."""
    return [item["data"] for b in p.batches for item in json.loads(b.body)["data"]]


def rejected(p: Any) -> list[tuple[int, str, str]]:
    frame = p.rejected if isinstance(p.rejected, pl.DataFrame) else pl.from_pandas(p.rejected)
    return [tuple(r) for r in frame.select("position", "rule", "reason").rows()]


def one_column(values: list[Any], field: str, **kwargs: Any) -> Any:
    """Plan a frame of valid emails plus one column mapped to ``field``."""
    df = pl.DataFrame({"email": [f"u{i}@x.io" for i in range(len(values))], "v": values})
    return plan(df, Mapping({"email": "email", "v": field}), Trigger(1), **kwargs)


# --- emails ----------------------------------------------------------------------------------
def test_emails_are_trimmed_and_lower_cased() -> None:
    p = plan(
        pl.DataFrame({"email": ["  Ann@Example.COM ", "BOB@X.IO\t"]}), Mapping({"email": "email"}), Trigger(1)
    )
    assert [r["email"] for r in sent(p)] == ["ann@example.com", "bob@x.io"]
    assert p.batches[0].keys == ("ann@example.com", "bob@x.io")


@pytest.mark.parametrize(
    "bad", ["bad@", "@example.com", "no-at-sign", "a..b@x.io", "a b@x.io", "a@x", "a@-x.io", "a@x..io"]
)
def test_invalid_email_is_rejected_naming_column_and_value(bad: str) -> None:
    p = plan(pl.DataFrame({"mail": ["ok@x.io", bad]}), Mapping({"mail": "email"}), Trigger(1))
    assert [r["email"] for r in sent(p)] == ["ok@x.io"]
    ((position, rule, reason),) = rejected(p)
    assert (position, rule) == (1, "invalid_email")
    assert "column 'mail'" in reason and repr(bad.strip().lower()) in reason


def test_internationalized_email_goes_through_the_exact_parser() -> None:
    p = plan(pl.DataFrame({"email": ["Пользователь@Пример.рф"]}), Mapping({"email": "email"}), Trigger(1))
    assert sent(p) == [{"email": "пользователь@пример.рф"}]


def test_blank_email_is_a_missing_key_not_an_invalid_email() -> None:
    p = plan(pl.DataFrame({"email": ["   ", None, "a@x.io"]}), Mapping({"email": "email"}), Trigger(1))
    assert [(pos, rule) for pos, rule, _ in rejected(p)] == [(0, "missing_key"), (1, "missing_key")]
    assert "no email to match on" in rejected(p)[0][2]


# --- phones ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("8 (900) 123-45-67", "+79001234567"),
        ("+7 900 123-45-67", "+79001234567"),
        ("89001234567", "+79001234567"),
        ("+79001234567", "+79001234567"),
        ("+44 7911 123456", "+447911123456"),
        ("+1 (415) 555-0134", "+14155550134"),
    ],
)
def test_phones_become_international(raw: str, expected: str) -> None:
    assert sent(one_column([raw], "phones")) == [{"email": "u0@x.io", "phones": expected}]


def test_phone_region_gb_reads_national_numbers_as_gb() -> None:
    p = one_column(["07911 123456"], "phones", phone_region="GB")
    assert sent(p)[0]["phones"] == "+447911123456"


def test_phone_region_none_rejects_national_numbers_with_a_hint() -> None:
    p = one_column(["8 (900) 123-45-67", "+7 900 123-45-67"], "phones", phone_region=None)
    assert [r.get("phones") for r in sent(p)] == ["+79001234567"]
    ((position, rule, reason),) = rejected(p)
    assert (position, rule) == (0, "invalid_phone")
    assert "column 'v'" in reason and "'8 (900) 123-45-67'" in reason and "phone_region=" in reason


@pytest.mark.parametrize(
    "bad",
    # no country 999 nor 80; +44 numbers are 7, 9 or 10 digits; +7 numbers are 10
    [
        "12345",
        "+000000000000",
        "call me",
        "+7 900 1",
        "+7900123456789012",
        "+99912345678",
        "+8012345678",
        "+44123456789012",
        "+790012345678",
    ],
)
def test_invalid_phones(bad: str) -> None:
    ((_, rule, reason),) = rejected(one_column([bad], "phones"))
    assert rule == "invalid_phone" and f"'{bad}'" in reason and "column 'v'" in reason


def test_fast_phone_check_admits_only_possible_numbers() -> None:
    """What skips the exact parser has a real country code and a length that country uses."""
    import random

    import phonenumbers

    rng = random.Random(11)
    shaped = [
        f"+{rng.randint(1, 9)}{rng.randrange(10**13):013d}"[: rng.randint(9, 16)] for _ in range(20_000)
    ]
    every_kind = [
        f"+{cc}{digit * n}"
        for cc, n in (divmod(k, 100) for k in validate._possible_keys())
        for digit in "259"
    ]
    candidates = pl.Series(shaped + every_kind)
    fast = pl.select(validate._possible_international(pl.lit(candidates))).to_series()
    admitted = candidates.filter(fast).to_list()
    assert set(every_kind) <= set(admitted)

    def possible(value: str) -> bool:
        try:
            number = phonenumbers.parse(value)
        except phonenumbers.NumberParseException:  # no such country code
            return False
        # a number only possible locally (no area code) is not: is_valid_number refuses it
        return (
            phonenumbers.is_possible_number_with_reason(number) == phonenumbers.ValidationResult.IS_POSSIBLE
        )

    assert all(possible(v) for v in admitted)
    # the refused go to the exact parser: few of them should be possible (a trunk 0 after the
    # country code, which phonenumbers drops, is one such case)
    refused = candidates.filter(~fast).to_list()
    assert sum(map(possible, refused)) < len(candidates) // 50
    # and the usual numbers of every country stay on the fast path
    examples = [
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        for region in sorted(phonenumbers.SUPPORTED_REGIONS)
        if (number := phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE))
    ]
    fast = pl.select(validate._possible_international(pl.lit(pl.Series(examples)))).to_series()
    assert len(examples) > 200 and fast.all()


def test_integer_phone_column_is_read_as_international() -> None:
    assert sent(one_column([79001234567], "phones"))[0]["phones"] == "+79001234567"


# --- validation cost scales with dirt -----------------------------------------------------
def test_exact_email_parser_only_sees_distinct_dirty_values(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    original = validate._parse_email

    def counting(value: str) -> tuple[str | None, str]:
        seen.append(value)
        return original(value)

    monkeypatch.setattr(validate, "_parse_email", counting)
    clean = [f"user{i}@example.com" for i in range(2000)]
    emails = [*clean, "bad@@x", "bad@@x", "BAD@@X", "Пётр@почта.рф", "Пётр@почта.рф", "no-at-sign"]
    p = plan(pl.DataFrame({"email": emails}), Mapping({"email": "email"}), Trigger(1))
    # lower-cased first: 'BAD@@X' == 'bad@@x'; 'no-at-sign' is told apart in bulk
    assert sorted(seen) == sorted(["bad@@x", "пётр@почта.рф"])
    assert p.summary()["valid"] == 2001
    assert rejected(p)[-1][2] == (
        "column 'email': 'no-at-sign' is not a valid email address (An email address must have an @-sign)"
    )


@pytest.mark.parametrize(("alphabet", "longest"), [("a.@ -", 7), ("a0._%+-@ b", 5)])
def test_bulk_email_problems_say_what_the_exact_parser_says(alphabet: str, longest: int) -> None:
    """Every value the bulk check names gets the parser's own sentence, over every short string."""
    import itertools

    values = [
        text
        for n in range(1, longest + 1)
        for text in map("".join, itertools.product(alphabet, repeat=n))
        if text == text.strip()
    ]
    problems = validate._email_shape_problem(pl.Series(values)).to_list()
    named = [(v, p) for v, p in zip(values, problems, strict=True) if p is not None]
    assert len(named) > len(values) // 4  # the shapes cover much of the dirt
    for value, problem in named:
        assert validate._parse_email(value) == (None, problem), value


def test_exact_phone_parser_only_sees_distinct_dirty_values(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    original = validate._phone_parser

    def counting_parser(region: str | None) -> Any:
        parse = original(region)

        def wrapped(value: str) -> tuple[str | None, str]:
            seen.append(value)
            return parse(value)

        return wrapped

    monkeypatch.setattr(validate, "_phone_parser", counting_parser)
    clean = [f"+7900{i:07d}" for i in range(2000)] + ["+7 (900) 111-22-33"] * 3 + ["8 900 111 22 33"] * 3
    dirty = ["call me"] * 4 + ["+44 (0) 7911 123456"] * 2 + ["12345"]
    phones = clean + dirty
    emails = [f"u{i}@x.io" for i in range(len(phones))]
    p = plan(
        pl.DataFrame({"email": emails, "phone": phones}),
        Mapping({"email": "email", "phone": "phones"}),
        Trigger(1),
    )
    # well-formed numbers (separators, the region's plain national form) never reach the exact
    # parser; the others do, once per distinct value
    assert len(seen) == len(set(seen))
    assert {"call me", "12345", "+44 (0) 7911 123456"} <= set(seen) <= set(dirty + clean[2000:])
    assert p.rejected_by_rule() == {"invalid_phone": 5}
    assert sent(p)[-1]["phones"] == "+447911123456"


# --- text ------------------------------------------------------------------------------------
def test_text_is_trimmed_and_blank_text_is_omitted() -> None:
    p = one_column([" Beckham", "  ", "", None, "Spice  Girls\n"], "_lname")
    assert [r.get("_lname") for r in sent(p)] == ["Beckham", None, None, None, "Spice  Girls"]
    assert all("_lname" not in r for r in sent(p)[1:4])


def test_non_ascii_text_passes_intact_in_json_and_xml() -> None:
    values = ["Анна", "Пётр 😀", "日本語", 'quote " and \\ back']
    p = one_column(values, "_fname")
    assert [r["_fname"] for r in sent(p)] == values
    assert "Пётр 😀".encode() in p.batches[0].body  # UTF-8, not \u escapes
    from toolkit.core.contract import loads_xml

    px = one_column(values, "_fname", format="xml")
    assert [r["_fname"] for r in loads_xml(px.batches[0].body)["data"]] == values
    assert "Пётр 😀".encode() in px.batches[0].body


def test_categorical_text() -> None:
    df = pd.DataFrame({"email": ["a@x.io", "b@x.io"], "city": pd.Categorical([" Moscow", None])})
    p = plan(df, Mapping({"email": "email", "city": "_city"}), Trigger(1))
    assert sent(p) == [{"email": "a@x.io", "_city": "Moscow"}, {"email": "b@x.io"}]


def test_control_characters_in_xml_text_are_rejected_not_sent() -> None:
    p = one_column(["fine", "bell\x07", "tab\tok"], "_fname", format="xml")
    assert [(pos, rule) for pos, rule, _ in rejected(p)] == [(1, "invalid_text")]
    assert "column 'v'" in rejected(p)[0][2]
    # JSON can carry them, escaped
    assert sent(one_column(["bell\x07"], "_fname"))[0]["_fname"] == "bell\x07"


@pytest.mark.parametrize("bad", ["non\ufffecharacter", "non\uffffcharacter", "nul\x00", "esc\x1b"])
def test_characters_xml_cannot_carry_are_rejected_in_xml_plans(bad: str) -> None:
    from toolkit.core.contract import loads_xml

    p = one_column(["fine", bad], "_fname", format="xml")
    assert [(pos, rule) for pos, rule, _ in rejected(p)] == [(1, "invalid_text")]
    assert [r["_fname"] for r in loads_xml(p.batches[0].body)["data"]] == ["fine"]


@pytest.mark.parametrize("bad", ["bell\x07", "non\uffffcharacter"])
def test_characters_xml_cannot_carry_in_list_items_are_rejected_in_xml_plans(bad: str) -> None:
    from toolkit.core.contract import loads_xml

    df = pl.DataFrame({"email": ["a@x.io", "b@x.io", "c@x.io"], "v": [["ok", bad], [bad], ["fine"]]})
    p = plan(df, Mapping({"email": "email", "v": "tags"}), Trigger(1), format="xml")
    assert [(pos, rule) for pos, rule, _ in rejected(p)] == [(0, "invalid_text"), (1, "invalid_text")]
    assert "column 'v'" in rejected(p)[0][2]
    assert loads_xml(p.batches[0].body)["data"] == [{"email": "c@x.io", "tags": ["fine"]}]
    # JSON carries them escaped
    pj = plan(df, Mapping({"email": "email", "v": "tags"}), Trigger(1))
    assert [r["tags"] for r in sent(pj)] == [["ok", bad], [bad], ["fine"]]


# --- dates -----------------------------------------------------------------------------------
def test_dates_and_datetimes() -> None:
    moscow = dt.timezone(dt.timedelta(hours=3))
    df = pl.DataFrame(
        {
            "email": ["a@x.io", "b@x.io", "c@x.io"],
            "born": [dt.date(1990, 5, 6), None, dt.date(2001, 12, 31)],
            "seen": [dt.datetime(2024, 1, 2, 3, 4, 5), None, dt.datetime(2024, 1, 2, 3, 4, 5, 250000)],
            "paid": [dt.datetime(2024, 1, 1, 12, 0, tzinfo=moscow), None, None],
        }
    )
    m = Mapping({"email": "email", "born": "_bdate", "seen": "_regdate", "paid": "paid_at"})
    assert sent(plan(df, m, Trigger(1))) == [
        {
            "email": "a@x.io",
            "_bdate": "1990-05-06",
            "_regdate": "2024-01-02T03:04:05Z",
            "paid_at": "2024-01-01T09:00:00Z",
        },
        {"email": "b@x.io"},
        {"email": "c@x.io", "_bdate": "2001-12-31", "_regdate": "2024-01-02T03:04:05.250Z"},
    ]


def test_pandas_datetimes_naive_and_aware() -> None:
    df = pd.DataFrame(
        {
            "email": ["a@x.io", "b@x.io"],
            "naive": pd.to_datetime(["2024-03-01 10:00:00", None]),
            "aware": pd.to_datetime(["2024-03-01 10:00:00", "2024-07-01 10:00:00"]).tz_localize(
                "Europe/London"
            ),
        }
    )
    p = plan(df, Mapping({"email": "email", "naive": "_regdate", "aware": "seen"}), Trigger(1))
    assert sent(p) == [
        {"email": "a@x.io", "_regdate": "2024-03-01T10:00:00Z", "seen": "2024-03-01T10:00:00Z"},
        {"email": "b@x.io", "seen": "2024-07-01T09:00:00Z"},  # BST
    ]


@pytest.mark.parametrize(
    "good",
    ["2000-01-31", "2000-02-29", "2000-01-01T10:00:00Z", "2000-01-01T10:00:00+03:00", "2016-12-31T23:59:60Z"],
)
def test_date_text_accepted(good: str) -> None:
    assert sent(one_column([good], "_bdate"))[0]["_bdate"] == good


@pytest.mark.parametrize(
    "bad",
    ["2001-02-29", "2000-13-01", "01.02.2000", "yesterday", "2000-1-1", "2000-01-01T24:00:00Z",
     "2000-01-01T10:61:00Z", "2000-01-01T10:00:00+25:00", "2001-02-29T10:00:00Z"],
)  # fmt: skip
def test_date_text_rejected(bad: str) -> None:
    ((_, rule, reason),) = rejected(one_column([bad], "_regdate"))
    assert rule == "invalid_date" and f"'{bad}'" in reason and "column 'v'" in reason


def test_a_number_in_a_date_field_is_rejected_as_no_date() -> None:
    """pandas reads 20000101 as a number: in a date field its row is rejected, naming the value."""
    p = plan(pl.DataFrame({"email": ["a@x.io"], "v": [20000101]}), Mapping({"email": "email", "v": "_bdate"}),
             Trigger(1))  # fmt: skip
    assert nw.from_native(p.rejected).get_column("reason").to_list() == [
        "column 'v': '20000101' is not a date (YYYY-MM-DD or RFC 3339)"
    ]


def test_a_list_in_a_date_field_is_a_bad_call() -> None:
    """A column type no date can come from (lists) is refused before anything is built."""
    with pytest.raises(InvalidArgumentError, match="date field '_bdate'"):
        one_column([["2000-01-01"]], "_bdate")


# --- IP --------------------------------------------------------------------------------------
@pytest.mark.parametrize("field", ["_ip", "_regip"])
def test_ipv4(field: str) -> None:
    p = one_column(["203.0.113.7", "256.1.1.1", "1.2.3", "::1", " 10.0.0.1 "], field)
    assert [r.get(field) for r in sent(p)] == ["203.0.113.7", "10.0.0.1"]
    assert [(pos, rule) for pos, rule, _ in rejected(p)] == [
        (1, "invalid_ip"),
        (2, "invalid_ip"),
        (3, "invalid_ip"),
    ]
    assert "'256.1.1.1'" in rejected(p)[0][2] and "IPv4" in rejected(p)[0][2]


# --- numbers ---------------------------------------------------------------------------------
def test_integers_with_nulls_stay_integers_pandas_and_polars() -> None:
    pdf = pd.DataFrame(
        {"email": ["a@x.io", "b@x.io", "c@x.io"], "n": pd.array([1, None, 2**60], dtype="Int64")}
    )
    pldf = pl.DataFrame({"email": ["a@x.io", "b@x.io", "c@x.io"], "n": [1, None, 2**60]})
    for df in (pdf, pldf):
        p = plan(df, Mapping({"email": "email", "n": "orders"}), Trigger(1))
        assert [r.get("orders") for r in sent(p)] == [1, None, 2**60]
        assert b'"orders":1}' in p.batches[0].body and b"null" not in p.batches[0].body


def test_pandas_float_of_whole_numbers_with_nan_is_sent_as_integers() -> None:
    df = pd.DataFrame({"email": ["a@x.io", "b@x.io", "c@x.io"], "n": [3.0, float("nan"), 0.0]})
    p = plan(df, Mapping({"email": "email", "n": "orders"}), Trigger(1))
    assert b'"orders":3}' in p.batches[0].body and b'"orders":0}' in p.batches[0].body
    assert b"3.0" not in p.batches[0].body and b"NaN" not in p.batches[0].body
    assert [type(r.get("orders")) for r in sent(p)] == [int, type(None), int]


def test_floats_keep_full_precision() -> None:
    values = [0.1 + 0.2, 1 / 3, 1e-300, 123456789.12345678, -2.5e17, 1.7976931348623157e308]
    for fmt in ("json", "xml"):
        p = one_column(values, "score", format=fmt)
        if fmt == "json":
            got = [r["score"] for r in sent(p)]
        else:
            from toolkit.core.contract import loads_xml

            got = [float(r["score"]) for r in loads_xml(p.batches[0].body)["data"]]
        assert got == values


def test_nan_and_null_are_omitted_and_infinity_is_rejected() -> None:
    p = one_column([1.5, float("nan"), None, float("inf"), float("-inf")], "score")
    assert sent(p) == [{"email": "u0@x.io", "score": 1.5}, {"email": "u1@x.io"}, {"email": "u2@x.io"}]
    assert [(pos, rule) for pos, rule, _ in rejected(p)] == [(3, "invalid_number"), (4, "invalid_number")]
    assert "'inf'" in rejected(p)[0][2] and "column 'v'" in rejected(p)[0][2]
    body = p.batches[0].body
    assert b"null" not in body and b"NaN" not in body


def test_null_booleans_are_omitted_not_sent_as_false() -> None:
    for df in (
        pl.DataFrame({"email": ["a@x.io", "b@x.io", "c@x.io"], "v": [True, None, False]}),
        pd.DataFrame(
            {"email": ["a@x.io", "b@x.io", "c@x.io"], "v": pd.array([True, None, False], dtype="boolean")}
        ),
    ):
        for fmt in ("json", "xml"):
            p = plan(df, Mapping({"email": "email", "v": "opt_in"}), Trigger(1), format=fmt)
            body = p.batches[0].body.decode()
            assert body.count("true") == 1, body
            if fmt == "json":
                assert sent(p) == [
                    {"email": "a@x.io", "opt_in": True},
                    {"email": "b@x.io"},
                    {"email": "c@x.io", "opt_in": False},
                ]
            else:
                assert body.count("<opt_in>") == 2


# --- lists -----------------------------------------------------------------------------------
def test_list_columns_become_arrays() -> None:
    df = pd.DataFrame({"email": ["a@x.io", "b@x.io", "c@x.io"], "tags": [["vip", "newsletter"], [], None]})
    p = plan(df, Mapping({"email": "email", "tags": "tags"}), Trigger(1))
    assert [r.get("tags") for r in sent(p)] == [["vip", "newsletter"], [], None]


def test_list_items_are_trimmed_and_blank_ones_left_out() -> None:
    df = pl.DataFrame({"email": ["a@x.io", "b@x.io"], "tags": [[" vip ", "", "  ", None, "new"], ["  "]]})
    p = plan(df, Mapping({"email": "email", "tags": "tags"}), Trigger(1))
    assert [r.get("tags") for r in sent(p)] == [["vip", "new"], []]


def test_list_items_with_non_ascii_text() -> None:
    from toolkit.core.contract import loads_xml

    tags = [["постоянный", "😀 vip"], ['a "quoted" \\ tag'], ["日本"]]
    df = pl.DataFrame({"email": ["a@x.io", "b@x.io", "c@x.io"], "tags": tags})
    p = plan(df, Mapping({"email": "email", "tags": "tags"}), Trigger(1))
    assert [r["tags"] for r in sent(p)] == tags
    px = plan(df, Mapping({"email": "email", "tags": "tags"}), Trigger(1), format="xml")
    assert [r["tags"] for r in loads_xml(px.batches[0].body)["data"]] == tags


def test_integer_and_boolean_lists() -> None:
    df = pl.DataFrame(
        {"email": ["a@x.io", "b@x.io"], "n": [[1, None, 3], [2**40]], "b": [[True, False], [None]]}
    )
    p = plan(df, Mapping({"email": "email", "n": "ids", "b": "flags"}), Trigger(1))
    assert [(r["ids"], r["flags"]) for r in sent(p)] == [([1, 3], [True, False]), ([2**40], [])]


def test_nan_inside_float_lists_is_never_sent() -> None:
    df = pl.DataFrame({"email": ["a@x.io", "b@x.io"], "v": [[1.5, float("nan"), None, 2.0], [0.25]]})
    for fmt in ("json", "xml"):
        p = plan(df, Mapping({"email": "email", "v": "scores"}), Trigger(1), format=fmt)
        body = p.batches[0].body
        assert b"NaN" not in body and b"null" not in body and b"nan" not in body.lower(), body
    assert [r["scores"] for r in sent(plan(df, Mapping({"email": "email", "v": "scores"}), Trigger(1)))] == [
        [1.5, 2.0],
        [0.25],
    ]


def test_infinity_inside_float_lists_is_rejected() -> None:
    df = pl.DataFrame({"email": ["a@x.io", "b@x.io"], "v": [[1.5, float("inf")], [0.25]]})
    for fmt in ("json", "xml"):
        p = plan(df, Mapping({"email": "email", "v": "scores"}), Trigger(1), format=fmt)
        assert [(pos, rule) for pos, rule, _ in rejected(p)] == [(0, "invalid_number")]
        assert b"inf" not in p.batches[0].body


def test_lists_of_objects_are_a_bad_call() -> None:
    df = pl.DataFrame({"email": ["a@x.io"], "v": [[dt.time(1, 2)]]})
    with pytest.raises(InvalidArgumentError, match="lists of"):
        plan(df, Mapping({"email": "email", "v": "x"}), Trigger(1))


# --- missing keys per matching mode ----------------------------------------------------------
MODES = [
    ("email", {"email": "email"}, [], {}, "a@x.io"),
    ("email_profile", {"email": "email"}, [], {}, "a@x.io"),
    ("email_sub", {"phone": "phones"}, [Subscription("email", "email", 3)], {}, "a@x.io"),
    ("phone", {"phone": "phones"}, [], {}, "+79001234567"),
    ("phone_sub", {"email": "email"}, [Subscription("sms", "phone", 3)], {}, "+79001234567"),
    ("profile_id", {"pid": "profile_id"}, [], {}, "abc"),
    ("push_sub", {"email": "email"}, [Subscription("push", "pid", 3, provider="fcm")], {}, "abc"),
    ("custom", {"crm": "CRM_ID"}, [], {"match_field": "CRM_ID"}, "CRM-1"),
    (
        "custom_sub",
        {"crm": "CRM_ID"},
        [Subscription("email", "email", 3)],
        {"match_field": "CRM_ID"},
        "CRM-1",
    ),
    ("email_phone", {"email": "email", "phone": "phones"}, [], {}, "a@x.io"),
    ("email_phone_sub", {"crm": "x"}, [Subscription("sms", "phone", 3)], {}, "+79001234567"),
]


@pytest.mark.parametrize(("mode", "fields", "subs", "kwargs", "key"), MODES, ids=[m[0] for m in MODES])
def test_each_matching_mode_requires_its_key_in_the_row(
    mode: str, fields: dict, subs: list, kwargs: dict, key: str
) -> None:
    df = pl.DataFrame(
        {
            "email": [None, "a@x.io"],
            "phone": [None, "+79001234567"],
            "pid": [None, "abc"],
            "crm": [None, "CRM-1"],
        }
    )
    p = plan(df, Mapping(fields, subscriptions=subs, matching=mode, **kwargs), Trigger(1))
    ((position, rule, reason),) = rejected(p)
    assert (position, rule) == (0, "missing_key")
    assert f"matching={mode!r}" in reason
    assert p.batches[0].rows == (1,) and p.batches[0].keys == (key,)


def test_email_phone_matches_on_the_phone_when_there_is_no_email() -> None:
    df = pl.DataFrame({"email": [None], "phone": ["8 900 123 45 67"]})
    p = plan(df, Mapping({"email": "email", "phone": "phones"}, matching="email_phone"), Trigger(1))
    assert p.batches[0].keys == ("+79001234567",)


def test_phone_matching_takes_the_key_from_a_phone_subscription_when_the_profile_has_none() -> None:
    """matching='phone' reads the profile's phones first, then a phone subscription (like 'email')."""
    df = pl.DataFrame({"phone": ["+79001234567", None], "sms": ["+79000000001", "8 900 000 00 02"]})
    mapping = Mapping({"phone": "phones"}, subscriptions=[Subscription("sms", "sms", 20)], matching="phone")
    p = plan(df, mapping, Trigger(1))
    assert p.batches[0].keys == ("+79001234567", "+79000000002")


def test_push_sub_matching_reads_every_id_channel_of_the_contract() -> None:
    """A notify subscription carries a subscription_id like push: push_sub matches on it."""
    df = pl.DataFrame({"email": ["a@x.io", "b@x.io"], "web": [" w-1 ", None]})
    mapping = Mapping(
        {"email": "email"}, subscriptions=[Subscription("notify", "web", 4)], matching="push_sub"
    )
    p = plan(df, mapping, Trigger(1))
    assert p.batches[0].keys == ("w-1",)
    ((position, rule, reason),) = rejected(p)
    assert (position, rule) == (1, "missing_key") and "matching='push_sub'" in reason


def test_email_matching_takes_the_key_from_a_subscription_when_the_profile_has_none() -> None:
    df = pl.DataFrame({"name": ["Ann", "Bob"], "mail": [" Ann@X.io", None]})
    p = plan(df, Mapping({"name": "_fname"}, subscriptions=[Subscription("email", "mail", 21)]), Trigger(1))
    assert p.batches[0].keys == ("ann@x.io",)
    assert rejected(p)[0][:2] == (1, "missing_key")


# --- subscriptions ---------------------------------------------------------------------------
def subs_frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "email": ["a@x.io", "b@x.io", "c@x.io"],
            "sub_email": ["A2@x.io ", "@example.com", None],
            "sub_phone": ["8 900 000 54 78", "+79000000001", "nope"],
        }
    )


SUBS = [Subscription("email", "sub_email", 21), Subscription("phone", "sub_phone", 20)]


def test_invalid_subscription_rejects_the_row_by_default() -> None:
    p = plan(subs_frame(), Mapping({"email": "email"}, subscriptions=SUBS), Trigger(1))
    assert sent(p) == [
        {
            "email": "a@x.io",
            "subscriptions": [
                {"channel": "email", "email": "a2@x.io", "resource_id": 21},
                {"channel": "phone", "phone": "+79000005478", "resource_id": 20},
            ],
        }
    ]
    rows = rejected(p)
    assert [(pos, rule) for pos, rule, _ in rows] == [
        (1, "invalid_subscription"),
        (2, "invalid_subscription"),
    ]
    assert "subscription email (column 'sub_email')" in rows[0][2] and "'@example.com'" in rows[0][2]
    assert "subscription phone (column 'sub_phone')" in rows[1][2] and "'nope'" in rows[1][2]


def test_skip_invalid_subscriptions_drops_only_that_subscription() -> None:
    p = plan(
        subs_frame(),
        Mapping({"email": "email"}, subscriptions=SUBS),
        Trigger(1, skip_invalid_subscriptions=True),
    )
    profiles = sent(p)
    assert rejected(p) == []
    assert profiles[1] == {
        "email": "b@x.io",
        "subscriptions": [{"channel": "phone", "phone": "+79000000001", "resource_id": 20}],
    }
    assert profiles[2] == {"email": "c@x.io"}  # null contact + invalid contact: no subscriptions at all


def test_subscription_extra_fields_are_sent() -> None:
    df = pl.DataFrame({"email": ["a@x.io"]})
    m = Mapping(
        {"email": "email"}, subscriptions=[Subscription("email", "email", 21, status="active", priority=1)]
    )
    assert sent(plan(df, m, Trigger(1)))[0]["subscriptions"] == [
        {"channel": "email", "email": "a@x.io", "resource_id": 21, "status": "active", "priority": 1}
    ]


# --- duplicates ------------------------------------------------------------------------------
DUPS = pl.DataFrame({"email": ["a@x.io", "b@x.io", " A@X.IO", "a@x.io", "c@x.io"]})


def test_duplicates_first_keeps_the_first_and_names_it() -> None:
    p = plan(DUPS, Mapping({"email": "email"}), Trigger(1))
    assert p.batches[0].rows == (0, 1, 4)
    rows = rejected(p)
    assert [(pos, rule) for pos, rule, _ in rows] == [(2, "duplicate"), (3, "duplicate")]
    assert all("duplicate of row 0" in reason and "'a@x.io'" in reason for _, _, reason in rows)


def test_duplicates_last() -> None:
    p = plan(DUPS, Mapping({"email": "email"}), Trigger(1), duplicates="last")
    assert p.batches[0].rows == (1, 3, 4)
    assert [(pos, rule) for pos, rule, _ in rejected(p)] == [(0, "duplicate"), (2, "duplicate")]
    assert all("duplicate of row 3" in reason for _, _, reason in rejected(p))


def test_duplicates_keep() -> None:
    p = plan(DUPS, Mapping({"email": "email"}), Trigger(1), duplicates="keep")
    assert p.batches[0].rows == (0, 1, 2, 3, 4) and rejected(p) == []


def test_an_invalid_row_does_not_count_as_the_kept_duplicate() -> None:
    df = pl.DataFrame({"email": ["a@x.io", "a@x.io"], "phone": ["junk", "+79001234567"]})
    p = plan(df, Mapping({"email": "email", "phone": "phones"}), Trigger(1))
    assert p.batches[0].rows == (1,)
    assert [(pos, rule) for pos, rule, _ in rejected(p)] == [(0, "invalid_phone")]


@pytest.mark.parametrize(
    ("duplicates", "kept", "dropped", "named"),
    [("first", (1, 3), 2, "duplicate of row 1"), ("last", (2, 3), 1, "duplicate of row 2")],
)
def test_duplicates_are_counted_among_valid_rows_only(
    duplicates: str, kept: tuple[int, ...], dropped: int, named: str
) -> None:
    # rows 0 and 4 share the key but are invalid: they neither keep nor lose the key
    df = pl.DataFrame(
        {
            "email": ["a@x.io", "a@x.io", "a@x.io", "b@x.io", "a@x.io"],
            "phone": ["junk", "+79001234567", "+79001234568", "+79001234569", "junk"],
        }
    )
    p = plan(df, Mapping({"email": "email", "phone": "phones"}), Trigger(1), duplicates=duplicates)
    assert p.batches[0].rows == kept
    rows = rejected(p)
    assert [(pos, rule) for pos, rule, _ in rows] == [
        (0, "invalid_phone"),
        (dropped, "duplicate"),
        (4, "invalid_phone"),
    ]
    assert named in rows[1][2]


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.sampled_from(["a@x.io", "b@x.io", "c@x.io", "A@X.IO "]), st.booleans()), max_size=30
    ),
    duplicates=st.sampled_from(["first", "last"]),
)
def test_duplicates_match_a_plain_reference(rows: list[tuple[str, bool]], duplicates: str) -> None:
    """Kept rows: per key, the first (or last) valid row; invalid rows never count."""
    df = pl.DataFrame(
        {"email": [e for e, _ in rows], "phone": ["+79001234567" if ok else "junk" for _, ok in rows]},
        schema={"email": pl.String, "phone": pl.String},
    )
    p = plan(df, Mapping({"email": "email", "phone": "phones"}), Trigger(1), duplicates=duplicates)
    order = range(len(rows)) if duplicates == "first" else reversed(range(len(rows)))
    chosen: dict[str, int] = {}
    for i in order:
        email, ok = rows[i]
        if ok:
            chosen.setdefault(email.strip().lower(), i)
    assert [r for b in p.batches for r in b.rows] == sorted(chosen.values())


def test_duplicate_custom_keys() -> None:
    df = pl.DataFrame({"crm": ["1", "2", "1"]})
    p = plan(df, Mapping({"crm": "CRM_ID"}, matching="custom", match_field="CRM_ID"), Trigger(1))
    assert p.batches[0].keys == ("1", "2")
    assert "same CRM_ID '1'" in rejected(p)[0][2]


# --- bad calls -------------------------------------------------------------------------------
def test_missing_column_with_did_you_mean() -> None:
    df = pl.DataFrame({"email": ["a@x.io"], "first_name": ["Ann"]})
    with pytest.raises(
        ColumnNotFoundError, match="column 'firstname' is not in the frame; did you mean 'first_name'"
    ):
        plan(df, Mapping({"email": "email", "firstname": "_fname"}), Trigger(1))
    with pytest.raises(KeyError):
        plan(df, Mapping({"email": "email"}, subscriptions=[Subscription("sms", "phone", 1)]), Trigger(1))


def test_a_number_mapped_to_email_is_checked_as_text_and_rejected() -> None:
    """pandas reads a column of digits as numbers: mapped to email, each row is rejected with a reason."""
    p = plan(pl.DataFrame({"email": [1, 2]}), Mapping({"email": "email"}), Trigger(1))
    assert p.batches == ()
    assert (
        nw.from_native(p.rejected)
        .get_column("reason")
        .to_list()[0]
        .startswith("column 'email': '1' is not a valid email")
    )
