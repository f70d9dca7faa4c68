"""Make an ensemble bundle: several trained bundles in one folder, predicted as their mean probability.

The members are copied into `OUT/members/` (their weights, config, 8-bit graph and card; not
their training logs), so the ensemble is one folder to share, and `bundle.load` reads it as
one model (`models.ensemble`). Its config.json is written last: a run killed while copying
leaves no ensemble, and running the command again makes it.

Its calibration (the `unknown` threshold of the mean probability) is fitted afterwards, on the
members' validation clips, by `training.calibration.calibrate_bundle` (`audiocnn ensemble
--data-root`, or `audiocnn calibrate` later).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from audiocnn import __version__, atomic, bundle
from audiocnn.bundle_files import CONFIG, FILES, MODEL_CARD, model_card, write_model_card
from audiocnn.errors import BundleError


def make_ensemble(members: list[Path], out: Path) -> Path:
    """Write the ensemble of `members` (bundle folders of single models) to `out`; returns `out`.

    Raises:
        BundleError: fewer than two members, more than `bundle.MAX_MEMBERS`, a member that is not a
            single model, members that name other classes or hear other windows (`bundle.check_members`),
            or an `out` that is a bundle already (it is never written over).
    """
    if not 2 <= len(members) <= bundle.MAX_MEMBERS:
        raise BundleError(f"an ensemble has 2 to {bundle.MAX_MEMBERS} members (got {len(members)})")
    loaded = [bundle.load(member, backbone=False) for member in members]
    bundle.check_members(loaded, loaded[0].labels)  # before anything is written
    if (out / CONFIG).exists():
        raise BundleError(f"{out}: is a model bundle already; choose another --out (it is never written over)")
    names = [f"members/{k + 1}-{re.sub(r'[^A-Za-z0-9._-]', '-', member.path.resolve().name)[:90]}"
             for k, member in enumerate(loaded)]
    shutil.rmtree(out / "members", ignore_errors=True)  # what a killed run left
    for member, name in zip(loaded, names):
        target = out / name
        target.mkdir(parents=True)
        for file in (*FILES, MODEL_CARD):
            if (member.path / file).is_file():
                shutil.copy2(member.path / file, target / file)
    write_model_card(out, _card(loaded, names))
    config = {"format": bundle.FORMAT, "version": bundle.VERSION, "audiocnn": __version__, "kind": bundle.ENSEMBLE,
              "labels": loaded[0].labels, "members": names, "sample_rate": loaded[0].sample_rate,
              "clip_seconds": loaded[0].clip_seconds, "metrics": {"members": [str(m) for m in members]}}
    atomic.write_text(out / CONFIG, json.dumps(config, indent=2) + "\n")
    return out


def _card(members: list[bundle.Bundle], names: list[str]) -> str:
    """The ensemble's MODEL_CARD.md: what it is, and each member's card, whose licences all apply."""
    lines = [f"# Model card: an ensemble of {len(members)} models\n",
             "Its answer is the mean of its members' calibrated probabilities. **Every member's licence "
             "applies to the ensemble** (the most restrictive decides: a member built on BirdNET V2.4 makes it "
             "CC BY-NC-SA 4.0). It cannot `explain`, `quantize` or `export`; its members can, one by one.\n"]
    for member, name in zip(members, names):
        card = model_card(member.path)
        lines.append(f"## {name}\n\n" + (card.strip() if card else "(no model card)") + "\n")
    return "\n".join(lines)
