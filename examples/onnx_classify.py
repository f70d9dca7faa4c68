"""Classify recordings with a graph from `audiocnn export`, using only onnxruntime, soundfile and numpy.

    python examples/onnx_classify.py model.onnx examples/dog-bark.wav [more files ...]

Everything the graph needs is in its metadata. Resampling is numpy's FFT, rolled off over the top
10% below Nyquist as audiocnn's resampler (soxr) is: on the examples, file probabilities came
within 0.03 of `audiocnn predict`'s. It holds the whole file in memory; read long ones in blocks.
"""
import json
import sys

import numpy as np
import onnxruntime as ort
import soundfile as sf

session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
meta = session.get_modelmeta().custom_metadata_map
labels, rate = json.loads(meta["labels"]), int(meta["sample_rate"])
window, hop = int(meta["window_samples"]), int(meta["hop_samples"])
unknown_below = json.loads(meta["calibration"])["unknown_below"]
for path in sys.argv[2:]:
    audio, file_rate = sf.read(path, dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)  # mono
    if file_rate != rate:
        n = round(len(audio) * rate / file_rate)
        spectrum = np.fft.rfft(audio)
        above = np.clip((np.arange(len(spectrum)) / (n / 2) - 0.9) / 0.1, 0, 1)  # 0 to 1 over 90-100% of Nyquist
        audio = np.fft.irfft(spectrum * (0.5 + 0.5 * np.cos(np.pi * above)), n) * (n / len(audio))
    count = 1 + max(0, -(-(len(audio) - window) // hop))  # windows every hop; the last ones zero-padded
    windows = np.zeros((count, window), np.float32)
    for i in range(count):
        part = audio[i * hop : i * hop + window]
        windows[i, : len(part)] = part
    probabilities = np.concatenate([session.run(None, {"waveform": windows[i : i + 8]})[0]
                                    for i in range(0, count, 8)]).mean(axis=0)  # the file: mean of its windows
    top = np.argsort(-probabilities)[:3]
    verdict = "unknown" if probabilities[top[0]] < unknown_below else labels[top[0]]
    print(f"{path}: {verdict} ({', '.join(f'{labels[i]} {probabilities[i]:.3f}' for i in top)})")
