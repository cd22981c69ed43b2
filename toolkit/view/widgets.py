"""Notebook widgets (ipywidgets 8): the launch form, a launch monitor and the launch history.

* :class:`LaunchForm`: choose a segment, the trigger, the matching, the column -> field
  mapping, subscriptions, flags, content and attachments; see the plan live (summary,
  rejected rows by reason, the first records exactly as sent); tick the confirmation and
  launch, once. ``form.launch`` is then the :class:`~toolkit.send.launch.Launch`.
* :class:`LaunchMonitor`: live per-task progress of a running or resumed launch, then
  its results and charts.
* :class:`History`: the journal's launches; pick one to see its results and charts.

Every error (a bad mapping, a missing token, :class:`~toolkit.errors.AlreadyLaunched`, the
platform refusing) appears in the widget as a sentence, never as a traceback. The widgets
carry stable CSS classes (``toolkit-launch-button``, ``toolkit-status``, ...; see
:data:`CSS_CLASSES`) for browser tests.

Example:
    >>> import toolkit
    >>> form = LaunchForm(toolkit.sample_customers(200), trigger=96)
    >>> form.confirm.description
    'Send trigger 96 to 193 profiles'
    >>> form.button.disabled  # not confirmed yet
    True
    >>> form.confirm.value = True
    >>> form.button.disabled
    False
    >>> guess_fields(["email", "phone", "first_name", "crm_id"])
    {'email': 'email', 'phone': 'phones', 'first_name': '_fname', 'crm_id': 'crm_id'}
"""

from __future__ import annotations

import contextlib
import html
import io
import json
import threading
import time
from collections import Counter
from collections.abc import Mapping as AbcMapping
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import ipywidgets as widgets
import narwhals.stable.v2 as nw

from toolkit.core.contract import CHANNELS, MATCHING_MODES
from toolkit.core.mapping import Attachment, Mapping, Subscription, Trigger
from toolkit.core.plan import Plan, plan
from toolkit.errors import AlreadyLaunched, ConfigurationError, InvalidArgumentError, ToolkitError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from toolkit.send.client import Client
    from toolkit.send.launch import Launch

__all__ = ["CSS_CLASSES", "History", "LaunchForm", "LaunchMonitor", "guess_fields"]

#: The CSS classes browser tests use to find the widgets.
CSS_CLASSES: Final = {
    "form": "toolkit-launch-form",
    "segment": "toolkit-segment",
    "trigger_id": "toolkit-trigger-id",
    "matching": "toolkit-matching",
    "match_field": "toolkit-match-field",
    "field": "toolkit-field",
    "subscriptions": "toolkit-subscriptions",
    "content": "toolkit-content",
    "custom_data": "toolkit-custom-data",
    "attachments": "toolkit-attachments",
    "label": "toolkit-label",
    "dry_run": "toolkit-dry-run",
    "confirm": "toolkit-confirm",
    "button": "toolkit-launch-button",
    "status": "toolkit-status",
    "preview": "toolkit-preview",
    "records": "toolkit-records",
    "progress": "toolkit-progress",
    "results": "toolkit-results",
    "monitor": "toolkit-monitor",
    "history": "toolkit-history",
}

#: Column names with a system profile field of their own; other columns keep their name.
KNOWN_FIELDS: Final = {
    "email": "email",
    "e_mail": "email",
    "mail": "email",
    "phone": "phones",
    "phones": "phones",
    "mobile": "phones",
    "first_name": "_fname",
    "firstname": "_fname",
    "last_name": "_lname",
    "lastname": "_lname",
    "city": "_city",
    "country": "_country",
    "region": "_region",
    "signup_date": "_regdate",
    "registered_at": "_regdate",
    "birth_date": "_bdate",
    "birthday": "_bdate",
    "sex": "_sex",
    "gender": "_sex",
    "ip": "_ip",
    "postal_code": "_postal_code",
    "timezone": "_tz",
}

_WIDE: Final = widgets.Layout(width="auto")
_FLAG: Final = widgets.Layout(width="auto", margin="2px 2em 2px 0")  # a checkbox as wide as its text
_STYLE: Final = {"description_width": "initial"}
_MAX_BATCH_BARS: Final = 20
_POLL_SECONDS: Final = 0.5


def guess_fields(columns: Sequence[str]) -> dict[str, str]:
    """A first guess of column -> profile field: known names get their system field
    (``email``, ``phones``, ``_fname``, ``_lname``, ``_city``, ``_regdate``, ...); the others
    keep their own name (a custom field).

    Example:
        >>> guess_fields(["Email", "last_name", "city", "signup_date", "orders"])
        {'Email': 'email', 'last_name': '_lname', 'city': '_city', 'signup_date': '_regdate', 'orders': 'orders'}
    """
    return {
        c: KNOWN_FIELDS.get(str(c).strip().lower().replace("-", "_").replace(" ", "_"), str(c))
        for c in columns
    }


def _row(children: Sequence[widgets.Widget]) -> widgets.HBox:
    """A row of widgets that wraps onto the next line where the notebook is too narrow for it
    (an ``HBox`` alone cuts its last widgets off: a 1280 px screen hid ``detect_geo``)."""
    return widgets.HBox(list(children), layout=widgets.Layout(flex_flow="row wrap", align_items="center"))


def _fit(width: str) -> widgets.Layout:
    """A widget's layout: ``width`` at most, never wider than the row it is in."""
    return widgets.Layout(width=width, max_width="100%")


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _message(kind: str, text: str) -> str:
    """One status line: ``kind`` is info, success, warning or error."""
    colours = {"info": "#0072B2", "success": "#007A55", "warning": "#8A5A00", "error": "#B3261E"}
    icons = {"info": "ℹ", "success": "✔", "warning": "⚠", "error": "✖"}
    return (
        f"<div class='toolkit-msg toolkit-msg-{kind}' style='color:{colours[kind]};white-space:pre-wrap'>"
        f"{icons[kind]} {_esc(text)}</div>"
    )


def _readable(exc: BaseException) -> str:
    """An exception as a sentence for the user: the toolkit's messages as they are, others
    with their type (the token never appears: the client scrubs its errors)."""
    if isinstance(exc, ToolkitError):
        return str(exc) or type(exc).__name__
    return f"unexpected error ({type(exc).__name__}): {exc}"


def _png(fig: Figure, dpi: int = 80) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _count_table(title: str, counts: AbcMapping[str, int], empty: str = "none") -> str:
    rows = "".join(
        f"<tr><td>{_esc(k)}</td><td style='text-align:right'>{v:,}</td></tr>" for k, v in counts.items()
    )
    return (
        f"<table class='toolkit-table'><thead><tr><th style='text-align:left'>{_esc(title)}</th>"
        f"<th style='text-align:right'>rows</th></tr></thead>"
        f"<tbody>{rows or f'<tr><td colspan=2>{_esc(empty)}</td></tr>'}</tbody></table>"
    )


def _results_view(launch: Launch, *, n: int = 10) -> tuple[str, list[bytes]]:
    """The results of a launch as HTML (counts, failures, first rows) and chart PNGs."""
    from toolkit.view import charts

    summary = launch.summary()
    counts = {k: summary[k] for k in ("imported", "failed", "rejected", "unknown", "pending") if summary[k]}
    results = launch.results()
    head = nw.from_native(results, eager_only=True).head(n).to_pandas()
    table = head.to_html(index=False, na_rep="", classes="toolkit-table", border=0)
    text = (
        f"<b>Results of {_esc(launch.label or launch.launch_id)}</b>"
        f"<div style='display:flex;gap:2em'>{_count_table('status', counts)}"
        f"{_count_table('failed: why', summary['failures'])}</div>"
        f"<details><summary>first {n} rows of launch.results()</summary>{table}</details>"
    )
    images = [_png(charts.plot_launch(launch)), _png(charts.plot_errors(results))]
    return text, images


class _BatchBars(widgets.VBox):
    """One progress bar per batch (the first 20) and one for all rows."""

    def __init__(self) -> None:
        super().__init__()
        self.add_class(CSS_CLASSES["progress"])
        self._bars: dict[int, tuple[widgets.IntProgress, widgets.Label]] = {}
        self._overall = widgets.IntProgress(min=0, max=100, description="all rows", style=_STYLE)
        self._overall_text = widgets.Label()

    def reset(self, sizes: AbcMapping[int, int]) -> None:
        self._sizes = dict(sizes)
        self._bars = {}
        rows = []
        for index, n in list(self._sizes.items())[:_MAX_BATCH_BARS]:
            bar = widgets.IntProgress(min=0, max=100, description=f"batch {index}", style=_STYLE)
            text = widgets.Label(f"{n:,} rows · planned")
            self._bars[index] = (bar, text)
            rows.append(widgets.HBox([bar, text]))
        more = len(self._sizes) - _MAX_BATCH_BARS
        if more > 0:
            rows.append(widgets.HTML(f"<i>... and {more} more batches (in the bar below)</i>"))
        self._overall.value = 0
        self._overall_text.value = ""
        self.children = (*rows, widgets.HBox([self._overall, self._overall_text]))

    def update(self, batches: Sequence[Any]) -> None:
        """Show each batch's journal state: sending, sent (task progress), completed, ..."""
        done = 0.0
        total = sum(b.n_rows for b in batches) or 1
        for b in batches:
            if b.state in ("completed", "failed"):
                percent = 100.0
            elif b.state == "sent":
                percent = float(b.progress or 0.0)
            else:
                percent = 0.0
            done += b.n_rows * percent / 100
            if b.index in self._bars:
                bar, text = self._bars[b.index]
                bar.value = int(percent)
                bar.bar_style = {"completed": "success", "failed": "danger", "unknown": "warning"}.get(
                    b.state, "info"
                )
                task = f" · task {b.status or 'queued'} {percent:.0f}%" if b.state == "sent" else ""
                counts = ""
                if b.state == "completed" and b.n_imported is not None:
                    counts = f": {b.n_imported:,} imported, {b.n_failed or 0:,} failed"
                text.value = f"{b.n_rows:,} rows · {b.state}{task}{counts}"
        self._overall.value = int(100 * done / total)
        self._overall_text.value = f"{int(done):,} of {total:,} rows processed"


class LaunchForm(widgets.VBox):
    """A form that builds a plan from a segment and launches it once, with a live preview.

    Args:
        frames: the segment (a pandas or polars frame), or a dict of named segments.
        mapping: a :class:`~toolkit.core.mapping.Mapping` to start from; without one, every column
            is mapped by :func:`guess_fields` (email -> email, phone -> phones, ...).
        client: the :class:`~toolkit.send.client.Client` to launch with; by default
            ``Client.from_env()``, built on the first launch.
        trigger: a :class:`~toolkit.core.mapping.Trigger` (or a trigger id) to start from.
        label: the launch's label to start from.
        background: run a launch in a background thread (the notebook stays responsive);
            ``form.join()`` waits for it.
        plan_options: more :func:`~toolkit.core.plan.plan` keyword arguments (``max_rows``, ...).

    ``form.plan`` is the plan the form would send now (``None`` while the form is invalid,
    ``form.errors`` says why); ``form.launch`` the last :class:`~toolkit.send.launch.Launch`.

    Example:
        >>> import toolkit
        >>> form = LaunchForm({"spring": toolkit.sample_customers(100)}, trigger=toolkit.Trigger(96))
        >>> form.plan
        Plan(rows=100, valid=97, rejected=3, batches=1, format='json', trigger_id=96)
        >>> form.trigger_id.value = 0
        >>> form.errors, form.button.disabled
        (['Enter the trigger id (a positive whole number).'], True)
    """

    def __init__(
        self,
        frames: Any,
        *,
        mapping: Mapping | None = None,
        client: Client | None = None,
        trigger: Trigger | int | None = None,
        label: str | None = None,
        background: bool = True,
        plan_options: AbcMapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.add_class(CSS_CLASSES["form"])
        self._frames: dict[str, Any] = dict(frames) if isinstance(frames, AbcMapping) else {"segment": frames}
        if not self._frames:
            raise ToolkitError("LaunchForm needs at least one segment")
        self._client = client
        self._background = background
        self._plan_options = dict(plan_options or {})
        self._initial_mapping = mapping
        self._plan: Plan | None = None
        self._errors: list[str] = []
        self._lock = threading.Lock()  # held for the whole launch: no second launch at once
        self._running = False
        self._building = False
        self._thread: threading.Thread | None = None
        self.launch: Launch | None = None
        self.dry_run_plan: Plan | None = None
        trig = Trigger(trigger) if isinstance(trigger, int) else trigger

        # --- inputs -------------------------------------------------------------------------
        self.segment = widgets.Dropdown(options=list(self._frames), description="Segment", style=_STYLE)
        self.segment.add_class(CSS_CLASSES["segment"])
        self.trigger_id = widgets.IntText(
            value=trig.trigger_id if trig else 0, description="Trigger id", style=_STYLE
        )
        self.trigger_id.add_class(CSS_CLASSES["trigger_id"])
        self.matching = widgets.Dropdown(
            options=list(MATCHING_MODES), value=mapping.matching if mapping else "email",
            description="Matching", style=_STYLE,
        )  # fmt: skip
        self.matching.add_class(CSS_CLASSES["matching"])
        self.match_field = widgets.Dropdown(options=[], description="Match field", style=_STYLE)
        self.match_field.add_class(CSS_CLASSES["match_field"])
        self.fields_box = widgets.VBox()
        self.field_widgets: dict[str, tuple[widgets.Checkbox, widgets.Text]] = {}
        self.subscriptions_box = widgets.VBox()
        self.subscriptions_box.add_class(CSS_CLASSES["subscriptions"])
        self.add_subscription = widgets.Button(description="Add subscription", icon="plus")
        self.add_subscription.on_click(lambda _b: self._add_subscription_row(None))
        self.skip_triggers = widgets.Checkbox(
            value=bool(trig and trig.skip_triggers), description="skip_triggers", indent=False, layout=_FLAG
        )
        self.skip_invalid_subscriptions = widgets.Checkbox(
            value=bool(trig and trig.skip_invalid_subscriptions), description="skip_invalid_subscriptions",
            indent=False, layout=_FLAG,
        )  # fmt: skip
        self.detect_geo = widgets.Checkbox(
            value=bool(trig and trig.detect_geo), description="detect_geo", indent=False, layout=_FLAG
        )
        self.content = widgets.Textarea(
            value=json.dumps(trig.content, ensure_ascii=False) if trig and trig.content else "",
            description="content", placeholder='{"page": "registration_form"}', continuous_update=True,
            style=_STYLE, layout=_WIDE,
        )  # fmt: skip
        self.content.add_class(CSS_CLASSES["content"])
        self.content_error = widgets.HTML()
        self.custom_data = widgets.Textarea(
            value=json.dumps(trig.custom_data, ensure_ascii=False) if trig and trig.custom_data else "",
            description="custom_data", placeholder='{"campaign": "spring"}', continuous_update=True,
            style=_STYLE, layout=_WIDE,
        )  # fmt: skip
        self.custom_data.add_class(CSS_CLASSES["custom_data"])
        self.custom_data_error = widgets.HTML()
        self.attachments = widgets.FileUpload(multiple=True, description="Attachments")
        self.attachments.add_class(CSS_CLASSES["attachments"])
        self._fixed_attachments: tuple[Attachment, ...] = trig.attach if trig else ()
        self.label = widgets.Text(
            value=label or "", description="Label", placeholder="spring-2026", style=_STYLE
        )
        self.label.add_class(CSS_CLASSES["label"])

        # --- outputs ------------------------------------------------------------------------
        self.preview = widgets.HTML()
        self.preview.add_class(CSS_CLASSES["preview"])
        self.records = widgets.HTML()
        self.records.add_class(CSS_CLASSES["records"])
        self.dry_run = widgets.ToggleButton(value=False, description="Dry run", icon="eye")
        self.dry_run.add_class(CSS_CLASSES["dry_run"])
        self.confirm = widgets.Checkbox(value=False, description="Confirm", indent=False, layout=_WIDE)
        self.confirm.add_class(CSS_CLASSES["confirm"])
        self.button = widgets.Button(
            description="Launch", button_style="danger", icon="paper-plane", disabled=True
        )
        self.button.add_class(CSS_CLASSES["button"])
        self.button.on_click(self._on_click)
        self.status = widgets.HTML()
        self.status.add_class(CSS_CLASSES["status"])
        self.progress = _BatchBars()
        self.results = widgets.VBox()
        self.results.add_class(CSS_CLASSES["results"])

        self._build_fields(mapping)
        self._build_subscriptions(mapping.subscriptions if mapping else ())
        for w in (
            self.trigger_id, self.matching, self.match_field, self.skip_triggers,
            self.skip_invalid_subscriptions, self.detect_geo, self.content, self.custom_data,
            self.attachments,
        ):  # fmt: skip
            w.observe(self._changed, names="value")
        self.segment.observe(self._segment_changed, names="value")
        self.confirm.observe(lambda _c: self._sync_button(), names="value")
        self.dry_run.observe(lambda _c: self._sync_button(), names="value")

        heading = lambda text: widgets.HTML(f"<b>{_esc(text)}</b>")  # noqa: E731
        inputs = widgets.VBox(
            [
                heading("Segment and trigger"),
                self.segment,
                self.trigger_id,
                _row([self.matching, self.match_field]),
                heading("Columns -> profile fields (untick to leave a column out)"),
                self.fields_box,
                heading("Subscriptions (one per row each)"),
                self.subscriptions_box,
                self.add_subscription,
                heading("Options"),
                _row([self.skip_triggers, self.skip_invalid_subscriptions, self.detect_geo]),
                self.content,
                self.content_error,
                self.custom_data,
                self.custom_data_error,
                self.attachments,
                self.label,
            ],
            # half the width each, side by side; the preview goes below where both do not fit
            layout=widgets.Layout(flex="1 1 28em", min_width="0"),
        )
        side = widgets.VBox(
            [heading("Preview"), self.preview, self.records],
            layout=widgets.Layout(flex="1 1 28em", min_width="0", padding="0 1em"),
        )
        actions = _row([self.confirm, self.dry_run, self.button])
        columns = widgets.HBox([inputs, side], layout=widgets.Layout(flex_flow="row wrap"))
        self.children = (columns, actions, self.status, self.progress, self.results)
        self._changed()

    # --- building the form ---------------------------------------------------------------------
    @property
    def frame(self) -> Any:
        """The segment chosen now."""
        return self._frames[self.segment.value]

    def _columns(self) -> list[str]:
        return [str(c) for c in nw.from_native(self.frame, eager_only=True).columns]

    def _build_fields(self, mapping: Mapping | None) -> None:
        columns = self._columns()
        guessed = guess_fields(columns)
        chosen = dict(mapping.fields) if mapping else guessed
        self.field_widgets = {}
        rows = []
        for column in columns:
            check = widgets.Checkbox(value=column in chosen, description=column, indent=False,
                                     layout=_fit("14em"))  # fmt: skip
            text = widgets.Text(value=chosen.get(column, guessed[column]), placeholder="profile field",
                                continuous_update=False, layout=_fit("14em"))  # fmt: skip
            text.add_class(CSS_CLASSES["field"])
            check.observe(self._changed, names="value")
            text.observe(self._changed, names="value")
            self.field_widgets[column] = (check, text)
            rows.append(_row([check, widgets.HTML("&rarr;"), text]))
        self.fields_box.children = tuple(rows)

    def _build_subscriptions(self, subscriptions: Sequence[Subscription]) -> None:
        self.subscriptions_box.children = ()
        for sub in subscriptions:
            self._add_subscription_row(sub)

    def _add_subscription_row(self, sub: Subscription | None) -> None:
        columns = self._columns()
        default_column = next((c for c in columns if "email" in c.lower()), columns[0])
        channel = widgets.Dropdown(options=list(CHANNELS), value=sub.channel if sub else "email",
                                   description="channel", layout=_fit("14em"))  # fmt: skip
        column = widgets.Dropdown(
            options=columns, value=sub.column if sub and sub.column in columns else default_column,
            description="column", layout=_fit("16em"),
        )  # fmt: skip
        resource = widgets.IntText(value=sub.resource_id if sub else 1, description="resource_id",
                                   style=_STYLE, layout=_fit("12em"))  # fmt: skip
        remove = widgets.Button(description="remove", icon="trash", layout=_fit("7em"))
        row = _row([channel, column, resource, remove])  # on two lines in a narrow notebook
        row._toolkit_extra = dict(sub.extra) if sub else {}  # type: ignore[attr-defined]

        def drop(_b: Any) -> None:
            self.subscriptions_box.children = tuple(
                c for c in self.subscriptions_box.children if c is not row
            )
            self._changed()

        remove.on_click(drop)
        for w in (channel, column, resource):
            w.observe(self._changed, names="value")
        self.subscriptions_box.children = (*self.subscriptions_box.children, row)
        self._changed()

    def _segment_changed(self, _change: Any = None) -> None:
        self._building = True
        try:
            mapping = self._initial_mapping
            keep = mapping is not None and all(c in self._columns() for c in mapping.columns)
            self._build_fields(mapping if keep else None)
            self._build_subscriptions(mapping.subscriptions if keep and mapping else ())
        finally:
            self._building = False
        self._changed()

    # --- validation and preview -------------------------------------------------------------
    @staticmethod
    def _json_field(
        area: widgets.Textarea, error: widgets.HTML, name: str
    ) -> tuple[dict[str, Any] | None, str]:
        text = area.value.strip()
        if not text:
            error.value = ""
            return None, ""
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            problem = f"{name} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        else:
            if isinstance(value, dict):
                error.value = ""
                return value, ""
            problem = f"{name} must be a JSON object ({{...}}), not {type(value).__name__}"
        error.value = _message("error", problem)
        return None, problem

    def _read(self) -> tuple[Mapping | None, Trigger | None, list[str]]:
        """The mapping and trigger the form says now, and what is wrong with it."""
        errors: list[str] = []
        if self.trigger_id.value is None or self.trigger_id.value <= 0:
            errors.append("Enter the trigger id (a positive whole number).")
        fields = {c: t.value.strip() for c, (check, t) in self.field_widgets.items() if check.value}
        blank = [c for c, f in fields.items() if not f]
        if blank:
            errors.append(
                f"Name the profile field of column(s) {', '.join(map(repr, blank))}, or untick them."
            )
        fields = {c: f for c, f in fields.items() if f}
        targets = list(fields.values())
        custom = MATCHING_MODES[self.matching.value].needs == "field"
        with self._quiet():
            current = self.match_field.value
            if tuple(self.match_field.options) != tuple(targets):
                self.match_field.options = targets
            if current in targets:
                self.match_field.value = current
            elif targets:
                self.match_field.value = targets[0]
        self.match_field.disabled = not custom
        content, problem = self._json_field(self.content, self.content_error, "content")
        errors += [problem] if problem else []
        custom_data, problem = self._json_field(self.custom_data, self.custom_data_error, "custom_data")
        errors += [problem] if problem else []
        mapping = trigger = None
        try:
            subs = [
                Subscription(
                    row.children[0].value,
                    row.children[1].value,
                    row.children[2].value,
                    **getattr(row, "_toolkit_extra", {}),
                )
                for row in self.subscriptions_box.children
            ]
            if not fields:
                errors.append("Map at least one column to a profile field.")
            else:
                mapping = Mapping(
                    fields,
                    subscriptions=subs,
                    matching=self.matching.value,
                    match_field=self.match_field.value if custom else None,
                    resource_id=self._initial_mapping.resource_id if self._initial_mapping else None,
                )
        except ToolkitError as exc:
            errors.append(_readable(exc))
        try:
            attach = [*self._fixed_attachments]
            attach += [
                Attachment.from_bytes(f["name"], bytes(f["content"]), f.get("type") or None)
                for f in self.attachments.value
            ]
            if self.trigger_id.value and self.trigger_id.value > 0:
                trigger = Trigger(
                    self.trigger_id.value,
                    content=content,
                    custom_data=custom_data,
                    attach=attach,
                    skip_triggers=self.skip_triggers.value,
                    skip_invalid_subscriptions=self.skip_invalid_subscriptions.value,
                    detect_geo=self.detect_geo.value,
                )
        except ToolkitError as exc:
            errors.append(_readable(exc))
        return mapping, trigger, errors

    @contextlib.contextmanager
    def _quiet(self) -> Any:
        building, self._building = self._building, True
        try:
            yield
        finally:
            self._building = building

    def _changed(self, _change: Any = None) -> None:
        """Any input changed: read the form, plan again, refresh the preview."""
        if self._building:
            return
        mapping, trigger, errors = self._read()
        new_plan = None
        if not errors and mapping is not None and trigger is not None:
            try:
                new_plan = plan(self.frame, mapping, trigger, **self._plan_options)
            except ToolkitError as exc:
                errors.append(_readable(exc))
            except Exception as exc:  # a frame the toolkit cannot read, ...: say so, never a traceback
                errors.append(_readable(exc))
        if new_plan is not None and new_plan.n_valid == 0:
            errors.append("No row of this segment is valid: nothing to send (see the rejected rows).")
        old = self._plan
        self._plan, self._errors = (new_plan if not errors else None), errors
        if old is None or self._plan is None or old.fingerprint != self._plan.fingerprint:
            self.confirm.value = False  # a confirmation is for one exact plan
        self._render_preview(new_plan, errors)
        self._sync_button()

    def _render_preview(self, p: Plan | None, errors: list[str]) -> None:
        problems = "".join(_message("error", e) for e in errors)
        if p is None:
            self.preview.value = problems or _message("info", "Fill in the form to see the plan.")
            self.records.value = ""
            self.confirm.description = "Confirm"
            return
        s = p.summary()
        rejected = nw.from_native(p.rejected, eager_only=True)
        examples: dict[str, str] = {}
        for rule, reason in zip(rejected.get_column("rule").to_list(), rejected.get_column("reason").to_list(),
                                strict=True):  # fmt: skip
            examples.setdefault(rule, reason)
        rules = "".join(
            f"<tr><td>{_esc(rule)}</td><td style='text-align:right'>{n:,}</td><td><i>{_esc(examples.get(rule, ''))}</i></td></tr>"
            for rule, n in s["rejected_by_rule"].items()
        )
        self.preview.value = (
            problems + f"<div>Trigger <b>{s['trigger_id']}</b>, matching <b>{_esc(s['matching'])}</b>: "
            f"{s['rows']:,} rows, <b>{s['valid']:,} valid</b>, {s['rejected']:,} rejected; "
            f"{s['batches']:,} batch(es), {s['bytes']:,} bytes (largest {s['largest_batch_rows']:,} rows / "
            f"{s['largest_batch_bytes']:,} bytes).</div>"
            f"<table class='toolkit-table'><thead><tr><th>rejected: rule</th><th>rows</th><th>for example</th>"
            f"</tr></thead><tbody>{rules or '<tr><td colspan=3>none</td></tr>'}</tbody></table>"
        )
        records = json.dumps(p.records(3), indent=2, sort_keys=True, ensure_ascii=False)
        self.records.value = (
            f"<b>First records as sent</b><pre style='max-height:24em;overflow:auto'>{_esc(records)}</pre>"
        )
        self.confirm.description = f"Send trigger {p.trigger.trigger_id} to {p.n_valid:,} profiles"

    def _sync_button(self) -> None:
        dry = self.dry_run.value
        self.button.description = "Dry run" if dry else ("Launching..." if self._running else "Launch")
        self.button.button_style = "info" if dry else "danger"
        ready = self._plan is not None and (dry or self.confirm.value)
        self.button.disabled = self._running or not ready

    # --- public state ---------------------------------------------------------------------------
    @property
    def plan(self) -> Plan | None:
        """The plan the form would send now, or ``None`` while the form is invalid."""
        return self._plan

    @property
    def errors(self) -> list[str]:
        """What keeps the form from being valid (empty when it is)."""
        return list(self._errors)

    @property
    def running(self) -> bool:
        """True while a launch is being sent or followed."""
        return self._running

    @property
    def client(self) -> Client:
        """The client launches go through (``Client.from_env()`` unless one was given)."""
        if self._client is None:
            from toolkit.send.client import Client

            try:
                self._client = Client.from_env()
            except ConfigurationError as exc:
                raise ConfigurationError(
                    f"no platform to launch on: {exc}. In a notebook, toolkit.view.notebook.connect() "
                    "starts a local sandbox; or pass LaunchForm(..., client=Client(url, token))."
                ) from None
        return self._client

    def join(self, timeout: float | None = None) -> bool:
        """Wait for a running launch to end; True when none is running any more."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self._running

    def __repr__(self) -> str:
        p = self._plan
        state = (
            f"valid={p.n_valid:,}, trigger_id={p.trigger.trigger_id}"
            if p
            else f"invalid: {len(self._errors)} problem(s)"
        )
        launched = f", launch={self.launch.label or self.launch.launch_id!r}" if self.launch else ""
        return f"LaunchForm(segment={self.segment.value!r}, {state}{launched})"

    # --- launching ------------------------------------------------------------------------------
    def _show(self, kind: str, text: str) -> None:
        self.status.value = _message(kind, text)

    def _on_click(self, _button: Any = None) -> None:
        """The button: a dry run, or one launch (a second click while it runs does nothing)."""
        if not self._lock.acquire(blocking=False):
            return  # a launch is running: the flag, not only the disabled button, keeps this to one
        handed_over = False
        try:
            p = self._plan
            if p is None:
                self._show("error", "The form is not valid: " + " ".join(self._errors))
                return
            if self.dry_run.value:
                self.dry_run_plan = p
                self._show(
                    "info",
                    f"Dry run: trigger {p.trigger.trigger_id} would go to {p.n_valid:,} profiles in "
                    f"{len(p.batches):,} batch(es) ({p.n_rejected:,} rows rejected). Nothing was sent.",
                )
                return
            if not self.confirm.value:
                self._show("warning", "Tick the confirmation box first.")
                return
            self._running = True
            self._sync_button()
            label = self.label.value.strip() or None
            if self._background:
                self._thread = threading.Thread(
                    target=self._run, args=(p, label), name="toolkit-launch-form", daemon=True
                )
                self._thread.start()
            else:
                self._run(p, label)
            handed_over = self._background
        finally:
            if not handed_over:
                self._finish()

    def _finish(self) -> None:
        self._running = False
        with contextlib.suppress(RuntimeError):
            self._lock.release()
        self.confirm.value = False  # the next launch needs a new confirmation
        self._sync_button()

    def _run(self, p: Plan, label: str | None) -> None:
        try:
            self._launch(p, label)
        except AlreadyLaunched as exc:
            self._show("warning", f"Already launched: {exc}")
            self._show_previous(p, exc)
        except BaseException as exc:  # every error becomes a message in the form
            self._show("error", f"The launch stopped: {_readable(exc)}")
        finally:
            if self._background:
                self._finish()

    def _launch(self, p: Plan, label: str | None) -> None:
        self.results.children = ()
        self._show("info", "Connecting...")
        client = self.client
        self.progress.reset({b.index: len(b) for b in p.batches})
        self._show("info", f"Sending {p.n_valid:,} profiles in {len(p.batches):,} batch(es)...")
        launch = self._send_plan(client, p, label)
        self.launch = launch
        self._show("info", f"Sent. Following {len(launch.batches):,} task(s)...")
        while True:
            launch.wait(timeout=_POLL_SECONDS, progress=False)
            self.progress.update(launch.batches)
            if launch.done or not launch.timed_out:
                break
        self._show_results(launch)

    def _send_plan(self, client: Client, p: Plan, label: str | None) -> Launch:
        """``client.launch`` in a helper thread while this one shows each batch's journal state."""
        result: dict[str, Any] = {}

        def target() -> None:
            try:
                result["launch"] = client.launch(p, label=label, progress=False)
            except BaseException as exc:
                result["error"] = exc

        sender = threading.Thread(target=target, name="toolkit-launch-send", daemon=True)
        started = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 1))
        sender.start()
        while sender.is_alive():
            sender.join(0.2)
            with contextlib.suppress(Exception):  # progress is a nicety: never fail the launch on it
                rec = client.journal.find_by_fingerprint(p.fingerprint, p.trigger.trigger_id, client.host)
                if rec is not None and rec.created >= started:
                    self.progress.update(client.journal.batches(rec.launch_id))
        if "error" in result:
            raise result["error"]
        return result["launch"]

    def _show_results(self, launch: Launch) -> None:
        self.progress.update(launch.batches)
        s = launch.summary()
        failed = "".join(f"\n  {n:,} failed: {why}" for why, n in s["failures"].items())
        kind = "success" if not (s["failed"] or s["unknown"] or s["pending"]) else "warning"
        self._show(
            kind,
            f"Launch {launch.label or launch.launch_id} finished: {s['imported']:,} imported, "
            f"{s['failed']:,} failed, {s['unknown']:,} unknown, {s['pending']:,} pending, "
            f"{s['rejected']:,} rejected before sending.{failed}",
        )
        text, images = _results_view(launch)
        self.results.children = (
            widgets.HTML(text),
            *(
                widgets.Image(value=png, format="png", layout=widgets.Layout(max_width="820px"))
                for png in images
            ),
        )

    def _show_previous(self, p: Plan, exc: AlreadyLaunched) -> None:
        """After a refused launch: the bars, results and charts of the launch that did happen
        (the bars were reset to "planned" for the launch that was about to start)."""
        previous = getattr(exc, "previous", None)
        launch_id = getattr(previous, "launch_id", None)
        if launch_id is None:
            return
        client = self.client
        with contextlib.suppress(Exception):  # from the journal alone, even if the rest fails
            batches = client.journal.batches(launch_id)
            if batches:
                self.progress.reset({b.index: b.n_rows for b in batches})
                self.progress.update(batches)
        with contextlib.suppress(Exception):
            try:
                launch = client.resume(launch_id, plan=p)
            except InvalidArgumentError:  # its batches went out in a launch of another plan
                launch = client.resume(launch_id)
            self.launch = launch
            text, images = _results_view(launch)
            self.results.children = (
                widgets.HTML("<i>The earlier launch of this plan:</i>" + text),
                *(
                    widgets.Image(value=png, format="png", layout=widgets.Layout(max_width="820px"))
                    for png in images
                ),
            )


class LaunchMonitor(widgets.VBox):
    """Live progress of a launch (running or resumed), then its results and charts.

    Args:
        launch: the :class:`~toolkit.send.launch.Launch` to follow.
        follow: poll in a background thread until every task is done (``False``: show the
            journal's state now; ``monitor.refresh()`` reads it again).
        interval: seconds between polls.

    Example (needs a server)::

        LaunchMonitor(client.launch(plan))
    """

    def __init__(self, launch: Launch, *, follow: bool = True, interval: float = _POLL_SECONDS) -> None:
        super().__init__()
        self.add_class(CSS_CLASSES["monitor"])
        self.launch = launch
        self.interval = interval
        self.status = widgets.HTML()
        self.status.add_class(CSS_CLASSES["status"])
        self.progress = _BatchBars()
        self.results = widgets.VBox()
        self.results.add_class(CSS_CLASSES["results"])
        self.children = (widgets.HTML(f"<b>Launch {_esc(launch.label or launch.launch_id)}</b>"), self.progress,
                         self.status, self.results)  # fmt: skip
        batches = launch.batches
        self.progress.reset({b.index: b.n_rows for b in batches})
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.refresh()
        if follow and not launch.done:
            self._thread = threading.Thread(target=self._follow, name="toolkit-monitor", daemon=True)
            self._thread.start()

    def refresh(self) -> None:
        """Show the journal's state now; results and charts once the launch is done."""
        batches = self.launch.batches
        self.progress.update(batches)
        if self.launch.done:
            self._show_results()
        else:
            states = Counter(b.state for b in batches)
            shown = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
            self.status.value = _message("info", f"{len(batches)} batch(es): {shown}")

    def _follow(self) -> None:
        try:
            while not self._stop.is_set():
                self.launch.wait(timeout=self.interval, progress=False)
                self.refresh()
                if self.launch.done or not self.launch.timed_out:
                    break
        except BaseException as exc:
            self.status.value = _message("error", f"Following the launch stopped: {_readable(exc)}")

    def _show_results(self) -> None:
        try:
            s = self.launch.summary()
            self.status.value = _message(
                "success" if not (s["failed"] or s["unknown"]) else "warning",
                f"Done: {s['imported']:,} imported, {s['failed']:,} failed, {s['unknown']:,} unknown.",
            )
            text, images = _results_view(self.launch)
        except BaseException as exc:
            self.status.value = _message("error", _readable(exc))
            return
        self.results.children = (widgets.HTML(text),
                                 *(widgets.Image(value=p, format="png") for p in images))  # fmt: skip

    def stop(self) -> None:
        """Stop following (the launch itself goes on)."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait until the monitor stops following."""
        if self._thread is not None:
            self._thread.join(timeout)

    def __repr__(self) -> str:
        return f"LaunchMonitor({self.launch.label or self.launch.launch_id!r})"


class History(widgets.VBox):
    """The journal's launches, newest first; pick one to see its results and charts.

    Example (needs a journal)::

        History(toolkit.view.notebook.connect())
    """

    def __init__(self, client: Client, *, limit: int = 50) -> None:
        super().__init__()
        self.add_class(CSS_CLASSES["history"])
        self._client = client
        self.limit = limit
        self.table = widgets.HTML()
        self.picker = widgets.Dropdown(
            description="Launch", style=_STYLE, layout=widgets.Layout(width="40em")
        )
        self.show_button = widgets.Button(description="Show results", icon="chart-bar")
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.status = widgets.HTML()
        self.status.add_class(CSS_CLASSES["status"])
        self.results = widgets.VBox()
        self.results.add_class(CSS_CLASSES["results"])
        self.show_button.on_click(lambda _b: self.show())
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.children = (self.table, widgets.HBox([self.picker, self.show_button, self.refresh_button]),
                         self.status, self.results)  # fmt: skip
        self.launch: Launch | None = None
        self.refresh()

    def refresh(self) -> None:
        """Read the journal again."""
        try:
            frame = nw.from_native(self._client.history(kind="polars"), eager_only=True).head(self.limit)
        except BaseException as exc:
            self.status.value = _message("error", f"The journal could not be read: {_readable(exc)}")
            return
        rows = frame.rows(named=True)
        columns = ("label", "created", "trigger_id", "rows", "batches", "completed", "failed", "unknown",
                   "imported_rows", "failed_rows")  # fmt: skip
        head = "".join(f"<th>{c}</th>" for c in columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{_esc(_cell(r.get(c)))}</td>" for c in columns) + "</tr>" for r in rows
        )
        self.table.value = (
            f"<table class='toolkit-table'><thead><tr>{head}</tr></thead><tbody>"
            f"{body or '<tr><td colspan=10>no launch yet</td></tr>'}</tbody></table>"
        )
        current = self.picker.value
        self.picker.options = [
            (
                f"{r['label'] or '(no label)'} · {_cell(r['created'])} · trigger {r['trigger_id']}",
                r["launch_id"],
            )
            for r in rows
        ]
        ids = [r["launch_id"] for r in rows]
        # ipywidgets 8 clears the value when the options change: keep the pick, else the newest
        self.picker.value = current if current in ids else (ids[0] if ids else None)

    def show(self, launch_id: str | None = None) -> Launch | None:
        """Show the results and charts of a launch (the picked one by default)."""
        launch_id = launch_id or self.picker.value
        if not launch_id:
            self.status.value = _message("info", "No launch to show yet.")
            return None
        try:
            self.launch = self._client.resume(launch_id)
            text, images = _results_view(self.launch)
        except BaseException as exc:
            self.status.value = _message("error", _readable(exc))
            return None
        self.status.value = ""
        self.results.children = (widgets.HTML(text), *(widgets.Image(value=p, format="png") for p in images))
        return self.launch

    def __repr__(self) -> str:
        return f"History({len(self.picker.options)} launch(es))"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
