"""Which parts of the spectrogram made the model say what it said: Integrated Gradients and Grad-CAM.

Both explain the class *logit* (not the softmax probability, which saturates and hides
evidence) of one window of audio, with respect to the normalised image the CNN sees.

- **Integrated Gradients** (captum, Sundararajan et al. 2017) integrates the gradient along a
  straight path from a baseline image to the input, and the attributions add up to
  logit(input) − logit(baseline) (completeness; `Attribution.delta` reports the gap;
  Gauss-Legendre quadrature with `DEFAULT_STEPS` steps keeps it under 5%, tests check it).
  The default baseline is `mean`: a flat image at the training set's mean level (zero
  after normalisation), so an attribution says how a cell being louder or quieter than an
  average training spectrogram moved the logit — silence where a class is expected to be
  silent counts too. `silence` (each cell at the clip's own floor, `top_db` below its peak)
  asks "compared with nothing"; it also credits the background noise, which every real
  class has: on a synthetic task whose classes differ only in one band (tests), `mean`
  puts most of the evidence in that band and `silence` spreads much of it over the noise.
- **Grad-CAM** (captum LayerGradCam, Selvaraju et al. 2017) weights the last convolutional
  feature map by its pooled gradient, keeps the positive part and is upsampled to the
  image: coarse (a 2 × 4 grid for a 64 × 126 image) but robust.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from audiocnn import audio
from audiocnn.bundle import Bundle
from audiocnn.errors import ConfigError, OptionError

#: Integration steps of Integrated Gradients (Gauss-Legendre): completeness gap < 5% (tests).
DEFAULT_STEPS = 64
#: Interpolated images per forward and backward pass of Integrated Gradients (at least one per window
#: explained at once: captum's rule). Memory grows
#: with it and time does not fall: for the bundled MobileNetV2 on one 5 s window, 32 steps, 2 idle cores, 64 at
#: once took 3.9 s and +1.6 GB of peak RSS, 8 took 1.0 s and +0.51 GB, 4 took 1.0 s and +0.25 GB
#: (BENCHMARKS.md, "Explanations: memory of Integrated Gradients").
IG_BATCH = 4
#: The integration steps one may ask for: 2 is the fewest that integrate; 256 already costs a
#: minute per window on a CPU, and a server must not be asked for hours.
STEPS_RANGE = (2, 256)
METHODS = ("ig", "gradcam")
BASELINES = ("mean", "silence")


@dataclass
class Attribution:
    """One window's image, its class probabilities, and attribution maps of the same shape as the image."""

    labels: list[str]
    image: np.ndarray  # (channels, rows, frames) in the frontend's units (dB), not normalised
    probabilities: np.ndarray  # (classes,), calibrated (the bundle's temperature applied), as predict gives them
    target: int  # the class explained
    maps: dict[str, np.ndarray]  # method -> (channels, rows, frames)
    start: float = 0.0  # where the window starts in its recording, seconds
    n_samples: int = 0  # samples in the window
    delta: float | None = None  # IG completeness gap: sum(attr) − (logit(x) − logit(baseline))
    logit_gap: float | None = None  # logit(x) − logit(baseline), the amount IG distributes

    @property
    def target_label(self) -> str:
        """The name of the class explained."""
        return self.labels[self.target]


def window_waveform(bundle: Bundle, source: str | Path | np.ndarray, start: float | None = None
                    ) -> tuple[np.ndarray, float]:
    """The model-length window to explain, and where it starts (s).

    A waveform array is taken as it is (at the bundle's rate). For a file: `start` if given,
    else the window the model is most confident about (a short file is its only window).
    """
    length = round(bundle.clip_seconds * bundle.sample_rate)
    if isinstance(source, np.ndarray):
        return audio.fix_length(np.asarray(source, dtype=np.float32), length), 0.0
    path = Path(source)
    duration = audio.info(path).duration
    if start is None:
        if duration <= bundle.clip_seconds:
            start = 0.0
        else:
            from audiocnn.inference.options import PredictOptions
            from audiocnn.inference.predictor import Predictor

            # torch, not the default ONNX Runtime: explaining must not export graphs into the user's cache
            start = Predictor(bundle, PredictOptions(runtime="torch")).predict(path).most_confident_start
    if not 0 <= start < duration:
        raise OptionError("start", f"{start:g} s is not within {path}, which is {duration:.2f} s long")
    samples = audio.load(path, bundle.sample_rate, offset=start, duration=bundle.clip_seconds)
    return audio.fix_length(samples, length), start


def explain(bundle: Bundle, source: str | Path | np.ndarray, *, methods: tuple[str, ...] = METHODS,
            target: str | int | None = None, start: float | None = None, steps: int = DEFAULT_STEPS,
            baseline: str = "mean") -> Attribution:
    """Attribution maps of the predicted (or `target`) class for one window of `source`.

    Args:
        bundle: the trained model.
        source: an audio file, or a waveform at the bundle's rate (taken as one window).
        methods: any of `METHODS` ("ig", "gradcam").
        target: the label (or class index) to explain; default the most probable one.
        start: the window starting here (s); default the window the model is most confident about.
        steps: Integrated Gradients' integration steps, within `STEPS_RANGE`.
        baseline: IG's reference image, one of `BASELINES`.

    Returns:
        The window's image, its calibrated probabilities and a map per method.

    Raises:
        OptionError: a method, baseline, step count, start or target that cannot be explained,
            naming the option (`start`, ...): the CLI shows it as `--start`.
        BundleError: a head on BirdNET's embedding (nothing torch can differentiate back to a spectrogram).
    """
    bundle.require_images("explain")
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise OptionError("method", f"{', '.join(unknown) or 'none'}: choose from {', '.join(METHODS)}")
    if baseline not in BASELINES:
        raise OptionError("baseline", f"{baseline!r}: choose from {', '.join(BASELINES)}")
    if not STEPS_RANGE[0] <= steps <= STEPS_RANGE[1]:
        raise OptionError("steps", f"must be {STEPS_RANGE[0]}-{STEPS_RANGE[1]} (got {steps})")
    samples, start = window_waveform(bundle, source, start)
    model = bundle.model.eval()
    with torch.inference_mode():
        raw = model.frontend(torch.from_numpy(samples)[None])
        # calibrated as `predict` shows them (logits / the bundle's temperature), so both name the same figure
        probabilities = (model.backbone(model.normalise(raw)) / bundle.temperature).softmax(-1)[0].numpy()
    index = _target_index(bundle.labels, target, probabilities)
    image = model.normalise(raw).detach().clone()
    result = Attribution(bundle.labels, raw[0].numpy(), probabilities, index, {}, start, len(samples))
    if "ig" in methods:
        maps, result.delta, result.logit_gap = _integrated_gradients(model.backbone, image, index, steps, baseline)
        result.maps["ig"] = maps[0]
    if "gradcam" in methods:
        result.maps["gradcam"] = grad_cam_maps(model.backbone, image, index)[0]
    return result


def integrated_gradients(bundle: Bundle, source: str | Path | np.ndarray, target: str | int | None = None,
                         *, steps: int = DEFAULT_STEPS, start: float | None = None, baseline: str = "mean"
                         ) -> np.ndarray:
    """Integrated Gradients of one window as a (channels, rows, frames) array (see the module notes)."""
    return explain(bundle, source, methods=("ig",), target=target, start=start, steps=steps,
                   baseline=baseline).maps["ig"]


def grad_cam(bundle: Bundle, source: str | Path | np.ndarray, target: str | int | None = None,
             *, start: float | None = None) -> np.ndarray:
    """Grad-CAM of one window, upsampled to the image: a (channels, rows, frames) array."""
    return explain(bundle, source, methods=("gradcam",), target=target, start=start).maps["gradcam"]


def baseline_images(images: Tensor, kind: str = "mean") -> Tensor:
    """IG baselines for normalised `images`: the training mean level (zeros) or each image's own floor."""
    if kind == "silence":
        return images.amin(dim=(2, 3), keepdim=True).expand_as(images).contiguous()  # per channel: each has its own floor
    return torch.zeros_like(images)


def ig_maps(backbone: nn.Module, images: Tensor, targets: int | Tensor, steps: int = DEFAULT_STEPS,
            baseline: str = "mean") -> tuple[np.ndarray, np.ndarray]:
    """IG attributions of normalised `images` (batch) and each one's completeness gap."""
    from captum.attr import IntegratedGradients

    backbone.eval()
    with torch.enable_grad():
        attributions, delta = IntegratedGradients(backbone).attribute(
            images, baselines=baseline_images(images, baseline), target=targets, n_steps=steps,
            method="gausslegendre", internal_batch_size=max(IG_BATCH, len(images)), return_convergence_delta=True)
    return attributions.detach().numpy(), delta.detach().numpy()


def grad_cam_maps(backbone: nn.Module, images: Tensor, targets: int | Tensor) -> np.ndarray:
    """Grad-CAM on the last feature map, upsampled bilinearly to the images' size."""
    from captum.attr import LayerAttribution, LayerGradCam

    backbone.eval()
    with torch.enable_grad():
        cam = LayerGradCam(backbone, last_feature_layer(backbone, images[:1])).attribute(
            images, target=targets, relu_attributions=True)
        up = LayerAttribution.interpolate(cam, tuple(images.shape[-2:]), interpolate_mode="bilinear")
    return up.detach().expand_as(images).numpy().copy()


def last_feature_layer(backbone: nn.Module, example: Tensor) -> nn.Module:
    """The module that produces the last spatial feature map (what the classifier head pools)."""
    finished: list[tuple[nn.Module, Tensor]] = []
    hooks = [m.register_forward_hook(lambda mod, _, out: finished.append((mod, out)))
             for m in backbone.modules() if m is not backbone]
    try:
        with torch.no_grad():
            backbone(example)
    finally:
        for hook in hooks:
            hook.remove()
    spatial = [m for m, out in finished if isinstance(out, Tensor) and out.ndim == 4 and out.shape[-2:].numel() > 1]
    if not spatial:
        raise ConfigError(f"{type(backbone).__name__}: no spatial feature map to run Grad-CAM on")
    return spatial[-1]


def _integrated_gradients(backbone: nn.Module, image: Tensor, index: int, steps: int, baseline: str
                          ) -> tuple[np.ndarray, float, float]:
    maps, delta = ig_maps(backbone, image, index, steps, baseline)
    with torch.inference_mode():
        logits = backbone(torch.cat([image, baseline_images(image, baseline)]))[:, index]
    return maps, float(delta[0]), float(logits[0] - logits[1])


def _target_index(labels: list[str], target: str | int | None, probabilities: np.ndarray) -> int:
    if target is None:
        return int(probabilities.argmax())
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit() and target not in labels):
        index = int(target)
        if not 0 <= index < len(labels):
            raise OptionError("target", f"{target}: the model has classes 0–{len(labels) - 1}")
        return index
    if target not in labels:
        close = [label for label in labels if target.lower() in label.lower()]
        hint = f" (did you mean {', '.join(close[:3])}?)" if close else ""
        raise OptionError("target", f"{target!r} is not one of the model's {len(labels)} labels{hint}")
    return labels.index(target)
