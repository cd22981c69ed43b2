"""Reading the files analysts have: segments (CSV, Excel, Parquet, JSON lines) as frames.

This is the toolkit's I/O edge: ``toolkit.core`` never reads a file.
"""

from toolkit.io.segments import SegmentFile, load_segment, read_segment

__all__ = ["SegmentFile", "load_segment", "read_segment"]
