"""`audiocnn data info` and `audiocnn data download`: inspect and fetch datasets."""

from __future__ import annotations

import argparse
from pathlib import Path

from audiocnn.cli.common import EXIT_ERROR, EXIT_OK, EXIT_USAGE, Commands, progress_option


def add_commands(commands: Commands) -> None:
    """Add `data info` and `data download` to the command line."""
    from audiocnn.datasets import LOADERS

    data = commands.add_parser(
        "data", help="inspect and download datasets",
        description="Inspect a dataset (clips per fold and class, and every problem found) or download an official "
        "one (ESC-50, UrbanSound8K, GTZAN and its artist-filtered split lists).")
    sub = data.add_subparsers(title="data commands", metavar="COMMAND")
    data.set_defaults(handler=lambda _: data.print_help() or EXIT_USAGE)

    info = sub.add_parser(
        "info",
        help="clips per fold and class, and problems (missing, unreadable, duplicate, leaking files)",
        description="Print clips per fold and per class, and report problems: missing or unreadable "
        "files, unknown labels, duplicates, source recordings that span folds. Exits 1 if any problem is found.",
    )
    info.add_argument("name", choices=list(LOADERS), help="dataset kind")
    info.add_argument("--root", required=True, type=Path,
                      help="dataset folder (for csv: the CSV file; for annotations: recordings with their tables)")
    info.add_argument("--folds", type=int,
                      help="folds to assign when the dataset has none (gtzan: 10, folder/csv/annotations: 5)")
    info.add_argument("--seed", type=int, help="seed for assigned folds (default 0)")
    info.add_argument("--split", choices=["kfold", "filtered"], help="gtzan only: k-fold or the artist-filtered split")
    info.add_argument("--splits-dir", type=Path, help="gtzan only: folder with *_filtered.txt (default ROOT/splits)")
    info.add_argument("--clip-seconds", type=float, help="annotations only: clip length cut from selections "
                      "(default 5; give the recipe's data.clip_seconds)")
    info.add_argument("--label-column", help="annotations only: the Raven column holding labels "
                      "(default: Annotation, Label, Species, Class or Sound Type)")
    info.add_argument("--negatives", type=int, help="annotations only: clips per recording drawn from unannotated time")
    info.add_argument("--negative-label", help="annotations only: the label of those clips (default background)")
    info.add_argument("--quick", action="store_true", help="skip opening and hashing every audio file")
    info.set_defaults(handler=_info)

    download = sub.add_parser(
        "download", parents=[progress_option()],
        help="download and extract an official dataset archive",
        description="Download a dataset from its official source into --root (resumable, checksum-verified) "
        "and extract it. Running it again on a complete folder does nothing.",
    )
    download.add_argument("name", help="esc50, urbansound8k, gtzan or gtzan-splits")
    download.add_argument("--root", required=True, type=Path, help="folder to put the dataset in")
    download.add_argument("--url", help="download from this mirror instead of the official address")
    download.add_argument("--checksum", help="expected checksum of the mirror's file, as sha256:HEX or md5:HEX")
    download.add_argument("--keep-archive", action="store_true", help="keep the downloaded archive after extracting")
    download.set_defaults(handler=_download)


def _info(args: argparse.Namespace) -> int:
    from audiocnn.datasets import load_dataset
    from audiocnn.datasets.annotated import AnnotationsError
    from audiocnn.datasets.report import check, format_report

    options = {"n_folds": args.folds, "seed": args.seed, "split": args.split, "splits_dir": args.splits_dir,
               "clip_seconds": args.clip_seconds, "label_column": args.label_column, "negatives": args.negatives,
               "negative_label": args.negative_label}
    try:
        report = check(load_dataset(args.name, args.root, **options), check_audio=not args.quick)
    except AnnotationsError as err:  # too few clips or recordings: the problems first, often they are why
        print(format_report(check(err.dataset, check_audio=not args.quick)))
        raise
    print(format_report(report))
    return EXIT_OK if report.ok else EXIT_ERROR


def _download(args: argparse.Namespace) -> int:
    from audiocnn.datasets.download import fetch_dataset

    path = fetch_dataset(
        args.name, args.root, url=args.url, checksum=args.checksum,
        progress=not args.no_progress, keep_archives=args.keep_archive,
    )
    print(f"{args.name} is ready in {path}")
    return EXIT_OK
