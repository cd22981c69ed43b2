"""Reading the caller's files: the I/O that :mod:`toolkit.core` leaves out.

The core turns values into bodies and never opens a file; what comes from disk is read here
and handed to it as values.

* :func:`~toolkit.io.attachments.read_attachment`: a file -> :class:`toolkit.Attachment`,
  its size checked before it is read.
* :func:`~toolkit.io.segments.read_segment`: a segment file (CSV/TSV in any common encoding,
  Excel, Parquet, JSON lines) or its bytes -> a typed pandas or polars frame.

Depends on :mod:`toolkit.core` only.
"""

from toolkit.io.attachments import read_attachment
from toolkit.io.segments import SegmentFile, load_segment, read_segment

__all__ = ["SegmentFile", "load_segment", "read_attachment", "read_segment"]
