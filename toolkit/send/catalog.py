"""The platform's read-only catalog: trigger campaigns, databases and their fields, resources.

Each call is one idempotent POST through the client (retried like a status read) and is
read tolerantly into a small typed record; the raw answer is kept on it (``raw``). The
methods and shapes are in ``docs/CONTRACT.md`` ("Catalog (client)"), each fact marked V
(documented) or A (assumed).

=====================================  =============================  ====================================
call                                   method                         record
=====================================  =============================  ====================================
:func:`list_triggers`                  ``campaigns/triggers/list``    :class:`TriggerInfo` (no database)
:func:`get_trigger`                    ``campaigns/triggers/get``     :class:`TriggerInfo`
:func:`list_databases`                 ``databases/list``             :class:`DatabaseInfo`
:func:`database_fields`                ``databases/fields`` (A)       :class:`FieldInfo`
:func:`list_resources`                 ``resources/list``             :class:`ResourceInfo` (no channels)
:func:`get_resource`                   ``resources/get``              :class:`ResourceInfo`
=====================================  =============================  ====================================

Example:
    >>> TriggerInfo.from_answer({"id": 7, "name": "Welcome", "is_active": "true", "trigger_type": "api_call",
    ...                          "list_id": 20, "resource_id": 44, "send_channel": "email"})
    TriggerInfo(id=7, name='Welcome', is_active=True, trigger_type='api_call', list_id=20, resource_id=44, send_channel='email')
    >>> ResourceInfo.from_answer({"id": 1, "name": "Shop", "channels": ["email", "push"]}).channels
    ('email', 'push')
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from toolkit.core import contract

__all__ = [
    "API_CALL",
    "DatabaseInfo",
    "FieldInfo",
    "ResourceInfo",
    "TriggerInfo",
    "database_fields",
    "get_resource",
    "get_trigger",
    "list_databases",
    "list_resources",
    "list_triggers",
]

#: The trigger type the import methods start (``campaigns/triggers/get``: ``trigger_type``).
API_CALL = "api_call"
#: Items asked per page of a list call (the platform's default limit is 1000).
PAGE = 1000
#: Pages read at most (a million items): a platform that never says "last page" cannot loop forever.
MAX_PAGES = 1000


class Caller(Protocol):
    """What the catalog needs of a client: its one call (``Client.call``; its other keywords
    have defaults the catalog keeps)."""

    def call(self, path: str, body: bytes, *, idempotent: bool) -> dict[str, Any]: ...


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _bool(value: Any) -> bool | None:
    """A flag from JSON (true) or XML ("true"); ``None`` when the answer did not say."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    if isinstance(value, int):
        return bool(value)
    return None


def _text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


@dataclass(frozen=True)
class TriggerInfo:
    """A trigger campaign: whether it is active, its type, its database and resource."""

    id: int
    name: str | None = None
    is_active: bool | None = None
    #: ``api_call`` for the triggers the import methods start (the list calls it ``type``)
    trigger_type: str | None = None
    #: the database its profiles live in (``get`` only)
    list_id: int | None = None
    resource_id: int | None = None
    send_channel: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_answer(cls, item: Mapping[str, Any]) -> TriggerInfo:
        return cls(
            id=_int(item.get("id")) or 0,
            name=_text(item.get("name")),
            is_active=_bool(item.get("is_active")),
            trigger_type=_text(item.get("trigger_type", item.get("type"))),
            list_id=_int(item.get("list_id")),
            resource_id=_int(item.get("resource_id")),
            send_channel=_text(item.get("send_channel")),
            raw=dict(item),
        )

    @property
    def is_api_call(self) -> bool:
        """True when the platform says it is an API-call trigger (the only kind these methods start)."""
        return (self.trigger_type or "").strip().lower() == API_CALL


@dataclass(frozen=True)
class DatabaseInfo:
    """A database (the platform's ``list``) of profiles."""

    id: int
    name: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_answer(cls, item: Mapping[str, Any]) -> DatabaseInfo:
        return cls(id=_int(item.get("id")) or 0, name=_text(item.get("name")), raw=dict(item))


@dataclass(frozen=True)
class FieldInfo:
    """A profile field of a database: its name (as sent in a profile) and type."""

    name: str
    type: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class ResourceInfo:
    """A resource and the channels its subscriptions may use (``None``: not asked, or not said)."""

    id: int
    name: str | None = None
    channels: tuple[str, ...] | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_answer(cls, item: Mapping[str, Any]) -> ResourceInfo:
        channels = item.get("channels", item.get("channel"))
        if isinstance(channels, str):
            channels = [channels]
        return cls(
            id=_int(item.get("id")) or 0,
            name=_text(item.get("name")),
            channels=tuple(str(c) for c in channels) if isinstance(channels, list) else None,
            raw=dict(item),
        )


def _ask(client: Caller, path: str, **fields: Any) -> dict[str, Any]:
    return client.call(path, orjson.dumps(fields), idempotent=True)


def _data_object(answer: Mapping[str, Any]) -> Mapping[str, Any]:
    data = answer.get("data")
    return data if isinstance(data, Mapping) else {}


def _pages(client: Caller, path: str, make: Callable[[Mapping[str, Any]], Any]) -> list[Any]:
    """Every item of a list call, page by page (``from_id``, ``limit``; ``next_from_id`` when given)."""
    items: list[Any] = []
    from_id = 1
    for _ in range(MAX_PAGES):
        answer = _ask(client, path, from_id=from_id, limit=PAGE)
        data = answer.get("data")
        page = [x for x in (data if isinstance(data, list) else [data] if isinstance(data, Mapping) else [])
                if isinstance(x, Mapping)]  # fmt: skip
        items.extend(make(x) for x in page)
        following = _int(answer.get("next_from_id"))
        if following is None:
            ids = [i for i in (_int(x.get("id")) for x in page) if i is not None]
            following = max(ids) + 1 if ids else None
        if len(page) < PAGE or following is None or following <= from_id:
            break
        from_id = following
    return items


def list_triggers(client: Caller) -> list[TriggerInfo]:
    """Every trigger campaign the token may see (id, name, active, type).

    Example (needs a server)::

        [t.id for t in list_triggers(client) if t.is_active and t.is_api_call]
    """
    return _pages(client, contract.TRIGGERS_LIST_PATH, TriggerInfo.from_answer)


def get_trigger(client: Caller, trigger_id: int) -> TriggerInfo:
    """One trigger campaign, with its database (``list_id``), resource and channel.

    Example (needs a server)::

        get_trigger(client, 96).is_active
    """
    data = _data_object(_ask(client, contract.TRIGGER_GET_PATH, id=int(trigger_id)))
    return TriggerInfo.from_answer({"id": trigger_id, **data})


def list_databases(client: Caller) -> list[DatabaseInfo]:
    """Every database (id, name) the token may see.

    Example (needs a server)::

        {d.name: d.id for d in list_databases(client)}
    """
    return _pages(client, contract.DATABASES_LIST_PATH, DatabaseInfo.from_answer)


def database_fields(client: Caller, database_id: int) -> list[FieldInfo]:
    """The profile fields of a database.

    A: the answer's shape is not documented where we looked; a list of ``{name, type}``
    objects under ``data`` (or under ``data.fields``), or an object of name -> type, is read.

    Example (needs a server)::

        [f.name for f in database_fields(client, 20)]
    """
    answer = _ask(client, contract.DATABASE_FIELDS_PATH, id=int(database_id))
    data: Any = answer.get("data")
    if isinstance(data, Mapping) and isinstance(data.get("fields"), (list, Mapping)):
        data = data["fields"]
    if isinstance(data, Mapping):  # name -> type (or -> description)
        return [FieldInfo(str(k), _text(v) if not isinstance(v, Mapping) else _text(v.get("type")),
                          v if isinstance(v, Mapping) else {}) for k, v in data.items()]  # fmt: skip
    out = []
    for item in data if isinstance(data, list) else []:
        if isinstance(item, Mapping) and _text(item.get("name")):
            out.append(FieldInfo(str(item["name"]), _text(item.get("type")), dict(item)))
        elif isinstance(item, str):
            out.append(FieldInfo(item))
    return out


def list_resources(client: Caller) -> list[ResourceInfo]:
    """Every resource (id, name) the token may see; :func:`get_resource` tells its channels.

    Example (needs a server)::

        [r.id for r in list_resources(client)]
    """
    return _pages(client, contract.RESOURCES_LIST_PATH, ResourceInfo.from_answer)


def get_resource(client: Caller, resource_id: int) -> ResourceInfo:
    """One resource with its channels (``email``, ``sms``, ``push``, ...).

    Example (needs a server)::

        get_resource(client, 21).channels
    """
    data = _data_object(_ask(client, contract.RESOURCE_GET_PATH, id=int(resource_id)))
    return ResourceInfo.from_answer({"id": resource_id, **data})
