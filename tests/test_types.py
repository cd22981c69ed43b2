"""The package's types as a user's type checker sees them (mypy, configured in pyproject.toml)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mypy import api

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_kind_picks_the_frame_type_a_type_checker_sees(tmp_path: Path) -> None:
    """sample_customers, read_segment and Client.history return pd.DataFrame or pl.DataFrame
    to mypy as their kind= says (tests/typed_usage.py), not Any."""
    broken = tmp_path / "wrong_kind.py"
    broken.write_text(
        "from typing import assert_type\nimport pandas as pd\nfrom toolkit import sample_customers\n"
        "assert_type(sample_customers(3, kind='polars'), pd.DataFrame)\n"
    )
    out, err, exit_status = api.run(
        [
            "--config-file", str(ROOT / "pyproject.toml"),
            "--cache-dir", str(ROOT / ".mypy_cache"),
            str(ROOT / "tests" / "typed_usage.py"),
            str(broken),
        ]
    )  # fmt: skip
    # the usage file checks clean; the one that expects pandas from kind="polars" is refused
    problems = [line for line in out.splitlines() if ": error:" in line]
    assert [p for p in problems if "typed_usage.py" in p] == [], out + err
    assert (
        exit_status == 1
        and len(problems) == 1
        and "wrong_kind.py:4" in problems[0]
        and "assert-type" in problems[0]
    ), out
