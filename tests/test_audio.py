"""Audio loading: every format, rate and channel layout in, mono float32 at the asked rate out;
every kind of bad file out as one clear error line from the CLI."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiocnn import audio
from audiocnn.errors import AudiocnnWarning, AudioError
from conftest import thousand_levels, write_tone


def dominant_hz(wave: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.fft.rfftfreq(len(wave), 1 / rate)[np.argmax(spectrum)])


@pytest.mark.parametrize(
    "name, rate, channels, subtype",
    [
        ("int16.wav", 44_100, 2, "PCM_16"),
        ("int32.wav", 8_000, 1, "PCM_32"),
        ("float.wav", 48_000, 6, "FLOAT"),
        ("u8.wav", 11_025, 1, "PCM_U8"),
        ("clip.flac", 22_050, 2, None),
        ("clip.ogg", 32_000, 1, None),
        ("clip.mp3", 44_100, 2, None),
    ],
)
@pytest.mark.slow
def test_any_format_rate_and_layout_loads_as_mono_float32_at_target_rate(tmp_path, name, rate, channels, subtype):
    path = write_tone(tmp_path / name, seconds=1.0, rate=rate, freq=1000.0, channels=channels, subtype=subtype)
    wave = audio.load(path, 16_000)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(len(wave) - 16_000) <= 0.01 * 16_000  # MP3 adds a little encoder padding
    assert abs(dominant_hz(wave, 16_000) - 1000.0) < 5.0
    assert 0.3 < np.abs(wave).max() < 0.6


def test_real_esc50_clip_loads_at_its_rate_and_resamples(esc50_clip):
    native = audio.load(esc50_clip)
    assert native.shape == (80_000,)
    up = audio.load(esc50_clip, 22_050)
    assert up.shape == (110_250,)
    # Energy is preserved by a band-limited resampler (nothing above 8 kHz to lose).
    assert np.isclose(np.mean(native**2), np.mean(up**2), rtol=0.02)


def test_offset_and_duration_read_part_of_a_file(esc50_clip):
    whole = audio.load(esc50_clip)
    part = audio.load(esc50_clip, offset=1.0, duration=0.5)
    np.testing.assert_array_equal(part, whole[16_000:24_000])


def test_silence_and_very_short_clips_are_valid(tmp_path):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16_000), 16_000)
    assert not audio.load(silent).any()
    short = tmp_path / "short.wav"
    sf.write(short, np.full(3, 0.1), 16_000)
    wave = audio.load(short)
    assert len(wave) == 3
    padded = audio.fix_length(wave, 10)
    assert padded.shape == (10,) and np.allclose(padded[:3], 0.1, atol=1e-4) and not padded[3:].any()


def test_fix_length_crops_from_start():
    wave = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(audio.fix_length(wave, 4, start=3), [3, 4, 5, 6])
    np.testing.assert_array_equal(audio.fix_length(wave, 4, start=8), [8, 9, 0, 0])


@pytest.mark.parametrize("rate", [16_000, 22_050])
def test_stream_in_blocks_matches_loading_whole(esc50_clip, rate):
    whole = audio.load(esc50_clip, rate)
    blocks = list(audio.stream(esc50_clip, rate, block_seconds=0.37))
    assert len(blocks) > 10
    assert max(len(b) for b in blocks) <= 2 * int(0.37 * rate)  # the last block also flushes the resampler
    joined = np.concatenate(blocks)
    assert joined.shape == whole.shape
    np.testing.assert_allclose(joined, whole, atol=1e-5)


# ----------------------------------------------------------------------------- bad input


def wav_bytes(channels: int, rate: int, frames: int = 100) -> bytes:
    """A hand-made PCM WAV header, to write headers no encoder would produce."""
    data = b"\x00" * (frames * max(channels, 1) * 2)
    fmt = struct.pack("<HHIIHH", 1, channels, rate, (rate * channels * 2) & 0xFFFFFFFF, channels * 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def truncated(tmp_path: Path, name: str) -> Path:
    good = write_tone(tmp_path / f"good-{name}", seconds=1.0, channels=2)
    bad = tmp_path / name
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return bad


def nan_file(tmp_path: Path, value: float) -> Path:
    wave = np.zeros(1000, dtype=np.float32)
    wave[500] = value
    path = tmp_path / "nan.wav"
    sf.write(path, wave, 16_000, subtype="FLOAT")
    return path


BAD_FILES = {
    "empty": (lambda d: _write(d / "empty.wav", b""), "file is empty"),
    "not audio": (lambda d: _write(d / "notes.wav", b"hello, this is text\n" * 20), "not a readable audio file"),
    "truncated wav": (lambda d: truncated(d, "cut.wav"), "truncated"),
    "truncated flac": (lambda d: truncated(d, "cut.flac"), "corrupt"),
    "truncated ogg": (lambda d: truncated(d, "cut.ogg"), "truncated"),
    "nan samples": (lambda d: nan_file(d, np.nan), "NaN or infinite"),
    "inf samples": (lambda d: nan_file(d, np.inf), "NaN or infinite"),
    "zero channels": (lambda d: _write(d / "zero.wav", wav_bytes(0, 16_000)), "file has no audio channels"),
    "absurd rate": (lambda d: _write(d / "rate.wav", wav_bytes(1, 3)), "implausible sample rate 3 Hz"),
    "zero rate": (lambda d: _write(d / "rate0.wav", wav_bytes(1, 0)), "not a readable audio file"),
    "no samples": (lambda d: _write(d / "nothing.wav", wav_bytes(1, 16_000, frames=0)), "no audio samples"),
    "missing": (lambda d: d / "absent.wav", "no such file"),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bad_file_raises_audio_error_naming_file_and_problem(tmp_path, kind):
    make, problem = BAD_FILES[kind]
    path = make(tmp_path)
    with pytest.raises(AudioError) as caught:
        audio.load(path, 16_000)
    message = str(caught.value)
    assert message.startswith(str(path)) and problem in message


@pytest.mark.parametrize("kind", [k for k in BAD_FILES if k != "missing"])
def test_cli_reports_bad_file_in_one_line_and_exits_nonzero(tmp_path, cli, kind):
    make, problem = BAD_FILES[kind]
    path = make(tmp_path)
    result = cli("features", path, "--out", tmp_path / "out")
    assert result.code == 1
    lines = [line for line in result.err.splitlines() if line.startswith("audiocnn: error:")]
    assert len(lines) == 1 and path.name in lines[0] and problem in lines[0]
    assert "Traceback" not in result.err


@pytest.mark.slow
def test_a_batch_with_bad_files_finishes_the_good_ones(tmp_path, cli):
    folder = tmp_path / "mixed"
    write_tone(folder / "a.wav")
    _write(folder / "b.wav", b"")
    write_tone(folder / "c.flac")
    result = cli("features", folder, "--kind", "mel", "--out", tmp_path / "out")
    assert result.code == 1
    assert (tmp_path / "out" / "a.mel.png").is_file() and (tmp_path / "out" / "c.mel.png").is_file()
    assert "b.wav: file is empty" in result.err and "2 file(s) drawn, 1 failed" in result.err


def _vbr_mp3(path: Path, loud_first: bool) -> tuple[bytes, int]:
    """A 6 s VBR MP3 (44.1 kHz, as libsndfile's LAME writes it: with a Xing tag) whose bitrate
    changes half-way, and its true length in samples. Without its Xing tag, a reader that
    estimates the length from the first frame's bitrate is off by a factor of 2-3."""
    rate = 44_100
    rng = np.random.default_rng(0)
    quiet = 0.001 * np.sin(2 * np.pi * 440 * np.arange(3 * rate) / rate)
    loud = 0.5 * rng.standard_normal(3 * rate)
    wave = np.concatenate([loud, quiet] if loud_first else [quiet, loud]).astype(np.float32)
    sf.write(path, wave, rate, format="MP3", subtype="MPEG_LAYER_III")
    return path.read_bytes(), len(wave)


def _without_xing_tag(data: bytes) -> bytes:
    """The MP3 minus its first frame, the one holding the Xing tag (MPEG-1 Layer III frame length:
    144 x bitrate / rate + padding)."""
    assert data[:2] == b"\xff\xfb" and b"Xing" in data[:64]
    header = int.from_bytes(data[:4], "big")
    bitrate = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320][(header >> 12) & 0xF] * 1000
    rate = (44_100, 48_000, 32_000)[(header >> 10) & 3]
    return data[144 * bitrate // rate + ((header >> 9) & 1):]


def _mp3_in_wav(mp3: bytes, rate: int, samples: int) -> bytes:
    """MP3 frames in a WAV container (format tag 0x55), as some recorders and phone apps write them."""
    fmt = struct.pack("<HHIIHH", 0x55, 1, rate, 16_000, 1, 0) + struct.pack("<HHIHHH", 12, 1, 2, 417, 1, 1393)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"fact" + struct.pack("<II", 4, samples)
    chunks += b"data" + struct.pack("<I", len(mp3)) + mp3 + b"\0" * (len(mp3) % 2)
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


@pytest.mark.parametrize("loud_first", [False, True], ids=["estimate-short", "estimate-long"])
def test_a_vbr_mp3_without_a_xing_tag_and_mp3_in_wav_decode_to_their_real_end(tmp_path, loud_first, recwarn):
    """libsndfile estimates these lengths from the first frame and stops there: it kept 2 of 6 s
    silently, or refused the file as truncated. FFmpeg decodes them whole."""
    data, samples = _vbr_mp3(tmp_path / "with-tag.mp3", loud_first)
    plain = tmp_path / "no-tag.mp3"
    plain.write_bytes(_without_xing_tag(data))
    wrapped = tmp_path / "mp3-in.wav"
    wrapped.write_bytes(_mp3_in_wav(_without_xing_tag(data), 44_100, samples))
    for path in (plain, wrapped):
        estimate = audio.info(path).frames
        assert abs(estimate - samples) > 0.3 * samples, "the estimate is not off: the test lost its point"
        wave = audio.load(path)
        assert samples <= len(wave) <= samples + 2 * 1152, (path.name, len(wave))  # the untrimmed encoder delay
        streamed = np.concatenate(list(audio.stream(path, 16_000, block_seconds=1.0)))
        np.testing.assert_allclose(streamed, audio.load(path, 16_000), atol=1e-6)
        loud = wave[: 3 * 44_100] if loud_first else wave[-3 * 44_100 :]
        assert np.sqrt(np.mean(loud**2)) > 0.3  # the loud half is there, wherever the estimate ended
    assert len(audio.load(tmp_path / "with-tag.mp3")) == samples  # with its tag, exact


def _with_info_chunk(wav: bytes, fields: dict[bytes, bytes]) -> bytes:
    """`wav` with a LIST INFO chunk appended, its text fields as raw bytes (old editors wrote Latin-1)."""
    info = b"".join(key + struct.pack("<I", len(value)) + value + b"\0" * (len(value) % 2)
                    for key, value in fields.items())
    body = wav[12:] + b"LIST" + struct.pack("<I", 4 + len(info)) + b"INFO" + info
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body


def _id3v2(text: bytes, encoding: int) -> bytes:
    """An ID3v2.3 tag whose title and artist frames hold `text` under `encoding` (0 Latin-1, 1 UTF-16, 3 UTF-8)."""
    frames = b"".join(fid + struct.pack(">I", 1 + len(text)) + b"\0\0" + bytes([encoding]) + text
                      for fid in (b"TIT2", b"TPE1"))
    size = bytes((len(frames) >> shift) & 0x7F for shift in (21, 14, 7, 0))  # "syncsafe": 7 bits a byte
    return b"ID3\x03\x00\x00" + size + frames


#: An ID3v1 tag (the last 128 bytes of an MP3): fixed-width fields, any bytes an old tagger wrote.
_ID3V1 = b"TAG" + "Vögel ©".encode("latin-1").ljust(30, b"\xff") + b"\xfe" * 30 + b"\xa9" * 30 + b"1999" + b"\x80" * 30 + b"\xff"


@pytest.mark.parametrize("kind", ["mp3-in-wav", "pcm-wav", "id3-latin1", "id3-bad-utf8", "id3-bad-utf16"])
def test_tags_in_any_encoding_never_stop_the_audio(tmp_path, kind):
    """A WAV holding MP3 frames whose INFO software tag an old editor wrote in Latin-1 made PyAV raise
    UnicodeDecodeError, which stopped a 548-file batch. Tags are never required to be UTF-8."""
    rate, samples = 44_100, 44_100
    wave = (0.1 * np.sin(2 * np.pi * 440 * np.arange(samples) / rate)).astype(np.float32)
    sf.write(tmp_path / "plain.mp3", wave, rate, format="MP3", subtype="MPEG_LAYER_III")
    sf.write(tmp_path / "plain.wav", wave, rate)
    mp3 = (tmp_path / "plain.mp3").read_bytes()
    latin = {b"ISFT": "Cool©Edit 96".encode("latin-1"), b"INAM": b"\xff\xfe\xa9\x00\x80"}
    data = {
        "mp3-in-wav": lambda: _with_info_chunk(_mp3_in_wav(mp3, rate, samples), latin),
        "pcm-wav": lambda: _with_info_chunk((tmp_path / "plain.wav").read_bytes(), latin),
        "id3-latin1": lambda: _id3v2("Zürich ©".encode("latin-1"), 0) + mp3 + _ID3V1,
        "id3-bad-utf8": lambda: _id3v2(b"\xff\xfe\xa9 bad \xc3", 3) + mp3 + _ID3V1,
        "id3-bad-utf16": lambda: _id3v2(b"\xff\xfeZ\x00\xd8", 1) + mp3 + _ID3V1,
    }[kind]()
    path = tmp_path / f"tagged.{'wav' if 'wav' in kind else 'mp3'}"
    path.write_bytes(data)
    loaded = audio.load(path, 16_000)
    assert abs(len(loaded) - 16_000) < 0.1 * 16_000
    assert dominant_hz(loaded[:8000], 16_000) == pytest.approx(440, abs=5)


def test_an_mp3_cut_short_loads_what_decodes_with_a_warning(tmp_path):
    cut = truncated(tmp_path, "cut.mp3")
    with pytest.warns(AudiocnnWarning, match=r"cut.mp3: 0\.\d+ s of MPEG audio decoded where its header suggests 1\.00 s"):
        wave = audio.load(cut, 16_000)
    assert 0.3 * 16_000 < len(wave) < 0.7 * 16_000


def test_negative_offset_and_empty_duration_are_refused(esc50_clip):
    with pytest.raises(AudioError, match="offset must not be negative"):
        audio.load(esc50_clip, offset=-1.0)
    with pytest.raises(AudioError, match="duration must be positive"):
        audio.load(esc50_clip, duration=0.0)
    with pytest.raises(AudioError, match="is past the end"):
        audio.load(esc50_clip, offset=5.5)


def test_wav_streamed_to_a_pipe_with_placeholder_size_is_not_truncated(tmp_path):
    """A WAV written to a pipe carries 0xFFFFFFFF as its data size: not a truncation."""
    placeholder = 0xFFFFFFFF
    good = write_tone(tmp_path / "good.wav", seconds=0.1, subtype="PCM_16")
    data = bytearray(good.read_bytes())
    at = data.index(b"data") + 4
    data[at : at + 4] = struct.pack("<I", placeholder)
    streamed = _write(tmp_path / "streamed.wav", bytes(data))
    np.testing.assert_allclose(audio.load(streamed), audio.load(good), atol=1e-6)


def test_stream_reports_nan_in_a_later_block_with_its_frame(tmp_path):
    wave = np.zeros(16_000, dtype=np.float32)
    wave[12_345] = np.nan
    path = tmp_path / "late-nan.wav"
    sf.write(path, wave, 16_000, subtype="FLOAT")
    blocks = audio.stream(path, block_seconds=0.25)
    first = next(blocks)
    assert len(first) == 4000
    with pytest.raises(AudioError, match="first at frame 12345"):
        list(blocks)


def _returns_within(seconds: float, call) -> dict:  # noqa: ANN001
    """Run `call` in a daemon thread: what it returned or raised, or {"hung": True}."""
    import threading

    outcome: dict = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except Exception as err:  # noqa: BLE001 - the test looks at it
            outcome["error"] = err

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    return outcome if not worker.is_alive() else {"hung": True}


def test_a_pipe_is_refused_not_waited_on(tmp_path):
    import contextlib
    import os

    from audiocnn import bundle
    from audiocnn.errors import BundleError

    pipe = tmp_path / "stream.wav"
    os.mkfifo(pipe)
    (tmp_path / "model").mkdir()
    os.mkfifo(tmp_path / "model" / "config.json")
    try:
        read = _returns_within(10, lambda: audio.info(pipe))
        assert isinstance(read.get("error"), AudioError) and "not a regular file" in str(read["error"]), read
        loaded = _returns_within(10, lambda: bundle.load(tmp_path / "model"))
        assert isinstance(loaded.get("error"), BundleError) and "not a regular file" in str(loaded["error"]), loaded
    finally:  # release a reader the old code left blocked, so the test process can end
        for fifo in (pipe, tmp_path / "model" / "config.json"):
            with contextlib.suppress(OSError):  # no reader waiting: nothing to release
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    with pytest.warns(AudiocnnWarning, match=r"stream\.wav: skipped \(not a regular file"):
        assert audio.audio_files(tmp_path) == []  # a pipe named .wav is not a recording to list


@pytest.mark.filterwarnings("default::audiocnn.errors.AudiocnnWarning")  # shown as the CLI shows it
@pytest.mark.slow
def test_a_loop_of_file_links_is_skipped_with_a_warning_and_the_folder_classified(cli, tmp_path):
    """`a.wav -> b.wav -> a.wav` raised ELOOP while listing the folder: `predict` and `data info` stopped
    for every recording in it (a regression of issue 29's probe)."""
    folder = tmp_path / "recordings" / "tone"
    write_tone(folder / "ok.wav")
    (folder / "a.wav").symlink_to("b.wav")
    (folder / "b.wav").symlink_to("a.wav")
    with pytest.warns(AudiocnnWarning, match=r"[ab]\.wav: skipped \(Too many levels of symbolic links\)"):
        assert audio.audio_files(folder) == [folder / "ok.wav"]
    result = cli("predict", folder, "--format", "csv", "--no-progress")
    assert result.code == 0 and "ok.wav" in result.out and "Traceback" not in result.err
    warned = [line for line in result.err.splitlines() if line.startswith("audiocnn: warning:")]
    assert len(warned) == 2 and all("Too many levels of symbolic links" in line for line in warned)


@pytest.mark.slow
def test_a_folder_a_thousand_levels_deep_is_walked(tmp_path):
    (tmp_path / "loop").symlink_to(tmp_path)  # a link back up is not followed
    with thousand_levels(tmp_path) as deepest:
        (deepest / "x.wav").write_bytes(b"")
        with pytest.warns(AudiocnnWarning, match=r"loop: skipped \(a link to a folder, not followed\)"):
            found = audio.audio_files(tmp_path)
        assert len(found) == 1 and found[0] == deepest / "x.wav"


@pytest.mark.parametrize("name, live", [("memo.m4a", False), ("recorded.webm", False), ("recorded.webm", True)])
def test_phone_and_browser_recordings_decode_like_their_source(tmp_path, name, live, recwarn):
    """Issue 32: `.m4a` (AAC, phones' voice memos) and `.webm` (Opus, browsers' MediaRecorder, which
    states no length) were refused. They decode through FFmpeg to the source's sound, whole, with
    no warning; a live WebM's length is counted by decoding it."""
    from conftest import REPO, encode_with_ffmpeg

    source = REPO / "examples" / "dog-bark.wav"
    recording = encode_with_ffmpeg(source, tmp_path / name, live=live)
    meta = audio.info(recording)
    assert meta.format == audio.FFMPEG and meta.subtype in {"AAC", "OPUS"}
    original, decoded = audio.load(source, 16_000), audio.load(recording, 16_000)
    assert abs(len(decoded) - len(original)) <= 0.1 * 16_000  # (AAC adds up to 1024 samples of priming)
    lag = int(np.argmax(np.correlate(decoded, original, "full"))) - (len(original) - 1)
    aligned = decoded[max(lag, 0):][: len(original)]
    assert np.corrcoef(aligned, original[: len(aligned)])[0, 1] > 0.9
    streamed = np.concatenate(list(audio.stream(recording, 16_000, block_seconds=0.25)))
    np.testing.assert_allclose(streamed, decoded, atol=2e-3)
    assert recording in audio.audio_files(tmp_path)
    assert not [w for w in recwarn if issubclass(w.category, AudiocnnWarning)]


@pytest.mark.parametrize("name", ["broken.m4a", "broken.webm"])
def test_a_damaged_phone_or_browser_recording_is_one_clear_error(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"\x1aE\xdf\xa3 this is not a recording " * 20)
    with pytest.raises(AudioError, match=rf"^{re.escape(str(path))}: (not a readable audio file|no audio stream)"):
        audio.load(path)
