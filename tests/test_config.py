"""Recipes: every shipped recipe loads; overrides apply; typos and bad values are clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from audiocnn.config import load_recipe
from audiocnn.errors import ConfigError
from conftest import write_tone

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))


#: The image each shipped recipe makes of one clip, as README.md and the recipes' comments state it.
#: birdnet's "image" is BirdNET V2.4's 1,024-d embedding, one channel per dimension.
IMAGE_SHAPES = {"ablation": (1, 64, 126), "birdnet": (1024, 1, 1), "cpu": (1, 128, 251), "paper": (3, 128, 250),
                "smoke": (1, 32, 51)}


def test_every_shipped_recipe_has_a_documented_image_shape():
    assert sorted(IMAGE_SHAPES) == [p.stem for p in RECIPES]


@pytest.mark.parametrize("path", [pytest.param(p, marks=pytest.mark.slow) if p.stem in {"paper", "birdnet"} else p
                                  for p in RECIPES],
                         ids=lambda p: p.stem)
def test_shipped_recipes_build_their_frontend_and_backbone(path):
    """Each recipe's frontend makes the documented image, and its backbone (random weights) classifies it."""
    import torch

    from audiocnn.features import create_frontend
    from audiocnn.models import create

    recipe = load_recipe(path)
    frontend = create_frontend(recipe.frontend)
    with torch.inference_mode():
        image = frontend(torch.zeros(1, round(recipe.data.clip_seconds * frontend.sample_rate)))
        assert tuple(image.shape[1:]) == IMAGE_SHAPES[path.stem]
        backbone = create(recipe.model.backbone, 50, frontend.out_channels, "none", head=recipe.model.head).eval()
        assert backbone(torch.randn_like(image)).shape == (1, 50)
    assert recipe.train.epochs >= 1 and recipe.model.weights in {"none", "packaged", "imagenet"}


def test_overrides_reach_nested_entries_and_parse_values():
    recipe = load_recipe(RECIPES[0], ["train.lr=3e-4", "train.specaugment.time_masks=3", "frontend.n_mels=40",
                                      "model.weights=packaged", "data.limit_per_class=null"])
    assert recipe.train.lr == 3e-4 and recipe.train.specaugment.time_masks == 3
    assert recipe.frontend["n_mels"] == 40 and recipe.model.weights == "packaged"
    assert recipe.data.limit_per_class is None


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["train.optimzer=adam"], "train: unknown key(s) optimzer"),
        (["train.lr=fast"], "train.lr: should be a valid number (got 'fast')"),
        (["train.epochs=2.5"], "train.epochs: should be a valid integer (got 2.5)"),
        (["train.deterministic=1"], "train.deterministic: should be a valid boolean (got 1)"),
        (["train.schedule=linear"], "train.schedule: should be 'cosine', 'step' or 'none' (got 'linear')"),
        (["frontend.n_mel=3"], "unknown parameter(s) n_mel"),
        (["training.epochs=3"], "unknown section(s) training"),
        (["epochs=3"], "expected SECTION.KEY=VALUE"),
        (["data.val_fraction=0", "train.select=best-val"], "best-val needs data.val_fraction > 0"),
        (["train.lr=.inf"], "train.lr: should be a finite number (got inf)"),
        (["train.lr=inf"], "train.lr: should be a finite number (got inf)"),  # a string YAML does not read as a number
        (["model.drop_rate=.nan"], "model.drop_rate: should be a finite number"),
        (["model.drop_rate=5"], "model.drop_rate: should be less than 1 (got 5)"),
        (["train.strategy=evil"], "train.strategy: should be 'auto', 'ddp', "),
        (["train.devices=-1"], "train.devices: should be greater than or equal to 1 (got -1)"),
        (["train.num_nodes=0"], "train.num_nodes: should be greater than or equal to 1 (got 0)"),
        (["train.threads=100000"], "train.threads: should be less than or equal to 1024 (got 100000)"),
        (["data.seed=100000000000000000000000000"], "data.seed: should be less than or equal to 4294967295"),
        (["data.clip_seconds=1000000"], "data.clip_seconds: should be less than or equal to 600"),
        (["train.epochs=100000000"], "train.epochs: should be less than or equal to 10000"),
        (["train.specaugment.freq_masks=-1"], "train.specaugment.freq_masks: should be greater than or equal to 0"),
        (["train.waveform.copies=1000000"], "train.waveform.copies: should be less than or equal to 64"),
    ],
)
def test_bad_recipe_entries_are_config_errors(overrides, message):
    with pytest.raises(ConfigError) as caught:
        load_recipe(RECIPES[0], overrides)
    assert message in str(caught.value)


def test_a_key_given_twice_is_an_error_not_the_last_value(tmp_path):
    recipe = tmp_path / "twice.yaml"
    recipe.write_text("train:\n  lr: 0.001\n  epochs: 3\n  lr: 10\n")
    with pytest.raises(ConfigError, match=r"twice.yaml: not valid YAML \(duplicate key 'lr' .*line 4"):
        load_recipe(recipe)
    recipe.write_text("train:\n  lr: 0.001\nmodel: {}\ntrain:\n  epochs: 3\n")
    with pytest.raises(ConfigError, match="duplicate key 'train'"):
        load_recipe(recipe)


def test_bad_recipe_files_via_cli(cli, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("train: [unclosed\n")
    for path, message in ((broken, "broken.yaml: not valid YAML"), (tmp_path / "missing.yaml", "recipe file not found")):
        result = cli("cv", path, "--data-root", tmp_path, "--out", tmp_path / "run")
        assert result.code == 1 and message in result.err and "Traceback" not in result.err


HOSTILE_RECIPES = {
    # each expands or recurses without bound in a plain YAML reader, or is not text at all
    "billion-laughs": ("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                       "c: [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n", "aliases (*name) are not accepted"),
    "deep-lists": ("train: " + "[" * 100_000 + "]" * 100_000 + "\n", "nested deeper than 32 levels"),
    "deep-maps": ("".join("  " * i + f"k{i}:\n" for i in range(100)) + "  " * 100 + "v: 1\n", "nested deeper than 32"),
    "latin-1": ("train:\n  lr: 0.001  # caf\xe9\n", "not UTF-8 text (byte 25)"),
    "huge": ("train:\n  lr: 0.001\n" + "#" * (2 << 20) + "\n", "larger than any recipe file"),
    "list-as-key": ("? [a, b]\n: 1\n", "a key must be a plain value"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_RECIPES))
@pytest.mark.slow
def test_hostile_recipe_files_are_one_line_errors(tmp_path, name):
    text, message = HOSTILE_RECIPES[name]
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(text.encode("latin-1" if name == "latin-1" else "utf-8"))
    with pytest.raises(ConfigError) as caught:
        load_recipe(path)
    assert str(path) in str(caught.value) and message in str(caught.value) and "\n" not in str(caught.value)


#: `--set` values are YAML too: an alias bomb in one expanded past 4 GiB with plain `yaml.safe_load`.
HOSTILE_SET_VALUES = {
    "billion-laughs": ("[&a0 [x, x, x, x, x, x, x, x, x], &a1 [*a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0], "
                       "&a2 [*a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1]]", "aliases (*name) are not accepted"),
    "deep-lists": ("[" * 100_000 + "]" * 100_000, "nested deeper than 32 levels"),
    "duplicate-keys": ("{a: 1, a: 2}", "duplicate key"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_SET_VALUES))
@pytest.mark.slow
def test_hostile_set_values_are_one_line_errors(name, cli, tmp_path):
    value, message = HOSTILE_SET_VALUES[name]
    with pytest.raises(ConfigError) as caught:
        load_recipe(None, [f"train.seed={value}"])
    assert "--set 'train.seed=" in str(caught.value) and message in str(caught.value)
    assert "\n" not in str(caught.value)
    write_tone(tmp_path / "a.wav")  # the `features` command parses its own --set values the same way
    result = cli("features", tmp_path / "a.wav", "--kind", "mel", "--set", f"n_mels={value}", "--out", tmp_path / "x")
    assert result.code == 1 and message in result.err and result.err.count("\n") == 1


def test_a_frontend_and_clip_length_that_make_a_huge_image_are_refused():
    smoke = RECIPES[0].with_name("smoke.yaml")
    with pytest.raises(ConfigError, match=r"an image of 1 x 32 x 4800001 = 153,600,032 values per clip"):
        load_recipe(smoke, ["data.clip_seconds=600", "frontend.hop_ms=0.1"])
