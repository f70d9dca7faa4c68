"""`audiocnn explain` and `audiocnn explain-dataset`: attribution pictures from the command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from audiocnn.cli import common


def add_commands(commands: common.Commands) -> None:
    """Add `explain` (one recording) and `explain-dataset` (class profiles) to the command line."""
    from audiocnn.explain import BASELINES, DEFAULT_STEPS

    explain = commands.add_parser(
        "explain", parents=[common.model_option()],
        help="show which parts of a sound's spectrogram made the model decide",
        description="Integrated Gradients (captum; baseline: an average training spectrogram, or --baseline "
        "silence; Gauss-Legendre "
        f"steps, default {DEFAULT_STEPS}) and/or Grad-CAM (last feature map) of the predicted class, drawn over "
        "the spectrogram beside the top-5 probabilities. A file longer than the model's window is explained "
        "at its most confident window, or at --start.",
    )
    explain.add_argument("audio", type=Path, help="an audio file")
    explain.add_argument("--method", choices=("ig", "gradcam", "both"), default="both",
                         help="attribution method (default both)")
    explain.add_argument("--target", help="explain this label instead of the predicted one")
    explain.add_argument("--start", type=float, metavar="S", help="explain the window starting at S seconds")
    explain.add_argument("--baseline", choices=BASELINES, default="mean",
                         help="IG reference: mean (a flat image at the training mean level; default) or silence "
                         "(the clip's own floor; also credits background noise)")
    explain.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"IG integration steps (default {DEFAULT_STEPS})")
    explain.add_argument("--out", type=Path, metavar="PNG", help="figure path (default: AUDIO-STEM.explain.png here)")
    explain.add_argument("--npy", type=Path, metavar="FILE",
                         help="also save the attributions (channels × rows × frames; one array per method in a .npz)")
    explain.set_defaults(handler=_explain)

    dataset = commands.add_parser(
        "explain-dataset",
        parents=[common.model_option(required=True, what="a model bundle that never trained on fold K: "
                                     "RUN/foldK/model from `audiocnn cv`, or one from `audiocnn train --test-fold K`"),
                 common.data_root_option("dataset folder (of the dataset and folds the model's recipe names)"),
                 common.cache_option(), common.progress_option()],
        help="average attributions over a test fold: which frequencies each class is recognised by",
        description="For every clip of test fold K, the attribution of its true class; averaged per class into "
        "one figure per class (out/classes/), a grid of all classes (out/grid.png), profiles.csv and "
        "attributions.npz. Use a model that never saw the fold, e.g. RUN/foldK/model from `audiocnn cv`.",
    )
    dataset.add_argument("--fold", type=int, required=True, help="test fold to explain")
    dataset.add_argument("--method", choices=("ig", "gradcam"), default="ig", help="attribution method (default ig)")
    dataset.add_argument("--steps", type=int, help="IG steps (default 32: class means average out the rest)")
    dataset.add_argument("--out", type=Path, required=True, help="output folder")
    dataset.set_defaults(handler=_explain_dataset)


def _explain(args: argparse.Namespace) -> int:
    import numpy as np

    from audiocnn.explain import METHODS, explain
    from audiocnn.viz.explanations import save_explanation

    model = common.load_model(args.model)
    methods = METHODS if args.method == "both" else (args.method,)
    result = explain(model, args.audio, methods=methods, target=args.target, start=args.start, steps=args.steps,
                     baseline=args.baseline)
    out = args.out or Path(f"{args.audio.stem}.explain.png")
    where = f" at {result.start:g}–{result.start + result.n_samples / model.sample_rate:g} s" if result.start else ""
    title = f"{args.audio.name}{where}: why “{result.target_label}” ({result.probabilities[result.target]:.0%})"
    out = save_explanation(result, model.model.frontend, out, title)
    print(f"{args.audio}: {result.target_label} ({result.probabilities[result.target]:.2f}){where} -> {out}")
    if "ig" in result.maps and result.delta is not None:
        share = abs(result.delta) / max(abs(result.logit_gap or 0), 1e-6)
        print(f"  integrated gradients: completeness gap {share:.1%} of the logit difference to the {args.baseline} baseline")
    if args.npy:
        args.npy.parent.mkdir(parents=True, exist_ok=True)
        if args.npy.suffix == ".npz" or len(result.maps) > 1:
            np.savez_compressed(args.npy.with_suffix(".npz"), image=result.image, **result.maps)
            print(f"  attributions -> {args.npy.with_suffix('.npz')}")
        else:
            np.save(args.npy, next(iter(result.maps.values())))
            print(f"  attributions -> {args.npy}")
    return common.EXIT_OK


def _explain_dataset(args: argparse.Namespace) -> int:
    from audiocnn.explain.dataset import DATASET_STEPS, class_attributions, method_name
    from audiocnn.viz.class_profiles import write_dataset_explanation

    steps = args.steps or DATASET_STEPS
    model = common.load_model(args.model)
    left_out: list[str] = []

    def unreadable(problem: str) -> None:
        left_out.append(problem)
        common.error(problem)

    items = class_attributions(model, args.data_root, args.fold, method=args.method, steps=steps,
                               cache_dir=args.cache_dir, progress=not args.no_progress, on_unreadable=unreadable)
    title = (f"{method_name(args.method)} of the true class by frequency (red: for, blue: against; grey: mean spectrum), "
             f"fold {args.fold} — {model.path.name}")
    paths = write_dataset_explanation(items, model, args.out, method=args.method, title=title)
    correct = sum(i.n_correct for i in items)
    total = sum(i.n_clips for i in items)
    print(f"{len(items)} classes, {total} clips ({correct / total:.1%} correct): {', '.join(map(str, paths))}, "
          f"{args.out / 'classes'}/")
    if left_out:
        print(f"{len(left_out)} file(s) could not be read and were left out", file=sys.stderr)
        return common.EXIT_ERROR
    return common.EXIT_OK
