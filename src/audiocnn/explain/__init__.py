"""Explanations: which parts of a spectrogram made the model decide.

- `attributions`: Integrated Gradients and Grad-CAM of one window (captum);
- `dataset`: attributions of each class's true label averaged over a test fold.

Pictures of both are drawn by `audiocnn.viz`. This package never imports training code.
"""

from audiocnn.explain.attributions import (
    BASELINES,
    DEFAULT_STEPS,
    METHODS,
    STEPS_RANGE,
    Attribution,
    baseline_images,
    explain,
    grad_cam,
    grad_cam_maps,
    ig_maps,
    integrated_gradients,
    last_feature_layer,
    window_waveform,
)

__all__ = [
    "BASELINES", "DEFAULT_STEPS", "METHODS", "STEPS_RANGE", "Attribution", "baseline_images", "explain", "grad_cam", "grad_cam_maps", "ig_maps",
    "integrated_gradients", "last_feature_layer", "window_waveform",
]
