"""The benchmark pages and the README's headline table are generated, not typed: they
equal what ``benchmarks/report.py`` makes of the committed benchmark output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # trains models or runs subprocesses; CI runs it

ROOT = Path(__file__).resolve().parents[1]


def test_pages_match_the_benchmark_output():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "report.py"), "--check"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_table_has_its_floor_and_scvi():
    text = (ROOT / "docs" / "benchmarks" / "fidelity.md").read_text()
    sections = text.split("\n## ")[1:]
    assert sections
    for section in sections:
        assert "real vs real (floor)" in section and "scVI" in section, section[:80]
