"""What the sandbox knows of the account: trigger campaigns, databases with typed fields, resources
with their channels. Served by the platform's read-only catalog methods (``campaigns/triggers/list``
and ``get``, ``databases/list`` and ``fields``, ``resources/list`` and ``get``), and checked when an
import names a trigger.

The catalog is a JSON document (``--catalog FILE``, ``serve(catalog=...)``, ``PUT /_sandbox/catalog``)::

    {"triggers":  [{"id": 96, "name": "Welcome", "is_active": true, "trigger_type": "api_call",
                    "list_id": 1, "resource_id": 21, "send_channel": "email"}],
     "databases": [{"id": 1, "name": "Customers", "fields": [{"name": "CRM_ID", "type": "string"}]}],
     "resources": [{"id": 21, "name": "Newsletter", "channels": ["email"], "dbs_ids": [1]}]}

A database lists its custom fields; the system fields (``email``, ``phones``, ``_fname``, ...) are
in every database. Unless the catalog is strict, a trigger id it does not know is registered on
first use as an active API-call trigger of the first database and resource, so a rehearsal with any
id keeps working.

Example:
    >>> catalog = Catalog(default_catalog())
    >>> catalog.trigger(96)["trigger_type"], catalog.trigger(4242)["name"]
    ('api_call', 'API trigger 4242 (registered by the sandbox on first use)')
    >>> Catalog(default_catalog(), strict=True).trigger(4242)
    Traceback (most recent call last):
    ...
    toolkit.sandbox.envelope.ApiFailure: trigger campaign 4242 not found
"""

from __future__ import annotations

import threading
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, ValidationError, model_validator

from toolkit.core.contract import SYSTEM_FIELDS, Channel

from .envelope import MAX_ID, ApiFailure

__all__ = [
    "API_CALL",
    "Catalog",
    "CatalogData",
    "CatalogError",
    "DatabaseEntry",
    "FieldEntry",
    "ResourceEntry",
    "TriggerEntry",
    "default_catalog",
    "load_catalog",
]

#: The ``trigger_type`` of a trigger started by an API call: the only kind the import methods
#: start (V: "Only active trigger campaigns set to the 'When using a special API call' event can
#: be run via the API").
API_CALL: Final = "api_call"


def _json_integer(value: Any) -> Any:
    """Integers as JSON Schema has them: a whole float (``5.0``) is one, text and booleans are not."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be an integer")
        return int(value)
    return value


Id = Annotated[int, Field(ge=1, le=MAX_ID), BeforeValidator(_json_integer)]
Flag = Annotated[bool, Strict()]
#: Custom field types (docs/CONTRACT.md, "The profile data model").
FieldType = Literal["int", "float", "string", "date", "bool", "enum", "ip", "tags", "object", "array"]
#: The access group every catalog item belongs to in the sandbox (the docs' example group).
_MAIN_GROUP: Final = {"id": 0, "name": "main"}


class CatalogError(ValueError):
    """A catalog document that cannot be used: names the item and what to change."""


class FieldEntry(BaseModel):
    """A custom profile field of a database."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, pattern=r"\S", description="the field's name in a profile")
    type: FieldType = "string"


class TriggerEntry(BaseModel):
    """A trigger campaign: only an active one of type ``api_call`` is started by an import."""

    model_config = ConfigDict(extra="forbid")
    id: Id
    name: str
    is_active: Flag = True
    trigger_type: str = Field(
        default=API_CALL, min_length=1, description="'api_call', or another event's type"
    )
    list_id: Id = Field(description="the database the trigger works with")
    resource_id: Id
    send_channel: Channel = Channel.EMAIL


class DatabaseEntry(BaseModel):
    """A profile database and its custom fields (the system fields are in every database)."""

    model_config = ConfigDict(extra="forbid")
    id: Id
    name: str
    fields: list[FieldEntry] = Field(default_factory=list)


class ResourceEntry(BaseModel):
    """A resource: the channels it sends on and the databases it serves."""

    model_config = ConfigDict(extra="forbid")
    id: Id
    name: str
    channels: list[Channel] = Field(default_factory=list)
    dbs_ids: list[Id] = Field(default_factory=list)


def _last_wins(items: list[Any], key: str) -> list[Any]:
    """One item per ``key`` value, the last one given, in the order of first appearance."""
    kept: dict[Any, Any] = {}
    for item in items:
        kept[getattr(item, key)] = item
    return list(kept.values())


class CatalogData(BaseModel):
    """A whole catalog. An id given twice (or a database's field name) keeps its last entry, as a
    JSON object keeps a repeated key's last value. References are not checked: a trigger whose
    ``list_id`` names no database is served as given, and ``databases/fields`` answers 404 for
    it, as the platform would for a database that is gone."""

    model_config = ConfigDict(extra="forbid")
    triggers: list[TriggerEntry] = Field(default_factory=list)
    databases: list[DatabaseEntry] = Field(default_factory=list)
    resources: list[ResourceEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> CatalogData:
        self.triggers = _last_wins(self.triggers, "id")
        self.resources = _last_wins(self.resources, "id")
        self.databases = _last_wins(self.databases, "id")
        for db in self.databases:
            db.fields = _last_wins(db.fields, "name")
        return self


def default_catalog() -> CatalogData:
    """The catalog a sandbox starts with: one database whose fields the bundled notebooks and
    sample map, a resource per channel, and triggers of each kind (ids the tests do not use for
    imports: 101 inactive, 102 not an API-call trigger, 103 an SMS trigger).

    Example:
        >>> [(t.id, t.is_active, t.trigger_type) for t in default_catalog().triggers]
        [(96, True, 'api_call'), (101, False, 'api_call'), (102, True, 'subscription'), (103, True, 'api_call')]
    """
    fields: list[tuple[str, FieldType]] = [
        ("CRM_ID", "string"), ("orders", "int"), ("revenue", "float"), ("tags", "tags"),
        ("last_order", "date"), ("last_order_at", "date"), ("opt_in", "bool"), ("loyalty_tier", "enum"),
        # the practice data's columns as the launch form proposes them (guess_fields): crm_id, email_opt_in
        ("crm_id", "string"), ("email_opt_in", "bool"),
    ]  # fmt: skip
    return CatalogData(
        databases=[
            DatabaseEntry(id=1, name="Customers", fields=[FieldEntry(name=n, type=t) for n, t in fields]),
            DatabaseEntry(id=2, name="Partners"),
        ],
        resources=[
            ResourceEntry(id=21, name="Newsletter", channels=[Channel.EMAIL], dbs_ids=[1]),
            ResourceEntry(id=20, name="SMS notices", channels=[Channel.SMS], dbs_ids=[1]),
            ResourceEntry(id=3, name="Mobile app", channels=[Channel.PUSH], dbs_ids=[1]),
            ResourceEntry(id=22, name="Partner mail", channels=[Channel.EMAIL, Channel.SMS], dbs_ids=[2]),
        ],
        triggers=[
            TriggerEntry(id=96, name="Registration welcome", list_id=1, resource_id=21),
            TriggerEntry(id=101, name="Spring promo (paused)", is_active=False, list_id=1, resource_id=21),
            TriggerEntry(
                id=102, name="On new subscription", trigger_type="subscription", list_id=1, resource_id=21
            ),
            TriggerEntry(
                id=103, name="Order shipped (SMS)", list_id=1, resource_id=20, send_channel=Channel.SMS
            ),
        ],
    )


def load_catalog(document: Any, source: str = "the catalog") -> CatalogData:
    """Check a catalog document (parsed JSON); a :class:`CatalogError` names what is wrong.

    Example:
        >>> load_catalog({"triggers": [{"id": 5, "name": "x", "list_id": "9", "resource_id": 1}]}, "c.json")
        Traceback (most recent call last):
        ...
        toolkit.sandbox.catalog.CatalogError: c.json: triggers.0.list_id: must be an integer
    """
    try:
        return CatalogData.model_validate(document)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(map(str, error["loc"]))
            text = error["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {text}" if where else text)
        raise CatalogError(f"{source}: {'; '.join(problems)}") from None


class Catalog:
    """The catalog of one sandbox, shared by the request threads (one lock).

    ``strict``: an unknown trigger id is refused (404) instead of registered.
    """

    def __init__(self, data: CatalogData, *, strict: bool = False) -> None:
        self.strict = strict
        self._initial = data
        self._data = data.model_copy(deep=True)
        self._lock = threading.Lock()

    # --- editing ---------------------------------------------------------------------------
    def document(self) -> dict[str, Any]:
        """The catalog as its JSON document (what ``GET /_sandbox/catalog`` answers)."""
        with self._lock:
            return self._data.model_dump(mode="json")

    def replace(self, data: CatalogData) -> None:
        """Serve ``data`` from now on (``PUT /_sandbox/catalog``)."""
        with self._lock:
            self._data = data.model_copy(deep=True)

    def reset(self) -> None:
        """Back to the catalog the sandbox started with (registered triggers forgotten)."""
        self.replace(self._initial)

    # --- triggers --------------------------------------------------------------------------
    def _register(self, trigger_id: int) -> TriggerEntry:
        data = self._data
        database = data.databases[0].id if data.databases else 1
        resource = next((r for r in data.resources if database in r.dbs_ids), None)
        channel = resource.channels[0] if resource and resource.channels else Channel.EMAIL
        entry = TriggerEntry(
            id=trigger_id,
            name=f"API trigger {trigger_id} (registered by the sandbox on first use)",
            list_id=database,
            resource_id=resource.id if resource else 1,
            send_channel=channel,
        )
        data.triggers.append(entry)
        return entry

    def _find_trigger(self, trigger_id: int) -> TriggerEntry:
        """The trigger, registered first when unknown (404 when strict); holds the lock."""
        found = next((t for t in self._data.triggers if t.id == trigger_id), None)
        if found is not None:
            return found
        if self.strict:
            raise ApiFailure(404, f"trigger campaign {trigger_id} not found")
        return self._register(trigger_id)

    def trigger(self, trigger_id: int) -> dict[str, Any]:
        """``campaigns/triggers/get``'s ``data`` (V: the fields of the docs' example)."""
        with self._lock:
            t = self._find_trigger(trigger_id)
            return {
                "id": t.id,
                "name": t.name,
                "is_active": t.is_active,
                "trigger_type": t.trigger_type,
                "list_id": t.list_id,
                "resource_id": t.resource_id,
                "send_channel": str(t.send_channel),
                "skip_minutes": 0,
                "for_confirm": False,
                "content": [],
            }

    def check_startable(self, trigger_id: int) -> None:
        """Raise unless an import may start this trigger: it exists (or is registered now), is
        active and is started by an API call (A: the platform's answer is not documented; 404
        here, with the reason in ``error_text``)."""
        with self._lock:
            t = self._find_trigger(trigger_id)
        if not t.is_active:
            raise ApiFailure(404, f"trigger campaign {t.id} is not active: activate it, or start another")
        if t.trigger_type != API_CALL:
            raise ApiFailure(
                404,
                f"trigger campaign {t.id} is of type {t.trigger_type!r}: only an {API_CALL!r} trigger "
                "is started by an API call",
            )

    def triggers(self, *, active_only: bool) -> list[dict[str, Any]]:
        """``campaigns/triggers/list``'s items, by id (V: ``type``, not ``trigger_type``, here)."""
        with self._lock:
            return [
                {
                    "id": t.id,
                    "name": t.name,
                    "type": t.trigger_type,
                    "is_active": t.is_active,
                    "for_confirm": False,
                    "ui_tags": [],
                    "groups": [dict(_MAIN_GROUP)],
                }
                for t in sorted(self._data.triggers, key=lambda t: t.id)
                if t.is_active or not active_only
            ]

    # --- databases -------------------------------------------------------------------------
    def databases(self) -> list[dict[str, Any]]:
        """``databases/list``'s items, by id (V: the docs' example spells ``Groups``, ``Id``, ``Name``)."""
        with self._lock:
            return [
                {"id": db.id, "name": db.name, "ui_tags": [], "Groups": [{"Id": 0, "Name": "main"}]}
                for db in sorted(self._data.databases, key=lambda db: db.id)
            ]

    def fields(self, database_id: int) -> list[dict[str, Any]]:
        """``databases/fields``'s items (A): the system fields, then the database's own."""
        with self._lock:
            db = next((db for db in self._data.databases if db.id == database_id), None)
            if db is None:
                raise ApiFailure(404, f"database {database_id} not found")
            custom = [{"name": f.name, "type": f.type, "is_system": False} for f in db.fields]
        system = [{"name": name, "type": "string", "is_system": True} for name in sorted(SYSTEM_FIELDS)]
        return system + custom

    # --- resources -------------------------------------------------------------------------
    def resources(self) -> list[dict[str, Any]]:
        """``resources/list``'s items, by id (V: no channels here; ``resources/get`` has them)."""
        with self._lock:
            return [
                {"id": r.id, "name": r.name, "groups": [dict(_MAIN_GROUP)]}
                for r in sorted(self._data.resources, key=lambda r: r.id)
            ]

    def resource(self, resource_id: int) -> dict[str, Any]:
        """``resources/get``'s ``data`` (V: channels and the databases it serves)."""
        with self._lock:
            r = next((r for r in self._data.resources if r.id == resource_id), None)
            if r is None:
                raise ApiFailure(404, f"resource {resource_id} not found")
            return {
                "id": r.id,
                "name": r.name,
                "channels": [str(c) for c in r.channels],
                "dbs_ids": list(r.dbs_ids),
                "trk_domain": "",
                "url": "",
            }
