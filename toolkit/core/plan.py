"""plan(): a segment becomes batches of request bodies under the platform's limits.

Example:
    >>> import polars as pl
    >>> from toolkit.core.mapping import Mapping, Subscription, Trigger
    >>> segment = pl.DataFrame({"email": ["ann@x.io", "bob@x.io", "bad@"], "name": ["Ann", "Bob", "Eve"]})
    >>> p = plan(segment, Mapping({"email": "email", "name": "_fname"}), Trigger(96))
    >>> p
    Plan(rows=3, valid=2, rejected=1, batches=1, format='json', trigger_id=96)
    >>> p.summary()["rejected_by_rule"]
    {'invalid_email': 1}
"""

from __future__ import annotations

import functools
import hashlib
import html
import itertools
import json
import os
import tempfile
import threading
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, overload

import narwhals.stable.v2 as nw
import numpy as np
import orjson
import phonenumbers
import polars as pl
import pyarrow.parquet as pq

from toolkit.core.contract import EMAIL_FIELD, MATCHING_MODES, MAX_BODY_BYTES, Format
from toolkit.core.encode import Envelope, Fragments, RowEncoder, envelope, take_sorted
from toolkit.core.frames import SourceFrame
from toolkit.core.mapping import Mapping, Trigger
from toolkit.core.sample import RESERVED_EMAIL_DOMAINS, is_sample
from toolkit.core.validate import (
    KEY,
    POS,
    REASON,
    RULE,
    FloatStats,
    Prepared,
    _split_duplicates,
    float_stats,
    merge_float_stats,
    prepare,
    whole_floats_of,
)
from toolkit.core.windows import Windows, ahead, is_lazy_source
from toolkit.errors import ColumnNotFoundError, InvalidArgumentError, SourceChangedError, did_you_mean

__all__ = ["Batch", "Plan", "PlanOptions", "StreamedPlan", "plan"]


class _Bodies:
    """The validated rows of a plan, shared by its batches; bodies are encoded when asked for.

    A plan of a million rows holds its normalized rows once and no encoded profile. Asking
    for a body encodes it with the next ones, up to ``WINDOW_ROWS`` rows, in one parallel
    query, and keeps that window's other bodies for their turn (a launch asks in order);
    meanwhile the window after it is encoded in the background. Memory holds two windows,
    never the whole plan. Every body is checked against the size the plan promised before
    it leaves, so a body over the limit can never be sent.
    """

    def __init__(
        self,
        prepared: Prepared,
        encoder: RowEncoder,
        env: Envelope,
        cuts: list[int],
        email_columns: Sequence[str] = (),
    ) -> None:
        self.frame = prepared.frame
        self.valid = prepared.valid
        self.email_columns = tuple(email_columns)
        self.encoder = encoder
        self.env = env
        self.cuts = cuts
        self.positions = self.frame.get_column(POS).to_numpy()[self.valid]
        self._window: dict[int, bytes] = {}
        self._ahead: tuple[int, Future[dict[int, bytes]]] | None = None  # the next window, encoding
        self._encoder: ThreadPoolExecutor | None = None  # encodes the window ahead; see _encode_ahead
        self._lock = threading.Lock()  # a launch sends from several threads

    def body(self, index: int, expected: int) -> bytes:
        with self._lock:
            body = self._window.pop(index, None)
            if body is None:
                ahead, self._ahead = self._ahead, None
                if ahead is not None and ahead[0] == index:
                    self._window = ahead[1].result()
                else:
                    self._window = self._encode_window(index)
                body = self._window.pop(index)
                following = max(self._window, default=index) + 1
                if following < len(self.cuts) - 1:
                    self._ahead = (following, self._encode_ahead(following))
        if len(body) != expected:
            raise AssertionError(f"body of batch {index} is {len(body):,} bytes, {expected:,} were planned")
        return body

    def _encode_ahead(self, first: int) -> Future[dict[int, bytes]]:
        """Encode the window starting at batch ``first`` in the background.

        On this plan's own thread, never a process-wide pool: the thread is let go once the
        last window is under way, and with the plan if it is dropped half-way (one thread, so
        the windows reuse its memory).
        """
        if self._encoder is None:
            self._encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="toolkit-encode")
            weakref.finalize(self, self._encoder.shutdown, wait=False)
        future = self._encoder.submit(self._encode_window, first)
        if _window_end(self.cuts, first) >= len(self.cuts) - 1:  # the last window: nothing after it
            self._encoder.shutdown(wait=False)
            self._encoder = None
        return future

    def _encode_window(self, first: int) -> dict[int, bytes]:
        cuts = self.cuts
        last = _window_end(cuts, first)
        start, stop = cuts[first], cuts[last]
        gathered = take_sorted(self.frame.select(self.encoder.columns), self.valid[start:stop])
        fragments = self.encoder.fragments(gathered, self.env.separator)
        bodies = {}
        for index in range(first, last):
            rows = fragments.span(cuts[index] - start, cuts[index + 1] - start)
            bodies[index] = self.env.assemble([rows], rows=cuts[index + 1] - cuts[index])
        return bodies

    def _gather(self, start: int, stop: int) -> pl.DataFrame:
        """Valid rows ``start..stop`` of the normalized frame."""
        return take_sorted(self.frame, self.valid[start:stop])

    def keys(self, start: int, stop: int) -> list[str]:
        return self._gather(start, stop).get_column(KEY).to_list()

    def email_domains(self) -> tuple[int, int]:
        """(addresses, addresses on a reserved domain) among the e-mails the plan sends."""
        if not self.email_columns or not len(self.valid):
            return 0, 0
        emails = pl.concat(
            [self.frame.get_column(c).gather(self.valid) for c in self.email_columns]
        ).drop_nulls()
        domain = emails.str.extract(r"@([^@]+)$")
        return emails.len(), int(domain.str.contains(RESERVED_EMAIL_DOMAINS.pattern).sum())


# Rows encoded together when a body is asked for: its window's bodies are built in parallel.
WINDOW_ROWS = 30_000


def _window_end(cuts: list[int], first: int) -> int:
    """The batch after the window that starts at batch ``first`` (at least one batch)."""
    last = first + 1
    while last < len(cuts) - 1 and cuts[last + 1] - cuts[first] <= WINDOW_ROWS:
        last += 1
    return last


Duplicates = Literal["first", "last", "keep"]


@dataclass(frozen=True)
class PlanOptions:
    """The keyword arguments of :func:`plan` a plan was made with (checked when built).

    Frozen, and readable as a mapping too, so ``plan(frame, mapping, trigger, **p.options)``
    (or ``dict(p.options)``) plans again the same way.

    Example:
        >>> options = PlanOptions(max_rows=5)
        >>> options.max_rows, options["format"], dict(options)["duplicates"]
        (5, 'json', 'first')
        >>> PlanOptions(max_rows=0)
        Traceback (most recent call last):
        ...
        toolkit.errors.InvalidArgumentError: max_rows must be a positive integer, got 0
    """

    format: Format = "json"
    max_bytes: int = 10_000_000
    max_rows: int = 10_000
    phone_region: str | None = "RU"
    duplicates: Duplicates = "first"
    allow_undocumented_matching: bool = False

    def __post_init__(self) -> None:
        if self.format not in ("json", "xml"):
            raise InvalidArgumentError(f"format must be 'json' or 'xml', got {self.format!r}")
        for name in ("max_bytes", "max_rows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise InvalidArgumentError(f"{name} must be a positive integer, got {value!r}")
        if self.max_bytes > MAX_BODY_BYTES:
            raise InvalidArgumentError(
                f"max_bytes={self.max_bytes:,} is over the platform's body limit of {MAX_BODY_BYTES:,} bytes"
            )
        if self.duplicates not in ("first", "last", "keep"):
            raise InvalidArgumentError(
                f"duplicates must be 'first', 'last' or 'keep', got {self.duplicates!r}"
            )
        region = self.phone_region
        if region is not None and region not in phonenumbers.SUPPORTED_REGIONS:
            raise InvalidArgumentError(
                f"phone_region {region!r} is not a region code"
                f"{did_you_mean(str(region).upper(), phonenumbers.SUPPORTED_REGIONS)}"
                " (use ISO 3166 codes such as 'RU', 'GB', 'US', or None)"
            )

    def keys(self) -> list[str]:
        """The option names, in :func:`plan`'s order (with ``__getitem__``: ``dict(options)``)."""
        return [f.name for f in fields(self)]

    def __getitem__(self, name: str) -> Any:
        if name not in self.keys():
            raise KeyError(name)
        return getattr(self, name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())


class Batch:
    """One request body: the exact bytes sent (without the token) and the rows it holds.

    Attributes:
        index: the batch's place in its plan (0-based).
        body: the exact request bytes, without the token.
        rows: the input positions (0-based) of its profiles, in order.
        keys: each profile's normalized match key, in the same order.
        format: ``"json"`` or ``"xml"``.

    Example:
        >>> b = Batch(index=0, body=b'{"data":[]}', rows=(3, 5), keys=("a@x.io", "b@x.io"), format="json")
        >>> len(b), b.content_type, b.digest[:12]
        (2, 'application/json', '8fe32e407a10')
    """

    __slots__ = ("_bodies", "_body", "_digest", "_keys", "_rows", "_span", "format", "index", "nbytes")

    def __init__(
        self,
        index: int,
        body: bytes | None = None,
        rows: Sequence[int] = (),
        keys: Sequence[str] = (),
        format: Format = "json",
        *,
        _bodies: _Bodies | _StreamBodies | None = None,
        _span: tuple[int, int] = (0, 0),
        _nbytes: int | None = None,
    ) -> None:
        self.index = index
        self.format = format
        self._body = body
        self._bodies = _bodies
        self._span = _span
        self._rows = tuple(rows) if _bodies is None else None
        self._keys = tuple(keys) if _bodies is None else None
        self._digest: str | None = None
        #: the body's size in bytes
        self.nbytes = len(body) if body is not None else int(_nbytes or 0)

    @property
    def body(self) -> bytes:
        if self._body is not None:
            return self._body
        assert self._bodies is not None
        body = self._bodies.body(self.index, expected=self.nbytes)
        if self._digest is None:
            # hashed while it is at hand: the plan's fingerprint (a launch's first step) then
            # needs no second encoding of a body already built (a preview, a first send)
            self._digest = hashlib.sha256(body).hexdigest()
        return body

    @property
    def rows(self) -> tuple[int, ...]:
        if self._rows is None:
            assert self._bodies is not None
            self._rows = tuple(self._bodies.positions[slice(*self._span)].tolist())
        return self._rows

    @property
    def keys(self) -> tuple[str, ...]:
        if self._keys is None:
            assert self._bodies is not None
            self._keys = tuple(self._bodies.keys(*self._span))
        return self._keys

    def __len__(self) -> int:
        if self._bodies is not None:
            return self._span[1] - self._span[0]
        return len(self.rows)

    @property
    def content_type(self) -> str:
        return "application/xml" if self.format == "xml" else "application/json"

    @property
    def digest(self) -> str:
        """sha256 of the body: the batch's identity in the journal."""
        if self._digest is None:
            self._digest = hashlib.sha256(self.body).hexdigest()
        return self._digest

    def __repr__(self) -> str:
        return f"Batch(index={self.index}, rows={len(self)}, bytes={self.nbytes:,}, format={self.format!r})"


@dataclass(frozen=True, eq=False)
class Plan:
    """A validated segment split into request bodies; nothing has been sent.

    ``batches`` hold the exact bytes to send, ``rejected`` the rows left out (a frame of
    the caller's kind: the original columns, ``position``, ``rule`` and ``reason``).
    """

    batches: tuple[Batch, ...]
    rejected: Any
    format: Format
    mapping: Mapping
    trigger: Trigger
    options: PlanOptions
    source: Any = field(repr=False)
    n_rows: int
    preview: list[dict[str, Any]] = field(repr=False)
    _source: SourceFrame = field(repr=False)
    _positions: np.ndarray | None = field(repr=False, default=None)
    _whole_floats: frozenset[str] | None = field(repr=False, default=None)
    notes: tuple[str, ...] = field(repr=False, default=())
    """How columns were read that the analyst may not expect (floats sent as digits, ...)."""

    @property
    def n_valid(self) -> int:
        return sum(len(b) for b in self.batches)

    @property
    def n_rejected(self) -> int:
        return self.n_rows - self.n_valid

    @property
    def fingerprint(self) -> str:
        """sha256 over the trigger, the format and every body: the plan's identity."""
        digest = hashlib.sha256(f"{self.trigger.trigger_id}:{self.format}:".encode())
        for batch in self.batches:
            digest.update(batch.digest.encode())
        return digest.hexdigest()

    @functools.cached_property
    def test_data(self) -> str | None:
        """Why this plan looks like made-up people rather than customers, else ``None``: it was
        built from :func:`~toolkit.core.sample.sample_customers`, or every address it sends is
        on a domain reserved for examples (``example.com``, ``*.example``, ``*.test``, ...).

        ``Client.launch`` refuses such a plan on a platform that is not the toolkit's sandbox
        unless ``allow_sample=True``.

        Example:
            >>> from toolkit.core.mapping import Mapping, Trigger
            >>> plan(pl.DataFrame({"email": ["a@example.com"]}), Mapping({"email": "email"}), Trigger(1)).test_data
            'every e-mail address it sends (1) is on a domain reserved for examples (example.com, *.example, *.test)'
            >>> plan(pl.DataFrame({"email": ["a@x.io"]}), Mapping({"email": "email"}), Trigger(1)).test_data is None
            True
        """
        if is_sample(self.source):
            return "it was built from toolkit.sample_customers(), whose people are made up (their phones may be real)"
        # a streamed plan's bodies are made at launch time: only its source can tell (is_sample)
        bodies = self.batches[0]._bodies if self.batches else None
        emails, reserved = bodies.email_domains() if isinstance(bodies, _Bodies) else (0, 0)
        if emails and reserved == emails:
            return (
                f"every e-mail address it sends ({emails:,}) is on a domain reserved for examples "
                "(example.com, *.example, *.test)"
            )
        return None

    def segment(self, *, rows: bool = True) -> SourceFrame:
        """The segment as planned (``rows=False``: maybe without its rows, only its kind and columns)."""
        return self._source

    def rejected_by_rule(self) -> dict[str, int]:
        """Rejected row counts per rule, most common first."""
        rules = nw.from_native(self.rejected, eager_only=True).get_column("rule").to_list()
        return dict(Counter(rules).most_common())

    def summary(self) -> dict[str, Any]:
        """Counts and sizes, as a dict (JSON-ready).

        Example:
            >>> import polars as pl
            >>> from toolkit.core.mapping import Mapping, Trigger
            >>> p = plan(pl.DataFrame({"email": ["a@x.io"]}), Mapping({"email": "email"}), Trigger(7))
            >>> {k: p.summary()[k] for k in ("rows", "valid", "rejected", "batches")}
            {'rows': 1, 'valid': 1, 'rejected': 0, 'batches': 1}
        """
        sizes = [b.nbytes for b in self.batches]
        return {
            "rows": self.n_rows,
            "valid": self.n_valid,
            "rejected": self.n_rejected,
            "batches": len(self.batches),
            "format": self.format,
            "trigger_id": self.trigger.trigger_id,
            "matching": self.mapping.matching,
            "bytes": sum(sizes),
            "largest_batch_bytes": max(sizes, default=0),
            "largest_batch_rows": max((len(b) for b in self.batches), default=0),
            "max_bytes": self.options.max_bytes,
            "max_rows": self.options.max_rows,
            "rejected_by_rule": self.rejected_by_rule(),
            "notes": list(self.notes),
        }

    def records(self, n: int = 5) -> list[dict[str, Any]]:
        """The first ``n`` profiles (at most 20) as they will be sent.

        Example:
            >>> import polars as pl
            >>> from toolkit.core.mapping import Mapping, Trigger
            >>> p = plan(pl.DataFrame({"email": [" A@X.IO"]}), Mapping({"email": "email"}), Trigger(7))
            >>> p.records()
            [{'email': 'a@x.io'}]
        """
        return [dict(r) for r in self.preview[:n]]

    def subset(self, positions: Sequence[int]) -> Plan:
        """Plan again, with the same options, only the rows at these input positions.

        The new plan's ``rows`` and ``rejected.position`` keep the original positions.
        """
        wanted = np.unique(np.asarray(list(positions), dtype=np.int64))
        if self._positions is not None:
            local = np.searchsorted(self._positions, wanted)
        else:
            local = wanted
        if len(local) and (local.max() >= self.n_rows or local.min() < 0):
            raise InvalidArgumentError(f"positions must be between 0 and {self.n_rows - 1}")
        native = self._source.take(local.tolist())
        return _build(
            SourceFrame.wrap(native),
            self.mapping,
            self.trigger,
            self.options,
            positions=wanted,
            whole_floats=self._whole_floats,
        )

    def __repr__(self) -> str:
        return (
            f"Plan(rows={self.n_rows}, valid={self.n_valid}, rejected={self.n_rejected}, "
            f"batches={len(self.batches)}, format={self.format!r}, trigger_id={self.trigger.trigger_id})"
        )

    def _repr_html_(self) -> str:
        s = self.summary()
        esc = html.escape
        rules = (
            "".join(
                f"<tr><td>{esc(rule)}</td><td style='text-align:right'>{count:,}</td></tr>"
                for rule, count in s["rejected_by_rule"].items()
            )
            or "<tr><td colspan=2>none</td></tr>"
        )
        sizes = ", ".join(f"{len(b):,} rows / {b.nbytes:,} B" for b in self.batches[:6])
        more = f" ... ({len(self.batches) - 6} more)" if len(self.batches) > 6 else ""
        records = esc(json.dumps(self.records(3), ensure_ascii=False, indent=2, sort_keys=True))
        notes = "".join(f"<p>Note: {esc(note)}</p>" for note in self.notes)
        return (
            f"<div><b>Plan</b> for trigger {s['trigger_id']} ({esc(s['format'])}, matching "
            f"{esc(s['matching'])}): {s['rows']:,} rows, <b>{s['valid']:,} valid</b>, "
            f"{s['rejected']:,} rejected, {s['batches']:,} batches, {s['bytes']:,} bytes."
            f"<table><tr><th>rejected by rule</th><th>rows</th></tr>{rules}</table>"
            f"<p>Batches: {esc(sizes)}{more}</p>{notes}"
            f"<details><summary>first records as sent</summary><pre>{records}</pre></details></div>"
        )


# Room kept in every body for the token, should the client put it in the body.
TOKEN_ROOM = 256


@overload
def plan(
    frame: Any,
    mapping: Mapping,
    trigger: Trigger,
    *,
    format: Literal["json"] = "json",
    max_bytes: int = 10_000_000,
    max_rows: int = 10_000,
    phone_region: str | None = "RU",
    duplicates: Duplicates = "first",
    allow_undocumented_matching: bool = False,
    rejected_to: str | Path | None = None,
) -> Plan: ...
@overload
def plan(
    frame: Any,
    mapping: Mapping,
    trigger: Trigger,
    *,
    format: Literal["xml"],
    max_bytes: int = 10_000_000,
    max_rows: int = 10_000,
    phone_region: str | None = "RU",
    duplicates: Duplicates = "first",
    allow_undocumented_matching: bool = False,
    rejected_to: str | Path | None = None,
) -> Plan: ...
def plan(
    frame: Any,
    mapping: Mapping,
    trigger: Trigger,
    *,
    format: Format = "json",
    max_bytes: int = 10_000_000,
    max_rows: int = 10_000,
    phone_region: str | None = "RU",
    duplicates: Duplicates = "first",
    allow_undocumented_matching: bool = False,
    rejected_to: str | Path | None = None,
) -> Plan:
    """Validate a segment and split it into request bodies under the platform's limits.

    Args:
        frame: the segment: a pandas or polars frame, or any eager frame narwhals reads; or a
            lazy source, streamed window by window in bounded memory: a polars ``LazyFrame``
            (``pl.scan_parquet``, ``pl.scan_csv``), a path, folder or glob of parquet files,
            a DuckDB relation, a PySpark ``DataFrame`` (a :class:`StreamedPlan`, the same
            bodies as the eager plan of the same rows).
        mapping: columns -> profile fields, matching mode, subscriptions.
        trigger: the trigger campaign and its options.
        format: ``"json"`` or ``"xml"`` bodies.
        max_bytes: the largest body, in bytes (the platform refuses over 10 MB).
        max_rows: the most profiles in one body (the platform advises at most 10,000).
        phone_region: the region national phone numbers are read in (``None``: only
            international numbers are accepted).
        duplicates: rows sharing a match key: ``"first"`` keeps the first and rejects the
            rest, ``"last"`` keeps the last, ``"keep"`` sends them all.
        allow_undocumented_matching: the platform documents five matching modes for
            ``import_and_start_batch_task`` (``email``, ``email_profile``, ``phone``,
            ``profile_id``, ``custom``); the six others (``email_sub``, ``phone_sub``,
            ``push_sub``, ``custom_sub``, ``email_phone``, ``email_phone_sub``) are documented
            only for the methods that start a trigger without importing. They are refused
            unless this is ``True``: then they are sent as asked, and how the platform
            reads them for this method is undocumented.
        rejected_to: a lazy source's rejected rows go to this parquet file (default: kept in
            memory while at most 100,000, else a temporary parquet file); ``plan.rejected``
            is then a ``LazyFrame`` over it. Eager frames ignore it.

    Returns:
        A :class:`Plan`: ``batches`` to send and ``rejected`` rows with their reasons.

    Example:
        >>> import pandas as pd
        >>> from toolkit.core.mapping import Mapping, Trigger
        >>> segment = pd.DataFrame({"email": ["ann@x.io", "BOB@X.IO ", "nope", "ann@x.io"]})
        >>> p = plan(segment, Mapping({"email": "email"}), Trigger(96), max_rows=2)
        >>> [b.rows for b in p.batches]
        [(0, 1)]
        >>> p.rejected[["position", "rule"]].to_dict("records")
        [{'position': 2, 'rule': 'invalid_email'}, {'position': 3, 'rule': 'duplicate'}]
        >>> p.batches[0].body
        b'{"format":"json","matching":"email","trigger_id":96,"skip_triggers":false,"skip_invalid_subscriptions":false,"detect_geo":false,"data":[{"data":{"email":"ann@x.io"}},{"data":{"email":"bob@x.io"}}]}'
    """
    options = PlanOptions(
        format=format,
        max_bytes=max_bytes,
        max_rows=max_rows,
        phone_region=phone_region,
        duplicates=duplicates,
        allow_undocumented_matching=allow_undocumented_matching,
    )
    _check_inputs(mapping, trigger, options)
    if is_lazy_source(frame):
        return _build_streamed(Windows.of(frame), mapping, trigger, options, rejected_to)
    return _build(SourceFrame.wrap(frame), mapping, trigger, options, positions=None)


def _check_inputs(mapping: Mapping, trigger: Trigger, options: PlanOptions) -> None:
    if not isinstance(mapping, Mapping):
        raise InvalidArgumentError(f"mapping must be a toolkit.Mapping, got {type(mapping).__name__}")
    if not isinstance(trigger, Trigger):
        raise InvalidArgumentError(f"trigger must be a toolkit.Trigger, got {type(trigger).__name__}")
    _check_matching(mapping.matching, options.allow_undocumented_matching)
    env = envelope(mapping, trigger, options.format)
    if env.overhead + TOKEN_ROOM + 16 > options.max_bytes:
        raise InvalidArgumentError(
            f"max_bytes={options.max_bytes:,} leaves no room for profiles: the request envelope alone "
            f"takes {env.overhead + TOKEN_ROOM:,} bytes (attachments count here); raise max_bytes"
        )


#: The matching modes the page of ``import_and_start_batch_task`` documents (contract: V).
DOCUMENTED_MATCHING: tuple[str, ...] = tuple(
    str(m) for m, rule in MATCHING_MODES.items() if rule.documented_for_batch
)


def _check_matching(matching: str, allowed: object) -> None:
    """Refuse a matching mode this method does not document, unless the caller opted in."""
    if not isinstance(allowed, bool):
        raise InvalidArgumentError(f"allow_undocumented_matching must be True or False, got {allowed!r}")
    if allowed or MATCHING_MODES[matching].documented_for_batch:
        return
    raise InvalidArgumentError(
        f"matching={str(matching)!r} is not documented for import_and_start_batch_task, which documents "
        f"{', '.join(map(repr, DOCUMENTED_MATCHING))}; the platform documents {str(matching)!r} only for the "
        "methods that start a trigger without importing. Use one of the five, or plan(..., "
        "allow_undocumented_matching=True) to send it anyway (how the platform reads it here is undocumented)"
    )


def _build(
    source: SourceFrame,
    mapping: Mapping,
    trigger: Trigger,
    options: PlanOptions,
    positions: np.ndarray | None,
    whole_floats: frozenset[str] | None = None,
) -> Plan:
    fmt = options.format
    prepared = prepare(
        source.polars,
        mapping,
        trigger,
        format=fmt,
        phone_region=options.phone_region,
        duplicates=options.duplicates,
        positions=positions,
        whole_floats=whole_floats,
        mixed=source.mixed,
    )
    env = envelope(mapping, trigger, fmt)
    encoder = RowEncoder(prepared, mapping, fmt)
    sizes = encoder.sizes(prepared.frame, prepared.valid)

    budget = options.max_bytes - env.overhead - env.extra(1) - TOKEN_ROOM
    prepared, sizes, too_large = _drop_too_large(prepared, sizes, budget, options)
    rejected_rows = prepared.rejected
    if too_large.height:
        rejected_rows = pl.concat([rejected_rows, too_large], how="vertical_relaxed").sort(POS)

    cuts = _cut_points(sizes, len(env.separator), budget, options.max_rows)
    email_columns = [c for f, c in prepared.fields if f == EMAIL_FIELD] + [
        c for sub, c in zip(mapping.subscriptions, prepared.subscriptions, strict=True) if sub.kind == "email"
    ]
    bodies = _Bodies(prepared, encoder, env, cuts, email_columns)
    batches = tuple(
        Batch(
            index,
            format=fmt,
            _bodies=bodies,
            _span=(start, stop),
            _nbytes=env.overhead
            + env.extra(stop - start)
            + int(sizes[start:stop].sum())
            + (stop - start - 1) * len(env.separator),
        )
        for index, (start, stop) in enumerate(itertools.pairwise(cuts))
    )
    head = bodies._gather(0, 20)
    preview_encoder = encoder if fmt == "json" else RowEncoder(prepared, mapping, "json", clean=frozenset())
    preview = [orjson.loads(r)["data"] for r in preview_encoder.rows(head).to_list()]
    return Plan(
        batches=batches,
        rejected=_rejected_frame(source, rejected_rows, positions),
        format=fmt,
        mapping=mapping,
        trigger=trigger,
        options=options,
        source=source.native,
        n_rows=source.polars.height,
        preview=preview,
        _source=source,
        _positions=positions,
        _whole_floats=prepared.whole_floats,
        notes=prepared.notes,
    )


def _drop_too_large(
    prepared: Prepared, sizes: np.ndarray, budget: int, options: PlanOptions
) -> tuple[Prepared, np.ndarray, pl.DataFrame]:
    """The rows whose profile alone is over the body budget: left out, with their reason."""
    fits = sizes <= budget
    if fits.all():
        return prepared, sizes, pl.DataFrame(schema={POS: pl.Int64, RULE: pl.String, REASON: pl.String})
    too_large = pl.DataFrame(
        {
            POS: prepared.frame.get_column(POS).gather(prepared.valid[~fits]),
            RULE: "too_large",
            REASON: [
                f"profile is {size} bytes encoded; with the request envelope that is over "
                f"max_bytes={options.max_bytes}"
                for size in sizes[~fits].tolist()
            ],
        },
        schema={POS: pl.Int64, RULE: pl.String, REASON: pl.String},
    )
    return prepared.keep(fits), sizes[fits], too_large


def _cut_points(sizes: np.ndarray, separator: int, budget: int, max_rows: int) -> list[int]:
    """Greedy split: each batch takes as many rows as fit both limits, in order.

    ``cumulative[k]`` is the size of rows ``0..k-1`` each followed by a separator, so a
    batch ``i..j`` needs ``cumulative[j] - cumulative[i] - separator <= budget``.
    """
    cumulative = np.concatenate([[0], np.cumsum(sizes + separator)])
    cuts, start, n = [0], 0, len(sizes)
    while start < n:
        stop = int(np.searchsorted(cumulative, cumulative[start] + budget + separator, side="right")) - 1
        stop = min(max(stop, start + 1), start + max_rows, n)
        cuts.append(stop)
        start = stop
    return cuts


def _rejected_frame(source: SourceFrame, rejected: pl.DataFrame, positions: np.ndarray | None) -> Any:
    """The original columns of the rejected rows, with ``position``, ``rule`` and ``reason``."""
    input_positions = rejected.get_column(POS).to_numpy()
    if positions is None:
        local = input_positions
    else:  # a subset plan: find each input position's row in the subset frame
        local = np.searchsorted(np.asarray(positions), input_positions)
    extra = rejected.select(
        pl.col(POS).alias("position"), pl.col(RULE).alias("rule"), pl.col(REASON).alias("reason")
    )
    return source.with_columns(source.take(local.tolist()), extra)


# ---------------------------------------------------------------------------------------------
# Streamed plans: a lazy source (LazyFrame, parquet glob, DuckDB, Spark) is read window by window.
#
# How a streamed plan is made, and what it holds (never the segment, never the bodies):
# 1. Float columns' stats, one read of the float columns only: which are sent as integers,
#    whole segment alike (what the eager plan decides over the whole frame).
# 2. The first full pass validates and encodes each window, cuts batches greedily as the rows
#    come (a batch is final once a row did not fit it, so the cuts are the eager plan's),
#    and keeps of each body only its sha256, size and rows' positions (as runs of consecutive
#    rows: bytes a batch). It also keeps each valid row's match-key hash (8 bytes a row, the
#    one per-row cost: 240 MB at 30M rows, in one array sorted in place); rejected rows go to
#    the sink, but a too-large row waits for the duplicates (a duplicate first, as eagerly).
#    Every pass reads and validates the next window on a thread of its own while this one is
#    encoded, cut and digested (windows.ahead: one window ahead, two alive at most); a window's
#    rows are encoded once, their sizes the encoded lengths. A plain parquet scan is read slice
#    by slice (see windows._slices_read_only_them). Measured (bench/plan_scale.py, 2 busy
#    cores): peak 658 MB over baseline at 10M rows, 895 MB at 30M; 0.84x and 0.73x the eager
#    plan's rows/s at 1M.
# 3. If some key hashes repeat (and duplicates are not kept), the windows holding them are
#    read again and those rows' keys compared as text, exactly as the eager plan does; then
#    the bodies' digests are made again with the duplicates left out.
# The plan's identity (``fingerprint``) is the eager formula over those digests: the same rows
# and options give the same fingerprint, eager or streamed, from any source. Bodies are
# encoded again when sent (window by window, in order) and each is checked against its digest.
# ---------------------------------------------------------------------------------------------

#: Rejected rows a streamed plan keeps in memory; past this they are spilled to a parquet file.
REJECTED_IN_MEMORY = 100_000
_NO_ROWS = np.empty(0, dtype=np.int64)


class _Cutter:
    """Greedy batches over rows that arrive window by window (see :func:`_cut_points`).

    Every batch but the last of what has arrived is final: a row did not fit it. The last
    one is carried over to the next window, so the cuts are those of the whole segment.
    """

    def __init__(self, env: Envelope, budget: int, max_rows: int) -> None:
        self.env, self.budget, self.max_rows = env, budget, max_rows
        self.sizes, self.positions = _NO_ROWS, _NO_ROWS
        self.pending: list[tuple[Fragments, int]] = []  # rows not in a body yet: (fragments, from row)

    def feed(
        self, sizes: np.ndarray, fragments: Fragments | None, positions: np.ndarray, *, last: bool
    ) -> Iterator[tuple[bytes, np.ndarray]]:
        """The batches that are final once these rows are added: (body, input positions)."""
        self.sizes = np.concatenate([self.sizes, sizes])
        self.positions = np.concatenate([self.positions, positions])
        if fragments is not None and len(fragments):
            self.pending.append((fragments, 0))
        cuts = _cut_points(self.sizes, len(self.env.separator), self.budget, self.max_rows)
        final = len(cuts) - 1 if last else len(cuts) - 2
        for start, stop in itertools.pairwise(cuts[: final + 1]):
            # env.assemble: a one-profile XML body marks its lone <data> array='true', as the eager plan does
            yield self.env.assemble(self._take(stop - start), rows=stop - start), self.positions[start:stop]
        keep = cuts[max(final, 0)]
        self.sizes, self.positions = self.sizes[keep:], self.positions[keep:]
        # the rows carried over (less than a body) are copied out: their window's buffer goes
        self.pending = [(fragments.tail(first), 0) for fragments, first in self.pending]

    def _take(self, rows: int) -> list[memoryview]:
        """The next ``rows`` pending rows, as stretches of their windows' buffers (no copy)."""
        pieces = []
        while rows:
            fragments, first = self.pending[0]
            taken = min(rows, len(fragments) - first)
            pieces.append(fragments.span(first, first + taken))
            rows -= taken
            if first + taken == len(fragments):
                self.pending.pop(0)
            else:
                self.pending[0] = (fragments, first + taken)
        return pieces


@dataclass
class _Window:
    """One window after validation: what the passes need of it."""

    prepared: Prepared
    encoder: RowEncoder
    sizes: np.ndarray | None  # per valid row that fits (None: not sized yet, see _Stream.validate)
    rejected: pl.DataFrame  # POS, RULE, REASON (too_large included)
    checked: np.ndarray  # row numbers that passed validation, too large ones included
    hashes: np.ndarray  # match-key hash of each ``checked`` row, uint64


class _Stream:
    """What a streamed plan reads its source with, and the one pass that validates and encodes it."""

    def __init__(
        self,
        windows: Windows,
        mapping: Mapping,
        trigger: Trigger,
        options: PlanOptions,
        whole_floats: frozenset[str],
    ) -> None:
        self.windows, self.mapping, self.trigger, self.options = windows, mapping, trigger, options
        self.whole_floats = whole_floats
        self.env = envelope(mapping, trigger, options.format)
        self.budget = options.max_bytes - self.env.overhead - self.env.extra(1) - TOKEN_ROOM

    def validated(self) -> Iterator[tuple[pl.DataFrame, _Window]]:
        """Each window of the source as read, and validated (duplicates not looked for yet);
        the next window is read and validated on a thread meanwhile (see :func:`ahead`)."""
        return ahead(lambda: self._each_checked(sized=True), name="toolkit-read")

    def _each_checked(self, *, sized: bool) -> Iterator[tuple[pl.DataFrame, _Window]]:
        offset = 0
        for frame in self.windows.read():
            yield frame, self.validate(frame, offset, sized=sized)
            offset += frame.height

    def validate(self, frame: pl.DataFrame, offset: int, *, sized: bool = True) -> _Window:
        """A window validated. ``sized``: the rows' encoded sizes, added up from the columns
        (the too-large rows left out); else ``sizes`` is None and every valid row is kept,
        for :meth:`fitted` to size once the rows are encoded."""
        options = self.options
        prepared = prepare(
            frame,
            self.mapping,
            self.trigger,
            format=options.format,
            phone_region=options.phone_region,
            duplicates="keep",
            positions=np.arange(offset, offset + frame.height, dtype=np.int64),
            whole_floats=self.whole_floats,
        )
        checked = prepared.valid
        hashes = prepared.frame.get_column(KEY).gather(checked).hash().to_numpy()
        encoder = RowEncoder(prepared, self.mapping, options.format)
        window = _Window(prepared, encoder, None, prepared.rejected, checked, hashes)
        if not sized:
            return window
        return self.fitted(window, encoder.sizes(prepared.frame, prepared.valid))

    def fitted(self, window: _Window, sizes: np.ndarray) -> _Window:
        """The window with its valid rows' sizes, the rows too large for a body left out (rejected)."""
        prepared, sizes, too_large = _drop_too_large(window.prepared, sizes, self.budget, self.options)
        rejected = window.rejected
        if too_large.height:
            rejected = pl.concat([rejected, too_large], how="vertical_relaxed").sort(POS)
        return replace(window, prepared=prepared, sizes=sizes, rejected=rejected)

    def bodies(
        self, dropped: np.ndarray, on_window: Callable[[pl.DataFrame, _Window], None] | None = None
    ) -> Iterator[tuple[bytes, np.ndarray]]:
        """Every body, in order, with its rows' input positions; ``dropped``: positions left out
        (sorted: the duplicates found across windows).

        The next window is read and validated on a thread while this one is encoded, cut and
        digested. A window's rows are encoded once: their sizes are the fragments' lengths
        (the same figures :meth:`RowEncoder.sizes` adds up, which the eager plan checks every
        body against).
        """
        cutter = _Cutter(self.env, self.budget, self.options.max_rows)
        for frame, checked in ahead(lambda: self._each_checked(sized=False), name="toolkit-read"):
            prepared = checked.prepared
            separator = self.env.separator
            encoder = checked.encoder
            rows = encoder.rows(
                take_sorted(prepared.frame.select(encoder.columns), prepared.valid),
                parallel=True,
                end=separator.decode(),
            )
            sizes = rows.str.len_bytes().to_numpy().astype(np.int64) - len(separator)
            fits = sizes <= self.budget
            window = self.fitted(checked, sizes)
            if on_window is not None:
                on_window(frame, window)
            positions = window.prepared.frame.get_column(POS).to_numpy()[window.prepared.valid]
            sent = np.flatnonzero(fits)  # too-large rows: rejected by fitted(), not sent
            sizes = sizes[sent]
            if len(dropped):
                kept = ~np.isin(positions, dropped, assume_unique=True)
                sizes, positions, sent = sizes[kept], positions[kept], sent[kept]
            if len(sent) < len(fits):
                rows = rows.gather(sent)
            fragments = Fragments.of(rows, separator)
            del frame, checked, window, prepared, rows  # only the encoded rows' buffer is needed now
            yield from cutter.feed(sizes, fragments, positions, last=False)
        yield from cutter.feed(_NO_ROWS, None, _NO_ROWS, last=True)

    def keys(self, dropped: np.ndarray) -> pl.Series:
        """Every sent row's match key, in order (for a launch's results)."""
        parts = []
        for _, window in self.validated():
            prepared = window.prepared
            positions = prepared.frame.get_column(POS).to_numpy()[prepared.valid]
            rows = (
                prepared.valid[~np.isin(positions, dropped, assume_unique=True)]
                if len(dropped)
                else prepared.valid
            )
            parts.append(take_sorted(prepared.frame, rows).get_column(KEY))
        return pl.concat(parts) if parts else pl.Series(KEY, [], dtype=pl.String)


class _Runs:
    """Sorted input positions kept as runs of consecutive rows: a few bytes a batch, not 8 a row.

    A streamed plan of 30M rows would hold 240 MB of positions as an int64 array; the rows a
    plan sends are mostly consecutive (rejected rows cut a run), so runs make it near nothing.
    Sliced like the array it stands for.

    Example:
        >>> runs = _Runs.of([np.array([3, 4, 5, 9]), np.array([10, 12])])
        >>> len(runs), runs[1:5].tolist(), runs.n_runs
        (6, [4, 5, 9, 10], 4)
        >>> both = _Runs.joined([runs, _Runs.of([np.array([13, 14])])])
        >>> both[4:].tolist(), both.n_runs
        ([10, 12, 13, 14], 5)
    """

    def __init__(self, starts: np.ndarray, ends: np.ndarray) -> None:
        self.starts = starts  # first position of each run
        self.ends = ends  # rows in all runs up to and including this one

    @classmethod
    def of(cls, parts: Iterable[np.ndarray]) -> _Runs:
        """Runs of these sorted position arrays, one after the other."""
        starts, counts = [], []
        for positions in parts:
            if not len(positions):
                continue
            breaks = np.flatnonzero(np.diff(positions) != 1) + 1
            firsts = np.concatenate([[0], breaks])
            starts.append(positions[firsts])
            counts.append(np.diff(np.concatenate([firsts, [len(positions)]])))
        if not starts:
            return cls(_NO_ROWS, _NO_ROWS)
        return cls(np.concatenate(starts).astype(np.int64), np.cumsum(np.concatenate(counts)))

    @classmethod
    def joined(cls, parts: Sequence[_Runs]) -> _Runs:
        """These runs one after the other (the batches' rows, the plan's)."""
        if not parts:
            return cls(_NO_ROWS, _NO_ROWS)
        before = np.cumsum([0] + [len(p) for p in parts[:-1]])
        return cls(
            np.concatenate([p.starts for p in parts]),
            np.concatenate([p.ends + offset for p, offset in zip(parts, before, strict=True)]),
        )

    @property
    def n_runs(self) -> int:
        return len(self.starts)

    def __len__(self) -> int:
        return int(self.ends[-1]) if len(self.ends) else 0

    def __getitem__(self, rows: slice) -> np.ndarray:
        start, stop, _ = rows.indices(len(self))
        if stop <= start:
            return _NO_ROWS
        wanted = np.arange(start, stop, dtype=np.int64)
        run = np.searchsorted(self.ends, wanted, side="right")
        run_first_row = np.concatenate([[0], self.ends])[run]
        return self.starts[run] + (wanted - run_first_row)


class _StreamBodies:
    """The bodies of a streamed plan, encoded again in order as a launch asks for them.

    A launch asks in order (a few threads at once), so bodies come from one pass over the
    source; a body asked for out of turn (a resend) starts the pass again. Each body is
    checked against the digest the plan recorded: a source that changed since is refused.
    """

    # bodies encoded ahead of the one asked for that are kept for their turn
    KEPT = 8

    def __init__(self, stream: _Stream, dropped: np.ndarray, positions: _Runs, digests: list[str]) -> None:
        self.stream, self.dropped, self.positions, self.digests = stream, dropped, positions, digests
        self._made: Iterator[tuple[bytes, np.ndarray]] | None = None
        self._next = 0  # the index of the next body the pass makes
        self._kept: dict[int, bytes] = {}
        self._keys: pl.Series | None = None
        self._lock = threading.Lock()

    def body(self, index: int, expected: int) -> bytes:
        with self._lock:
            body = self._kept.pop(index, None)
            if body is None:
                if self._made is None or index < self._next:
                    self._made, self._next, self._kept = self.stream.bodies(self.dropped), 0, {}
                while body is None:
                    made, _ = next(self._made)
                    if self._next == index:
                        body = made
                    else:
                        self._kept[self._next] = made
                        while len(self._kept) > self.KEPT:
                            self._kept.pop(min(self._kept))
                    self._next += 1
        if len(body) != expected or hashlib.sha256(body).hexdigest() != self.digests[index]:
            raise SourceChangedError(
                f"batch {index} was never sent: its body is not the one planned, the segment "
                f"({self.stream.windows.kind}) changed since plan() read it; plan it again, then launch the new plan"
            )
        return body

    def keys(self, start: int, stop: int) -> list[str]:
        with self._lock:
            if self._keys is None:
                self._keys = self.stream.keys(self.dropped)
        return self._keys.slice(start, stop - start).to_list()


class _RejectedSink:
    """Where a streamed plan's rejected rows go: memory while few, else a parquet file."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path is not None else None
        self.spill = path is not None
        self.parts: list[pl.DataFrame] = []
        self.held = 0
        self.writer: pq.ParquetWriter | None = None
        self.counts: Counter[str] = Counter()

    def add(self, frame: pl.DataFrame) -> None:
        if not frame.height:
            return
        self.counts.update(frame.get_column("rule").to_list())
        self.parts.append(frame)
        self.held += frame.height
        if self.held > REJECTED_IN_MEMORY and self.path is None:
            handle, name = tempfile.mkstemp(prefix="toolkit-rejected-", suffix=".parquet")
            os.close(handle)
            self.path = Path(name)
        if self.path is not None and (self.spill or self.held > REJECTED_IN_MEMORY):
            self.spill = True
            self._write()

    def _write(self) -> None:
        assert self.path is not None
        for part in self.parts:
            table = part.to_arrow()
            if self.writer is None:
                self.writer = pq.ParquetWriter(str(self.path), table.schema)
            self.writer.write_table(table.cast(self.writer.schema))
        self.parts, self.held = [], 0

    def result(self, columns: pl.Schema) -> pl.DataFrame | pl.LazyFrame:
        """The rejected rows: a frame sorted by position, or a LazyFrame over the parquet file."""
        if self.spill:
            self._write()
            assert self.path is not None  # spill is set only with a path (rejected_to, or a temp file)
            if self.writer is None:  # rejected_to given, nothing rejected: an empty file all the same
                pl.DataFrame(schema=columns).write_parquet(self.path)
            else:
                self.writer.close()
            return pl.scan_parquet(self.path)
        if not self.parts:
            return pl.DataFrame(schema=columns)
        return pl.concat(self.parts, how="vertical_relaxed").sort("position")


def _rejected_rows(frame: pl.DataFrame, offset: int, rejected: pl.DataFrame) -> pl.DataFrame:
    """The original columns of a window's rejected rows, with ``position``, ``rule`` and ``reason``."""
    local = rejected.get_column(POS) - offset
    return pl.concat(
        [
            frame[local.to_numpy()],
            rejected.select(
                pl.col(POS).alias("position"), pl.col(RULE).alias("rule"), pl.col(REASON).alias("reason")
            ),
        ],
        how="horizontal",
    )


def _whole_floats(windows: Windows, mapping: Mapping) -> frozenset[str]:
    """The mapped float columns sent as integers, decided over the whole segment (a read of them only)."""
    schema = windows.schema()
    floats = [c for c in mapping.columns if c in schema and schema[c].is_float()]
    if not floats:
        return frozenset()
    stats: FloatStats = {}
    for frame in windows.read(floats):
        stats = merge_float_stats(stats, float_stats(frame))
    return whole_floats_of(stats)


@dataclass(frozen=True, eq=False, repr=False)
class StreamedPlan(Plan):
    """A plan of a lazy source: the same batches as the eager plan of the same rows, made while
    reading the source window by window. ``rejected`` is a polars frame, or a ``LazyFrame`` over
    the parquet file the rejected rows were written to (``rejected_to=``, or many of them)."""

    rejected_counts: dict[str, int] = field(repr=False, default_factory=dict)
    _stream: _Stream | None = field(repr=False, default=None)

    def rejected_by_rule(self) -> dict[str, int]:
        """Rejected row counts per rule, most common first."""
        return dict(Counter(self.rejected_counts).most_common())

    def segment(self, *, rows: bool = True) -> SourceFrame:
        """The segment as planned: read whole from the source if ``rows`` (a polars frame)."""
        if not rows:
            return self._source
        assert self._stream is not None
        return SourceFrame.wrap(pl.concat(self._stream.windows.read(), how="vertical_relaxed"))

    def subset(self, positions: Sequence[int]) -> Plan:
        """Plan again, with the same options, only the rows at these input positions (read from the source)."""
        wanted = np.unique(np.asarray(list(positions), dtype=np.int64))
        if len(wanted) and (wanted.max() >= self.n_rows or wanted.min() < 0):
            raise InvalidArgumentError(f"positions must be between 0 and {self.n_rows - 1}")
        assert self._stream is not None
        parts, offset = [], 0
        for frame in self._stream.windows.read():
            inside = wanted[(wanted >= offset) & (wanted < offset + frame.height)]
            parts.append(frame[inside - offset])
            offset += frame.height
        rows = pl.concat(parts, how="vertical_relaxed") if parts else pl.DataFrame()
        return _build(
            SourceFrame.wrap(rows), self.mapping, self.trigger, self.options, positions=wanted,
            whole_floats=self._whole_floats,
        )  # fmt: skip


def _build_streamed(
    windows: Windows, mapping: Mapping, trigger: Trigger, options: PlanOptions, rejected_to: str | Path | None
) -> StreamedPlan:
    _check_columns_of(windows, mapping)
    stream = _Stream(windows, mapping, trigger, options, _whole_floats(windows, mapping))
    sink = _RejectedSink(rejected_to)
    hashes: list[np.ndarray] = []
    notes: dict[str, None] = {}
    preview: list[dict[str, Any]] = []
    offsets = {"next": 0}
    schema: dict[str, pl.Schema] = {}
    too_large: list[pl.DataFrame] = []

    def first_pass(frame: pl.DataFrame, window: _Window) -> None:
        offset = offsets["next"]
        offsets["next"] += frame.height
        schema.setdefault("rejected", _rejected_rows(frame.clear(), 0, window.rejected.clear()).schema)
        rejected = _rejected_rows(frame, offset, window.rejected)
        # a too-large row that repeats a key is a duplicate in the eager plan (duplicates are
        # found first): held until the duplicates are known (such rows are rare)
        is_too_large = pl.col("rule") == "too_large"
        sink.add(rejected.filter(~is_too_large))
        too_large.append(rejected.filter(is_too_large))
        hashes.append(window.hashes)
        notes.update(dict.fromkeys(window.prepared.notes))
        if len(preview) < 20:
            preview.extend(_preview(window, _NO_ROWS, mapping, options.format, 20 - len(preview)))

    made = _digests(stream.bodies(_NO_ROWS, first_pass))
    dropped = _NO_ROWS
    if options.duplicates != "keep":
        dropped, duplicates = _duplicates_across(stream, _one_array(hashes))
        if len(dropped):
            sink.add(duplicates)
            made = _digests(stream.bodies(dropped))
            preview = []
            for _, window in stream.validated():  # the first windows only: it stops once 20 are found
                preview.extend(_preview(window, dropped, mapping, options.format, 20 - len(preview)))
                if len(preview) >= 20:
                    break
    for rows in too_large:
        sink.add(
            rows.filter(~np.isin(rows.get_column("position").to_numpy(), dropped)) if len(dropped) else rows
        )
    positions = _Runs.joined([rows for _, _, rows in made])
    digests = [digest for digest, _, _ in made]
    bodies = _StreamBodies(stream, dropped, positions, digests)
    batches, start = [], 0
    for index, (digest, nbytes, runs) in enumerate(made):
        batch = Batch(
            index, format=options.format, _bodies=bodies, _span=(start, start + len(runs)), _nbytes=nbytes
        )
        batch._digest = digest
        batches.append(batch)
        start += len(runs)
    empty = pl.DataFrame(schema=windows.schema())
    return StreamedPlan(
        batches=tuple(batches),
        rejected=sink.result(schema.get("rejected", pl.Schema())),
        format=options.format,
        mapping=mapping,
        trigger=trigger,
        options=options,
        source=windows.source,
        n_rows=offsets["next"],
        preview=preview,
        _source=SourceFrame.wrap(empty),
        _whole_floats=stream.whole_floats,
        notes=tuple(notes),
        rejected_counts=dict(sink.counts),
        _stream=stream,
    )


def _digests(bodies: Iterator[tuple[bytes, np.ndarray]]) -> list[tuple[str, int, _Runs]]:
    """Of each body only its sha256, size and rows (as runs): what a streamed plan keeps of it."""
    return [(hashlib.sha256(body).hexdigest(), len(body), _Runs.of([rows])) for body, rows in bodies]


def _one_array(parts: list[np.ndarray]) -> np.ndarray:
    """The parts end to end, each let go once copied: memory peaks at the result plus one part,
    not twice the result (``np.concatenate`` holds every part until it returns)."""
    whole = np.empty(sum(len(p) for p in parts), dtype=np.uint64)
    filled = 0
    while parts:
        part = parts.pop(0)
        whole[filled : filled + len(part)] = part
        filled += len(part)
    return whole


def _preview(
    window: _Window, dropped: np.ndarray, mapping: Mapping, fmt: Format, n: int
) -> list[dict[str, Any]]:
    """The first ``n`` profiles of a window as sent (in JSON, as :meth:`Plan.records` shows them)."""
    prepared = window.prepared
    valid = prepared.valid
    if len(dropped):
        positions = prepared.frame.get_column(POS).to_numpy()[valid]
        valid = valid[~np.isin(positions, dropped, assume_unique=True)]
    head = take_sorted(prepared.frame, valid[:n])
    encoder = window.encoder if fmt == "json" else RowEncoder(prepared, mapping, "json", clean=frozenset())
    return [orjson.loads(r)["data"] for r in encoder.rows(head).to_list()]


def _duplicates_across(stream: _Stream, hashes: np.ndarray) -> tuple[np.ndarray, pl.DataFrame]:
    """The positions of the rows that repeat an earlier (or later) row's match key, across windows,
    and their rejected rows. Hashes find candidates; the windows holding them are read again
    and their keys compared as text, as the eager plan does (a hash may collide)."""
    if len(hashes) < 2:
        return _NO_ROWS, pl.DataFrame()
    hashes.sort()  # in place: the plan does not need them in order any more
    repeated = np.unique(hashes[1:][hashes[1:] == hashes[:-1]])
    del hashes  # 8 bytes a row: let go before the windows are read again
    if not len(repeated):
        return _NO_ROWS, pl.DataFrame()
    keys, originals, offset = [], [], 0
    for frame, window in stream.validated():
        prepared = window.prepared
        candidates = window.checked[np.isin(window.hashes, repeated)]
        if len(candidates):
            rows = prepared.frame[candidates].select(POS, KEY)
            keys.append(rows)
            originals.append(
                frame[rows.get_column(POS).to_numpy() - offset].with_columns(rows.get_column(POS))
            )
        offset += frame.height
    candidates_frame = pl.concat(keys)
    _, lost = _split_duplicates(
        candidates_frame,
        pl.Series([False] * candidates_frame.height),
        stream.options.duplicates,
        stream.mapping,
    )
    if not lost.height:
        return _NO_ROWS, pl.DataFrame()
    lost_rows = (
        pl.concat(originals, how="vertical_relaxed")
        .join(lost, on=POS, how="inner", maintain_order="right")
        .select(
            pl.exclude(POS, RULE, REASON),
            pl.col(POS).alias("position"),
            pl.col(RULE).alias("rule"),
            pl.col(REASON).alias("reason"),
        )
    )
    return np.sort(lost.get_column(POS).to_numpy()), lost_rows


def _check_columns_of(windows: Windows, mapping: Mapping) -> None:
    """Mapped columns missing from the source: said before a row is read."""
    missing = [c for c in mapping.columns if c not in windows.columns]
    if missing:
        column = missing[0]
        raise ColumnNotFoundError(
            f"column {column!r} is not in the segment{did_you_mean(column, windows.columns)}"
            f" (it has: {', '.join(map(repr, windows.columns[:12]))}{', ...' if len(windows.columns) > 12 else ''})"
        )
