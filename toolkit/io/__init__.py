"""Reading the caller's files: the I/O that :mod:`toolkit.core` leaves out.

The core turns values into bodies and never opens a file; what comes from disk is read here
and handed to it as values.

* :func:`~toolkit.io.attachments.read_attachment`: a file -> :class:`toolkit.Attachment`,
  its size checked before it is read.

Depends on :mod:`toolkit.core` only.
"""

from toolkit.io.attachments import read_attachment

__all__ = ["read_attachment"]
