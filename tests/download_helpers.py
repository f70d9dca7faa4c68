"""A real HTTP server on 127.0.0.1 and archive builders for the download tests.

The server speaks HTTP over a socket, serves bytes the tests register, supports
``Range: bytes=N-`` with 206 answers, and can be told to ignore ranges, to drop the
connection part-way or to stall. It counts requests and bytes so the tests can prove
what was (not) downloaded again. Archives are built in memory in ESC-50's official layout.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import stat
import tarfile
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import soundfile as sf

# ----------------------------------------------------------------------------- server


class FileServer:
    """A small threaded HTTP server for `files` (path -> bytes) with switches and counters."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.reset()
        server = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 5  # bound every socket read in the handler

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    server.handle(self)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def reset(self) -> None:
        self.generation = getattr(self, "generation", 0) + 1  # late answers from an old test don't count
        self.honor_ranges = True
        self.drop_after: int | None = None  # close the connection after this many body bytes
        self.stall = 0.0  # seconds to wait before answering
        self.trickle = 0.0  # seconds between single bytes of the body (a server that never quite stalls)
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.bytes_served = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        generation = self.generation
        path = h.path.split("?")[0]
        range_header = h.headers.get("Range")
        self.requests.append((path, range_header))
        if self.stall:
            time.sleep(self.stall)
        data = self.files.get(path)
        if data is None:
            h.send_error(404, "Not Found")
            return
        start = 0
        if range_header and self.honor_ranges:
            start = int(range_header.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                h.send_response(416)
                h.send_header("Content-Range", f"bytes */{len(data)}")
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
            h.send_response(206)
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            h.send_response(200)
            h.send_header("Accept-Ranges", "bytes" if self.honor_ranges else "none")
        body = data[start:]
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if self.drop_after is not None:
            body = body[: self.drop_after]
            h.close_connection = True
        if generation == self.generation:
            # counted before sending: once the client has read the body, the test may check at
            # once, and a loaded machine can pause this thread between the write and the count
            self.bytes_served += len(body)
        if self.trickle:
            for i in range(len(body)):
                if generation != self.generation:
                    return  # the test that asked for this is over
                h.wfile.write(body[i : i + 1])
                h.wfile.flush()
                time.sleep(self.trickle)
            return
        h.wfile.write(body)
        h.wfile.flush()


# --------------------------------------------------------------------------- archives


def _wav_bytes(freq: float) -> bytes:
    t = np.arange(800) / 8000.0
    buf = io.BytesIO()
    sf.write(buf, (0.1 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 8000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


ESC_FILES = {
    "ESC-50-master/meta/esc50.csv": b"filename,fold,target,category,esc10,src_file,take\n"
    b"1-100032-A-0.wav,1,0,dog,True,100032,A\n1-115545-A-48.wav,1,48,fireworks,False,115545,A\n",
    "ESC-50-master/audio/1-100032-A-0.wav": _wav_bytes(440.0),
    "ESC-50-master/audio/1-115545-A-48.wav": _wav_bytes(880.0),
    "ESC-50-master/README.md": b"# ESC-50 (test copy)\n",
}


def make_zip(files: dict[str, bytes], dirs: tuple[str, ...] = ("ESC-50-master/", "ESC-50-master/audio/")) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for d in dirs:
            zf.writestr(zipfile.ZipInfo(d), b"")
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name), data)
    return buf.getvalue()


def make_zip_with_symlink(name: str, target: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("top/data/a.txt", b"a")
        info = zipfile.ZipInfo(name)
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, target)
    return buf.getvalue()


def make_tar(files: dict[str, bytes], mode: str = "w:gz", links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return buf.getvalue()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def md5(data: bytes) -> str:
    return "md5:" + hashlib.md5(data).hexdigest()


def assert_esc_layout(root: Path) -> None:
    assert (root / "meta" / "esc50.csv").read_bytes() == ESC_FILES["ESC-50-master/meta/esc50.csv"]
    for name in ("1-100032-A-0.wav", "1-115545-A-48.wav"):
        audio, rate = sf.read(root / "audio" / name)
        assert rate == 8000 and len(audio) == 800
    assert not (root / "ESC-50-master").exists()
