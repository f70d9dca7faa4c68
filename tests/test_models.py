"""Backbones: every tested timm model builds for spectrogram input, and pretrained weights
really load: an ImageNet model must recognise a cat photo that a random one cannot."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from skimage import data, transform

from audiocnn.errors import ConfigError
from audiocnn.models import BACKBONES, PACKAGED, create, packaged_weights

CAT_CLASSES = {281, 282, 283, 284, 285}  # ImageNet: tabby, tiger cat, Persian, Siamese, Egyptian cat
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.fixture(scope="module")
def cat_photo() -> torch.Tensor:
    """scikit-image's Chelsea the cat, 224×224, ImageNet-normalised, (1, 3, H, W)."""
    image = transform.resize(data.chelsea(), (224, 224), anti_aliasing=True).astype(np.float32)
    x = torch.from_numpy(image).permute(2, 0, 1)
    return ((x - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None])[None]


def top_classes(model: torch.nn.Module, x: torch.Tensor, k: int = 1) -> set[int]:
    with torch.no_grad():
        return set(model.eval()(x).topk(k).indices[0].tolist())


#: Backbones whose forward pass at 128 × 251 takes seconds on 2 cores: checked in `make test` only.
HEAVY = {"resnet50", "densenet121", "densenet201", "inception_v3"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in BACKBONES])
@pytest.mark.parametrize("in_chans", [1, 3])
def test_every_backbone_takes_spectrograms_of_any_channel_count(name, in_chans):
    model = create(name, n_classes=7, in_chans=in_chans).eval()
    with torch.no_grad():
        out = model(torch.randn(2, in_chans, 128, 251))
    assert out.shape == (2, 7) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", list(PACKAGED))
@pytest.mark.slow
def test_packaged_imagenet_weights_recognise_a_cat_and_random_weights_do_not(name, cat_photo):
    pretrained = create(name, n_classes=1000, in_chans=3, weights="packaged")
    assert top_classes(pretrained, cat_photo) <= CAT_CLASSES
    torch.manual_seed(0)  # a random model's top-1 is a draw (one in 200 lands on a cat): fix the draw
    assert not top_classes(create(name, n_classes=1000, in_chans=3, weights="none"), cat_photo) & CAT_CLASSES


@pytest.mark.parametrize("name", list(PACKAGED))
@pytest.mark.slow
def test_pretrained_first_conv_folds_into_one_channel(name, cat_photo):
    gray = cat_photo.mean(dim=1, keepdim=True)
    model = create(name, n_classes=1000, in_chans=1, weights="packaged")
    assert top_classes(model, gray) <= CAT_CLASSES


def test_a_head_of_another_size_keeps_the_pretrained_body(cat_photo):
    path = packaged_weights("mobilenetv2_100")
    model = create("mobilenetv2_100", n_classes=50, in_chans=1, weights=path)
    reference = create("mobilenetv2_100", n_classes=1000, in_chans=1, weights=path)
    torch.testing.assert_close(model.conv_stem.weight, reference.conv_stem.weight)
    torch.testing.assert_close(model.blocks[3][0].conv_pw.weight, reference.blocks[3][0].conv_pw.weight)
    assert model.classifier.out_features == 50


@pytest.mark.slow
def test_timm_named_safetensors_file_loads_by_name(tmp_path, cat_photo):
    source = create("mobilenetv2_100", n_classes=1000, in_chans=3, weights="packaged")
    path = tmp_path / "mine.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    assert top_classes(create("mobilenetv2_100", n_classes=1000, in_chans=3, weights=path), cat_photo) <= CAT_CLASSES


@pytest.mark.parametrize(
    "name, weights, message",
    [
        ("resnet18", "packaged", "no packaged ImageNet weights for 'resnet18'"),
        ("resnet18", "/nonexistent/w.pth", "weights file not found"),
        ("resnet18", lambda: packaged_weights("mobilenetv2_100"), "these weights are for another architecture"),
        ("not_a_net", "none", "unknown backbone 'not_a_net'"),
    ],
)
def test_bad_backbone_or_weights_is_a_config_error(name, weights, message):
    with pytest.raises(ConfigError, match=message):
        create(name, n_classes=3, weights=weights() if callable(weights) else weights)


def test_unreadable_weights_file_is_a_config_error(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="junk.pth: cannot read weights"):
        create("resnet18", n_classes=3, weights=junk)


def test_a_pipe_given_as_weights_is_refused_not_read(tmp_path):
    """Reading a FIFO blocks until someone writes to it: the run would hang, not fail."""
    import os

    pipe = tmp_path / "weights.pth"
    os.mkfifo(pipe)
    with pytest.raises(ConfigError, match=r"weights.pth: not a regular file"):
        create("resnet18", n_classes=3, weights=pipe)


def test_imagenet_from_the_hub_offline_says_what_to_do(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ConfigError, match="could not get its ImageNet weights from the Hugging Face hub"):
        create("resnet18", n_classes=3, weights="imagenet")


@pytest.mark.parametrize("name, all_folded", [("mobilenetv2_100", True), ("resnet18", True),
                                              pytest.param("efficientnet_b0", True, marks=pytest.mark.slow),
                                              pytest.param("densenet121", False, marks=pytest.mark.slow)])
def test_folding_batchnorm_keeps_outputs_and_removes_norm_layers(name, all_folded):
    """DenseNet normalises *before* most convolutions; only its conv→norm pairs can fold."""
    from audiocnn.inference.runtimes import fold_batchnorm

    torch.manual_seed(0)
    model = create(name, 5, 1, "none").eval()
    for module in model.modules():  # trained-looking statistics, so folding has work to do
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.2)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.normal_(0, 0.1)
    x = torch.randn(2, 1, 64, 96)
    folded = fold_batchnorm(model, x)
    norms = sum(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert folded is not model and norms < sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert (norms == 0) == all_folded
    with torch.inference_mode():
        y = torch.randn(3, 1, 64, 80)  # another input and size than the check inside used
        torch.testing.assert_close(folded(y), model(y), atol=1e-4, rtol=1e-4)


def test_folding_is_refused_when_module_order_lies_about_data_flow():
    from audiocnn.inference.runtimes import fold_batchnorm

    class Tricky(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv_a = torch.nn.Conv2d(1, 4, 3)
            self.norm = torch.nn.BatchNorm2d(4)  # registered after conv_a, but it normalises conv_b
            self.conv_b = torch.nn.Conv2d(1, 4, 3)

        def forward(self, x):
            return self.norm(self.conv_b(x)) + self.conv_a(x)

    model = Tricky().eval()
    model.norm.running_var.fill_(4.0)
    model.norm.running_mean.fill_(1.0)
    assert fold_batchnorm(model, torch.randn(2, 1, 8, 8)) is model


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mobilenetv2_100", "resnet18"])
def test_onnx_runtime_inference_matches_torch_and_is_exported_once(name, tmp_path):
    from audiocnn.inference.runtimes import OnnxBackbone, for_inference

    torch.manual_seed(0)
    model = create(name, 5, 1, "none").eval()
    x = torch.randn(2, 1, 64, 96)
    fast = for_inference(model, x, cache_dir=tmp_path, runtime="onnx")
    assert isinstance(fast, OnnxBackbone)
    with torch.inference_mode():
        y = torch.randn(7, 1, 64, 96)  # another batch size than the export used
        torch.testing.assert_close(fast(y), model(y), atol=1e-4, rtol=1e-4)
    exported = list(tmp_path.glob("*.onnx"))
    assert len(exported) == 1
    stamp = exported[0].stat().st_mtime_ns
    for_inference(model, x, cache_dir=tmp_path, runtime="onnx")
    assert exported[0].stat().st_mtime_ns == stamp  # the cached graph was reused
    with torch.no_grad():
        next(model.parameters()).add_(1.0)  # other weights: another graph
    for_inference(model, x, cache_dir=tmp_path, runtime="onnx")
    assert len(list(tmp_path.glob("*.onnx"))) == 2


class _Counting(torch.nn.Module):
    """A tiny backbone that counts its forward calls (all copies together, as folding copies it)."""

    calls = 0

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 3, 3)
        self.norm = torch.nn.BatchNorm2d(3).eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        type(self).calls += 1
        return self.norm(self.conv(x)).mean(dim=(2, 3))


def test_a_graph_checked_once_is_opened_without_running_torch_again(tmp_path):
    from audiocnn.inference.runtimes import OnnxBackbone, for_inference

    torch.manual_seed(0)
    model, x = _Counting().eval(), torch.randn(2, 1, 16, 16)
    first = for_inference(model, x, cache_dir=tmp_path, runtime="auto")
    assert isinstance(first, OnnxBackbone) and _Counting.calls >= 2  # folded, exported and compared
    assert [p.suffix for p in sorted(tmp_path.iterdir())] == [".checked", ".onnx"]
    _Counting.calls = 0
    again = for_inference(model, x, cache_dir=tmp_path, runtime="auto")
    assert isinstance(again, OnnxBackbone) and again.path == first.path and _Counting.calls == 0
    with torch.inference_mode():
        torch.testing.assert_close(again(x), model(x), atol=1e-4, rtol=1e-4)
    first.path.write_bytes(b"not a graph")  # damaged: exported and checked again, never used as it is
    assert isinstance(for_inference(model, x, cache_dir=tmp_path, runtime="auto"), OnnxBackbone)
    assert _Counting.calls >= 2 and first.path.read_bytes() != b"not a graph"


@pytest.mark.slow
def test_torch_runtime_runs_channels_last():
    from audiocnn.inference.runtimes import ChannelsLast, for_inference

    model = create("resnet18", 3, 1, "none").eval()
    x = torch.randn(2, 1, 32, 48)
    fast = for_inference(model, x, runtime="torch")
    assert isinstance(fast, ChannelsLast)
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), model(x), atol=1e-4, rtol=1e-4)


class _Drifting(torch.nn.Module):
    """Each call scales its output by how often it was called: a graph traced once cannot follow it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 3, 3)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.conv(x).mean(dim=(2, 3)) * self.calls


@pytest.mark.slow
def test_an_onnx_graph_that_disagrees_with_torch_is_never_used(tmp_path):
    from audiocnn.inference.runtimes import ChannelsLast, for_inference

    x = torch.randn(2, 1, 16, 16)
    with pytest.raises(ConfigError, match="--runtime onnx: the exported graph .* other outputs"):
        for_inference(_Drifting(), x, cache_dir=tmp_path, runtime="onnx")
    with pytest.warns(UserWarning, match="outputs differ"):
        assert isinstance(for_inference(_Drifting(), x, cache_dir=tmp_path, runtime="auto"), ChannelsLast)
    with pytest.raises(ConfigError, match="--runtime 'ort': choose from auto, onnx, torch"):
        for_inference(_Drifting(), x, runtime="ort")
