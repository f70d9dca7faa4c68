"""`audiocnn ensemble`: several trained models as one bundle, predicted as their mean probability."""

from __future__ import annotations

import argparse
from pathlib import Path

from audiocnn.cli import common


def add_commands(commands: common.Commands) -> None:
    """Add `ensemble` (bundles averaged in probability, as one bundle) to the command line."""
    ensemble = commands.add_parser(
        "ensemble", parents=[common.cache_option(), common.progress_option()],
        help="combine trained models into one bundle that answers with their mean probability",
        description="Make one bundle of several: each member (a bundle folder of one model: a fine-tuned CNN, a "
        "head on BirdNET's embedding, another seed) is copied into OUT/members/, and `predict`, `serve` and "
        "`calibrate` read OUT as one model whose probabilities are the mean of its members' calibrated ones "
        "(`explain`, `quantize`, `export` and `embed` take one member at a time). "
        "Members must name the same classes in the same order and hear the same windows (clip length, sample "
        "rate). With --data-root, the ensemble's confidence and `unknown` threshold are fitted on the members' "
        "validation clips (they must share them: trained with the same data seed and val_fraction). Every "
        "member's licence applies to the ensemble.",
        epilog="example: audiocnn ensemble runs/cnn/model runs/birdnet/model --out runs/ensemble "
        "--data-root ../shared/data/esc50",
    )
    ensemble.add_argument("members", nargs="+", type=Path, metavar="BUNDLE", help="the members' bundle folders (2-16)")
    ensemble.add_argument("--out", type=Path, required=True, help="the ensemble's folder (never written over)")
    ensemble.add_argument("--data-root", type=Path,
                          help="the dataset the members were trained on: fit the ensemble's `unknown` threshold "
                          "on their validation clips (without it, `unknown` is off)")
    ensemble.set_defaults(handler=_ensemble)


def _ensemble(args: argparse.Namespace) -> int:
    from audiocnn.cli.predict import calibrate_into
    from audiocnn.inference.ensembles import make_ensemble

    out = make_ensemble(args.members, args.out)
    print(f"{out}: an ensemble of {len(args.members)} models")
    if args.data_root is not None:
        calibrate_into(out, args.data_root, args.cache_dir, not args.no_progress)
    return common.EXIT_OK
