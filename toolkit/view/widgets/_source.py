"""Where the form's segment comes from: the segments given in code (the bundled sample among
them, labelled "practice data (sandbox only)") or a file the user chooses (CSV, TSV, Excel,
Parquet), read by :func:`~toolkit.io.segments.load_segment`.

The choices of how to read a file (encoding, separator, sheet) stay hidden while detection is
sure of itself, and appear when the file could not be read or its encoding had to be guessed.

Example:
    >>> import toolkit
    >>> source = SegmentSource({"spring": toolkit.sample_customers(20)})
    >>> list(source.choice.options)
    ['spring · practice data (sandbox only)']
    >>> source.load_file("people.csv", "email;Имя\\nann@x.io;Анна\\n".encode("cp1251"))
    >>> source.choice.value, source.frame.shape
    ('people.csv', (1, 2))
    >>> source.read_options.layout.display  # cp1251 was a guess: the choices are shown
    'flex'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

import ipywidgets as widgets
import narwhals.stable.v2 as nw

from toolkit.core.sample import is_sample
from toolkit.errors import ToolkitError
from toolkit.io.segments import SegmentFile, load_segment
from toolkit.view.widgets._html import CSS_CLASSES, STYLE, esc, fit, help_line, message, wrapping_row

__all__ = ["ACCEPTED", "PRACTICE", "SegmentSource"]

#: The files the upload control offers (what ``read_segment`` reads).
ACCEPTED: Final = ".csv,.tsv,.txt,.xlsx,.xlsm,.xls,.ods,.parquet,.pq"
#: The words after a segment of made-up people (the bundled sample).
PRACTICE: Final = "practice data (sandbox only)"
_DETECT: Final = "detect"
_ENCODINGS: Final = (("Detect automatically", _DETECT), ("UTF-8", "utf-8"), ("Windows Cyrillic (cp1251)", "cp1251"),
                     ("KOI8-R", "koi8-r"), ("DOS Cyrillic (cp866)", "cp866"), ("UTF-16", "utf-16"),
                     ("Western European (cp1252)", "cp1252"))  # fmt: skip
_SEPARATORS: Final = (("Detect automatically", _DETECT), ("comma ,", ","), ("semicolon ;", ";"),
                      ("tab", "\t"), ("bar |", "|"))  # fmt: skip
_SURE_ENCODINGS: Final = frozenset({"utf-8", "utf-8-sig", "utf-16", "utf-32", "ascii"})
PREVIEW_ROWS: Final = 5


def _display(widget: widgets.Widget, shown: bool) -> None:
    widget.layout.display = "flex" if shown else "none"


class SegmentSource(widgets.VBox):
    """A picker of the segment: the named segments, plus any file chosen with the upload control.

    ``on_change()`` is called after the chosen segment changed (another one picked, a file read,
    a file read again with other choices). ``frame`` is the segment chosen now.
    """

    def __init__(self, frames: Mapping[str, Any], on_change: Callable[[], None] | None = None) -> None:
        super().__init__()
        self._on_change = on_change
        self._frames: dict[str, Any] = {}
        for name, frame in frames.items():
            self._frames[f"{name} · {PRACTICE}" if is_sample(frame) else str(name)] = frame
        self._file: tuple[str, bytes] | None = None
        self._loaded: SegmentFile | None = None
        self.choice = widgets.Dropdown(options=list(self._frames), description="Segment", style=STYLE,
                                       layout=fit("36em"))  # fmt: skip
        self.choice.add_class(CSS_CLASSES["segment"])
        self.upload = widgets.FileUpload(accept=ACCEPTED, multiple=False, description="Choose a file...")
        self.upload.add_class(CSS_CLASSES["upload"])
        self.encoding = widgets.Dropdown(options=_ENCODINGS, value=_DETECT, description="Text encoding",
                                         style=STYLE)  # fmt: skip
        self.separator = widgets.Dropdown(options=_SEPARATORS, value=_DETECT, description="Columns separated by",
                                          style=STYLE)  # fmt: skip
        self.sheet = widgets.Text(description="Sheet (name or number)", placeholder="the first", style=STYLE,
                                  continuous_update=False)  # fmt: skip
        self.read_options = widgets.VBox([
            help_line("If the letters or the columns below look wrong, say how the file is written:"),
            wrapping_row([self.encoding, self.separator, self.sheet]),
        ])  # fmt: skip
        self.read_options.add_class(CSS_CLASSES["read_options"])
        _display(self.read_options, False)
        self.info = widgets.HTML()
        self.info.add_class(CSS_CLASSES["data_info"])
        self.children = (
            wrapping_row([self.choice, self.upload]),
            help_line(
                "Pick a segment, or choose your own file: CSV or TSV (any encoding), Excel or Parquet."
            ),
            self.read_options,
            self.info,
        )
        self.upload.observe(self._uploaded, names="value")
        self.choice.observe(lambda _c: self._changed(), names="value")
        for w in (self.encoding, self.separator, self.sheet):
            w.observe(lambda _c: self._reread(), names="value")
        self._show_info()

    @property
    def frame(self) -> Any:
        """The segment chosen now (``None`` while a chosen file cannot be read)."""
        return self._frames.get(self.choice.value)

    @property
    def name(self) -> str:
        """The chosen segment's name (a file's name for a file)."""
        return str(self.choice.value or "")

    @property
    def columns(self) -> list[str]:
        frame = self.frame
        return [] if frame is None else [str(c) for c in nw.from_native(frame, eager_only=True).columns]

    @property
    def practice(self) -> bool:
        """True when the chosen segment is the bundled sample (made-up people)."""
        return self.frame is not None and is_sample(self.frame)

    def _uploaded(self, change: Any) -> None:
        files = change["new"]
        if not files:
            return
        first = files[0]
        self.encoding.value, self.separator.value, self.sheet.value = _DETECT, _DETECT, ""
        self.load_file(str(first["name"]), bytes(first["content"]))

    def load_file(self, name: str, data: bytes) -> None:
        """Read a chosen file (its name and bytes) and make it the segment."""
        self._file = (name, data)
        self._reread()

    def _reread(self) -> None:
        if self._file is None:
            return
        name, data = self._file
        kind = name.rsplit(".", 1)[-1].lower()
        excel = kind in ("xlsx", "xlsm", "xls", "ods")
        sheet: str | int | None = self.sheet.value.strip() or None
        if isinstance(sheet, str) and sheet.isdigit():
            sheet = int(sheet)
        try:
            loaded = load_segment(
                data,
                encoding=None if excel or self.encoding.value == _DETECT else self.encoding.value,
                separator=None if excel or self.separator.value == _DETECT else self.separator.value,
                sheet=sheet if excel else None,
            )
        except ToolkitError as exc:
            self._loaded = None
            self._frames[name] = None
            _display(self.read_options, True)
            problem = str(exc).replace("the data given", name)
            self._set_choice(name)
            self.info.value = message("error", f"{problem}. Try another encoding or separator below, "
                                               "or save the file again as CSV (UTF-8).")  # fmt: skip
            self._notify()
            return
        self._loaded = loaded
        self._frames[name] = loaded.frame
        unsure = loaded.format == "delimited" and (loaded.encoding or "") not in _SURE_ENCODINGS
        chosen_by_hand = self.encoding.value != _DETECT or self.separator.value != _DETECT or bool(sheet)
        _display(self.read_options, unsure or chosen_by_hand or excel)
        _display(self.encoding, loaded.format == "delimited")
        _display(self.separator, loaded.format == "delimited")
        _display(self.sheet, excel)
        self._set_choice(name)
        self._show_info()
        self._notify()

    def _set_choice(self, name: str) -> None:
        """Make ``name`` the chosen segment without telling twice."""
        notify, self._on_change = self._on_change, None
        try:
            if tuple(self.choice.options) != tuple(self._frames):
                self.choice.options = list(self._frames)
            self.choice.value = name
        finally:
            self._on_change = notify

    def _changed(self) -> None:
        self._show_info()
        self._notify()

    def _notify(self) -> None:
        if self._on_change is not None:
            self._on_change()

    def _show_info(self) -> None:
        """The chosen segment's row count, how it was read, and its first rows."""
        frame = self.frame
        if frame is None:
            return  # the error message stays
        data = nw.from_native(frame, eager_only=True)
        how = ""
        if self._loaded is not None and self.choice.value == (self._file or ("",))[0]:
            how = self._loaded.describe().split(": ", 1)[-1]
            how = how[how.find("(") :] if "(" in how else ""
        note = (
            f" <i>{esc(PRACTICE)}: made-up people, for trying the form on the sandbox</i>"
            if self.practice
            else ""
        )
        head = "".join(f"<th>{esc(c)}</th>" for c in data.columns)
        rows = "".join(
            "<tr>" + "".join(f"<td>{esc('' if v is None else v)}</td>" for v in row) + "</tr>"
            for row in data.head(PREVIEW_ROWS).rows()
        )
        self.info.value = (
            f"<div><b>{data.shape[0]:,} rows</b>, {data.shape[1]} columns {esc(how)}{note}</div>"
            f"<div style='overflow-x:auto;max-width:100%'><table class='toolkit-table'><thead><tr>{head}</tr>"
            f"</thead><tbody>{rows}</tbody></table></div>"
            f"<div class='toolkit-help'>The first {min(PREVIEW_ROWS, data.shape[0])} rows.</div>"
        )
