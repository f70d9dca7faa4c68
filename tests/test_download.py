"""Tests for audiocnn.datasets.download (and its archives/sources parts) against a real HTTP
server on 127.0.0.1, through the library and through the `audiocnn data download` command.

Nothing in the code under test is mocked: the server below speaks HTTP over a socket,
serves archives the tests build (ESC-50's official layout, tiny WAV files), supports
``Range: bytes=N-`` with 206 answers, and can be told to ignore ranges, to drop the
connection part-way or to stall. It counts requests and bytes so the tests can prove
what was (not) downloaded again.
"""

from __future__ import annotations

import io
import shutil
import socket
import struct
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from audiocnn.datasets import archives
from audiocnn.datasets import download as dl
from audiocnn.datasets.download import (
    Archive,
    download_file,
    extract,
    fetch_dataset,
    verify_checksum,
)
from audiocnn.errors import DatasetError, DownloadError
from download_helpers import (
    ESC_FILES,
    FileServer,
    assert_esc_layout,
    make_tar,
    make_zip,
    make_zip_with_symlink,
    md5,
    sha256,
)


@pytest.fixture(scope="module")
def module_server() -> Iterator[FileServer]:
    server = FileServer()
    yield server
    server.close()


@pytest.fixture
def server(module_server: FileServer) -> FileServer:
    module_server.reset()
    return module_server


@pytest.fixture(scope="module")
def esc_zip() -> bytes:
    return make_zip(ESC_FILES)


@pytest.fixture(scope="module")
def esc_tgz() -> bytes:
    return make_tar(ESC_FILES)


# ----------------------------------------------------------------- fetch + idempotence


@pytest.mark.parametrize("fmt, digest", [("zip", sha256), ("tgz", md5)])
def test_fetch_dataset_downloads_verifies_and_extracts(
    server: FileServer, tmp_path: Path, esc_zip: bytes, esc_tgz: bytes, fmt: str, digest
) -> None:
    data = esc_zip if fmt == "zip" else esc_tgz
    server.files[f"/esc.{fmt}"] = data
    root = fetch_dataset("esc50", tmp_path / "esc50", url=server.url(f"/esc.{fmt}"), checksum=digest(data),
                         progress=False)
    assert root == tmp_path / "esc50"
    assert_esc_layout(root)
    downloads = root / ".downloads"
    assert not any(p.suffix in (".zip", ".part") for p in downloads.iterdir()), "archive deleted after extraction"
    assert len(server.requests) == 1

    # A second run on the complete root sends no request and hashes nothing big.
    fetch_dataset("esc50", root, url=server.url(f"/esc.{fmt}"), checksum=digest(data), progress=False)
    assert len(server.requests) == 1


def test_fetch_dataset_keep_archives_and_same_checksum_from_another_mirror(
    server: FileServer, tmp_path: Path, esc_zip: bytes
) -> None:
    server.files["/a/esc.zip"] = server.files["/b/esc.zip"] = esc_zip
    root = fetch_dataset("esc50", tmp_path, url=server.url("/a/esc.zip"), checksum=sha256(esc_zip),
                         keep_archives=True, progress=False)
    kept = root / ".downloads" / SOURCE_ESC50.filename
    assert kept.read_bytes() == esc_zip
    # Same content (same checksum) from another mirror: already done, nothing fetched.
    fetch_dataset("esc50", root, url=server.url("/b/esc.zip"), checksum=sha256(esc_zip), progress=False)
    assert [p for p, _ in server.requests] == ["/a/esc.zip"]


SOURCE_ESC50 = dl.SOURCES["esc50"][0]


def test_plain_files_are_placed_in_a_subfolder_and_not_fetched_twice(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lists = {"train": b"blues/blues.00029.wav\n", "valid": b"blues/blues.00000.wav\n", "test": b"blues/blues.00012.wav\n"}
    for part, data in lists.items():
        server.files[f"/gtzan/{part}_filtered.txt"] = data
    local = [
        Archive(server.url(f"/gtzan/{part}_filtered.txt"), f"splits/{part}_filtered.txt", sha256(data), extract=False)
        for part, data in lists.items()
    ]
    monkeypatch.setitem(dl.SOURCES, "gtzan-splits", local)  # local URLs instead of GitHub: data, not code
    root = fetch_dataset("gtzan-splits", tmp_path, progress=False)
    for part, data in lists.items():
        assert (root / "splits" / f"{part}_filtered.txt").read_bytes() == data
    assert len(server.requests) == 3
    fetch_dataset("gtzan-splits", tmp_path, progress=False)
    assert len(server.requests) == 3


# ------------------------------------------------------------------------------ resume


def test_resume_from_part_file_requests_only_the_rest(server: FileServer, tmp_path: Path, esc_tgz: bytes) -> None:
    server.files["/esc.tgz"] = esc_tgz
    dest = tmp_path / "esc.tgz"
    cut = len(esc_tgz) // 3
    (tmp_path / "esc.tgz.part").write_bytes(esc_tgz[:cut])
    download_file(server.url("/esc.tgz"), dest, sha256(esc_tgz), progress=False)
    assert server.requests == [("/esc.tgz", f"bytes={cut}-")]
    assert server.bytes_served == len(esc_tgz) - cut
    assert dest.read_bytes() == esc_tgz
    assert not (tmp_path / "esc.tgz.part").exists()


def test_server_ignoring_range_starts_over(server: FileServer, tmp_path: Path, esc_zip: bytes) -> None:
    server.files["/esc.zip"] = esc_zip
    server.honor_ranges = False
    dest = tmp_path / "esc.zip"
    (tmp_path / "esc.zip.part").write_bytes(esc_zip[:100])
    download_file(server.url("/esc.zip"), dest, md5(esc_zip), progress=True)
    assert server.requests == [("/esc.zip", "bytes=100-")]
    assert server.bytes_served == len(esc_zip)
    assert dest.read_bytes() == esc_zip


def test_dropped_connection_keeps_part_and_next_call_resumes(server: FileServer, tmp_path: Path, esc_zip: bytes) -> None:
    server.files["/esc.zip"] = esc_zip
    server.drop_after = 1000
    dest = tmp_path / "esc.zip"
    with pytest.raises(DownloadError, match=r"1000 of \d+ bytes.*resume") as info:
        download_file(server.url("/esc.zip"), dest, sha256(esc_zip), progress=False, timeout=5)
    assert server.url("/esc.zip") in str(info.value)
    assert (tmp_path / "esc.zip.part").stat().st_size == 1000
    assert not dest.exists()
    server.drop_after = None
    download_file(server.url("/esc.zip"), dest, sha256(esc_zip), progress=False)
    assert server.requests[-1] == ("/esc.zip", "bytes=1000-")
    assert dest.read_bytes() == esc_zip


def test_oversized_part_file_is_discarded_after_416(server: FileServer, tmp_path: Path, esc_zip: bytes) -> None:
    server.files["/esc.zip"] = esc_zip
    (tmp_path / "esc.zip.part").write_bytes(esc_zip + b"garbage")
    download_file(server.url("/esc.zip"), tmp_path / "esc.zip", sha256(esc_zip), progress=False)
    assert [r for _, r in server.requests] == [f"bytes={len(esc_zip) + 7}-", None]
    assert (tmp_path / "esc.zip").read_bytes() == esc_zip


def test_existing_verified_file_is_not_downloaded_again(server: FileServer, tmp_path: Path, esc_zip: bytes) -> None:
    server.files["/esc.zip"] = esc_zip
    dest = tmp_path / "esc.zip"
    dest.write_bytes(esc_zip)
    assert download_file(server.url("/esc.zip"), dest, sha256(esc_zip), progress=False) == dest
    assert server.requests == []
    dest.write_bytes(b"stale copy")  # a file that does not match is replaced
    download_file(server.url("/esc.zip"), dest, sha256(esc_zip), progress=False)
    assert dest.read_bytes() == esc_zip and len(server.requests) == 1


# ------------------------------------------------------------------------------ errors


def test_checksum_mismatch_names_both_hashes_and_leaves_nothing(
    server: FileServer, tmp_path: Path, esc_zip: bytes
) -> None:
    server.files["/esc.zip"] = esc_zip
    wrong = sha256(b"another archive")
    root = tmp_path / "esc50"
    with pytest.raises(DownloadError) as info:
        fetch_dataset("esc50", root, url=server.url("/esc.zip"), checksum=wrong, progress=False)
    message = str(info.value)
    assert wrong in message and sha256(esc_zip) in message and server.url("/esc.zip") in message
    assert isinstance(info.value, DatasetError)
    leftovers = [p.relative_to(root).as_posix() for p in root.rglob("*")]
    assert leftovers == [".downloads"], leftovers  # no archive, no .part, nothing extracted


def test_http_404_names_the_url(server: FileServer, tmp_path: Path) -> None:
    url = server.url("/nope/missing.zip")
    with pytest.raises(DownloadError, match="404") as info:
        download_file(url, tmp_path / "missing.zip", None, progress=False)
    assert url in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_connection_refused(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/esc.zip"  # nothing listens there any more
    with pytest.raises(DownloadError, match="cannot connect") as info:
        download_file(url, tmp_path / "esc.zip", None, progress=False, timeout=2)
    assert url in str(info.value)


@pytest.mark.slow
def test_stalled_server_times_out(server: FileServer, tmp_path: Path) -> None:
    server.files["/slow.bin"] = b"x"
    server.stall = 0.6
    with pytest.raises(DownloadError, match="0.2 s") as info:
        download_file(server.url("/slow.bin"), tmp_path / "slow.bin", None, progress=False, timeout=0.2)
    assert server.url("/slow.bin") in str(info.value)


@pytest.mark.slow
def test_a_server_that_trickles_bytes_is_given_up_on(server: FileServer, tmp_path: Path) -> None:
    """A byte every 50 ms never trips the silence timeout; the minimum rate catches it."""
    server.files["/trickle.bin"] = b"x" * 1000
    server.trickle = 0.05
    with pytest.raises(DownloadError, match=r"too slow, \d+ bytes in 1 s \(at least 200 bytes/s needed\); run again"):
        download_file(server.url("/trickle.bin"), tmp_path / "trickle.bin", None, progress=False, timeout=2,
                      min_rate=200, rate_window=0.6)
    assert (tmp_path / "trickle.bin.part").is_file() and not (tmp_path / "trickle.bin").exists()


def test_unknown_dataset_lists_the_names(tmp_path: Path) -> None:
    with pytest.raises(DownloadError) as info:
        fetch_dataset("esc-100", tmp_path)
    for name in ("esc50", "urbansound8k", "gtzan", "gtzan-splits"):
        assert name in str(info.value)
    assert not (tmp_path / ".downloads").exists()


def test_bad_checksum_syntax_fails_before_downloading(server: FileServer, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="sha256:<64 hex digits>"):
        fetch_dataset("esc50", tmp_path, url=server.url("/esc.zip"), checksum="crc32:1234", progress=False)
    assert server.requests == []


def test_unverified_download_warns(server: FileServer, tmp_path: Path) -> None:
    server.files["/x.bin"] = b"data"
    with pytest.warns(UserWarning, match="no published checksum"):
        download_file(server.url("/x.bin"), tmp_path / "x.bin", None, progress=False)
    assert (tmp_path / "x.bin").read_bytes() == b"data"


def test_verify_checksum(tmp_path: Path) -> None:
    f = tmp_path / "f.bin"
    f.write_bytes(b"abc")
    verify_checksum(f, sha256(b"abc"))
    verify_checksum(f, md5(b"abc").upper().replace("MD5", "md5"))
    with pytest.raises(DownloadError, match="expected md5:.*got md5:900150983cd24fb0d6963f7d28e17f72"):
        verify_checksum(f, md5(b"abd"))
    with pytest.raises(DownloadError, match="does not exist"):
        verify_checksum(tmp_path / "missing", md5(b"abc"))


# ---------------------------------------------------------------------------- extract


def test_not_an_archive(tmp_path: Path) -> None:
    f = tmp_path / "page.zip"
    f.write_bytes(b"<html>rate limited</html>")
    with pytest.raises(DownloadError, match="not a zip or tar archive") as info:
        extract(f, tmp_path / "out")
    assert str(f) in str(info.value)


def test_truncated_archive_is_reported(tmp_path: Path, esc_tgz: bytes) -> None:
    f = tmp_path / "esc.tgz"
    f.write_bytes(esc_tgz[: len(esc_tgz) // 2])
    with pytest.raises(DownloadError, match="esc.tgz"):
        extract(f, tmp_path / "out", 1)


@pytest.mark.parametrize("fmt", ["zip", "tar", "tar.bz2", "tar.xz"])
def test_extract_formats_with_strip(tmp_path: Path, fmt: str) -> None:
    if fmt == "zip":
        data = make_zip(ESC_FILES)
    else:
        data = make_tar(ESC_FILES, mode={"tar": "w", "tar.bz2": "w:bz2", "tar.xz": "w:xz"}[fmt])
    archive = tmp_path / f"esc.{fmt}"
    archive.write_bytes(data)
    extract(archive, tmp_path / "root", strip_components=1)
    assert_esc_layout(tmp_path / "root")
    extract(archive, tmp_path / "kept", strip_components=0)
    assert (tmp_path / "kept" / "ESC-50-master" / "meta" / "esc50.csv").is_file()


UNSAFE = {
    "zip-dotdot": lambda: make_zip({"ok/a.txt": b"a", "ok/../../evil.txt": b"x"}, dirs=()),
    "zip-absolute": lambda: make_zip({"ok/a.txt": b"a", "/tmp/audiocnn-evil.txt": b"x"}, dirs=()),
    "tar-dotdot": lambda: make_tar({"ok/a.txt": b"a", "../evil.txt": b"x"}),
    "tar-absolute": lambda: make_tar({"ok/a.txt": b"a", "/tmp/audiocnn-evil.txt": b"x"}),
    "tar-symlink-out": lambda: make_tar({"ok/a.txt": b"a"}, links={"ok/link": "../../evil.txt"}),
    "tar-symlink-abs": lambda: make_tar({"ok/a.txt": b"a"}, links={"ok/link": "/etc/passwd"}),
    # ".." inside a link is refused even when it would land inside: a link to "." then a link
    # through it ("a/.." where a -> ".") could otherwise climb out.
    "tar-symlink-via-dot": lambda: make_tar({}, links={"a": ".", "b": "a/../../evil.txt"}),
    "zip-symlink-out": lambda: make_zip_with_symlink("top/link", "../../evil.txt"),
    "zip-symlink-abs": lambda: make_zip_with_symlink("top/link", "/etc/passwd"),
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_members_are_refused_and_nothing_is_written(tmp_path: Path, case: str) -> None:
    archive = tmp_path / "bad.archive"
    archive.write_bytes(UNSAFE[case]())
    dest = tmp_path / "a" / "dest"
    with pytest.raises(DownloadError, match="unsafe") as info:
        extract(archive, dest, strip_components=0)
    assert str(archive) in str(info.value)
    written = [p for p in tmp_path.rglob("*") if p.is_file() or p.is_symlink()]
    assert written == [archive], written  # not even the safe members
    assert not Path("/tmp/audiocnn-evil.txt").exists()


def _claiming(zip_bytes: bytes, size: int) -> bytes:
    """`zip_bytes` (one stored member) with its uncompressed size rewritten to `size` in both
    headers: a small file that claims to expand to `size`, as a zip bomb declares itself."""
    data = bytearray(zip_bytes)
    local = data.index(b"PK\x03\x04")
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, local + 22, size)
    struct.pack_into("<I", data, central + 24, size)
    return bytes(data)


def test_an_archive_claiming_to_expand_far_beyond_its_size_is_refused(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("bomb/zeros.bin", b"\0" * 1000)
    archive = tmp_path / "bomb.zip"
    archive.write_bytes(_claiming(buf.getvalue(), 4_000_000_000))  # 1 kB that says 4 GB
    with pytest.raises(DownloadError, match=r"bomb\.zip: refused, it would expand to 4\.00 GB from 1\.1 kB"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "bomb").exists()


@pytest.mark.slow
def test_a_tar_gz_of_zeros_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    archive = tmp_path / "zeros.tar.gz"
    archive.write_bytes(make_tar({"top/zeros.bin": bytes(80 << 20)}))  # 80 MiB in about 80 kB
    assert archive.stat().st_size < 1 << 20
    with pytest.raises(DownloadError, match="zeros.tar.gz: refused, it would expand to 83.9 MB"):
        extract(archive, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_an_archive_larger_than_the_free_space_is_refused(tmp_path: Path, monkeypatch) -> None:
    archive = tmp_path / "esc.zip"
    archive.write_bytes(make_zip(ESC_FILES))
    real = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(archives.shutil, "disk_usage", lambda path: real._replace(free=1000))  # a nearly full disk
    with pytest.raises(DownloadError, match=r"esc.zip needs .* and only 1.0 kB is free"):
        extract(archive, tmp_path / "out", 1)
    assert list((tmp_path / "out").iterdir()) == []


def test_a_failed_extraction_removes_what_it_wrote(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("top/first.txt", b"first member, extracted whole")
        zf.writestr("top/sub/second.txt", b"second member, damaged in transit")
    data = bytearray(buf.getvalue())
    data[data.index(b"damaged")] ^= 0xFF  # its bytes no longer match their CRC
    archive = tmp_path / "half.zip"
    archive.write_bytes(bytes(data))
    (tmp_path / "out" / "top").mkdir(parents=True)
    (tmp_path / "out" / "top" / "mine.txt").write_text("here before")
    with pytest.raises(DownloadError, match="half.zip: broken archive"):
        extract(archive, tmp_path / "out")
    left = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*"))
    assert left == ["top", "top/mine.txt"]  # what was there before stays; nothing of the archive does


def test_safe_relative_symlink_inside_is_kept(tmp_path: Path) -> None:
    archive = tmp_path / "links.tar"
    archive.write_bytes(make_tar({"top/data/a.txt": b"a"}, mode="w", links={"top/alias.txt": "data/a.txt"}))
    extract(archive, tmp_path / "out", strip_components=1)
    assert (tmp_path / "out" / "alias.txt").read_bytes() == b"a"
    archive = tmp_path / "links.zip"
    archive.write_bytes(make_zip_with_symlink("top/alias.txt", "data/a.txt"))
    extract(archive, tmp_path / "zout", strip_components=1)
    assert (tmp_path / "zout" / "alias.txt").is_symlink()
    assert (tmp_path / "zout" / "alias.txt").read_bytes() == b"a"


def test_hard_link_is_renamed_with_strip(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("top/a.txt")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"a"))
        link = tarfile.TarInfo("top/same.txt")
        link.type, link.linkname = tarfile.LNKTYPE, "top/a.txt"
        tf.addfile(link)
    archive = tmp_path / "hard.tgz"
    archive.write_bytes(buf.getvalue())
    extract(archive, tmp_path / "out", strip_components=1)
    assert (tmp_path / "out" / "same.txt").read_bytes() == b"a"
    assert (tmp_path / "out" / "same.txt").stat().st_ino == (tmp_path / "out" / "a.txt").stat().st_ino


def test_unsafe_archive_via_fetch_dataset_extracts_nothing(server: FileServer, tmp_path: Path) -> None:
    bad = make_zip({"ESC-50-master/meta/esc50.csv": b"x", "ESC-50-master/../../evil.txt": b"x"}, dirs=())
    server.files["/bad.zip"] = bad
    root = tmp_path / "root"
    with pytest.raises(DownloadError, match="unsafe"):
        fetch_dataset("esc50", root, url=server.url("/bad.zip"), checksum=sha256(bad), progress=False)
    assert not (root / "meta").exists() and not (tmp_path / "evil.txt").exists()
    assert not (root / ".downloads" / f"{SOURCE_ESC50.filename}.done").exists()


# ----------------------------------------------------------------------------- sources


def test_sources_are_well_formed() -> None:
    assert set(dl.SOURCES) == {"esc50", "urbansound8k", "gtzan", "gtzan-splits"}
    for name, items in dl.SOURCES.items():
        for item in items:
            assert item.url.startswith(("https://", "http://")), name
            if item.checksum is not None:
                archives.parse_checksum(item.checksum)
            assert not archives.escapes(item.filename), item.filename
    assert [a.filename for a in dl.SOURCES["gtzan-splits"]] == [
        "splits/train_filtered.txt", "splits/valid_filtered.txt", "splits/test_filtered.txt"]
    assert all(not a.extract for a in dl.SOURCES["gtzan-splits"])
    assert dl.SOURCES["esc50"][0].strip_components == 1
    assert dl.SOURCES["urbansound8k"][0].strip_components == 1
    assert dl.SOURCES["gtzan"][0].strip_components == 0


def test_gtzan_split_checksums_match_the_authors_files(gtzan_splits_dir: Path) -> None:
    for item in dl.SOURCES["gtzan-splits"]:
        verify_checksum(gtzan_splits_dir / Path(item.filename).name, item.checksum)  # type: ignore[arg-type]


def test_download_module_re_exports_its_parts() -> None:
    """The CLI and users import everything from `download`; the split modules stay internal detail."""
    from audiocnn.datasets import sources

    assert dl.Archive is sources.Archive and dl.SOURCES is sources.SOURCES
    assert dl.extract is archives.extract and dl.verify_checksum is archives.verify_checksum
    assert set(dl.__all__) == {"Archive", "SOURCES", "download_file", "extract", "fetch_dataset", "verify_checksum"}


# --------------------------------------------------------------------------------- CLI


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


def test_cli_download_then_info_lists_the_clips(server: FileServer, tmp_path: Path, esc_zip: bytes, cli) -> None:
    server.files["/esc.zip"] = esc_zip
    root = tmp_path / "esc50"
    args = ("data", "download", "esc50", "--root", root, "--url", server.url("/esc.zip"),
            "--checksum", sha256(esc_zip), "--no-progress")
    result = cli(*args)
    assert result.code == 0, result.err
    assert result.out.strip() == f"esc50 is ready in {root}"
    assert "Traceback" not in result.err
    assert_esc_layout(root)

    again = cli(*args)  # a complete folder: nothing fetched, still "ready"
    assert again.code == 0 and "is ready" in again.out
    assert len(server.requests) == 1

    info = cli("data", "info", "esc50", "--root", root, "--quick")
    assert info.code == 0, info.out + info.err
    assert f"esc50 at {root}: 2 clips, 50 classes" in info.out
    counts = {line.split()[0]: line.split()[1] for line in info.out.splitlines() if len(line.split()) == 2}
    assert counts["dog"] == "1" and counts["fireworks"] == "1" and counts["rooster"] == "0"
    assert "no problems found" in info.out


@pytest.mark.parametrize("kind", ["mismatch", "syntax"])
def test_cli_bad_checksum_is_one_error_line(
    server: FileServer, tmp_path: Path, esc_zip: bytes, cli, kind: str
) -> None:
    server.files["/esc.zip"] = esc_zip
    url = server.url("/esc.zip")
    wrong = sha256(b"another archive") if kind == "mismatch" else "crc32:1234"
    root = tmp_path / "esc50"
    result = cli("data", "download", "esc50", "--root", root, "--url", url, "--checksum", wrong, "--no-progress")
    assert result.code == 1
    assert result.out == ""
    assert "Traceback" not in result.err
    lines = error_lines(result.err)
    assert len(lines) == 1 and lines[0].startswith("audiocnn: error: "), result.err
    if kind == "mismatch":
        assert url in lines[0] and wrong in lines[0] and sha256(esc_zip) in lines[0]
        assert [p.name for p in root.iterdir()] == [".downloads"]
        assert list((root / ".downloads").iterdir()) == []  # bad archive deleted, nothing extracted
    else:
        assert "crc32:1234" in lines[0] and "sha256:<64 hex digits>" in lines[0]
        assert server.requests == [] and not root.exists()  # refused before any byte is fetched


def test_cli_unknown_dataset_is_one_error_line(tmp_path: Path, cli) -> None:
    root = tmp_path / "nowhere"
    result = cli("data", "download", "esc-100", "--root", root, "--no-progress")
    assert result.code == 1 and result.out == ""
    lines = error_lines(result.err)
    assert len(lines) == 1 and lines[0].startswith("audiocnn: error: "), result.err
    assert "unknown dataset 'esc-100'" in lines[0]
    for name in ("esc50", "urbansound8k", "gtzan", "gtzan-splits"):
        assert name in lines[0]
    assert not root.exists()
