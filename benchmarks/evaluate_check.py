"""`audiocnn evaluate` against an independent computation: DCASE's reference implementation (sed_eval) for
the event- and segment-based figures, scikit-learn for average precision and AUROC.

Annotated recordings are made here (seeded): 5-minute beds of a recorder's hiss with ESC-50 clips of
ten classes pasted at random places and gains, each recording beside the Raven table of what was
pasted where. The bundled model classifies them (`audiocnn predict --format scores`), and
`audiocnn evaluate` scores the table. The same estimated events (each class's windows at the
threshold, merged) and the same annotations go to sed_eval, run in its own environment: its toolbox,
dcase_util, imports `pkg_resources`, which the project's setuptools no longer ships, so it is not a
dependency of the project; make that environment once with

    python3 -m venv /tmp/sedenv && /tmp/sedenv/bin/pip install --no-deps sed_eval==0.2.1 dcase_util==0.2.20 \\
        six validators future

and give its Python with --sed-eval-python (it borrows numpy, scipy and soundfile from the project's
venv through PYTHONPATH). The bundled model was trained on all of ESC-50, so its figures here are
optimistic; what is checked is the scoring, not the model.

    .venv/bin/python benchmarks/evaluate_check.py --sed-eval-python /tmp/sedenv/bin/python \\
        --json benchmarks/results/evaluate/s20.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from sklearn.metrics import average_precision_score, roc_auc_score

from audiocnn import audio
from audiocnn.cli import main as audiocnn
from audiocnn.datasets.annotated import find_selections
from audiocnn.inference.evaluation import EvaluationOptions, _events, evaluate
from audiocnn.inference.scoring import active_segments, segment_scores
from audiocnn.inference.table_detections import table_detections
from audiocnn.inference.tables import read_result_table

sys.path.insert(0, str(Path(__file__).parent))
from records import publish  # noqa: E402 - a sibling benchmark module

RATE, LENGTH_S = 16_000, 300
CLASSES = ["dog", "rooster", "cow", "cat", "crow", "rain", "chainsaw", "church_bells", "siren", "thunderstorm"]

SED_EVAL = """
import json, sys
import dcase_util, sed_eval
data = json.load(open(sys.argv[1]))
def container(events):
    return dcase_util.containers.MetaDataContainer([
        {"filename": e[0], "event_label": e[1], "onset": e[2], "offset": e[3]} for e in events])
ref, est = container(data["reference"]), container(data["estimated"])
events = sed_eval.sound_event.EventBasedMetrics(event_label_list=data["classes"], t_collar=data["collar"],
                                                percentage_of_length=0.5, evaluate_onset=True, evaluate_offset=False)
segments = sed_eval.sound_event.SegmentBasedMetrics(event_label_list=data["classes"], time_resolution=data["segment"])
for name in sorted({e[0] for e in data["reference"]} | {e[0] for e in data["estimated"]}):
    r, e = ref.filter(filename=name), est.filter(filename=name)
    events.evaluate(r, e)
    segments.evaluate(r, e)
out = {}
for kind, metrics in (("event", events), ("segment", segments)):
    per = metrics.results_class_wise_metrics()
    out[kind] = {label: per[label]["f_measure"]["f_measure"] for label in data["classes"]}
json.dump(out, sys.stdout)
"""


def make(folder: Path, esc50: Path, recordings: int, seed: int) -> None:
    """Annotated recordings: ESC-50 clips of CLASSES over hiss, with their Raven tables."""
    with (esc50 / "meta" / "esc50.csv").open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["category"] in CLASSES]
    rng = np.random.default_rng(seed)
    for n in range(recordings):
        wave = (10 ** (-50 / 20) * rng.standard_normal(RATE * LENGTH_S)).astype(np.float32)
        lines = ["Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\tAnnotation"]
        at = 2.0
        while at < LENGTH_S - 10:
            row = rows[int(rng.integers(len(rows)))]
            sound = audio.load(esc50 / "audio" / row["filename"], RATE)
            start = int(at * RATE)
            wave[start: start + len(sound)] += sound * 10 ** (rng.uniform(-12, 0) / 20)
            lines.append(f"{len(lines)}\tSpectrogram 1\t1\t{at:.3f}\t{at + len(sound) / RATE:.3f}\t0\t8000\t"
                         f"{row['category']}")
            at += len(sound) / RATE + float(rng.uniform(3, 20))
        sf.write(folder / f"site{n:02d}.wav", np.clip(wave, -1, 1), RATE, subtype="PCM_16")
        (folder / f"site{n:02d}.Table.1.selections.txt").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--esc50", type=Path, default=Path("../shared/data/esc50"))
    parser.add_argument("--recordings", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sed-eval-python", type=Path, required=True)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    options = EvaluationOptions(threshold=0.5, segment=1.0)  # the collar: evaluate's default
    with tempfile.TemporaryDirectory(prefix="audiocnn-evaluate-") as work:
        work = Path(work)
        make(work, args.esc50, args.recordings, args.seed)
        table = work / "results.audiocnn.scores.csv"
        assert audiocnn(["predict", str(work), "--format", "scores", "--out", str(table), "--no-progress"]) == 0
        ours = evaluate([table], work, options)
        options = ours.options  # with the collar evaluate chose (half the window)
        # the same inputs, for the independent computations
        selections, _ = find_selections(work)
        windows: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
        for entry in table_detections(read_result_table(table), top_k=1000):
            d = entry.detection
            windows.setdefault((Path(entry.recording).name, d.label), []).append((d.start, d.end, d.confidence or 0.0))
        names = sorted({s.recording.name for s in selections})
        reference = [[s.recording.name, s.label, s.begin_s, s.end_s] for s in selections]
        estimated = [[name, label, a, b] for name in names for label in CLASSES
                     for a, b in _events([(s, e) for s, e, p in windows.get((name, label), []) if p >= options.threshold])]
        events = work / "events.json"
        events.write_text(json.dumps({"reference": reference, "estimated": estimated, "classes": CLASSES,
                                      "collar": options.collar, "segment": options.segment}))
        env = {**os.environ, "PYTHONPATH": str(Path(sys.prefix) / "lib" / f"python{sys.version_info.major}."
                                                  f"{sys.version_info.minor}" / "site-packages")}
        theirs = json.loads(subprocess.run([str(args.sed_eval_python), "-c", SED_EVAL, str(events)], env=env,
                                           capture_output=True, text=True, check=True).stdout)
        sklearn: dict[str, dict[str, float]] = {}
        for label in CLASSES:
            truth, scores = [], []
            for name in names:
                length = audio.info(work / name).duration
                truth.append(active_segments([(s.begin_s, s.end_s) for s in selections
                                              if s.recording.name == name and s.label == label], length, 1.0))
                scores.append(segment_scores(windows.get((name, label), []), length, 1.0))
            t, sc = np.concatenate(truth), np.concatenate(scores)
            if t.any() and not t.all():
                sklearn[label] = {"ap": float(average_precision_score(t, sc)), "auroc": float(roc_auc_score(t, sc))}
    rows = []
    for label in CLASSES:
        if label not in ours.classes:
            continue
        mine = ours.classes[label]
        rows.append({"class": label, "events": mine["annotated_events"],
                     "event_f1": mine["event"]["f1"] or 0.0, "sed_eval_event_f1": theirs["event"][label],
                     "segment_f1": mine["segment"]["f1"] or 0.0, "sed_eval_segment_f1": theirs["segment"][label],
                     "ap": mine["average_precision"], "sklearn_ap": sklearn.get(label, {}).get("ap"),
                     "auroc": mine["auroc"], "sklearn_auroc": sklearn.get(label, {}).get("auroc")})
    worst = max(np.nanmax([abs(r["event_f1"] - r["sed_eval_event_f1"]), abs(r["segment_f1"] - r["sed_eval_segment_f1"]),
                           abs((r["ap"] or 0) - (r["sklearn_ap"] or 0)), abs((r["auroc"] or 0) - (r["sklearn_auroc"] or 0))])
                for r in rows)
    record = {"date": time.strftime("%Y-%m-%d"), "recordings": args.recordings, "seconds_each": LENGTH_S,
              "options": options.__dict__, "classes": rows, "largest_difference": worst,
              "command": " ".join(sys.argv)}
    publish(record, args.json)


if __name__ == "__main__":
    main()
