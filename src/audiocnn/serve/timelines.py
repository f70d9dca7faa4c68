"""The server's timeline pictures: a recording's labels over its spectrogram, the whole of it as it is
classified, or a stretch of it drawn again in detail (the page's zoom).

Each picture comes with where its time axis lies in it (`timeline_axes`: left and right as shares of
its width, the seconds at either end, and the recording's length), so that a page can put a
playback cursor on it and turn a click into a time. A whole recording's spectrogram is collected
while it is classified (`inference.overview`), averaged to at most a few thousand columns; a zoomed
stretch is decoded again, that stretch only, so its columns are the frontend's own frames.
"""

from __future__ import annotations

import base64
import io
from typing import Any

from audiocnn import audio
from audiocnn.inference.overview import SpectrogramCollector
from audiocnn.inference.predictor import FilePrediction
from audiocnn.serve.pool import Ticket

#: Dots per inch of the timeline pictures the server draws (the text's size on a page at 1:1).
TIMELINE_DPI = 80
#: The shortest stretch a zoomed picture shows (seconds): a few spectrogram frames are no picture.
MIN_ZOOM_S = 1.0


def timeline_png(result: FilePrediction, collector: SpectrogramCollector, denoised: bool, width_px: int = 960,
                 span: tuple[float, float] | None = None) -> dict[str, Any]:
    """The timeline picture (PNG, base64) at `width_px`, of the whole recording or of `span` (seconds),
    and where its time axis lies in it."""
    from audiocnn.viz.timeline import timeline_figure

    buffer = io.BytesIO()
    fig = timeline_figure(result, collector, denoised=denoised, width=width_px / TIMELINE_DPI, span=span)
    fig.savefig(buffer, format="png", dpi=TIMELINE_DPI)
    spectrogram = fig.axes[1].get_position()  # laid out by the drawing above; the lanes share its time axis
    start, end = fig.axes[1].get_xlim()
    return {"timeline_png": base64.b64encode(buffer.getvalue()).decode("ascii"),
            "timeline_axes": {"left": round(spectrogram.x0, 5), "right": round(spectrogram.x1, 5),
                              "start": round(float(start), 6), "end": round(float(end), 6),
                              "seconds": round(max(result.duration, collector.start + collector.seconds), 6)}}


def zoomed_timeline(result: FilePrediction, path: str, rate: int, start: float, end: float, width_px: int,
                    ticket: Ticket) -> dict[str, Any]:
    """The timeline of `start`-`end` seconds of the recording at `path` (classified as `result`): that
    stretch decoded again at the model's `rate` and drawn at full time resolution. The spectrogram is
    of the recording as it was sent (a whole-file picture may show it after noise reduction)."""
    length = max(result.duration, float(result.ends[-1]) if len(result.ends) else 0.0)
    end = min(end, length)
    start = max(0.0, min(start, end - MIN_ZOOM_S))
    collector = SpectrogramCollector(rate, end - start, start=start)
    for block in audio.stream(path, rate, offset=start, duration=end - start):
        ticket.check()
        collector(block)
    return timeline_png(result, collector, False, width_px, span=(start, end))
