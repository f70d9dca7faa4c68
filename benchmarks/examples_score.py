"""How do models do on real recordings from outside ESC-50? Top-1 on the bundled `examples/`.

The test folds say how a model does on ESC-50's own recordings. The eight clips in
`examples/` come from other sources (game and education sound sets; see examples/README.md),
so they have other microphones, levels and editing. Each file is named CLASS-what.ext, and its
ESC-50 class is the part before the first "-". Every model here classifies each file as
`audiocnn predict` does (windows, then the mean over them), and counts its top-1 hits.

Eight clips are few: one clip is 12.5 points. Read the per-clip hits over the 5 fold models of
a variant, not one model's score, or score the 38 recordings of `real_world_set.py` with
--examples.

    .venv/bin/python benchmarks/examples_score.py runs/study-esc50/base runs/study-esc50/none \\
        --json benchmarks/results/examples_study.json
    .venv/bin/python benchmarks/examples_score.py --bundle src/audiocnn/bundled/esc50-mobilenetv2
    .venv/bin/python benchmarks/examples_score.py --examples runs/real-world runs/esc50-cpu-v2
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from audiocnn import bundle
from audiocnn.audio import audio_files
from audiocnn.inference.options import PredictOptions
from audiocnn.inference.predictor import Predictor

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def true_label(path: Path) -> str:
    return path.name.split("-", 1)[0]


def score_model(model_dir: Path, files: list[Path]) -> dict[str, str]:
    """File name -> the model's top-1 label for the whole file."""
    model = bundle.load(model_dir)
    predictor = Predictor(model, PredictOptions(runtime="torch"))  # many models, each used once: no ONNX export
    top1 = {}
    for path in files:
        result = predictor.predict(path)
        top1[path.name] = result.labels[int(np.argmax(result.summary))]
    return top1


def score_run(run: Path, files: list[Path]) -> dict:
    """Every foldK/model of a cv or study run folder."""
    folds = {}
    for model_dir in sorted(run.glob("fold*/model")):
        folds[model_dir.parent.name] = score_model(model_dir, files)
    if not folds:
        raise SystemExit(f"{run}: no foldK/model folders")
    return summarise(folds, files)


def summarise(models: dict[str, dict[str, str]], files: list[Path]) -> dict:
    hits = {name: sum(top[p.name] == true_label(p) for p in files) for name, top in models.items()}
    per_file = {p.name: sum(top[p.name] == true_label(p) for top in models.values()) for p in files}
    return {"models": len(models), "files": len(files), "hits_per_model": hits,
            "mean_top1": float(np.mean(list(hits.values())) / len(files)),
            "hits_per_file": per_file, "predictions": models}


def print_tables(results: dict, files: list[Path]) -> None:
    """One row per model; the per-file hits as columns for a few files, else as rows."""
    if len(files) <= 12:
        short = {p.name: true_label(p)[:8] for p in files}
        print("| model | top-1 on examples | " + " | ".join(short.values()) + " |")
        print("|---|---:|" + "---:|" * len(files))
        for name, r in results.items():
            cells = " | ".join(f"{r['hits_per_file'][p.name]}/{r['models']}" for p in files)
            print(f"| {name} | {r['mean_top1']:.1%} | {cells} |")
        return
    print("| model | models | top-1 on examples |\n|---|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['models']} | {r['mean_top1']:.1%} |")
    names = list(results)
    print("\n| file | " + " | ".join(Path(name).name for name in names) + " |")
    print("|---|" + "---|" * len(names))
    for p in files:
        cells = []
        for name in names:
            r = results[name]
            calls = sorted({top[p.name] for top in r["predictions"].values()} - {true_label(p)})
            wrong = f" (else {', '.join(calls)})" if calls else ""
            cells.append(f"{r['hits_per_file'][p.name]}/{r['models']}{wrong}")
        print(f"| {p.name} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="*", type=Path, help="cv/study variant folders with foldK/model")
    parser.add_argument("--bundle", type=Path, action="append", default=[], help="a single model bundle")
    parser.add_argument("--examples", type=Path, default=EXAMPLES, help="folder of CLASS-name.ext recordings")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    files = audio_files(args.examples)
    started = time.time()
    results = {str(run): score_run(run, files) for run in args.runs}
    results |= {str(b): summarise({b.name: score_model(b, files)}, files) for b in args.bundle}
    print_tables(results, files)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": platform.processor() or platform.machine(),
                                         "date": time.strftime("%Y-%m-%d"), "seconds": round(time.time() - started, 1),
                                         "examples": [p.name for p in files], "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
