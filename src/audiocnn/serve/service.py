"""The model a server shares between requests, and the jobs its workers run.

The bundle is loaded once. `Predictor`s are made per set of window options and kept (a few):
one serves any number of threads at once (see `audiocnn.inference.predictor`). Explanations
hook into the shared backbone (Grad-CAM registers hooks on its last layer), so they run one at
a time.

Every job is bounded: `--max-seconds` is checked against the header first (a quick refusal),
then against the samples really decoded (an MP3 whose Xing header claimed 0.65 s held 1200 s
and was classified whole); the job's `Ticket` is checked per block and per batch of windows,
so a timed-out job stops. A file that fails in a way nobody foresaw (a library's surprise) is
one line naming it, `internal error (Type)`, with its message and traceback in the server's log;
the other files of the request, and the server, go on.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from audiocnn import audio, bundle
from audiocnn.bundled import default_model
from audiocnn.errors import AudiocnnError, AudioError, OptionError, item_failure, public_failure
from audiocnn.explain.attributions import STEPS_RANGE
from audiocnn.inference.bandpass import checked_band
from audiocnn.inference.formats import PredictionWriter
from audiocnn.inference.label_filter import shown_labels
from audiocnn.inference.options import (
    ONE_RECORDING_FORMATS,
    ClassifyOptions,
    Format,
    OutputOptions,
    PredictOptions,
)
from audiocnn.inference.overview import SpectrogramCollector
from audiocnn.inference.predictor import (
    MIN_HOP_FRACTION,
    WINDOW_RANGE,
    FilePrediction,
    Predictor,
    TooLong,
    checked_windows,
)
from audiocnn.inference.runtimes import release_freed_memory
from audiocnn.serve.pool import Cancelled, Ticket
from audiocnn.serve.settings import ServeSettings
from audiocnn.serve.timelines import timeline_png
from audiocnn.serve.uploads import Upload

log = logging.getLogger("audiocnn.serve")
#: Predictors (one per set of window options) kept at once; each holds an exported backbone.
MAX_PREDICTORS = 8
MEDIA_TYPES = {"json": "application/json", "csv": "text/csv; charset=utf-8",
               "raven": "text/tab-separated-values; charset=utf-8", "table": "text/plain; charset=utf-8",
               "audacity": "text/plain; charset=utf-8", "kaleidoscope": "text/csv; charset=utf-8",
               "scores": "text/csv; charset=utf-8"}


class PredictRequest(ClassifyOptions, OutputOptions):
    """`POST /v1/predict`'s query: `audiocnn predict`'s options (the same models, so the same names,
    ranges and checks) but the engine and batch size, which are the server's; JSON by default, and
    a timeline picture per file on request."""

    format: Format = Field("json", description=OutputOptions.model_fields["format"].description)
    timeline: bool = Field(False, description="json: add each file's timeline picture (PNG, base64) and where its "
                           "time axis lies in it (`timeline_axes`: left and right as shares of its width, the "
                           "seconds at either end, `start` and `end`, and the recording's length, `seconds`)")
    timeline_width: int = Field(960, ge=320, le=2400, description="the timeline picture's width in pixels (its text "
                                "stays the same size: a narrow one is readable on a phone)")
    name: str | None = Field(None, max_length=255, description="a raw body's file name, for the results")
    keep: bool = Field(False, description="keep the recordings and their results under an id, for /v1/results/{id}: "
                       "other formats and filters, re-runs with other options and explanations, without another "
                       "upload")

    @field_validator("timeline")
    @classmethod
    def _timeline_in_json(cls, timeline: bool, info: ValidationInfo) -> bool:
        if timeline and info.data.get("format") not in (None, "json"):
            raise PydanticCustomError("combination", "timeline pictures come with format=json only")
        if timeline and (info.data.get("offset") or info.data.get("duration") is not None):
            raise PydanticCustomError("combination", "a timeline draws whole recordings: leave out offset and duration")
        return timeline

    def predictor_options(self, runtime: str) -> PredictOptions:
        """What the server's Predictor for this request is built with (and kept under)."""
        return PredictOptions(runtime=runtime, **self.model_dump(include=set(ClassifyOptions.model_fields)))


class ExplainRequest(BaseModel):
    """`POST /v1/explain`'s query (and a kept result's): `audiocnn explain`'s options for one window."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["ig", "gradcam", "both"] = Field("both", description="ig, gradcam or both")
    target: str | None = Field(None, max_length=200, description="explain this label (default: the top one)")
    start: float | None = Field(None, description="the window starting here, s (default: the most confident one)")
    steps: int = Field(32, description="integrated-gradients steps, " + "-".join(map(str, STEPS_RANGE)))
    baseline: Literal["mean", "silence"] = Field("mean", description="IG reference: mean or silence")
    output: Literal["png", "npz"] = Field("png", description="png (the picture) or npz (the arrays)")


@dataclass
class PredictAnswer:
    """One predict request's answer: its body and media type, what the metrics count, and each file's
    outcome (its predictions, or its failure), which a kept result stores."""

    body: Any  # the JSON document, or the text of another format
    media_type: str
    ok: int
    failed: list[dict[str, str]]
    audio_seconds: float
    outcomes: list[FilePrediction | dict[str, str]] = field(default_factory=list)
    can_abstain: bool = True
    pictures: list[dict[str, Any]] = field(default_factory=list)  # timeline=true: each classified file's


def check_format(output: OutputOptions, files: int) -> None:
    """A one-recording format (audacity) is refused for several files, in one line naming the option."""
    if output.format in ONE_RECORDING_FORMATS and files > 1:
        raise OptionError("format", f"{output.format} describes one recording: send one file per request "
                          f"(got {files})")


class ModelService:
    """What a server's routes call: the model loaded once, and the predict and explain jobs on it.

    Args:
        settings: the server's options; `settings.model` is the bundle (None: the bundled model).

    Raises:
        BundleError: the bundle cannot be loaded.

    Example:
        >>> from audiocnn.serve.pool import Ticket
        >>> from audiocnn.serve.settings import ServeSettings
        >>> import audiocnn
        >>> examples = Path(audiocnn.__file__).parents[2] / "examples"
        >>> service = ModelService(ServeSettings(max_seconds=60))
        >>> service.describe()["name"], service.describe()["window_seconds"]
        ('esc50-mobilenetv2', 5.0)
        >>> answer = service.predict([Upload("bark.wav", examples / "dog-bark.wav")], PredictRequest(top_k=1),
        ...                          Ticket(seconds=60))
        >>> answer.ok, answer.failed, answer.media_type
        (1, [], 'application/json')
        >>> answer.body["files"][0]["summary"]
        [{'label': 'dog', 'probability': 0.8...}]
    """

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.path = Path(settings.model) if settings.model is not None else default_model()
        # the CNN is built only if a runtime or an explanation needs it (a checked ONNX graph replaces it)
        self.bundle = bundle.load(self.path, backbone=False)
        self._predictors: OrderedDict[PredictOptions, Predictor] = OrderedDict()
        self._predictors_lock = threading.Lock()
        self._explain_lock = threading.Lock()
        self.predictor(PredictRequest())  # the default one is built (and checked) before the first request

    def predictor(self, request: PredictRequest) -> Predictor:
        """The Predictor for this request's windows, part and noise reduction, built once and kept (the
        last `MAX_PREDICTORS`)."""
        key = request.predictor_options(self.settings.runtime)
        with self._predictors_lock:
            if key in self._predictors:
                self._predictors.move_to_end(key)
                return self._predictors[key]
        made = Predictor(self.bundle, key)
        with self._predictors_lock:
            self._predictors[key] = made
            while len(self._predictors) > MAX_PREDICTORS:
                self._predictors.popitem(last=False)
        return made

    def check_request(self, request: PredictRequest) -> None:
        """The options that depend on this model, checked before an upload is read (a refusal should be
        quick): window and hop within the library's bounds, labels it has, a band below its Nyquist."""
        checked_windows(self.bundle.clip_seconds, request.window, request.hop)
        shown_labels(self.bundle.labels, request.labels_include, request.labels_exclude)
        checked_band(request.fmin, request.fmax, self.bundle.sample_rate)

    def check_length(self, upload: Upload) -> float:
        """The recording's length from its header; refused beyond --max-seconds before it is decoded
        (a header may understate it: decoding counts again, see `_classify`)."""
        seconds = audio.info(upload.path).duration
        if seconds > self.settings.max_seconds:
            raise TooLong(f"{upload.name}: {seconds:.0f} s long, over this server's limit of "
                          f"{self.settings.max_seconds:g} s (--max-seconds)")
        return seconds

    def _classify(self, predictor: Predictor, upload: Upload, ticket: Ticket, collector=None  # noqa: ANN001
                  ) -> FilePrediction:
        """One upload classified, stopped by the ticket or at --max-seconds of decoded audio."""
        def observe(block: np.ndarray) -> None:
            ticket.check()
            if collector is not None:
                collector(block)

        try:
            result = predictor.predict(upload.path, on_window=ticket.check, on_block=observe,
                                       max_seconds=self.settings.max_seconds)
        except TooLong:
            raise TooLong(f"{upload.name}: over this server's limit of {self.settings.max_seconds:g} s "
                          "(--max-seconds): decoding stopped there, whatever its header says") from None
        return replace(result, path=Path(upload.name))

    def predict(self, uploads: list[Upload], options: PredictRequest, ticket: Ticket) -> PredictAnswer:
        """Every upload classified in turn; a bad one, or one that fails unexpectedly, is listed as failed
        and the rest go on. `ticket.check` stops the whole job (raising `Cancelled`).

        Args:
            uploads: the request's files, stored by the server (`uploads.UploadFolder`).
            options: `audiocnn predict`'s options as the request gave them (checked already).
            ticket: the job's deadline and stop flag, checked per block and per batch of windows.

        Returns:
            The answer in `options.format` (JSON as a document, other formats as text), with the
            count of files classified, the failed ones, the seconds of audio classified, and the
            outcomes themselves (for the results store).

        Raises:
            OptionError: a one-recording format (audacity) asked of several files.
            Cancelled: the ticket's deadline passed or the job was cancelled.
        """
        check_format(options, len(uploads))
        ticket.check()
        predictor = self.predictor(options)
        outcomes: list[FilePrediction | dict[str, str]] = []
        pictures: list[dict[str, Any]] = []
        seconds = 0.0
        for upload in uploads:
            try:
                seconds_long = self.check_length(upload)
                collector = SpectrogramCollector(predictor.rate, seconds_long) if options.timeline else None
                result = self._classify(predictor, upload, ticket, collector)
                picture = (timeline_png(result, collector, options.strength > 0, options.timeline_width)
                           if collector is not None else None)
            except Cancelled:
                raise
            except Exception as err:  # noqa: BLE001 - one file's failure, whatever it is, is that file's line
                outcomes.append({"path": upload.name, "error": failure_line(err, upload), "kind": failure_kind(err)})
                continue
            outcomes.append(result)
            seconds += result.duration
            if picture is not None:
                pictures.append(picture)
        can_abstain = predictor.unknown_below > 0
        body, media_type = self.render(outcomes, options, can_abstain, pictures)
        failed = [o for o in outcomes if isinstance(o, dict)]
        return PredictAnswer(body, media_type, len(uploads) - len(failed), failed, seconds, outcomes, can_abstain,
                             pictures)

    def render(self, outcomes: list[FilePrediction | dict[str, str]], output: OutputOptions,
               can_abstain: bool, pictures: list[dict[str, Any]] = ()) -> tuple[Any, str]:
        """Predictions (and failures, as `{"path", "error", "kind"}`) written in `output`'s format, with its
        labels per window and confidence filter: the JSON document (each classified file's timeline
        `pictures` in its entry), or the text of another format."""
        check_format(output, len(outcomes))
        stream = io.StringIO()
        writer = PredictionWriter(stream, output, high_freq_hz=self.bundle.sample_rate / 2,
                                  can_abstain=can_abstain, labels=self.bundle.labels)
        for outcome in outcomes:
            if isinstance(outcome, dict):
                writer.add_failure(Path(outcome["path"]), outcome["error"])
            else:
                writer.add(outcome)
        writer.close()
        if output.format != "json":
            return stream.getvalue(), MEDIA_TYPES[output.format]
        body = json.loads(stream.getvalue())
        for entry, picture in zip(body["files"], pictures):
            entry.update(picture)
        return body, MEDIA_TYPES["json"]

    def explain(self, upload: Upload, ticket: Ticket, *, method: str, target: str | None, start: float | None,
                steps: int, baseline: str, output: str) -> tuple[bytes, str, dict[str, str]]:
        """The explanation picture (PNG) or the attribution arrays (.npz) of one window of `upload`; the
        memory it took is handed back to the system afterwards (without that, the heap kept ~1 GB of it)."""
        try:
            return self._explain(upload, ticket, method=method, target=target, start=start, steps=steps,
                                 baseline=baseline, output=output)
        finally:
            release_freed_memory()

    def _explain(self, upload: Upload, ticket: Ticket, *, method: str, target: str | None, start: float | None,
                 steps: int, baseline: str, output: str) -> tuple[bytes, str, dict[str, str]]:
        from audiocnn.explain import METHODS, explain
        from audiocnn.viz.explanations import save_explanation

        if output not in ("png", "npz"):
            raise OptionError("output", f"must be png or npz (got {output!r})")
        methods = METHODS if method == "both" else (method,)
        try:
            self.check_length(upload)
            if start is None and audio.info(upload.path).duration <= self.bundle.clip_seconds:
                start = 0.0  # a short recording is its only window
            elif start is None:  # the most confident window, found by a job that stops like any other
                start = self._classify(self.predictor(PredictRequest()), upload, ticket).most_confident_start
            ticket.check()
            with self._explain_lock:
                bundle.with_backbone(self.bundle)  # the first explanation builds the CNN
                result = explain(self.bundle, upload.path, methods=methods, target=target, start=start, steps=steps,
                                 baseline=baseline)
        except OptionError as err:  # an option of the request: named as the API names it
            raise OptionError(err.option, shown_message(err.problem, upload, prefix=False)) from None
        except AudiocnnError as err:
            raise type(err)(shown_message(str(err), upload)) from None
        headers = {"X-Audiocnn-Label": _ascii(result.target_label),
                   "X-Audiocnn-Probability": f"{result.probabilities[result.target]:.4f}",
                   "X-Audiocnn-Start": f"{result.start:g}"}
        if output == "npz":
            buffer = io.BytesIO()
            np.savez_compressed(buffer, image=result.image, **result.maps)
            return buffer.getvalue(), "application/octet-stream", headers
        where = f" at {result.start:g}–{result.start + result.n_samples / self.bundle.sample_rate:g} s" \
            if result.start else ""
        title = f"{upload.name}{where}: why “{result.target_label}” ({result.probabilities[result.target]:.0%})"
        picture = save_explanation(result, self.bundle.model.frontend, upload.path.with_suffix(".explain.png"), title)
        return picture.read_bytes(), "image/png", headers

    def describe(self) -> dict[str, Any]:
        """GET /v1/model: what a client needs to know about the model."""
        recipe = self.bundle.recipe
        return {
            "name": self.path.name, "labels": self.bundle.labels, "sample_rate": self.bundle.sample_rate,
            "window_seconds": self.bundle.clip_seconds, "runtime": self.settings.runtime,
            "recipe": {"dataset": recipe.data.dataset, "backbone": recipe.model.backbone,
                       "frontend": recipe.frontend, "epochs": recipe.train.epochs},
            "metrics": self.bundle.metrics, "calibration": self.bundle.calibration,
            "limits": {"max_upload_mb": self.settings.max_upload_mb, "max_seconds": self.settings.max_seconds,
                       "max_files": self.settings.max_files, "timeout_s": self.settings.timeout_s,
                       "upload_timeout_s": self.settings.upload_timeout_s,
                       "window_seconds": [self.bundle.clip_seconds * bound for bound in WINDOW_RANGE],
                       "min_hop_fraction": MIN_HOP_FRACTION, "keep_results": self.settings.keep_results,
                       "keep_mb": self.settings.keep_mb, "keep_minutes": self.settings.keep_minutes},
            "model_card": bundle.model_card(self.path),
        }


def shown_message(message: str, upload: Upload, prefix: bool = True) -> str:
    """An error's one line, naming the upload as the client named it, never by its path on this server
    (and, with `prefix`, starting with its name)."""
    message = message.replace(str(upload.path), upload.name).replace(str(upload.path.parent), "<upload>")
    return message if message.startswith(upload.name) or not prefix else f"{upload.name}: {message}"


def failure_line(err: Exception, upload: Upload) -> str:
    """What a client is told about one upload's failure: the library's message, or (for anything else)
    `NAME: internal error (Type)`, the message and traceback going to this server's logs only."""
    if isinstance(err, AudiocnnError):
        return shown_message(str(err), upload)
    log.error("%s", item_failure(upload.name, err))
    return public_failure(upload.name, err)


def failure_kind(err: Exception) -> str:
    """How a failure is counted in the metrics: error_kind's, or `internal` for a surprise."""
    return error_kind(err) if isinstance(err, AudiocnnError) else "internal"


def error_kind(err: AudiocnnError) -> str:
    """How a refusal is counted in the metrics: too_long, bad_audio or bad_option."""
    return "too_long" if isinstance(err, TooLong) else "bad_audio" if isinstance(err, AudioError) else "bad_option"


def _ascii(text: str) -> str:
    """A header value: HTTP headers are Latin-1, labels may not be."""
    return text.encode("ascii", "backslashreplace").decode("ascii")
