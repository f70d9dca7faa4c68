"""How to classify recordings: the options of `audiocnn predict`, of `POST /v1/predict` and of `Predictor`.

They are declared here once, with their ranges and descriptions, and checked here once. The
command line builds its flags from these fields (`--top-k` is `top_k`), the server takes them
as query parameters (FastAPI reads the same models), and worker processes receive them whole.
A problem is an `OptionError` that names the field: the CLI shows it as `--top-k`, the API as
`top_k`, so neither speaks the other's language.

The models are split by who may set them: a server's clients choose what is classified and
how it is written (`ClassifyOptions`, `OutputOptions`), but not the engine or its batch size
(`EngineOptions`), which are the server's own.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from audiocnn.errors import OptionError
from audiocnn.inference.denoise import DEFAULT_STRENGTH as DEFAULT_DENOISE_STRENGTH
from audiocnn.validation import error_line

FORMATS = ("table", "csv", "json", "raven", "audacity", "kaleidoscope", "scores")
#: Formats that list detections, which `merge_consecutive` joins.
DETECTION_FORMATS = ("raven", "audacity", "kaleidoscope")
#: Formats that describe one recording per file (no file name inside): `--out-dir` for several.
ONE_RECORDING_FORMATS = ("audacity",)
RUNTIMES = ("auto", "onnx", "torch", "int8")

Format = Literal["table", "csv", "json", "raven", "audacity", "kaleidoscope", "scores"]
Runtime = Literal["auto", "onnx", "torch", "int8"]

#: Finite numbers, no unknown fields, frozen (a predictor's options are its key in a server's cache).
_OPTIONS = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class _Checked(BaseModel):
    """Made from keywords, a problem is an `OptionError` naming the field (the library's and CLI's
    way); FastAPI validates the same model itself and words its problems with `error_line` too."""

    model_config = _OPTIONS

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as err:
            first = err.errors(include_url=False)[0]
            raise OptionError(str(first["loc"][0]) if first["loc"] else "options",
                              error_line(first, with_key=False)) from None


class ClassifyOptions(_Checked):
    """What is classified, and how: the windows, the part of each recording, noise reduction, `unknown`."""

    window: float | None = Field(None, gt=0, description="window length in seconds, a tenth to 4 times the model's "
                                 "clip length (default: the model's clip length)")
    hop: float | None = Field(None, gt=0, description="seconds between window starts, at least a tenth of the window "
                              "(default: half the window)")
    unknown_below: float | None = Field(None, ge=0, le=1, description="answer `unknown` (its guesses after it) where "
                                        "the top calibrated probability is below this; default: the threshold stored "
                                        "in the model (see its model card), 0 turns it off")
    denoise: bool = Field(False, description="spectral-gating noise reduction (noisereduce) before classifying")
    denoise_strength: float | None = Field(None, ge=0, le=1, description="share of the background denoise removes, "
                                           f"0-1 (default {DEFAULT_DENOISE_STRENGTH}; 1 hurt accuracy, see "
                                           "BENCHMARKS.md); implies denoise")
    offset: float = Field(0.0, ge=0, description="classify each recording from this many seconds on (times in the "
                          "results stay times in the file)")
    duration: float | None = Field(None, gt=0, description="classify only this many seconds of each recording")
    fmin: float | None = Field(None, gt=0, description="hear nothing below this many Hz (a band filter before the "
                               "frontend: rumble of traffic or wind)")
    fmax: float | None = Field(None, gt=0, description="hear nothing above this many Hz (below half the model's "
                               "sample rate)")

    @property
    def strength(self) -> float:
        """The share of the background removed before windowing: 0 without denoise."""
        if self.denoise_strength is not None:
            return self.denoise_strength
        return DEFAULT_DENOISE_STRENGTH if self.denoise else 0.0

    def seconds_of(self, total: float) -> float:
        """Seconds classified of a recording `total` seconds long (from `offset`, at most `duration`)."""
        left = max(0.0, total - self.offset)
        return left if self.duration is None else min(left, self.duration)


class OutputOptions(_Checked):
    """How the results are written: the format, and which labels each window lists."""

    format: Format = Field("table", description="table, csv, json, raven (Raven Pro selection table), audacity "
                           "(label track; one recording per file), kaleidoscope (Kaleidoscope's CSV), or scores (every "
                           "class's probability per window, as OpenSoundscape's score tables)")
    top_k: int = Field(3, ge=1, le=1000, description="labels per window")
    min_confidence: float = Field(0.0, ge=0, le=1, description="drop labels below this probability; windows left "
                                  "with none are not listed")
    merge_consecutive: bool = Field(False, description="raven, audacity, kaleidoscope: join a label's detections in "
                                    "consecutive windows into one")
    labels_include: str | None = Field(None, max_length=200_000, description="show only these labels: names "
                                       "separated by commas (the command line also takes a text file, one per line)")
    labels_exclude: str | None = Field(None, max_length=200_000, description="hide these labels (as labels_include)")
    renormalise: bool = Field(False, description="with labels_include/exclude: scale the shown labels' probabilities "
                              "to add up to one in each window (default: as the model gave them)")

    @field_validator("merge_consecutive")
    @classmethod
    def _merges_detections(cls, merge: bool, info: ValidationInfo) -> bool:
        fmt = info.data.get("format")
        if merge and fmt is not None and fmt not in DETECTION_FORMATS:
            raise PydanticCustomError("combination", "joins detections, which the formats {formats} list; the "
                                      "{fmt} format lists windows", {"formats": ", ".join(DETECTION_FORMATS),
                                                                     "fmt": fmt})
        return merge


class EngineOptions(_Checked):
    """What runs the model: a machine's own choice (a server's clients do not set these)."""

    runtime: Runtime = Field("auto", description="inference engine: auto (ONNX Runtime when it reproduces torch; the "
                             "graph is exported once and cached), onnx, torch, or int8 (the bundle's 8-bit graph from "
                             "`audiocnn quantize`: about 2.5x faster on the CNN, top-1 agreement in BENCHMARKS.md)")
    batch_size: int = Field(32, ge=1, le=4096, description="windows per model call")


class PredictOptions(EngineOptions, OutputOptions, ClassifyOptions):
    """Every option of `audiocnn predict` that the library acts on, checked together.

    Example:
        >>> PredictOptions(top_k=1, format="raven", merge_consecutive=True).top_k
        1
        >>> PredictOptions(top_k=0)
        Traceback (most recent call last):
        audiocnn.errors.OptionError: top_k: should be greater than or equal to 1 (got 0)
        >>> PredictOptions(format="csv", merge_consecutive=True)
        Traceback (most recent call last):
        audiocnn.errors.OptionError: merge_consecutive: joins detections, which the formats raven, audacity, \
kaleidoscope list; the csv format lists windows (got True)
    """


#: `Predictor`'s options when none are given.
DEFAULT = PredictOptions()
