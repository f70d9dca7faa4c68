"""Load any audio file as mono float32 at the rate a model wants.

Every path into the models goes through here, so every bad file fails the same way: an
`AudioError` whose message starts with the file name and says what is wrong. Decoding is
libsndfile's (WAV, FLAC, OGG/Vorbis, Opus, AIFF, AU, ...), but FFmpeg's (PyAV, frame by frame to
the real end) for MPEG audio (MP3, also in a WAV container, as some phones write it: libsndfile
estimates its length from the first frame's bitrate and stops there, so a VBR file without a Xing
header lost up to two thirds of its audio) and for the containers libsndfile does not read
(`FFMPEG_EXTENSIONS`: AAC in `.m4a`, phones' voice memos; Opus in `.webm`, what browsers record,
often with no stated length, then counted by decoding). Resampling is soxr's.

Policy for awkward but valid input:
- **Digital silence** is valid audio: it loads as zeros (a model may well call it "nothing").
- **Short clips** load as they are; `fix_length` zero-pads them at the end to the length a
  model expects (ESC-50 itself pads short events with silence the same way).
- **Long recordings** can be read in blocks with `stream`, so memory does not grow with length.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from audiocnn.errors import AudiocnnWarning, AudioError
from audiocnn.tabletext import walk

#: Sample rates outside this range are treated as a corrupt header, not as audio.
MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 768_000

#: Containers libsndfile cannot read, decoded by FFmpeg when their name says they are one of these.
FFMPEG_EXTENSIONS = (".m4a", ".mp4", ".aac", ".webm", ".weba", ".mka")
#: Extensions that folder scans treat as audio.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", *FFMPEG_EXTENSIONS)
#: `AudioInfo.format` of a file in one of the `FFMPEG_EXTENSIONS` containers (its subtype: the codec).
FFMPEG = "FFMPEG"


def audio_files(folder: Path) -> list[Path]:
    """Audio files below `folder`, at any depth, in a stable order.

    Walked as every folder of inputs is (`tabletext.walk`): with an explicit stack, not recursion
    (a folder 1000 levels deep must not raise RecursionError), links to folders not followed (no
    loops), links to files followed. What cannot be a recording to read (a pipe named `.wav`, a
    loop of file links `a.wav -> b.wav -> a.wav`, a subfolder that cannot be listed) is skipped
    with a warning: one odd entry must not stop the whole folder.
    """
    return walk(folder, lambda name: Path(name).suffix.lower() in AUDIO_EXTENSIONS)


# Formats whose frame count in the header is an estimate (a shortfall of a few frames is normal).
_ESTIMATED_LENGTH_FORMATS = {"OGG"}
_STREAMING_SIZES = {0xFFFFFFFF}
_TRUNCATED_CHUNK = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


@dataclass(frozen=True)
class AudioInfo:
    """What the header of a validated file says."""

    path: Path
    sample_rate: int
    channels: int
    frames: int  # for audio FFmpeg decodes an estimate: the decoded length may differ
    format: str
    subtype: str = ""

    @property
    def duration(self) -> float:
        """Length in seconds, from the header's frame count and rate."""
        return self.frames / self.sample_rate

    @property
    def is_mpeg(self) -> bool:
        """MPEG audio, in an .mp3 or a WAV container (see the module docstring)."""
        return self.format == "MP3" or self.subtype.startswith("MPEG_LAYER")

    @property
    def by_ffmpeg(self) -> bool:
        """Decoded by FFmpeg: MPEG audio, and the containers libsndfile does not read."""
        return self.is_mpeg or self.format == FFMPEG


def info(path: str | Path) -> AudioInfo:
    """Open `path`, check that it holds decodable audio with a sane header, and describe it."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a folder, not an audio file")
    if not path.is_file():  # opening a pipe would wait for a writer forever
        raise AudioError(f"{path}: not a regular file (a pipe, socket or device); give an audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: file is empty (0 bytes)")
    try:
        header = sf.info(str(path))
    except sf.LibsndfileError as err:
        if path.suffix.lower() in FFMPEG_EXTENSIONS:
            return _ffmpeg_info(path)
        reason = _libsndfile_reason(err)
        if "channel count is zero" in reason.lower():
            raise AudioError(f"{path}: file has no audio channels") from None
        if "malformed" in reason:
            raise AudioError(f"{path}: corrupt or truncated audio file ({reason})") from None
        raise AudioError(f"{path}: not a readable audio file ({reason})") from None
    except (RuntimeError, TypeError, ValueError) as err:
        raise AudioError(f"{path}: not a readable audio file ({err})") from None
    _check_not_truncated(path, header.extra_info)
    return _checked_header(AudioInfo(path, int(header.samplerate), int(header.channels), int(header.frames),
                                     header.format, header.subtype))


def _checked_header(meta: AudioInfo) -> AudioInfo:
    """`meta`, unless what it says cannot be a recording's."""
    if meta.channels < 1:
        raise AudioError(f"{meta.path}: file has no audio channels")
    if not MIN_SAMPLE_RATE <= meta.sample_rate <= MAX_SAMPLE_RATE:
        raise AudioError(
            f"{meta.path}: implausible sample rate {meta.sample_rate} Hz "
            f"(expected {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz); the header is probably corrupt"
        )
    if meta.frames <= 0:
        raise AudioError(f"{meta.path}: file contains no audio samples")
    return meta


def _ffmpeg_info(path: Path) -> AudioInfo:
    """What FFmpeg says of a container libsndfile does not read (`FFMPEG_EXTENSIONS`). A stream that
    states no length (a live WebM from a browser's MediaRecorder) is counted by decoding it."""
    import av

    try:
        with av.open(str(path), metadata_errors="replace") as container:
            if not container.streams.audio:
                raise AudioError(f"{path}: no audio stream in the file")
            stream = container.streams.audio[0]
            rate, channels = int(stream.rate or 0), int(stream.channels or 0)
            if stream.duration:
                frames = round(float(stream.duration * stream.time_base) * rate)
            elif container.duration:
                frames = round(container.duration / av.time_base * rate)
            else:
                frames = sum(frame.samples for frame in container.decode(stream))
            codec = stream.codec_context.name.upper()
    except av.FFmpegError as err:
        raise AudioError(f"{path}: not a readable audio file (FFmpeg: {err})") from None
    return _checked_header(AudioInfo(path, rate, channels, frames, FFMPEG, codec))


def load(
    path: str | Path,
    sample_rate: int | None = None,
    *,
    offset: float = 0.0,
    duration: float | None = None,
) -> np.ndarray:
    """Read `path` as a mono float32 waveform at `sample_rate` (None keeps the file's rate).

    `offset` and `duration` (seconds) read only part of the file. Raises `AudioError` for
    empty, non-audio, truncated or corrupt files and for NaN/inf samples.
    """
    meta = info(path)
    start, stop = _frame_range(meta, offset, duration)
    return resample(_read_mono(meta, start, stop), meta.sample_rate, sample_rate or meta.sample_rate)


def stream(
    path: str | Path, sample_rate: int | None = None, *, block_seconds: float = 60.0,
    offset: float = 0.0, duration: float | None = None,
) -> Iterator[np.ndarray]:
    """Yield consecutive mono float32 blocks of `path` at `sample_rate`, ~`block_seconds` each.

    Memory stays flat for hour-long recordings. Resampling carries its filter state across
    blocks (soxr's stream), so concatenating the blocks matches `load` up to resampler rounding.
    `offset` and `duration` (seconds) stream only that part: libsndfile seeks to it, so the
    hours before it are not decoded (audio FFmpeg decodes is decoded from its start and skipped).
    """
    meta = info(path)
    start, stop = _frame_range(meta, offset, duration)
    target_rate = sample_rate or meta.sample_rate
    block_frames = max(1, int(block_seconds * meta.sample_rate))
    resampler = None
    if target_rate != meta.sample_rate:
        resampler = soxr.ResampleStream(meta.sample_rate, target_rate, 1, dtype="float32", quality="HQ")
    read = start
    blocks = (_ffmpeg_blocks(meta, block_frames, start, stop) if meta.by_ffmpeg
              else _libsndfile_blocks(meta, block_frames, start, stop))
    pending = next(blocks, None)
    if pending is None and start:
        raise AudioError(f"{path}: offset {offset:.3f} s is past the end of the audio")
    while pending is not None:
        block, pending = pending, next(blocks, None)
        read += len(block)
        mono = _checked_mono(path, block, read)
        out = mono if resampler is None else resampler.resample_chunk(mono, last=pending is None)
        if len(out):
            yield out
    if stop is None:
        _check_complete(meta, read)


def _frame_range(meta: AudioInfo, offset: float, duration: float | None) -> tuple[int, int | None]:
    """Frames [start, stop) of the part `offset`/`duration` (seconds) name; stop None: to the end."""
    if offset < 0:
        raise AudioError(f"{meta.path}: offset must not be negative (got {offset:g} s)")
    if duration is not None and duration <= 0:
        raise AudioError(f"{meta.path}: duration must be positive (got {duration:g} s)")
    start = int(round(offset * meta.sample_rate))
    if start >= meta.frames and not meta.by_ffmpeg:  # FFmpeg's length is an estimate: decoding tells
        raise AudioError(f"{meta.path}: offset {offset:.3f} s is past the end ({meta.duration:.3f} s)")
    stop = None if duration is None else start + max(1, int(round(duration * meta.sample_rate)))
    return start, stop


def _libsndfile_blocks(meta: AudioInfo, block_frames: int, start: int = 0, stop: int | None = None
                       ) -> Iterator[np.ndarray]:
    """(frames, channels) float32 blocks of frames [start, stop) of a file libsndfile decodes.

    Read block by block, so memory follows the audio that is really there, not the frame
    count a (possibly damaged) header claims."""
    try:
        with sf.SoundFile(str(meta.path)) as handle:
            if start:
                handle.seek(start)
            left = stop - start if stop is not None else None
            while left is None or left > 0:
                block = handle.read(block_frames if left is None else min(block_frames, left), dtype="float32",
                                    always_2d=True)
                if not len(block):
                    return
                if left is not None:
                    left -= len(block)
                yield block
    except sf.LibsndfileError as err:
        raise AudioError(f"{meta.path}: corrupt audio data ({_libsndfile_reason(err)})") from None


def _ffmpeg_blocks(meta: AudioInfo, block_frames: int, start: int = 0, stop: int | None = None
                   ) -> Iterator[np.ndarray]:
    """(frames, channels) float32 blocks of frames [start, stop) of audio FFmpeg decodes, from the
    file's start (frame-accurate, unlike a seek) to its real end or `stop`."""
    position = 0
    for block in _ffmpeg_decoded(meta, block_frames):
        first, position = position, position + len(block)
        if position <= start:
            continue
        if stop is not None and first >= stop:
            return
        yield block[max(0, start - first): None if stop is None else stop - first]


def _ffmpeg_decoded(meta: AudioInfo, block_frames: int) -> Iterator[np.ndarray]:
    """(frames, channels) float32 blocks of audio decoded by FFmpeg to the file's real end."""
    import av

    pending: list[np.ndarray] = []
    held = 0
    try:
        # Tags are text an editor wrote in whatever encoding it liked: never let them stop the audio.
        with av.open(str(meta.path), metadata_errors="replace") as container:
            stream = container.streams.audio[0]
            if stream.rate != meta.sample_rate:
                raise AudioError(f"{meta.path}: corrupt audio data (header says {meta.sample_rate} Hz, "
                                 f"the {_kind(meta)} stream {stream.rate} Hz)")
            # float planes in the header's channel layout, even where a damaged frame claims another
            # (more than two channels are mixed down to stereo by FFmpeg, then to mono here)
            as_float = av.AudioResampler(format="fltp", layout="mono" if meta.channels == 1 else "stereo")
            for frame in container.decode(stream):
                for planes in as_float.resample(frame):
                    pending.append(planes.to_ndarray().T)
                    held += len(pending[-1])
                while held >= block_frames:
                    joined = np.concatenate(pending)
                    yield np.ascontiguousarray(joined[:block_frames])
                    pending, held = [joined[block_frames:]], held - block_frames
    except av.FFmpegError as err:
        raise AudioError(f"{meta.path}: corrupt audio data (FFmpeg: {err})") from None
    except IndexError:
        raise AudioError(f"{meta.path}: no audio stream in the file") from None
    if held:
        yield np.ascontiguousarray(np.concatenate(pending))


def to_mono(frames: np.ndarray) -> np.ndarray:
    """Average channels: (frames, channels) -> (frames,). Mono input passes through."""
    if frames.ndim == 1:
        return frames.astype(np.float32, copy=False)
    return frames.mean(axis=1, dtype=np.float32)


def resample(waveform: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Band-limited resampling (soxr, high quality); a no-op when the rates match."""
    if from_rate == to_rate or len(waveform) == 0:
        return waveform.astype(np.float32, copy=False)
    return soxr.resample(waveform, from_rate, to_rate, quality="HQ").astype(np.float32, copy=False)


def fix_length(waveform: np.ndarray, n_samples: int, *, start: int = 0) -> np.ndarray:
    """Exactly `n_samples` from `start`: crop longer input, zero-pad shorter input at the end."""
    piece = waveform[start : start + n_samples]
    if len(piece) == n_samples:
        return piece
    return np.pad(piece, (0, n_samples - len(piece)))


def _read_mono(meta: AudioInfo, start: int, stop: int | None) -> np.ndarray:
    """Frames [start, stop) as mono; `stop=None` reads to the real end."""
    if meta.by_ffmpeg:
        blocks = list(_ffmpeg_blocks(meta, 1 << 20))
        if not blocks:
            raise AudioError(f"{meta.path}: no audio could be decoded (corrupt {_kind(meta)} data)")
        frames = np.concatenate(blocks)
        if start >= len(frames):
            raise AudioError(f"{meta.path}: offset {start / meta.sample_rate:.3f} s is past the end "
                             f"({len(frames) / meta.sample_rate:.3f} s)")
        _check_complete(meta, len(frames))
        frames = frames[start:stop]
        return _checked_mono(meta.path, frames, start + len(frames))
    frames = np.concatenate([*_libsndfile_blocks(meta, 1 << 20, start, stop),
                             np.empty((0, meta.channels), np.float32)])
    if stop is None:
        _check_complete(meta, start + len(frames))
    return _checked_mono(meta.path, frames, start + len(frames))


#: No real recording's samples come near this (full scale is 1; float files clipped in
#: processing may exceed it a little): beyond it, float data is garbage and would overflow.
MAX_SAMPLE_MAGNITUDE = 1e6


def _checked_mono(path: str | Path, frames: np.ndarray, position: int) -> np.ndarray:
    """Mono of a (frames, channels) block, refusing NaN/inf and absurd magnitudes; `position`
    is the frame after it."""
    finite = np.isfinite(frames).all(axis=1)
    if not finite.all():
        where = position - len(frames) + int(np.argmin(finite))
        raise AudioError(f"{path}: contains NaN or infinite samples (first at frame {where})")
    peak = float(np.abs(frames).max()) if frames.size else 0.0
    if peak > MAX_SAMPLE_MAGNITUDE:
        raise AudioError(f"{path}: corrupt float samples (values up to {peak:.3g}; audio is within ±1)")
    return to_mono(frames)


def _check_complete(meta: AudioInfo, frames_read: int) -> None:
    """The decoder stopped early: the header promised more than the data holds.

    Refused for formats whose header states the length; for audio FFmpeg decodes, whose length is
    an estimate (MP3 without a Xing tag, a container's rounded duration), what decodes is used,
    with a warning.
    """
    slack = int(0.01 * meta.frames) if meta.format in _ESTIMATED_LENGTH_FORMATS or meta.by_ffmpeg else 0
    slack = max(slack, meta.sample_rate // 10) if meta.format == FFMPEG else slack  # codec delay and padding
    if frames_read >= meta.frames - slack:
        return
    if meta.by_ffmpeg:
        guess = "an estimate without a Xing tag" if meta.is_mpeg else "an estimate"
        warnings.warn(f"{meta.path}: {frames_read / meta.sample_rate:.2f} s of {_kind(meta)} audio decoded where its "
                      f"header suggests {meta.duration:.2f} s ({guess}, or a file cut short); using what decodes",
                      AudiocnnWarning, stacklevel=3)
        return
    raise AudioError(
        f"{meta.path}: truncated or corrupt: header says {meta.frames} frames, "
        f"only {frames_read} could be decoded"
    )


def _kind(meta: AudioInfo) -> str:
    """How messages name audio FFmpeg decodes: MPEG, or the codec (AAC, OPUS, ...)."""
    return "MPEG" if meta.is_mpeg else meta.subtype


def _check_not_truncated(path: Path, log: str) -> None:
    """libsndfile shortens a truncated WAV silently but notes it in its log; we refuse it.

    A placeholder size (a WAV streamed to a pipe before its length was known) is not a cut.
    """
    match = _TRUNCATED_CHUNK.search(log)
    declared = int(match.group(1)) if match else 0
    # 0xFFFFFFFF is what streaming writers (e.g. ffmpeg to a pipe) put before they know the size.
    if match and declared not in _STREAMING_SIZES and int(match.group(2)) < declared:
        raise AudioError(
            f"{path}: truncated: the data chunk should hold {match.group(1)} bytes, "
            f"the file has only {match.group(2)}"
        )
    if "File ended unexpectedly" in log:
        raise AudioError(f"{path}: truncated: the stream ends before its end-of-stream marker")


def _libsndfile_reason(err: Exception) -> str:
    """libsndfile says "Error opening 'x.wav': Format not recognised." -- keep only the reason."""
    text = str(err)
    reason = text.split(": ", 1)[1] if text.startswith("Error opening") and ": " in text else text
    return reason.strip().rstrip(".")
