"""Simulated rooms: a training clip as a microphone somewhere in a reverberant room would hear it.

ESC-50's clips are mostly close, dry recordings; a user's are often far from the source, indoors,
with walls adding a reverberant tail. Each copy drawn here puts the clip in a fresh shoebox room
(pyroomacoustics' image-source method): its size, its reverberation time and where the source
and the microphone stand are drawn at random, and the clip is convolved with the room's
impulse response.
"""

from __future__ import annotations

import random

import numpy as np
from audiomentations.core.transforms_interface import BaseWaveformTransform
from scipy.signal import fftconvolve

#: Image-source reflections are capped at this order (each costs time growing with its cube:
#: about 0.1 s per room at 40 on one core). The image-source method reaches the drawn RT60 only
#: if the room's smallest side is at least about c · RT60 / (order + 1), so rooms are drawn
#: large enough for their reverberation: long reverberation belongs to large rooms.
MAX_REFLECTION_ORDER = 40

#: Bumped whenever the way rooms are drawn or simulated changes, so that cached copies made
#: the old way are not reused (it is part of the feature-cache key of augmented copies).
ROOM_SCHEME = 2

SPEED_OF_SOUND = 343.0


class SimulatedRoom(BaseWaveformTransform):
    """Reverberation of a random shoebox room, as an audiomentations transform.

    The reverberation time (RT60) is drawn from [min_rt60, max_rt60] seconds, then a room of
    3–15 m × 3–10 m × 2.5–5 m, each side at least c · RT60 / (MAX_REFLECTION_ORDER + 1) (wider
    ranges for long RT60s: a small room cannot be simulated, nor usually heard, with a long one).
    A large room too absorbent for a short RT60 gets the shortest its walls allow instead.
    Source and microphone stand at least 0.5 m from every wall. The parameters are drawn from
    Python's `random`, as audiomentations' own transforms are, so a seeded draw
    (`augment.augmented_waveform`) gives the same room again. The output keeps the input's
    length, starts where the direct sound arrives (no added delay) and has the input's energy,
    so reverberation changes the sound, not its level.
    """

    supports_multichannel = False

    def __init__(self, min_rt60: float = 0.2, max_rt60: float = 1.0, p: float = 0.5) -> None:
        super().__init__(p)
        if not 0 < min_rt60 <= max_rt60:
            raise ValueError("SimulatedRoom needs 0 < min_rt60 <= max_rt60")
        self.min_rt60, self.max_rt60 = min_rt60, max_rt60

    def randomize_parameters(self, samples: np.ndarray, sample_rate: int) -> None:
        """Draw the RT60, the room's size and where source and microphone stand."""
        super().randomize_parameters(samples, sample_rate)
        if self.parameters["should_apply"]:
            rt60 = random.uniform(self.min_rt60, self.max_rt60)
            smallest = SPEED_OF_SOUND * rt60 / (MAX_REFLECTION_ORDER + 1)
            size = [random.uniform(max(low, smallest), max(high, 1.5 * smallest))
                    for low, high in ((3.0, 15.0), (3.0, 10.0), (2.5, 5.0))]
            self.parameters.update(
                size=size,
                rt60=max(rt60, shortest_rt60(size)),
                source=[random.uniform(0.5, side - 0.5) for side in size],
                microphone=[random.uniform(0.5, side - 0.5) for side in size],
            )

    def apply(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        """The samples convolved with the drawn room's impulse response, at the input's energy."""
        response = room_impulse_response(self.parameters["size"], self.parameters["rt60"], self.parameters["source"],
                                         self.parameters["microphone"], sample_rate)
        wet = fftconvolve(samples, response)[: len(samples)]
        energy, wet_energy = float(np.sum(samples ** 2)), float(np.sum(wet ** 2))
        if wet_energy > 0:
            wet *= np.sqrt(energy / wet_energy)
        return wet.astype(np.float32)


def shortest_rt60(size: list[float]) -> float:
    """The shortest RT60 a shoebox of this size can have (Sabine, walls absorbing all but 5% less
    than everything): 0.161 V / S, with a 5% margin for pyroomacoustics' check."""
    x, y, z = size
    return 1.05 * 0.161 * x * y * z / (2 * (x * y + y * z + x * z))


def room_impulse_response(size: list[float], rt60: float, source: list[float], microphone: list[float],
                          sample_rate: int) -> np.ndarray:
    """The impulse response from `source` to `microphone` in a shoebox room, starting at the
    direct sound's arrival (the propagation delay would only shift the clip)."""
    import pyroomacoustics as pra

    absorption, order = pra.inverse_sabine(rt60, size)
    room = pra.ShoeBox(size, fs=sample_rate, materials=pra.Material(absorption),
                       max_order=min(order, MAX_REFLECTION_ORDER))
    room.add_source(source)
    room.add_microphone(microphone)
    room.compute_rir()
    response = np.asarray(room.rir[0][0], dtype=np.float64)
    return response[int(np.argmax(np.abs(response))):]
