"""A multipart/form-data body read straight into a request's upload folder, file names as UTF-8.

RFC 7578 sends a part's file name as UTF-8 (browsers, curl, httpx, requests do), while some
clients send it as RFC 5987 `filename*=UTF-8''Z%C3%BCrich.flac`, alone or beside an ASCII
`filename`. Starlette's parser decodes the name by the form's `charset` and ignores
`filename*`, so `Zürich_Vögel.flac` could come back as `ZÃ¼rich_VÃ¶gel.flac`, or a part named
only by `filename*` was not a file at all. Here `filename*` wins, `filename` is UTF-8, and the
three characters browsers escape (`%22`, `%0D`, `%0A`) are restored.

The parts are written into the request's folder as they arrive (python-multipart parses), so
an upload never lies anywhere the server's clean-up does not reach.
"""

from __future__ import annotations

import re
from typing import BinaryIO
from urllib.parse import unquote

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from audiocnn.errors import AudiocnnError
from audiocnn.serve.uploads import UploadFolder

#: Bytes of one part's headers, and non-file fields, a request may hold.
MAX_HEADER_BYTES = 16 * 1024
MAX_FIELDS = 100
_PARAMETER = re.compile(r';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')
_BROWSER_ESCAPES = {"%22": '"', "%0D": "\r", "%0A": "\n", "%0d": "\r", "%0a": "\n"}


class BadForm(AudiocnnError):
    """A multipart body that cannot be read (malformed, too many files or fields)."""


def part_filename(disposition: bytes) -> str | None:
    """The file name of a part's Content-Disposition (`filename*` first), or None for a field that is not a file.

    >>> part_filename('form-data; name="file"; filename="Zürich_Vögel.flac"'.encode())
    'Zürich_Vögel.flac'
    >>> part_filename(b"form-data; name=file; filename=Zurich.flac; filename*=UTF-8''Z%C3%BCrich.flac")
    'Zürich.flac'
    """
    parameters: dict[str, str] = {}
    for key, value in _PARAMETER.findall(disposition.decode("latin-1")):
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        parameters.setdefault(key.lower(), value.strip())
    extended = parameters.get("filename*")
    if extended is not None and extended.count("'") >= 2:
        charset, _, encoded = extended.split("'", 2)
        try:
            return unquote(encoded, encoding=charset or "utf-8", errors="replace")
        except LookupError:  # an unknown charset: UTF-8, the only one RFC 8187 requires
            return unquote(encoded, errors="replace")
    if "filename" not in parameters:
        return None
    name = parameters["filename"].encode("latin-1").decode("utf-8", errors="replace")
    return re.sub("%22|%0[DdAa]", lambda m: _BROWSER_ESCAPES[m.group(0)], name)


class _Parts:
    """python-multipart's callbacks: each file part written to the next upload of `folder`."""

    def __init__(self, folder: UploadFolder, max_files: int) -> None:
        self.folder, self.max_files = folder, max_files
        self.fields = 0
        self.header = [b"", b""]  # the current header's name and value
        self.disposition = b""
        self.out: BinaryIO | None = None
        self.header_bytes = 0

    def callbacks(self) -> dict:
        return {"on_part_begin": self.begin, "on_header_field": self.header_field,
                "on_header_value": self.header_value, "on_header_end": self.header_end,
                "on_headers_finished": self.headers_finished, "on_part_data": self.data, "on_part_end": self.end}

    def begin(self) -> None:
        self.disposition, self.header_bytes = b"", 0

    def _grow(self, index: int, data: bytes, start: int, end: int) -> None:
        self.header_bytes += end - start
        if self.header_bytes > MAX_HEADER_BYTES:
            raise BadForm(f"a part's headers are over {MAX_HEADER_BYTES // 1024} KiB")
        self.header[index] += data[start:end]

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._grow(0, data, start, end)

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._grow(1, data, start, end)

    def header_end(self) -> None:
        if self.header[0].strip().lower() == b"content-disposition":
            self.disposition = self.header[1]
        self.header = [b"", b""]

    def headers_finished(self) -> None:
        name = part_filename(self.disposition)
        if name is None:  # a plain field: counted, its value not kept
            self.fields += 1
            if self.fields > MAX_FIELDS:
                raise BadForm(f"more than {MAX_FIELDS} form fields")
            return
        if len(self.folder.uploads) >= self.max_files:
            raise BadForm(f"more than {self.max_files} files in one request (this server's --max-files)")
        _, self.out = self.folder.open_next(name)

    def data(self, data: bytes, start: int, end: int) -> None:
        if self.out is not None:
            self.out.write(data[start:end])

    def end(self) -> None:
        if self.out is not None:
            self.out.close()
            self.out = None


async def read_form(content_type: str, chunks, folder: UploadFolder, max_files: int) -> None:  # noqa: ANN001
    """Every file part of a multipart body (async iterator `chunks`) into `folder`; BadForm if it is not one."""
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise BadForm("multipart/form-data without a boundary")
    parts = _Parts(folder, max_files)
    parser = MultipartParser(boundary, parts.callbacks())
    try:
        async for chunk in chunks:
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as err:
        raise BadForm(f"not a readable multipart/form-data body ({err})") from None
    finally:
        parts.end()
