"""The launch form, for a colleague who does not write code: choose a segment (one given in
code, or your own file), map its columns to profile fields, pick the trigger, check what would
be sent, and launch it once, on a target the page names all along.

The page reads top to bottom: a banner naming where a launch goes (sandbox or the real
platform, visibly different), the action bar (confirmation, Dry run, Launch, status; it stays
in view while the sections below scroll), then 1. the data, 2. the trigger, 3. the columns ->
profile fields and subscriptions, 4. "Advanced" platform options, 5. the review (plan, rejected
rows, the first records exactly as sent), then progress and results.

The launch runs in one background thread: ``client.launch(plan, on_progress=...)`` then
``launch.wait(on_progress=...)``. Their :class:`~toolkit.send.events.LaunchProgress` events draw
the batch bars and the status line (including "the platform is not answering: retry 2 of 5");
nothing polls the journal. Every message speaks of the page's buttons, never of code.

See the package docstring for an example; the class has its own.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Mapping as AbcMapping
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import ipywidgets as widgets

from toolkit.core.contract import CHANNELS, MATCHING_MODES, BatchState, Channel, MatchingMode
from toolkit.core.mapping import Attachment, Mapping, Subscription, Trigger
from toolkit.core.plan import Plan, plan
from toolkit.errors import AlreadyLaunched, ConfigurationError, PreflightError, ToolkitError, TransportError
from toolkit.send.events import LaunchProgress
from toolkit.send.preflight import sample_problem
from toolkit.send.target import target_label
from toolkit.view.widgets._bars import BatchBars, progress_message
from toolkit.view.widgets._html import (
    CSS_CLASSES,
    FLAG,
    STYLE,
    STYLE_SHEET,
    WIDE,
    MessageKind,
    esc,
    fit,
    heading,
    help_line,
    message,
    readable,
    wrapping_row,
)
from toolkit.view.widgets._source import SegmentSource
from toolkit.view.widgets.results import ResultsView, outcome_message

if TYPE_CHECKING:
    from toolkit.send.catalog import TriggerInfo
    from toolkit.send.client import Client
    from toolkit.send.journal import BatchRecord
    from toolkit.send.launch import Launch

__all__ = ["KNOWN_FIELDS", "LaunchForm", "guess_fields", "parse_trigger_id"]

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

#: What each matching mode means, for people.
_MATCHING_WORDS: Final[dict[str, str]] = {
    MatchingMode.EMAIL: "by email address",
    MatchingMode.EMAIL_PROFILE: "by email address, else by profile id",
    MatchingMode.PHONE: "by phone number",
    MatchingMode.PROFILE_ID: "by the platform's profile id",
    MatchingMode.CUSTOM: "by a field of your choice",
}
_WHOLE_NUMBER: Final = re.compile(r"[0-9]+")


def _normal(name: str) -> str:
    return str(name).strip().lower().replace("-", "_").replace(" ", "_")


def guess_fields(columns: Sequence[str], platform_fields: Sequence[str] | None = None) -> dict[str, str]:
    """A first guess of column -> profile field: a column named like one of the platform's fields
    (``platform_fields``, case and spaces aside) gets that field; known names get their system
    field (``email``, ``phones``, ``_fname``, ``_lname``, ``_city``, ``_regdate``, ...); the
    others keep their own name (a custom field).

    Example:
        >>> guess_fields(["Email", "last_name", "city", "signup_date", "orders"])
        {'Email': 'email', 'last_name': '_lname', 'city': '_city', 'signup_date': '_regdate', 'orders': 'orders'}
        >>> guess_fields(["Loyalty Tier", "phone"], ["email", "phones", "loyalty_tier"])
        {'Loyalty Tier': 'loyalty_tier', 'phone': 'phones'}
    """
    platform = {_normal(f): f for f in platform_fields or ()}
    return {c: platform.get(_normal(c)) or KNOWN_FIELDS.get(_normal(c), str(c)) for c in columns}


def parse_trigger_id(text: str) -> tuple[int | None, str]:
    """The trigger id typed in the box: a whole positive number, or ``None`` and what is wrong
    (nothing is ever fixed silently: ``"96.7"`` is not 967, ``"12x"`` is not 12).

    Example:
        >>> parse_trigger_id(" 96 ")
        (96, '')
        >>> parse_trigger_id("96.7")
        (None, "The trigger id must be a whole number such as 96; '96.7' is not.")
        >>> parse_trigger_id("")
        (None, 'Pick a trigger, or type its id (a whole number such as 96).')
    """
    text = str(text).strip()
    if not text:
        return None, "Pick a trigger, or type its id (a whole number such as 96)."
    if not _WHOLE_NUMBER.fullmatch(text) or int(text) <= 0:
        return None, f"The trigger id must be a whole number such as 96; {text!r} is not."
    return int(text), ""


def _json_box(
    name: str, value: AbcMapping[str, Any] | None, label: str, placeholder: str
) -> tuple[widgets.Textarea, widgets.HTML]:
    """A text area for a JSON object (checked as you type) and the line that says what is wrong."""
    area = widgets.Textarea(
        value=json.dumps(value, ensure_ascii=False) if value else "", description=label, placeholder=placeholder,
        continuous_update=True, style=STYLE, layout=widgets.Layout(width="95%"),
    )  # fmt: skip
    area.add_class(CSS_CLASSES[name])
    return area, widgets.HTML()


def _default_label(name: str, when: datetime | None = None) -> str:
    """A launch label: the segment's name and the minute (one launch, one label).

    Example:
        >>> _default_label("opted-in customers · practice data (sandbox only)", datetime(2026, 3, 1, 9, 30))
        'opted-in customers 2026-03-01 09:30'
    """
    base = name.split(" · ")[0].strip() or "launch"
    return f"{base} {(when or datetime.now()).strftime('%Y-%m-%d %H:%M')}"


def _batches_words(batches: Sequence[BatchRecord]) -> str:
    numbers = ", ".join(str(b.index) for b in batches[:10]) + (" ..." if len(batches) > 10 else "")
    rows = sum(b.n_rows for b in batches)
    return f"batch{'es' if len(batches) != 1 else ''} {numbers} ({rows:,} profiles)"


def outage_message(batches: Sequence[BatchRecord], target: str) -> tuple[MessageKind, str] | None:
    """What a launch that could not reach the platform left, and what a new click does; ``None``
    when every batch reached the platform.

    Example:
        >>> from types import SimpleNamespace as B
        >>> lost = B(index=0, n_rows=50, state="failed", task_id=None, was_sent=False)
        >>> outage_message([lost], "PLATFORM at api.example.com")[1]  # doctest: +ELLIPSIS
        'PLATFORM at api.example.com did not answer. Nothing was sent. Launching again is safe...'
    """
    not_sent = [b for b in batches if not b.was_sent]
    if not not_sent:
        return None
    went = [b for b in batches if b.was_sent and b.state != BatchState.UNKNOWN]
    unknown = [b for b in batches if b.state == BatchState.UNKNOWN]
    if not went and not unknown:
        return "error", (
            f"{target} did not answer. Nothing was sent. Launching again is safe: press Launch "
            "when the platform is back."
        )
    parts = [f"{target} stopped answering during the launch."]
    if went:
        parts.append(f"Sent: {_batches_words(went)}.")
    if unknown:
        parts.append(f"Unknown: {_batches_words(unknown)} may or may not have arrived; pressing Launch again "
                     "does not send them again (ask the platform's team whether they arrived).")  # fmt: skip
    parts.append(f"Not sent: {_batches_words(not_sent)}. Pressing Launch again sends only these, "
                 "nobody gets the same message twice.")  # fmt: skip
    return "warning", " ".join(parts)


class LaunchForm(widgets.VBox):
    """A form that builds a plan from a segment and launches it once, with a live preview.

    Args:
        frames: the segment (a pandas or polars frame), or a dict of named segments. The user
            may add their own file with the "Choose a file..." control.
        mapping: a :class:`~toolkit.core.mapping.Mapping` to start from; without one, every column
            is mapped by :func:`guess_fields` (email -> email, phone -> phones, ...).
        client: the :class:`~toolkit.send.client.Client` to launch with; by default
            ``Client.from_env()``, built on first use.
        trigger: a :class:`~toolkit.core.mapping.Trigger` (or a trigger id) to start from.
        label: the launch's name; each launch's label is that name and the date (editable).
        background: run a launch in a background thread (the notebook stays responsive);
            ``form.join()`` waits for it.
        plan_options: more :func:`~toolkit.core.plan.plan` keyword arguments (``max_rows``, ...).
        launch_options: more :meth:`~toolkit.send.client.Client.launch` keyword arguments
            (``preflight=False``, ``allow_sample=True``, ``concurrency``, ...).

    ``form.plan`` is the plan the form would send now (``None`` while the form is invalid,
    ``form.errors`` says why); ``form.problems`` what the platform's catalog says is wrong with
    it; ``form.launch`` the last :class:`~toolkit.send.launch.Launch`.

    Example:
        >>> import toolkit
        >>> form = LaunchForm({"spring": toolkit.sample_customers(100)}, trigger=toolkit.Trigger(96))
        >>> form.plan
        Plan(rows=100, valid=97, rejected=3, batches=1, format='json', trigger_id=96)
        >>> form.trigger_id.value = "96.7"
        >>> form.errors, form.button.disabled
        (["The trigger id must be a whole number such as 96; '96.7' is not."], True)
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
        named = dict(frames) if isinstance(frames, AbcMapping) else {"segment": frames}
        if not named:
            raise ToolkitError("LaunchForm needs at least one segment")
        self._client = client
        self._background = background
        self._plan_options = dict(plan_options or {})
        self._launch_options = dict(launch_options or {})
        self._initial_mapping = mapping
        self._label_name = label
        self._plan: Plan | None = None
        self._errors: list[str] = []
        self._problems: list[Any] = []
        self._checked: dict[tuple[str, int], list[Any]] = {}  # (plan fingerprint, trigger) -> problems
        self._triggers: dict[int, TriggerInfo] = {}
        self._catalog_fields: dict[int, list[str]] = {}  # trigger id -> its database's field names
        self._lock = threading.Lock()  # held for the whole launch: no second launch at once
        self._running = False
        self._building = False
        self._thread: threading.Thread | None = None
        self.launch: Launch | None = None
        self.dry_run_plan: Plan | None = None
        trig = Trigger(trigger) if isinstance(trigger, int) else trigger

        # --- 1. the data ------------------------------------------------------------------------
        self.source = SegmentSource(named, on_change=self._segment_changed)
        self.segment = self.source.choice

        # --- 2. the trigger ---------------------------------------------------------------------
        self.trigger_picker = widgets.Dropdown(options=[("(loading the platform's triggers...)", None)],
                                               description="Trigger", style=STYLE, layout=fit("36em"))  # fmt: skip
        self.trigger_picker.add_class(CSS_CLASSES["trigger_picker"])
        self.trigger_id = widgets.Text(value=str(trig.trigger_id) if trig else "", description="or its id",
                                       placeholder="e.g. 96", continuous_update=False, style=STYLE,
                                       layout=fit("14em"))  # fmt: skip
        self.trigger_id.add_class(CSS_CLASSES["trigger_id"])
        self.trigger_error = widgets.HTML()
        self.trigger_error.add_class(CSS_CLASSES["trigger_error"])
        self.trigger_help = help_line("The campaign that sends the messages. Its id is in the platform, "
                                      "in the trigger's settings.")  # fmt: skip

        # --- 3. columns -> fields, subscriptions ------------------------------------------------
        modes = [m for m, rule in MATCHING_MODES.items() if rule.documented_for_batch
                 or self._plan_options.get("allow_undocumented_matching")]  # fmt: skip
        self.matching = widgets.Dropdown(
            options=[(f"{m} ({_MATCHING_WORDS.get(m, 'see the platform guide')})", m) for m in modes],
            value=mapping.matching if mapping else MatchingMode.EMAIL,
            description="Find existing profiles", style=STYLE,
        )  # fmt: skip
        self.matching.add_class(CSS_CLASSES["matching"])
        self.match_field = widgets.Dropdown(options=[], description="by the field", style=STYLE)
        self.match_field.add_class(CSS_CLASSES["match_field"])
        self._field_rows: dict[str, tuple[widgets.Checkbox, widgets.Combobox, widgets.HBox]] = {}
        self.field_widgets: dict[str, tuple[widgets.Checkbox, widgets.Combobox]] = {}
        self._edited: set[str] = set()  # columns whose row the user changed: never proposed again
        self.fields_box = widgets.VBox()
        self._subscription_rows: list[widgets.Box] = []
        self.subscriptions_box = widgets.VBox()
        self.subscriptions_box.add_class(CSS_CLASSES["subscriptions"])
        self.add_subscription = widgets.Button(description="Add a subscription", icon="plus", layout=WIDE)
        self.add_subscription.on_click(lambda _b: self._add_subscription_row(None))

        # --- 4. advanced platform options -------------------------------------------------------
        def flag(value: bool, text: str) -> widgets.Checkbox:
            return widgets.Checkbox(value=value, description=text, indent=False, layout=FLAG)

        self.skip_triggers = flag(
            bool(trig and trig.skip_triggers), "Only update the profiles (send no message)"
        )
        self.skip_invalid_subscriptions = flag(bool(trig and trig.skip_invalid_subscriptions),
                                               "Skip a wrong subscription, keep the rest of the profile")  # fmt: skip
        self.detect_geo = flag(
            bool(trig and trig.detect_geo), "Fill in the city and country from the IP address"
        )
        self.content, self.content_error = _json_box(
            "content",
            trig.content if trig else None,
            "Message content (JSON)",
            '{"page": "registration_form"}',
        )
        self.custom_data, self.custom_data_error = _json_box(
            "custom_data", trig.custom_data if trig else None, "Data for the message (JSON)",
            '{"campaign": "spring"}',
        )  # fmt: skip
        self.attachments = widgets.FileUpload(multiple=True, description="Attach files")
        self.attachments.add_class(CSS_CLASSES["attachments"])
        self._fixed_attachments: tuple[Attachment, ...] = trig.attach if trig else ()
        self.label = widgets.Text(value=_default_label(label or self.source.name), description="Launch name",
                                  style=STYLE, layout=fit("30em"))  # fmt: skip
        self.label.add_class(CSS_CLASSES["label"])
        self._auto_label = self.label.value  # the name the form chose (not typed by the user)

        # --- the action bar, the review, progress and results -----------------------------------
        self.banner = widgets.HTML()
        self.banner.add_class(CSS_CLASSES["banner"])
        self.checks = widgets.HTML()
        self.checks.add_class(CSS_CLASSES["checks"])
        self.preview = widgets.HTML()
        self.preview.add_class(CSS_CLASSES["preview"])
        self.records = widgets.HTML()
        self.records.add_class(CSS_CLASSES["records"])
        self.dry_run = widgets.Button(description="Dry run (send nothing)", icon="eye", layout=WIDE,
                                      tooltip="Check what would be sent, without sending anything")  # fmt: skip
        self.dry_run.add_class(CSS_CLASSES["dry_run"])
        self.dry_run.on_click(self._on_dry_run)
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
        for sub in mapping.subscriptions if mapping else ():
            self._add_subscription_row(sub, replan=False)
        for w in (self.matching, self.match_field, self.skip_triggers, self.skip_invalid_subscriptions,
                  self.detect_geo, self.content, self.custom_data, self.attachments):  # fmt: skip
            w.observe(self._changed, names="value")
        self.trigger_id.observe(self._trigger_typed, names="value")
        self.trigger_picker.observe(self._trigger_picked, names="value")
        self.confirm.observe(lambda _c: self._sync_button(), names="value")

        advanced = widgets.Accordion(children=[widgets.VBox([
            self.skip_triggers, help_line("The profiles are imported or updated; the trigger sends nothing."),
            self.skip_invalid_subscriptions,
            help_line("Without it, a profile with one wrong subscription is not imported at all."),
            self.detect_geo, help_line("Needs a column mapped to the profile field _ip."),
            self.content, help_line("Values the message template reads as content; leave empty if unsure."),
            self.content_error,
            self.custom_data, help_line("Extra values for the message template, as a JSON object {...}."),
            self.custom_data_error,
            self.attachments, help_line("Files sent with the message (each under the platform's size limit)."),
        ])])  # fmt: skip
        advanced.set_title(0, "Advanced: platform options")
        advanced.selected_index = None
        advanced.add_class(CSS_CLASSES["advanced"])
        actions = widgets.VBox([
            self.banner,
            wrapping_row([self.confirm]),
            wrapping_row([self.button, self.dry_run, self.label]),
            help_line("Launch sends to the target above, once; Dry run only checks what would be sent."),
            self.status,
        ])  # fmt: skip
        actions.add_class(CSS_CLASSES["actions"])
        review = widgets.VBox([self.checks, self.preview, self.records])
        self.children = (
            widgets.HTML(STYLE_SHEET),
            actions,
            self.progress,
            self.results,
            heading("1. Your data"),
            self.source,
            heading("2. The trigger campaign"),
            wrapping_row([self.trigger_picker, self.trigger_id]),
            self.trigger_help,
            self.trigger_error,
            heading("3. Columns -> profile fields"),
            help_line("Tick the columns to send and choose the profile field each one fills. "
                      "Unticked columns are not sent."),
            wrapping_row([self.matching, self.match_field]),
            help_line("How the platform finds a profile that already exists (else it creates one)."),
            self.fields_box,
            heading("Subscriptions"),
            help_line("Which channel each profile is subscribed to (email, sms, ...), from which column, "
                      "in which of your platform's resources (its number in the platform)."),
            self.subscriptions_box,
            self.add_subscription,
            advanced,
            heading("4. Review: what would be sent"),
            review,
        )  # fmt: skip
        self._load_triggers(trig.trigger_id if trig else None)
        self._show_banner()
        self._changed()

    # --- the catalog ----------------------------------------------------------------------------
    def _catalog_client(self) -> Client | None:
        """The client to read the platform's catalog with; None without one, or when the form was
        told not to check with the platform (``launch_options={"preflight": False}``)."""
        if not self._launch_options.get("preflight", True):
            return None
        try:
            return self.client
        except ToolkitError:
            return None

    def _load_triggers(self, current: int | None) -> None:
        """The picker's triggers from the platform's catalog; without them, the id box alone."""
        client = self._catalog_client()
        listed: list[TriggerInfo] = []
        if client is not None:
            with contextlib.suppress(
                Exception
            ):  # a token that may not list triggers, a platform without the call
                listed = list(client.triggers())
        self._triggers = {t.id: t for t in listed if t.id}
        if not self._triggers:
            self.trigger_picker.options = [("(the platform did not list its triggers: type the id)", None)]
            self.trigger_picker.disabled = True
            return
        options: list[tuple[str, int | None]] = [("Choose a trigger...", None)]
        options += [
            (self._trigger_words(t), t.id) for t in sorted(listed, key=lambda t: (t.name or "", t.id))
        ]
        with self._quiet():
            self.trigger_picker.options = options
            self.trigger_picker.value = current if current in self._triggers else None

    @staticmethod
    def _trigger_words(t: TriggerInfo) -> str:
        state = {True: "active", False: "NOT active", None: "state unknown"}[t.is_active]
        return f"{t.name or '(no name)'} · id {t.id} · {t.send_channel or 'channel ?'} · {state}"

    def _trigger_fields(self, trigger_id: int | None) -> list[str]:
        """The profile fields of the trigger's database (empty when the catalog does not say)."""
        if trigger_id is None:
            return []
        if trigger_id not in self._catalog_fields:
            names: list[str] = []
            client = self._catalog_client()
            if client is not None and self._triggers:
                with contextlib.suppress(Exception):
                    info = client.trigger(trigger_id)
                    if info.list_id is not None:
                        names = [f.name for f in client.database_fields(info.list_id)]
            self._catalog_fields[trigger_id] = names
        return self._catalog_fields[trigger_id]

    def _trigger_typed(self, _change: Any = None) -> None:
        trigger_id, _problem = parse_trigger_id(self.trigger_id.value)
        with self._quiet():
            if trigger_id in self._triggers and self.trigger_picker.value != trigger_id:
                self.trigger_picker.value = trigger_id
            elif trigger_id not in self._triggers and self._triggers:
                self.trigger_picker.value = None
        self._fields_offered()
        self._changed()

    def _trigger_picked(self, change: Any) -> None:
        if self._building or change["new"] is None:
            return
        self.trigger_id.value = str(change["new"])  # _trigger_typed plans again

    def _fields_offered(self) -> None:
        """The platform's field names offered in every field box (typing another stays possible)."""
        names = self._trigger_fields(parse_trigger_id(self.trigger_id.value)[0])
        guessed = guess_fields(list(self._field_rows), names)
        with self._quiet():
            for column, (check, box, _row) in self._field_rows.items():
                box.options = names
                if names and column not in self._edited:  # a proposal nobody changed: propose again
                    box.value = guessed[column]
                    check.value = guessed[column] in names

    # --- building the form ---------------------------------------------------------------------
    @property
    def frame(self) -> Any:
        """The segment chosen now."""
        return self.source.frame

    def _columns(self) -> list[str]:
        return self.source.columns

    def _build_fields(self, mapping: Mapping | None) -> None:
        """A row per column of the segment. Rows are kept by column name: a column met again (the
        same column in another segment, or the segment chosen again) keeps its edits."""
        columns = self._columns()
        platform = self._trigger_fields(parse_trigger_id(self.trigger_id.value)[0])
        guessed = guess_fields(columns, platform)
        chosen = dict(mapping.fields) if mapping else None
        for column in columns:
            if column in self._field_rows:
                continue
            if chosen is not None and all(c in columns for c in chosen):
                send, field = column in chosen, chosen.get(column, guessed[column])
                self._edited.add(column)  # the mapping given in code is kept as it is
            else:  # proposed: ticked when the platform has the field (or, without its list, always)
                send, field = (not platform or guessed[column] in platform), guessed[column]
            check = widgets.Checkbox(value=send, description=column, indent=False, layout=fit("14em"))
            box = widgets.Combobox(value=field, options=platform, placeholder="profile field", ensure_option=False,
                                   continuous_update=False, layout=fit("14em"))  # fmt: skip
            box.add_class(CSS_CLASSES["field"])
            for w in (check, box):
                w.observe(lambda _c, column=column: self._edited.add(column) if not self._building else None,
                          names="value")  # fmt: skip
                w.observe(self._changed, names="value")
            self._field_rows[column] = (check, box, wrapping_row([check, widgets.HTML("&rarr;"), box]))
        self.field_widgets = {c: self._field_rows[c][:2] for c in columns}
        self.fields_box.children = tuple(self._field_rows[c][2] for c in columns)

    def _add_subscription_row(self, sub: Subscription | None, *, replan: bool = True) -> None:
        columns = self._columns()
        if not columns:
            return
        default_column = next((c for c in columns if "email" in c.lower()), columns[0])
        channel = widgets.Dropdown(options=list(CHANNELS), value=sub.channel if sub else Channel.EMAIL,
                                   description="Channel", style=STYLE, layout=fit("14em"))  # fmt: skip
        column = widgets.Dropdown(
            options=columns, value=sub.column if sub and sub.column in columns else default_column,
            description="address from column", style=STYLE, layout=fit("22em"),
        )  # fmt: skip
        resource = widgets.IntText(value=sub.resource_id if sub else 1, description="resource number",
                                   style=STYLE, layout=fit("14em"))  # fmt: skip
        remove = widgets.Button(description="Remove this subscription", icon="trash", layout=WIDE)
        row = widgets.VBox([wrapping_row([channel, column, resource]), remove])  # one box per subscription
        row.add_class(CSS_CLASSES["subscription"])
        row._toolkit_extra = dict(sub.extra) if sub else {}
        row._toolkit_parts = (channel, column, resource)

        def drop(_b: Any) -> None:
            self._subscription_rows = [r for r in self._subscription_rows if r is not row]
            self._show_subscriptions()
            self._changed()

        remove.on_click(drop)
        for w in (channel, column, resource):
            w.observe(self._changed, names="value")
        self._subscription_rows.append(row)
        self._show_subscriptions()
        if replan:
            self._changed()

    def _show_subscriptions(self) -> None:
        """The subscriptions whose column is in the segment; the others wait (kept, not sent)
        until a segment with their column is chosen again."""
        columns = self._columns()
        shown = []
        with self._quiet():
            for row in self._subscription_rows:
                _channel, column, _resource = row._toolkit_parts
                if column.value not in columns:
                    continue
                if tuple(column.options) != tuple(columns):
                    value = column.value
                    column.options = columns
                    column.value = value
                shown.append(row)
        self.subscriptions_box.children = tuple(shown)

    def _segment_changed(self) -> None:
        with self._quiet():
            self._build_fields(self._initial_mapping)
            self._show_subscriptions()
            if not self._running:
                self._new_auto_label()
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
            problem = f"{name} must be a JSON object {{...}}, not a {type(value).__name__}"
        error.value = message("error", problem)
        return None, problem

    def _read(self) -> tuple[Mapping | None, Trigger | None, list[str]]:
        """The mapping and trigger the form says now, and what is wrong with it."""
        errors: list[str] = []
        if self.frame is None:
            errors.append("The chosen file could not be read: see the message under 1. Your data.")
            return None, None, errors
        trigger_id, problem = parse_trigger_id(self.trigger_id.value)
        self.trigger_error.value = (
            message("error", problem) if problem and self.trigger_id.value.strip() else ""
        )
        errors += [problem] if problem else []
        fields = {c: t.value.strip() for c, (check, t) in self.field_widgets.items() if check.value}
        blank = [c for c, f in fields.items() if not f]
        if blank:
            errors.append(
                f"Choose the profile field of column(s) {', '.join(map(repr, blank))}, or untick them."
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
        self.match_field.layout.display = "flex" if custom else "none"
        content, problem = self._json_field(self.content, self.content_error, "Message content")
        errors += [problem] if problem else []
        custom_data, problem = self._json_field(
            self.custom_data, self.custom_data_error, "Data for the message"
        )
        errors += [problem] if problem else []
        mapping = trigger = None
        try:
            subs = [
                Subscription(*(w.value for w in row._toolkit_parts), **row._toolkit_extra)
                for row in self.subscriptions_box.children
            ]
            if not fields:
                errors.append("Tick at least one column to send.")
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
            if trigger_id is not None:
                trigger = Trigger(
                    trigger_id,
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
        """Any input changed: read the form, plan again, check with the platform, refresh the
        review; a message about the form as it was is cleared."""
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
            errors.append("No row of this segment is valid: nothing to send (see the rejected rows below).")
        old = self._plan
        self._plan, self._errors = (new_plan if not errors else None), errors
        same = old is not None and self._plan is not None and old.fingerprint == self._plan.fingerprint
        if not same:
            self.confirm.value = False  # a confirmation is for one exact plan
            if not self._running:
                self.status.value = ""  # it spoke of the form as it was
        self._problems = self._preflight(self._plan)
        self._render_preview(new_plan, errors)
        self._sync_button()

    def _preflight(self, p: Plan | None) -> list[Any]:
        """The platform's catalog on this plan (cached per plan and trigger): problems in words."""
        if p is None:
            return []
        client = self._catalog_client()
        if client is None:
            return []
        key = (p.fingerprint, p.trigger.trigger_id)
        if key not in self._checked:
            problems: list[Any] = []
            if not self._launch_options.get("allow_sample"):
                with contextlib.suppress(Exception):
                    found = sample_problem(p, client)
                    if found is not None:
                        problems.append(found)
            if self._launch_options.get("preflight", True):
                try:
                    problems += client.preflight(p)
                except Exception as exc:  # the check itself failed: launching will say why
                    problems.append(_Note(f"the platform could not be asked ({readable(exc)})"))
            self._checked[key] = problems
        return self._checked[key]

    def _render_preview(self, p: Plan | None, errors: list[str]) -> None:
        blocking = [x for x in self._problems if getattr(x, "severity", "error") == "error"]
        notes = [x for x in self._problems if getattr(x, "severity", "error") != "error"]
        self.checks.value = "".join(
            [message("error", e) for e in errors]
            + [message("error", f"The platform says: {_plain(x)}") for x in blocking]
            + [message("info", f"Not checked: {_plain(x)}") for x in notes]
        )
        if p is None:
            self.preview.value = (
                "" if errors else message("info", "Fill in the form to see what would be sent.")
            )
            self.records.value = ""
            self.confirm.description = "Confirm"
            return
        s = p.summary()
        by_rule = s["rejected_by_rule"]
        rules = "".join(
            f"<tr><td>{esc(rule)}</td><td style='text-align:right'>{n:,}</td></tr>"
            for rule, n in by_rule.items()
        )
        self.preview.value = (
            f"<div>Trigger <b>{s['trigger_id']}</b>, profiles found {esc(_MATCHING_WORDS.get(s['matching'], s['matching']))} "
            f"(matching {esc(s['matching'])}): {s['rows']:,} rows, <b>{s['valid']:,} to send</b>, "
            f"{s['rejected']:,} left out; in {s['batches']:,} batch(es) of at most {s['largest_batch_rows']:,} rows.</div>"
            f"<table class='toolkit-table'><thead><tr><th>left out because</th><th>rows</th></tr></thead>"
            f"<tbody>{rules or '<tr><td colspan=2>no row left out</td></tr>'}</tbody></table>"
        )
        records = json.dumps(p.records(3), indent=2, sort_keys=True, ensure_ascii=False)
        self.records.value = (
            "<details><summary>The first 3 profiles exactly as they would be sent</summary>"
            f"<pre class='toolkit-mono' style='max-height:24em;overflow:auto'>{esc(records)}</pre></details>"
        )
        self.confirm.description = f"Send trigger {self._trigger_name(p.trigger.trigger_id)} to {p.n_valid:,} profiles on {self.target}"

    def _trigger_name(self, trigger_id: int) -> str:
        info = self._triggers.get(trigger_id)
        return f"{trigger_id} {info.name!r}" if info and info.name else str(trigger_id)

    def _show_banner(self) -> None:
        target = self.target
        if target.startswith("SANDBOX"):
            self.banner.value = (
                f"<div class='toolkit-banner-sandbox'>Practice: launches go to the <b>{esc(target)}</b>, a test "
                "server on this computer. Nobody receives anything.</div>"
            )
        elif self._client is None and target == "no platform configured":
            self.banner.value = "<div class='toolkit-banner-platform'>No platform to send to: ask for the app's link again.</div>"
        else:
            self.banner.value = (
                f"<div class='toolkit-banner-platform'>REAL PLATFORM: launches go to <b>{esc(target)}</b>. "
                "Real people receive the messages.</div>"
            )

    def _sync_button(self) -> None:
        blocked = any(getattr(x, "severity", "error") == "error" for x in self._problems)
        self.button.description = "Launching..." if self._running else "Launch"
        ready = self._plan is not None and not blocked and self.confirm.value
        self.button.disabled = self._running or not ready
        self.dry_run.disabled = self._running or self._plan is None

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
    def problems(self) -> list[str]:
        """What the platform's catalog says about the plan, in words (errors keep Launch off)."""
        return [_plain(x) for x in self._problems]

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
            except ConfigurationError:
                raise ConfigurationError(
                    "this page has no platform to send to; open the app from the link you were given "
                    "(ask whoever started it)"
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

    def _on_dry_run(self, _button: Any = None) -> None:
        """The Dry run button: what Launch would send, and where; nothing is sent."""
        p = self._plan
        if p is None:
            self._show("error", "The form is not complete: " + " ".join(self._errors))
            return
        self.dry_run_plan = p
        self._show(
            "info",
            f"Dry run: trigger {self._trigger_name(p.trigger.trigger_id)} would go to {p.n_valid:,} profiles on "
            f"{self.target}, in {len(p.batches):,} batch(es); {p.n_rejected:,} rows left out. Nothing was sent.",
        )

    def _label_used(self, label: str) -> Any:
        """The journal's launch of this label, or None (also when the journal cannot be read)."""
        with contextlib.suppress(Exception):
            used = self.client.journal.find(label)
            if used.label == label:
                return used
        return None

    def _fresh_label(self) -> str:
        """The next launch's name: the segment (or the name given) and the date, numbered when
        a launch of the same minute took it."""
        base = _default_label(self._label_name or self.source.name)
        label, n = base, 1
        while self._label_used(label) is not None:
            n += 1
            label = f"{base} ({n})"
        return label

    def _new_auto_label(self) -> str:
        """Give the launch a fresh name of the form's choosing (see :meth:`_fresh_label`)."""
        self._auto_label = self._fresh_label()
        self.label.value = self._auto_label
        return self._auto_label

    def _label_problem(self, label: str) -> str | None:
        """Why this launch name cannot be used (one name, one launch), or None."""
        if not label:
            return "Give the launch a name (the box beside the buttons)."
        used = self._label_used(label)
        if used is not None:
            return (f"The launch name {label!r} is taken by the launch of {used.created[:16].replace('T', ' ')} "
                    "UTC: choose another name.")  # fmt: skip
        return None

    def _on_click(self, _button: Any = None) -> None:
        """The button: one launch (a second click while it runs does nothing)."""
        if not self._lock.acquire(blocking=False):
            return  # a launch is running: the flag, not only the disabled button, keeps this to one
        handed_over = False
        try:
            p = self._plan
            if p is None:
                self._show("error", "The form is not complete: " + " ".join(self._errors))
                return
            if not self.confirm.value:
                self._show("warning", "Tick the confirmation box first.")
                return
            label = self.label.value.strip()
            if label == self._auto_label and self._label_used(label) is not None:
                # a name the form chose, taken since (another tab, a launch of the same
                # minute): the form picks the next one; only a name the user typed is theirs to change
                label = self._new_auto_label()
            try:
                problem = self._label_problem(label)
            except ToolkitError as exc:
                problem = readable(exc)
            if problem:
                self._show("error", problem)
                return
            self._running = True
            self._sync_button()
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

    def _run(self, p: Plan, label: str) -> None:
        try:
            self._launch(p, label)
        except AlreadyLaunched as exc:
            self._show("warning", self._already_words(exc))
            self._show_previous(p, exc)
        except PreflightError as exc:
            self._show(
                "error", f"Not launched: the platform's checks failed. {readable(exc)}. Nothing was sent."
            )
        except TransportError:
            self._show("error", f"{self.target} did not answer. Nothing was sent. Launching again is safe: "
                                "press Launch when the platform is back.")  # fmt: skip
        except BaseException as exc:  # every error becomes a message in the form
            self._show("error", f"The launch stopped: {readable(exc)}")
        finally:
            if self._background:
                self._finish()

    def _already_words(self, exc: AlreadyLaunched) -> str:
        prev = exc.previous
        name = getattr(prev, "label", None) or getattr(prev, "launch_id", "?")
        when = str(getattr(prev, "created", ""))[:16].replace("T", " ")
        return (
            f"Already launched: exactly this was sent to trigger {getattr(prev, 'trigger_id', '?')} "
            f"as the launch {name!r} on {when} UTC. Nothing was sent now; that launch's results are below. "
            "To send to the same people again, change the segment or the trigger."
        )

    def _launch(self, p: Plan, label: str) -> None:
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
        self._new_auto_label()
        batches = launch.batches
        lost = outage_message(batches, self.target)
        try:
            self.progress.show_batches(launch.launch_id, batches)  # with each batch's counts
            summary = self.results.show(launch, segment=self.frame)
        except Exception as exc:  # the launch went well: say so, whatever broke in showing it
            self._show("warning", lost[1] if lost else f"Launch {launch.label or launch.launch_id} finished, "
                                                       f"but its results could not be shown: {readable(exc)}")  # fmt: skip
            return
        self._show(*(lost or outcome_message(launch, summary)))

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
            except ToolkitError:  # its batches went out in a launch of another plan
                launch = client.resume(launch_id)
            self.launch = launch
            self.results.show(
                launch, note=f"The earlier launch of this plan, {getattr(previous, 'label', '')!r}:"
            )


class _Note:
    """A check that could not be made (shown, but it keeps nothing from launching)."""

    severity = "warning"

    def __init__(self, text: str) -> None:
        self.message = text


def _plain(problem: Any) -> str:
    """A preflight problem's sentence, with code words turned into the page's own."""
    text = str(getattr(problem, "message", problem))
    for code, words in (
        ("allow_sample=True to client.launch()", "choose your own file (1. Your data)"),
        ("pass allow_sample=True", "choose your own file"),
        ("preflight=False", "nothing"),
    ):
        text = text.replace(code, words)
    return text
