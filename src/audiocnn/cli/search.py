"""`audiocnn search`: the windows of an embeddings table that sound most like a query clip."""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

from audiocnn.bundled import model_path
from audiocnn.cli import common
from audiocnn.errors import ConfigError
from audiocnn.tabletext import RAVEN_COLUMNS, raven_cells, spreadsheet_text


def add_commands(commands: common.Commands) -> None:
    """Add `search` to the command line."""
    search = commands.add_parser(
        "search", help="find the windows of an `embed` table that sound most like a query clip",
        description="Embed QUERY (a clip of the sound sought, any format) with the backbone that made the table "
        "(`audiocnn embed`: BirdNET V2.4 with the table's band, or the bundle given with --model) and list the "
        "table's --top windows most like it by cosine similarity, best first. The search is exact and reads the "
        "table a row group at a time (flat memory). The hits go to a table: csv, or raven (a selection table with "
        "Begin Path, the similarity as Confidence and the query's name as Label, which `audiocnn segments` and "
        "Raven read), or a text table on the terminal.",
    )
    search.add_argument("query", type=Path, help="the clip to search with")
    search.add_argument("--index", type=Path, required=True, help="the embeddings table (`audiocnn embed --out`)")
    search.add_argument("--model", type=model_path, metavar="BUNDLE",
                        help="the bundle whose CNN embedded the table (not needed for BirdNET tables)")
    search.add_argument("--top", type=int, default=10, help="hits listed (default 10)")
    search.add_argument("--exclude-self", action="store_true",
                        help="leave out the windows of the query's own recording, if the table holds it")
    search.add_argument("--format", choices=("table", "csv", "raven"), default="table", help="default table")
    search.add_argument("--out", type=Path, help="write the hits here (atomically) instead of the terminal")
    search.set_defaults(handler=_search)


def _search(args: argparse.Namespace) -> int:
    from audiocnn import atomic
    from audiocnn.inference.embeddings import BundleEmbedder
    from audiocnn.inference.search import query_embedder, query_vector, search, table_metadata

    common.check_ranges(("--top", args.top, 1, 100_000))
    if not args.index.is_file():
        raise ConfigError(f"--index {args.index}: no such file")
    metadata = table_metadata(args.index)
    embedder = query_embedder(metadata, BundleEmbedder(common.load_model(args.model)) if args.model else None)
    direction = query_vector(embedder, args.query)
    hits = search(args.index, direction, args.top, exclude=str(args.query) if args.exclude_self else None)
    text = _written(hits, args.format, args.query)
    if args.out is None:
        sys.stdout.write(text)
    else:
        atomic.write_text(args.out, text)
        print(f"{args.out}: {len(hits)} hit(s)")
    return common.EXIT_OK


def _written(hits: list, fmt: str, query: Path) -> str:  # noqa: ANN001 - search.Hit
    out = io.StringIO(newline="")
    if fmt == "table":
        out.write(f"{'rank':>4}  {'similarity':>10}  {'start':>9}  {'end':>9}  recording\n")
        for rank, hit in enumerate(hits, 1):
            out.write(f"{rank:>4}  {hit.similarity:>10.4f}  {hit.start_s:>9.2f}  {hit.end_s:>9.2f}  "
                      f"{common.printable(hit.path)}\n")
    elif fmt == "csv":
        table = csv.writer(out)
        table.writerow(["rank", "path", "start_s", "end_s", "similarity"])
        for rank, hit in enumerate(hits, 1):
            table.writerow([rank, spreadsheet_text(hit.path), f"{hit.start_s:.3f}", f"{hit.end_s:.3f}",
                            f"{hit.similarity:.6f}"])
    else:
        out.write("\t".join(RAVEN_COLUMNS) + "\n")
        for rank, hit in enumerate(hits, 1):
            out.write("\t".join(raven_cells(rank, hit.start_s, hit.end_s, hit.path, query.stem,
                                             max(0.0, hit.similarity))) + "\n")
    return out.getvalue()
