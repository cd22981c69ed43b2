"""toolkit.io.read_attachment: files become attachments, refused by size before being read."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

import toolkit
from toolkit.core.contract import MAX_FILE_BYTES
from toolkit.errors import InvalidArgumentError
from toolkit.io import read_attachment


def test_a_file_becomes_the_attachment_its_bytes_make(tmp_path: Path) -> None:
    """Reading a file gives exactly the attachment its bytes would, named after the file."""
    path = tmp_path / "report.csv"
    path.write_bytes(b"a,b\n1,2\n")
    attachment = read_attachment(path)
    assert attachment == toolkit.Attachment.from_bytes("report.csv", b"a,b\n1,2\n")
    assert (attachment.mime, attachment.size) == ("text/csv", 8)
    assert attachment.data_uri == "data:text/csv;base64," + base64.b64encode(b"a,b\n1,2\n").decode()
    assert read_attachment(str(path)) == attachment


def test_name_and_mime_can_be_given(tmp_path: Path) -> None:
    """The recipient sees the given name; the given media type wins over the guess."""
    path = tmp_path / "export-2024.tmp"
    path.write_bytes(b"x")
    attachment = read_attachment(path, name="prices.csv", mime="text/plain")
    assert (attachment.name, attachment.mime) == ("prices.csv", "text/plain")


def test_a_file_over_the_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """A sparse file one byte over 100 MiB is refused from its size alone (nothing is allocated)."""
    path = tmp_path / "huge.bin"
    with path.open("wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)  # sparse: no 100 MiB on disk
    with pytest.raises(InvalidArgumentError, match=r"'huge\.bin' is 104,857,601 bytes.*file limit"):
        read_attachment(path)


def test_missing_unreadable_and_folder_paths_are_named(tmp_path: Path) -> None:
    """Each bad path gives a ToolkitError naming it, never a raw OSError."""
    with pytest.raises(InvalidArgumentError, match=r"missing\.txt' is not a file"):
        read_attachment(tmp_path / "missing.txt")
    with pytest.raises(InvalidArgumentError, match="is not a file"):
        read_attachment(tmp_path)
    note = tmp_path / "note.txt"
    note.write_bytes(b"hi")
    with pytest.raises(InvalidArgumentError, match=r"note\.txt/inner' cannot be read: Not a directory"):
        read_attachment(note / "inner")


def test_attachments_read_from_files_go_into_every_body(tmp_path: Path) -> None:
    """A trigger built with a read file carries it in each request body."""
    path = tmp_path / "a.txt"
    path.write_bytes(b"hi")
    segment = toolkit.sample_customers(20, kind="polars")
    trigger = toolkit.Trigger(96, attach=[read_attachment(path)])
    planned = toolkit.plan(segment, toolkit.Mapping({"email": "email"}), trigger, max_rows=5)
    assert len(planned.batches) > 1
    for batch in planned.batches:
        assert b'"attach":[{"data":"data:text/plain;base64,aGk=","name":"a.txt"}]' in batch.body
