"""Checking and unpacking downloaded files on disk: checksums and safe extraction.

Why this exists: a silently truncated or swapped archive produces a dataset that loads but
gives wrong numbers, and an archive from the internet may try to write outside the folder
it is extracted into. So

* a checksum is compared against a value published by someone else, and a mismatch shows
  expected and actual hashes (a truncated download and a re-published archive look
  different);
* an archive is extracted only after every member has been checked to stay inside the
  destination (no absolute paths, no ``..``, no links pointing outside);
* an archive that would expand far beyond its own size (a "zip bomb") or beyond the free
  disk space is refused before anything is written, and a failed extraction removes the
  files it had written. Audio hardly compresses: the official archives expand by 1.0-1.5×
  (ESC-50's zip of WAVs 645 MB -> 880 MB), so `MAX_RATIO` is generous for real data.

No network here: :mod:`audiocnn.datasets.download` fetches the bytes. Only the standard
library (hashlib, zipfile, tarfile) is used. Every failure is a
:class:`~audiocnn.errors.DownloadError` whose message names the file and the problem.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path

from audiocnn.errors import DownloadError

__all__ = ["CHUNK", "check_digest", "check_expansion", "escapes", "extract", "hash_file", "parse_checksum", "verify_checksum"]

CHUNK = 1 << 20  # 1 MiB: large enough to be fast, small enough for a smooth progress bar
# Errors a corrupt compressed stream raises while extracting (lzma may be missing from a build).
try:
    import lzma

    _STREAM_ERRORS: tuple[type[Exception], ...] = (zlib.error, lzma.LZMAError)
except ImportError:  # pragma: no cover
    _STREAM_ERRORS = (zlib.error,)
# tarfile's own "data" filter refusals (Python >= 3.11.4), reported as unsafe, not broken.
_FILTER_ERRORS: tuple[type[Exception], ...] = (tarfile.FilterError,) if hasattr(tarfile, "FilterError") else ()
_ALGORITHMS = {"sha256": 64, "md5": 32, "sha1": 40}  # algorithm -> hex digest length
#: An archive may expand to at most this many times its own size (above `RATIO_FREE_BYTES`)...
MAX_RATIO = 20
#: ...except that this much is always allowed (split lists and metadata compress well).
RATIO_FREE_BYTES = 64 << 20
#: And never to more than this in all (UrbanSound8K, the largest, is about 7 GB expanded).
MAX_EXPANDED_BYTES = 64 << 30


# --------------------------------------------------------------------------- checksums


def parse_checksum(checksum: str) -> tuple[str, str]:
    """Split ``"algo:hex"``, refusing anything we could not compare reliably."""
    algo, sep, expected = checksum.partition(":")
    algo, expected = algo.strip().lower(), expected.strip().lower()
    length = _ALGORITHMS.get(algo)
    valid_hex = all(c in "0123456789abcdef" for c in expected)
    if not sep or length is None or len(expected) != length or not valid_hex:
        raise DownloadError(
            f"checksum {checksum!r} is not valid: expected 'sha256:<64 hex digits>' or 'md5:<32 hex digits>'"
        )
    return algo, expected


def hash_file(path: Path, algo: str, hasher: hashlib._Hash | None = None) -> hashlib._Hash:
    """Feed the bytes of `path` into a hasher (new, or the one given, to continue a resume)."""
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, (lambda: hasher) if hasher is not None else algo)
    except OSError as e:
        raise DownloadError(f"{path}: cannot read to verify its checksum ({e.strerror or e})") from None


def check_digest(path: Path, algo: str, expected: str, actual: str, source: str | None = None) -> None:
    """Raise DownloadError naming `source` (or nothing), the file and both hashes unless they agree."""
    if actual != expected:
        where = f"{source}: " if source else ""
        raise DownloadError(
            f"{where}checksum mismatch for {path.name}: expected {algo}:{expected}, got {algo}:{actual} "
            "(the file is corrupt, or the source changed)"
        )


def verify_checksum(path: Path, checksum: str) -> None:
    """Raise DownloadError unless `path` hashes to `checksum` (``"sha256:<hex>"``/``"md5:<hex>"``).

    The message shows both hashes, so a user can tell a truncated download from a
    re-published archive.
    """
    path = Path(path)
    algo, expected = parse_checksum(checksum)
    if not path.is_file():
        raise DownloadError(f"{path}: cannot verify checksum, file does not exist")
    check_digest(path, algo, expected, hash_file(path, algo).hexdigest())


# ---------------------------------------------------------------------- path safety


def _is_absolute(name: str) -> bool:
    """Absolute on any system an archive may come from: ``/x``, ``\\x`` or ``C:x``."""
    return name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":")


def _parts(name: str) -> list[str]:
    return [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]


def escapes(name: str) -> bool:
    """True if the relative path `name` could resolve outside its folder (absolute or ``..``)."""
    return _is_absolute(name) or ".." in _parts(name)


# ----------------------------------------------------------------------------- extract


def _member_target(name: str, dest: Path, strip: int, archive: Path) -> Path | None:
    """Where member `name` lands under `dest` (None: stripped away); refuse names that escape."""
    if _is_absolute(name):
        raise DownloadError(f"{archive}: unsafe path in archive, {name!r} is absolute")
    parts = _parts(name)
    if ".." in parts:
        raise DownloadError(f"{archive}: unsafe path in archive, {name!r} leaves the destination")
    if len(parts) <= strip:
        return None
    return dest.joinpath(*parts[strip:])


def _check_link(link: str, archive: Path, name: str) -> None:
    """Refuse a symlink unless its target is relative and free of ``..``.

    Such a link can only point down from the folder holding it, so no chain of links can
    lead out of the destination. (A lexical check that allowed ``..`` could be fooled by
    a link to ``.`` followed by a link through it.) Dataset archives have no need for links that climb.
    """
    if _is_absolute(link):
        raise DownloadError(f"{archive}: unsafe link in archive, {name!r} points to absolute {link!r}")
    if ".." in _parts(link):
        raise DownloadError(f"{archive}: unsafe link in archive, {name!r} points outside ({link!r})")


def _is_zip_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def _extract_zip(archive: Path, dest: Path, strip: int, written: list[Path]) -> None:
    with zipfile.ZipFile(archive) as zf:
        plan = []
        for info in zf.infolist():
            target = _member_target(info.filename, dest, strip, archive)
            if target is None:
                continue
            if _is_zip_symlink(info):
                _check_link(zf.read(info).decode("utf-8", "replace"), archive, info.filename)
            plan.append((info, target))  # everything is checked before anything is written
        # zipfile reads no more than a member's declared size (and fails its CRC if the data
        # is longer), so the declared sizes bound what is written.
        check_expansion(archive, dest, sum(info.file_size for info, _ in plan))
        written.extend(_new_paths([target for _, target in plan], dest))
        for info, target in plan:
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if _is_zip_symlink(info):
                target.unlink(missing_ok=True)
                os.symlink(zf.read(info).decode("utf-8"), target)
                continue
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, CHUNK)


def _tar_plan(tf: tarfile.TarFile, archive: Path, dest: Path, strip: int) -> list[tuple[tarfile.TarInfo, Path]]:
    """Check every tar member and give each its stripped name; nothing is written yet."""
    plan = []
    for member in tf.getmembers():
        target = _member_target(member.name, dest, strip, archive)
        if target is None:
            continue
        if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
            raise DownloadError(f"{archive}: unsafe member in archive, {member.name!r} is a device or fifo")
        if member.issym():
            _check_link(member.linkname, archive, member.name)
        if member.islnk():
            linked = _member_target(member.linkname, dest, strip, archive)
            if linked is None:
                raise DownloadError(f"{archive}: hard link {member.name!r} points to stripped {member.linkname!r}")
            member.linkname = linked.relative_to(dest).as_posix()
        member.name = target.relative_to(dest).as_posix()
        # No setuid/setgid/sticky or world-writable bits; folders stay writable for their files.
        member.mode = 0o755 if member.isdir() else (member.mode & 0o755) | 0o600
        plan.append((member, target))
    return plan


def _extract_tar(archive: Path, dest: Path, strip: int, written: list[Path]) -> None:
    with tarfile.open(archive) as tf:
        plan = _tar_plan(tf, archive, dest, strip)
        check_expansion(archive, dest, sum(member.size for member, _ in plan if member.isfile()))
        written.extend(_new_paths([target for _, target in plan], dest))
        members = [member for member, _target in plan]
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: tarfile's own checks as a second line
            tf.extractall(dest, members=members, filter="data")
        else:  # pragma: no cover - older Pythons; every member was checked above
            tf.extractall(dest, members=members)


def check_expansion(archive: Path, dest: Path, expanded: int) -> None:
    """Refuse (DownloadError) an archive whose members add up to more than its size allows
    (`MAX_RATIO`, `MAX_EXPANDED_BYTES`) or than the free space at `dest`."""
    size = archive.stat().st_size
    limit = min(MAX_EXPANDED_BYTES, max(RATIO_FREE_BYTES, MAX_RATIO * size))
    if expanded > limit:
        raise DownloadError(f"{archive}: refused, it would expand to {_size(expanded)} from {_size(size)} "
                            f"(at most {_size(limit)} for an archive of its size); not an archive of audio, "
                            "or a decompression bomb")
    free = shutil.disk_usage(dest).free
    if expanded > free:
        raise DownloadError(f"{dest}: {archive.name} needs {_size(expanded)} and only {_size(free)} is free")


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.{2 if unit == 'GB' else 1}f} {unit}"
    return f"{n} bytes"


def _new_paths(targets: list[Path], dest: Path) -> list[Path]:
    """The targets, and the folders above them inside `dest`, that do not exist yet."""
    new = set()
    for target in targets:
        for path in (target, *target.parents):
            if path == dest or dest not in path.parents or path in new or path.exists():
                break
            new.add(path)
    return list(new)


def _remove_written(written: list[Path]) -> None:
    """Undo a failed extraction: the files and folders it created (not what was there before)."""
    for path in sorted(written, key=lambda p: len(p.parts), reverse=True):  # files before their folders
        with contextlib.suppress(OSError):
            if path.is_symlink() or path.is_file():
                path.unlink()
            elif path.is_dir():
                path.rmdir()  # only if empty: a folder that held files from before stays


def extract(archive: Path, dest: Path, strip_components: int = 0) -> None:
    """Extract a zip or tar(.gz/.bz2/.xz) `archive` into `dest`, dropping `strip_components`.

    The format is read from the file's content, not its name (mirrors rename files). All
    members are checked before anything is written: absolute paths, ``..`` and links
    pointing outside `dest` are refused with DownloadError and nothing is extracted; so is
    an archive that would expand too far (`check_expansion`). If extraction fails part-way
    (a broken stream, a full disk), the files it wrote are removed again.
    """
    archive, dest = Path(archive), Path(dest)
    if strip_components < 0:
        raise DownloadError(f"{archive}: strip_components must be >= 0, not {strip_components}")
    if not archive.is_file():
        raise DownloadError(f"{archive}: archive does not exist")
    written: list[Path] = []  # what this extraction created, removed again if it fails
    try:
        try:
            dest.mkdir(parents=True, exist_ok=True)
            dest = dest.resolve()
            if zipfile.is_zipfile(archive):
                _extract_zip(archive, dest, strip_components, written)
            elif tarfile.is_tarfile(archive):
                _extract_tar(archive, dest, strip_components, written)
            else:
                raise DownloadError(f"{archive}: not a zip or tar archive")
        except DownloadError:
            raise
        except _FILTER_ERRORS as e:
            raise DownloadError(f"{archive}: unsafe member in archive ({e})") from None
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, UnicodeDecodeError) as e:
            raise DownloadError(f"{archive}: broken archive ({e})") from None
        except OSError as e:
            where = e.filename or archive
            raise DownloadError(f"{where}: cannot extract from {archive.name} ({e.strerror or e})") from None
        except _STREAM_ERRORS as e:  # corrupt compressed stream
            raise DownloadError(f"{archive}: broken archive ({type(e).__name__}: {e})") from None
    except BaseException:  # a Ctrl-C too: no half-extracted dataset is left to be taken for a whole one
        _remove_written(written)
        raise
