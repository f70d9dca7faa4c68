"""The study's committed numbers come from its committed per-fold results.

`docs/study-esc50/` holds each finished study's generated report next to the per-fold
archive (`runs/`) it was made from. Restoring the archive and rebuilding the reports must give
the same tables, so no figure in the docs can drift from the folds behind it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "study-esc50"
REPORTS = sorted(DOCS.glob("esc50-*.md"))
pytestmark = pytest.mark.slow  # restores the archive and rebuilds every study report
_spec = importlib.util.spec_from_file_location("study_archive", ROOT / "benchmarks" / "study_archive.py")
study_archive = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(study_archive)


@pytest.fixture(scope="module")
def restored(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("study")
    assert study_archive.restore(DOCS / "runs", out) > 0  # folds restored
    return out


def test_the_docs_hold_at_least_the_augmentation_study():
    assert "esc50-augmentation.md" in [p.name for p in REPORTS]


@pytest.mark.parametrize("report", REPORTS, ids=[p.stem for p in REPORTS])
def test_a_committed_study_report_is_rebuilt_exactly_from_the_archive(cli, restored, report):
    study = ROOT / "studies" / f"{report.stem}.yaml"
    result = cli("study", study, "--data-root", "../shared/data/esc50", "--out", restored, "--report-only")
    assert result.code == 0, result.err
    assert (restored / report.name).read_text() == report.read_text()
