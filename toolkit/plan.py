"""plan(): a segment becomes batches of request bodies under the platform's limits."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from toolkit.contract import Format

__all__ = ["Batch"]


@dataclass(frozen=True, eq=False)
class Batch:
    """One request body: the exact bytes sent (without the token) and the rows it holds.

    Example:
        >>> b = Batch(index=0, body=b'{"data":[]}', rows=(3, 5), keys=("a@x.io", "b@x.io"), format="json")
        >>> len(b), b.content_type, b.digest[:12]
        (2, 'application/json', '8fe32e407a10')
    """

    index: int
    body: bytes = field(repr=False)
    rows: tuple[int, ...] = field(repr=False)
    keys: tuple[str, ...] = field(repr=False)
    format: Format = "json"

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def content_type(self) -> str:
        return "application/xml" if self.format == "xml" else "application/json"

    @property
    def digest(self) -> str:
        """sha256 of the body: the batch's identity in the journal."""
        return hashlib.sha256(self.body).hexdigest()

    def __repr__(self) -> str:
        return f"Batch(index={self.index}, rows={len(self)}, bytes={len(self.body):,}, format={self.format!r})"
