"""`audiocnn search` (issue 33): the windows of an `embed` table most like a query clip, found by cosine
similarity with the backbone that made the table; its hits are a Raven table that `segments` reads."""

from __future__ import annotations

import csv

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def index(tone_bundle, tones, tmp_path_factory):
    """The tone model's embeddings of every `tones` clip."""
    from audiocnn.cli import main

    out = tmp_path_factory.mktemp("index") / "tones.parquet"
    assert main(["embed", str(tones), "--model", str(tone_bundle), "--out", str(out), "--no-progress"]) == 0
    return out


def test_a_clip_finds_itself_first_and_its_own_kind_next(cli, index, tone_bundle, tones, tmp_path):
    query = tones / "high" / "high3.wav"
    done = cli("search", query, "--index", index, "--model", tone_bundle, "--top", "5", "--format", "csv",
               "--out", tmp_path / "hits.csv")
    assert done.code == 0, done.err
    with (tmp_path / "hits.csv").open(newline="") as handle:
        hits = list(csv.DictReader(handle))
    assert hits[0]["path"] == str(query) and float(hits[0]["similarity"]) > 0.999
    assert [h["rank"] for h in hits] == ["1", "2", "3", "4", "5"]
    assert sum("/high/" in h["path"] for h in hits) >= 4  # the model's features group a class together
    similarities = [float(h["similarity"]) for h in hits]
    assert similarities == sorted(similarities, reverse=True)
    others = cli("search", query, "--index", index, "--model", tone_bundle, "--exclude-self", "--format", "raven",
                 "--out", tmp_path / "hits.selections.txt")
    assert others.code == 0 and str(query) not in (tmp_path / "hits.selections.txt").read_text()
    # the hits go straight into review: segments reads the Raven table (similarity as confidence)
    cut = cli("segments", tmp_path / "hits.selections.txt", "--out", tmp_path / "review", "--per-label", "3")
    assert cut.code == 0, cut.err
    assert len(list((tmp_path / "review" / "high3").glob("*.wav"))) == 3


def test_a_bundles_table_needs_its_bundle_and_a_bad_index_is_one_error(cli, index, tones, tmp_path):
    query = tones / "low" / "low0.wav"
    missing = cli("search", query, "--index", index)
    assert missing.code != 0 and "embedded by 'bundle:model': give that bundle with --model" in missing.err
    (tmp_path / "no.parquet").write_bytes(b"PAR1 not really")
    broken = cli("search", query, "--index", tmp_path / "no.parquet")
    assert broken.code != 0 and "not an `audiocnn embed` table" in broken.err and "Traceback" not in broken.err
