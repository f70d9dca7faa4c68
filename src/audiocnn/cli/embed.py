"""`audiocnn embed`: per-window embeddings of recordings, with BirdNET V2.4 or a bundle's CNN, as Parquet."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

from audiocnn.bundled import model_path
from audiocnn.cli import common
from audiocnn.errors import ConfigError, item_failure


def add_commands(commands: common.Commands) -> None:
    """Add `embed` to the command line."""
    embed = commands.add_parser(
        "embed", parents=[common.progress_option()],
        help="per-window embeddings of recordings (BirdNET V2.4, or a model bundle's CNN) as a Parquet table",
        description="Cut each recording (files and folders, recursively; any format, rate or channel count) into "
        "windows and write each window's embedding: BirdNET V2.4's 1,024-d features of 3 s windows at 48 kHz "
        "(audio-pretrained; its model files are licensed CC BY-NC-SA 4.0, so what you build on them is "
        "non-commercial), or with --model the pooled features a trained bundle's CNN gives its class layer. "
        "The table has a row per window: path, start_s, end_s, embedding (a list of float32); pandas reads it "
        "with pd.read_parquet, and np.stack(df.embedding) gives the matrix. Bad files are reported and "
        "skipped; the exit code is 1 if any failed.",
    )
    embed.add_argument("audio", nargs="+", type=Path, help="audio files or folders")
    embed.add_argument("--out", type=Path, required=True, help="the Parquet table to write (atomically)")
    embed.add_argument("--model", type=model_path, metavar="BUNDLE",
                       help="embed with this bundle's CNN (its pre-logits) instead of BirdNET (a folder, or the name "
                       "of a bundled model)")
    embed.add_argument("--hop", type=float, metavar="S",
                       help="seconds between window starts, at least a tenth of the window (default: a whole window)")
    embed.add_argument("--bandwidth", type=float, metavar="HZ",
                       help="BirdNET: hear nothing above HZ, as the clips a head is trained on (8000 for 16 kHz "
                       "data such as ESC-50; default: all the recording holds)")
    embed.set_defaults(handler=_embed)


def _embed(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from audiocnn.inference.embeddings import BirdNetEmbedder, BundleEmbedder, checked_hop, embed_file, write_parquet
    from audiocnn.inference.inputs import collect

    if args.model is not None and args.bandwidth is not None:
        raise ConfigError("--bandwidth is BirdNET's; a bundle hears the band it was trained on")
    if args.out.suffix.lower() != ".parquet":
        raise ConfigError(f"--out {args.out}: give a .parquet file")
    inputs = collect(args.audio)
    files = [item.path for item in inputs]
    common.check_output(args.out, files)
    embedder = BundleEmbedder(common.load_model(args.model)) if args.model is not None else \
        BirdNetEmbedder(args.bandwidth)
    hop = checked_hop(embedder, args.hop) / embedder.rate
    failed: list[str] = []
    bar = tqdm(files, unit="file", disable=args.no_progress or not sys.stderr.isatty(), leave=False)

    def results() -> Iterator:  # noqa: ANN202 - FileEmbeddings, one a recording that could be embedded
        for path in bar:
            try:
                yield embed_file(embedder, path, hop)
            except Exception as err:  # noqa: BLE001 - one file's failure, whatever it is, is that file's alone
                failed.append(item_failure(path, err))
                tqdm.write(f"audiocnn: error: {common.printable(failed[-1])}", file=sys.stderr)

    rows = write_parquet(results(), args.out, embedder, hop)
    done = len(files) - len(failed)
    print(f"{args.out}: {rows} window(s) of {done} recording(s), {embedder.dim}-d {embedder.name} embeddings"
          + (f"; {len(failed)} failed" if failed else ""))
    return common.EXIT_ERROR if failed else common.EXIT_OK
