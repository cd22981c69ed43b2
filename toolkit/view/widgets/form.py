"""The launch form: choose a segment, the trigger, the matching, the column -> field mapping,
subscriptions, flags, content and attachments; see the plan live (summary, rejected rows by
reason, the first records exactly as sent); tick the confirmation and launch, once.

The launch runs in one background thread: ``client.launch(plan, on_progress=...)`` then
``launch.wait(on_progress=...)``. Their :class:`~toolkit.send.events.LaunchProgress` events draw
the batch bars and the status line (including "the platform is not answering: retry 2 of 5");
nothing polls the journal.

See the package docstring for an example; the class has its own.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Mapping as AbcMapping
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import ipywidgets as widgets
import narwhals.stable.v2 as nw

from toolkit.core.contract import CHANNELS, MATCHING_MODES, Channel, MatchingMode
from toolkit.core.mapping import Attachment, Mapping, Subscription, Trigger
from toolkit.core.plan import Plan, plan
from toolkit.errors import AlreadyLaunched, ConfigurationError, InvalidArgumentError, ToolkitError
from toolkit.send.events import LaunchProgress
from toolkit.send.target import target_label
from toolkit.view.widgets._bars import BatchBars, progress_message
from toolkit.view.widgets._html import (
    CSS_CLASSES,
    FLAG,
    STYLE,
    WIDE,
    MessageKind,
    esc,
    fit,
    heading,
    message,
    readable,
    wrapping_row,
)
from toolkit.view.widgets.results import ResultsView, outcome_message

if TYPE_CHECKING:
    from toolkit.send.client import Client
    from toolkit.send.launch import Launch

__all__ = ["KNOWN_FIELDS", "LaunchForm", "guess_fields"]

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


def _json_box(
    name: str, value: AbcMapping[str, Any] | None, placeholder: str
) -> tuple[widgets.Textarea, widgets.HTML]:
    """A text area for a JSON object (checked as you type) and the line that says what is wrong."""
    area = widgets.Textarea(
        value=json.dumps(value, ensure_ascii=False) if value else "", description=name, placeholder=placeholder,
        continuous_update=True, style=STYLE, layout=WIDE,
    )  # fmt: skip
    area.add_class(CSS_CLASSES[name])
    return area, widgets.HTML()


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
        launch_options: more :meth:`~toolkit.send.client.Client.launch` keyword arguments
            (``preflight=False``, ``allow_sample=True``, ``concurrency``, ...).

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
        launch_options: AbcMapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.add_class(CSS_CLASSES["form"])
        self._frames: dict[str, Any] = dict(frames) if isinstance(frames, AbcMapping) else {"segment": frames}
        if not self._frames:
            raise ToolkitError("LaunchForm needs at least one segment")
        self._client = client
        self._background = background
        self._plan_options = dict(plan_options or {})
        self._launch_options = dict(launch_options or {})
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
        self.segment = widgets.Dropdown(options=list(self._frames), description="Segment", style=STYLE)
        self.segment.add_class(CSS_CLASSES["segment"])
        self.trigger_id = widgets.IntText(
            value=trig.trigger_id if trig else 0, description="Trigger id", style=STYLE
        )
        self.trigger_id.add_class(CSS_CLASSES["trigger_id"])
        # the modes documented for import_and_start_batch_task; all of them with the plan's opt-in
        modes = [m for m, rule in MATCHING_MODES.items() if rule.documented_for_batch
                 or self._plan_options.get("allow_undocumented_matching")]  # fmt: skip
        self.matching = widgets.Dropdown(
            options=modes, value=mapping.matching if mapping else MatchingMode.EMAIL,
            description="Matching", style=STYLE,
        )  # fmt: skip
        self.matching.add_class(CSS_CLASSES["matching"])
        self.match_field = widgets.Dropdown(options=[], description="Match field", style=STYLE)
        self.match_field.add_class(CSS_CLASSES["match_field"])
        self.fields_box = widgets.VBox()
        self.field_widgets: dict[str, tuple[widgets.Checkbox, widgets.Text]] = {}
        self.subscriptions_box = widgets.VBox()
        self.subscriptions_box.add_class(CSS_CLASSES["subscriptions"])
        self.add_subscription = widgets.Button(description="Add subscription", icon="plus")
        self.add_subscription.on_click(lambda _b: self._add_subscription_row(None))
        self.skip_triggers = widgets.Checkbox(
            value=bool(trig and trig.skip_triggers), description="skip_triggers", indent=False, layout=FLAG
        )
        self.skip_invalid_subscriptions = widgets.Checkbox(
            value=bool(trig and trig.skip_invalid_subscriptions), description="skip_invalid_subscriptions",
            indent=False, layout=FLAG,
        )  # fmt: skip
        self.detect_geo = widgets.Checkbox(
            value=bool(trig and trig.detect_geo), description="detect_geo", indent=False, layout=FLAG
        )
        self.content, self.content_error = _json_box(
            "content", trig.content if trig else None, '{"page": "registration_form"}'
        )
        self.custom_data, self.custom_data_error = _json_box(
            "custom_data", trig.custom_data if trig else None, '{"campaign": "spring"}'
        )
        self.attachments = widgets.FileUpload(multiple=True, description="Attachments")
        self.attachments.add_class(CSS_CLASSES["attachments"])
        self._fixed_attachments: tuple[Attachment, ...] = trig.attach if trig else ()
        self.label = widgets.Text(
            value=label or "", description="Label", placeholder="spring-2026", style=STYLE
        )
        self.label.add_class(CSS_CLASSES["label"])

        # --- outputs ------------------------------------------------------------------------
        self.preview = widgets.HTML()
        self.preview.add_class(CSS_CLASSES["preview"])
        self.records = widgets.HTML()
        self.records.add_class(CSS_CLASSES["records"])
        self.dry_run = widgets.ToggleButton(value=False, description="Dry run", icon="eye")
        self.dry_run.add_class(CSS_CLASSES["dry_run"])
        self.confirm = widgets.Checkbox(value=False, description="Confirm", indent=False, layout=WIDE)
        self.confirm.add_class(CSS_CLASSES["confirm"])
        self.button = widgets.Button(
            description="Launch", button_style="danger", icon="paper-plane", disabled=True
        )
        self.button.add_class(CSS_CLASSES["button"])
        self.button.on_click(self._on_click)
        self.status = widgets.HTML()
        self.status.add_class(CSS_CLASSES["status"])
        self.progress = BatchBars()
        self.results = ResultsView()

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

        inputs = widgets.VBox(
            [
                heading("Segment and trigger"),
                self.segment,
                self.trigger_id,
                wrapping_row([self.matching, self.match_field]),
                heading("Columns -> profile fields (untick to leave a column out)"),
                self.fields_box,
                heading("Subscriptions (one per row each)"),
                self.subscriptions_box,
                self.add_subscription,
                heading("Options"),
                wrapping_row([self.skip_triggers, self.skip_invalid_subscriptions, self.detect_geo]),
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
        actions = wrapping_row([self.confirm, self.dry_run, self.button])
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
                                     layout=fit("14em"))  # fmt: skip
            text = widgets.Text(value=chosen.get(column, guessed[column]), placeholder="profile field",
                                continuous_update=False, layout=fit("14em"))  # fmt: skip
            text.add_class(CSS_CLASSES["field"])
            check.observe(self._changed, names="value")
            text.observe(self._changed, names="value")
            self.field_widgets[column] = (check, text)
            rows.append(wrapping_row([check, widgets.HTML("&rarr;"), text]))
        self.fields_box.children = tuple(rows)

    def _build_subscriptions(self, subscriptions: Sequence[Subscription]) -> None:
        self.subscriptions_box.children = ()
        for sub in subscriptions:
            self._add_subscription_row(sub)

    def _add_subscription_row(self, sub: Subscription | None) -> None:
        columns = self._columns()
        default_column = next((c for c in columns if "email" in c.lower()), columns[0])
        channel = widgets.Dropdown(options=list(CHANNELS), value=sub.channel if sub else Channel.EMAIL,
                                   description="channel", layout=fit("14em"))  # fmt: skip
        column = widgets.Dropdown(
            options=columns, value=sub.column if sub and sub.column in columns else default_column,
            description="column", layout=fit("16em"),
        )  # fmt: skip
        resource = widgets.IntText(value=sub.resource_id if sub else 1, description="resource_id",
                                   style=STYLE, layout=fit("12em"))  # fmt: skip
        remove = widgets.Button(description="remove", icon="trash", layout=fit("7em"))
        row = wrapping_row([channel, column, resource, remove])  # on two lines in a narrow notebook
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
        error.value = message("error", problem)
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
        custom = MATCHING_MODES[self.matching.value].needs_match_field
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
            errors.append(readable(exc))
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
            errors.append(readable(exc))
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
                errors.append(readable(exc))
            except Exception as exc:  # a frame the toolkit cannot read, ...: say so, never a traceback
                errors.append(readable(exc))
        if new_plan is not None and new_plan.n_valid == 0:
            errors.append("No row of this segment is valid: nothing to send (see the rejected rows).")
        old = self._plan
        self._plan, self._errors = (new_plan if not errors else None), errors
        if old is None or self._plan is None or old.fingerprint != self._plan.fingerprint:
            self.confirm.value = False  # a confirmation is for one exact plan
        self._render_preview(new_plan, errors)
        self._sync_button()

    def _render_preview(self, p: Plan | None, errors: list[str]) -> None:
        problems = "".join(message("error", e) for e in errors)
        if p is None:
            self.preview.value = problems or message("info", "Fill in the form to see the plan.")
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
            f"<tr><td>{esc(rule)}</td><td style='text-align:right'>{n:,}</td><td><i>{esc(examples.get(rule, ''))}</i></td></tr>"
            for rule, n in s["rejected_by_rule"].items()
        )
        self.preview.value = (
            problems + f"<div>Trigger <b>{s['trigger_id']}</b>, matching <b>{esc(s['matching'])}</b>: "
            f"{s['rows']:,} rows, <b>{s['valid']:,} valid</b>, {s['rejected']:,} rejected; "
            f"{s['batches']:,} batch(es), {s['bytes']:,} bytes (largest {s['largest_batch_rows']:,} rows / "
            f"{s['largest_batch_bytes']:,} bytes).</div>"
            f"<table class='toolkit-table'><thead><tr><th>rejected: rule</th><th>rows</th><th>for example</th>"
            f"</tr></thead><tbody>{rules or '<tr><td colspan=3>none</td></tr>'}</tbody></table>"
        )
        records = json.dumps(p.records(3), indent=2, sort_keys=True, ensure_ascii=False)
        self.records.value = (
            f"<b>First records as sent</b><pre style='max-height:24em;overflow:auto'>{esc(records)}</pre>"
        )
        self.confirm.description = (
            f"Send trigger {p.trigger.trigger_id} to {p.n_valid:,} profiles on {self.target}"
        )

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

    @property
    def target(self) -> str:
        """Where a launch would go: ``"SANDBOX at 127.0.0.1:PORT"`` or ``"PLATFORM at host"``
        (``"no platform configured"`` while there is no client)."""
        try:
            return target_label(self.client)
        except ConfigurationError:
            return "no platform configured"

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
    def _show(self, kind: MessageKind, text: str) -> None:
        self.status.value = message(kind, text)

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
            self._show("error", f"The launch stopped: {readable(exc)}")
        finally:
            if self._background:
                self._finish()

    def _launch(self, p: Plan, label: str | None) -> None:
        """Send the plan and follow its tasks in this one thread; the bars and the status line
        are drawn by the launch's progress events, from whichever thread emits them."""
        self.results.clear()
        self._show("info", "Connecting...")
        client = self.client
        self.progress.reset({b.index: len(b) for b in p.batches})
        self._show(
            "info", f"Sending {p.n_valid:,} profiles in {len(p.batches):,} batch(es) to {self.target}..."
        )
        launch = client.launch(
            p, label=label, progress=False, on_progress=self._on_progress, **self._launch_options
        )
        self.launch = launch
        launch.wait(progress=False, on_progress=self._on_progress)
        try:
            self.progress.show_batches(launch.launch_id, launch.batches)  # with each batch's counts
            summary = self.results.show(launch)
        except Exception as exc:  # the launch went well: say so, whatever broke in showing it
            self._show("warning", f"Launch {launch.label or launch.launch_id} finished, but its results "
                                  f"could not be shown: {readable(exc)}")  # fmt: skip
            return
        self._show(*outcome_message(launch, summary))

    def _on_progress(self, event: LaunchProgress) -> None:
        """A launch's progress event: the bars, and the status line while it runs."""
        self.progress.show(event)
        line = progress_message(event)
        if line is not None:
            self._show(*line)

    def _show_previous(self, p: Plan, exc: AlreadyLaunched) -> None:
        """After a refused launch: the bars, results and charts of the launch that did happen
        (the bars were reset to "planned" for the launch that was about to start)."""
        previous = exc.previous
        launch_id = getattr(previous, "launch_id", None)
        if launch_id is None:
            return
        client = self.client
        with contextlib.suppress(Exception):  # from the journal alone, even if the rest fails
            self.progress.show_batches(launch_id, client.journal.batches(launch_id))
        with contextlib.suppress(Exception):  # a nicety after the message: never a traceback
            try:
                launch = client.resume(launch_id, plan=p)
            except InvalidArgumentError:  # its batches went out in a launch of another plan
                launch = client.resume(launch_id)
            self.launch = launch
            self.results.show(launch, note="The earlier launch of this plan:")
