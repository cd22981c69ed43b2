"""The README stays true: its Python runs as written, its shell commands exist and parse."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from toolkit.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, flags=re.DOTALL)


def blocks(language: str) -> list[str]:
    return [body for lang, body in BLOCKS if lang == language]


def shell_commands() -> list[str]:
    """Each shell command of the README (continuation lines joined, comments dropped)."""
    commands = []
    for body in blocks("bash"):
        for command in body.replace("\\\n", " ").splitlines():
            command = command.split("#", 1)[0].strip()
            if command:
                commands.append(command)
    return commands


def test_the_readme_has_python_and_shell_examples() -> None:
    """The checks below have something to check: an "In code" block and the shell commands."""
    assert any("toolkit.sandbox.serve()" in body for body in blocks("python"))
    assert any(c.startswith("toolkit launch") for c in shell_commands())


def test_the_python_examples_run_as_written_on_a_fresh_clone(tmp_path: Path) -> None:
    """Every python block, in order, in a fresh interpreter with no TOOLKIT_* variable set (a fresh
    clone), in an empty folder: it must finish without an error."""
    script = tmp_path / "readme_examples.py"
    script.write_text("\n\n".join(blocks("python")))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLKIT_")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "imported" in done.stdout  # the launch's results were read back


@pytest.mark.parametrize("command", shell_commands())
def test_each_shell_command_exists_and_parses(command: str) -> None:
    """`toolkit ...` lines parse with the real parser; `make X` targets exist in the Makefile."""
    words = shlex.split(command.split("|", 1)[0])
    if words[0] == "make":
        assert re.search(rf"^{re.escape(words[1])}:", (ROOT / "Makefile").read_text(), flags=re.MULTILINE)
        return
    assert words[0] == "toolkit", command
    try:
        args = build_parser().parse_args(words[1:])
    except SystemExit as exc:  # argparse refused it
        pytest.fail(f"`{command}` does not parse (exit {exc.code})")
    assert callable(args.func)
