"""Files as email attachments: checked against the platform's file limit before being read.

Example:
    >>> import pathlib, tempfile
    >>> report = pathlib.Path(tempfile.mkdtemp()) / "report.csv"
    >>> report.write_bytes(b"a,b\\n1,2\\n")
    8
    >>> read_attachment(report)
    Attachment(name='report.csv', mime='text/csv', size=8)
    >>> import toolkit
    >>> toolkit.Trigger(96, attach=[read_attachment(report)]).attach[0].name
    'report.csv'
"""

from __future__ import annotations

import os
from pathlib import Path

from toolkit.core.mapping import Attachment, check_attachment_size
from toolkit.errors import InvalidArgumentError

__all__ = ["read_attachment"]


def read_attachment(
    path: str | os.PathLike[str], *, name: str | None = None, mime: str | None = None
) -> Attachment:
    """Read a file as an :class:`~toolkit.Attachment` for ``Trigger(attach=[...])``.

    The file's size is checked against the platform's limit (100 MiB) before a byte is read,
    so a file too big is refused at once, without loading it.

    Args:
        path: the file.
        name: the name the recipient sees (default: the file's own name).
        mime: the media type (default: guessed from ``name``, else ``application/octet-stream``).

    Raises:
        InvalidArgumentError: the path is missing, not a file, unreadable, or over the limit;
            the message names the file.
    """
    file = Path(path)
    shown = name or file.name
    try:
        size = file.stat().st_size
    except FileNotFoundError:
        raise InvalidArgumentError(f"attachment {str(file)!r} is not a file (it does not exist)") from None
    except OSError as exc:
        raise InvalidArgumentError(f"attachment {str(file)!r} cannot be read: {exc.strerror}") from None
    if not file.is_file():
        raise InvalidArgumentError(f"attachment {str(file)!r} is not a file")
    check_attachment_size(shown, size)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise InvalidArgumentError(f"attachment {str(file)!r} cannot be read: {exc.strerror}") from None
    return Attachment.from_bytes(shown, data, mime)
