"""Public data sets onto a user's machine: the Groove MIDI Dataset, downloaded from its
official location or unpacked from a zip the user already has.

``groove(folder)`` downloads Magenta's MIDI-only zip (3.1 MB), checks its size and SHA-256,
checks that it is the dataset (``groove/info.csv`` and MIDI files under ``groove/``) and that
every member passes its CRC, and unpacks it into ``folder``: into a temporary folder beside
it first, renamed at the end, so ``folder`` is either absent or whole. ``source=`` unpacks a
zip already on disk instead (no network). An existing ``folder`` is replaced only with
``force``. Every problem a user can cause is one sentence (UserError).

The dataset: Gillick, Roberts, Engel, Eck and Bamman, "Learning to Groove with Inverse
Sequence Transformations", ICML 2019; Google LLC, CC BY 4.0; https://g.co/magenta/groove.
"""

from __future__ import annotations

import csv
import hashlib
import http.client
import io
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from rvae.errors import UserError

__all__ = ["GROOVE", "Download", "Unpacked", "groove"]


@dataclass(frozen=True)
class Download:
    """A file at a URL, with the size and SHA-256 that say it arrived whole and unchanged."""

    url: str
    size: int  # bytes
    sha256: str


# The official MIDI-only release, linked from the dataset page (magenta.tensorflow.org/datasets/groove).
# Magenta publishes no checksum on that page; the size and SHA-256 are the ones TensorFlow
# Datasets records for this URL and checks every download against
# (tensorflow_datasets/url_checksums/groove.txt); 3,260,318 bytes is the 3.11 MiB its catalogue shows.
GROOVE = Download(
    url="https://storage.googleapis.com/magentadata/datasets/groove/groove-v1.0.0-midionly.zip",
    size=3_260_318,
    sha256="651cbc524ffb891be1a3e46d89dc82a1cecb09a57c748c7b45b844c4841dcc1e",
)
TOP = "groove"  # the zip's one top folder: groove/info.csv, groove/drummer1/session1/1_funk_80_beat_4-4.mid ...
CHUNK = 1 << 16
TIMEOUT = 30.0  # seconds without a byte before a download is given up


@dataclass(frozen=True)
class Unpacked:
    folder: Path
    midi_files: int
    drummers: int
    listed: int  # performances info.csv lists
    official: bool  # the zip's SHA-256 is the official release's


def groove(
    folder: str | Path,
    source: str | Path | None = None,
    force: bool = False,
    download: Download | None = None,
    progress: bool = True,
    report: Callable[[str], None] | None = None,
) -> Unpacked:
    """The Groove MIDI Dataset in ``folder`` (``folder/info.csv``, ``folder/drummer1/...``):
    downloaded from ``download`` (default: the official release, GROOVE; checked against its
    size and SHA-256), or unpacked from the zip ``source``. ``report`` hears where the
    download comes from."""
    download = download or GROOVE
    folder = Path(folder)
    if folder.exists() and not force:
        raise UserError(f"{folder} exists; pass --force to replace it")
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder} is a file; give a folder to unpack the dataset into")
    if source is not None:
        zip_path = Path(source)
        if not zip_path.is_file():
            raise UserError(f"--from {zip_path}: no such file")
        return _unpack(zip_path, folder, _sha256(zip_path) == GROOVE.sha256)
    folder.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{folder.name}.", suffix=".zip.part", dir=folder.parent)
    os.close(fd)
    try:
        if report:
            report(f"downloading {download.url} ({download.size / 1e6:.1f} MB)")
        _fetch(download, Path(tmp), progress)
        return _unpack(Path(tmp), folder, download.sha256 == GROOVE.sha256, name=download.url)
    finally:
        os.unlink(tmp)


def _fetch(download: Download, path: Path, progress: bool) -> None:
    """``download.url`` into ``path``, with a progress bar; its size and SHA-256 checked."""
    advice = "check the network, or download the zip yourself and pass --from FILE"
    digest, got = hashlib.sha256(), 0
    try:
        with urllib.request.urlopen(download.url, timeout=TIMEOUT) as response, open(path, "wb") as out:
            total = int(response.headers.get("Content-Length") or download.size)
            bar = tqdm(total=total, unit="B", unit_scale=True, desc="groove", disable=None if progress else True)
            with bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as e:
        raise UserError(f"{download.url} answered {e.code} {e.reason}: {advice}") from None
    except urllib.error.URLError as e:
        raise UserError(f"cannot reach {download.url} ({e.reason}): {advice}") from None
    except (TimeoutError, ConnectionError, http.client.HTTPException) as e:
        raise UserError(f"the download from {download.url} broke off ({e or type(e).__name__}): {advice}") from None
    if got != download.size:
        raise UserError(
            f"the download from {download.url} has {got:,} bytes, not the published {download.size:,}: "
            "try again, or download the zip yourself and pass --from FILE"
        )
    if digest.hexdigest() != download.sha256:
        raise UserError(
            f"the download from {download.url} has SHA-256 {digest.hexdigest()}, not the published "
            f"{download.sha256}: it is not the file it should be, so it was not unpacked"
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _unpack(zip_path: Path, folder: Path, official: bool, name: str | None = None) -> Unpacked:
    """Check that ``zip_path`` is the dataset and whole, unpack its ``groove/`` folder into a
    temporary folder beside ``folder``, and rename that over ``folder``."""
    name = name or str(zip_path)
    try:
        archive = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile:
        raise UserError(f"{name} is not a zip file") from None
    with archive:
        members = _members(archive, name)
        try:
            bad = archive.testzip()
        # What zipfile raises for a user's bad zip: a broken structure (BadZipFile, zlib.error,
        # EOFError, OSError), a compression method it cannot read (NotImplementedError) or an
        # encrypted member (RuntimeError): all one sentence about the file, not a bug of ours.
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, OSError, RuntimeError) as e:
            raise UserError(f"{name} is damaged and cannot be unpacked ({e})") from None
        if bad is not None:
            raise UserError(f"{name} is damaged: {bad} fails its CRC check")
        listed = _listed(archive.read(f"{TOP}/info.csv"), name)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".unpacking", dir=folder.parent))
        try:
            for info, inside in members:
                target = tmp.joinpath(*inside.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
            _replace(tmp, folder)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
    midi = [p for _, p in members if p.suffix.lower() in (".mid", ".midi")]
    drummers = {p.parts[0] for p in midi if len(p.parts) > 1}
    return Unpacked(folder, len(midi), len(drummers), listed, official)


def _members(archive: zipfile.ZipFile, name: str) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """The files under the zip's ``groove/`` folder, each with its path inside it; a zip that
    is not the dataset is refused."""
    out = []
    for info in archive.infolist():
        path = PurePosixPath(info.filename)
        if path.is_absolute() or ".." in path.parts:  # never write outside the folder
            raise UserError(f"{name} holds {info.filename!r}, a path outside the folder it unpacks into")
        if info.is_dir() or path.parts[:1] != (TOP,) or len(path.parts) < 2:
            continue  # the dataset is all under groove/ (a __MACOSX/ folder beside it is not)
        out.append((info, PurePosixPath(*path.parts[1:])))
    inside = {p for _, p in out}
    if PurePosixPath("info.csv") not in inside or not any(p.suffix.lower() in (".mid", ".midi") for p in inside):
        raise UserError(
            f"{name} is not the Groove MIDI Dataset: it has no {TOP}/info.csv with MIDI files beside it "
            "(expected groove-v1.0.0-midionly.zip)"
        )
    return out


def _listed(info_csv: bytes, name: str) -> int:
    """The performances ``info.csv`` lists; a file without its midi_filename column is refused."""
    rows = csv.DictReader(io.StringIO(info_csv.decode("utf-8", errors="replace")))
    if "midi_filename" not in (rows.fieldnames or []):
        raise UserError(f"{name} is not the Groove MIDI Dataset: its {TOP}/info.csv has no midi_filename column")
    return sum(1 for _ in rows)


def _replace(new: Path, folder: Path) -> None:
    """Rename ``new`` to ``folder``; an old ``folder`` is moved aside first and removed only
    once the new one is in place."""
    if not folder.exists():
        os.replace(new, folder)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".old", dir=folder.parent))
    os.rmdir(old)
    os.replace(folder, old)
    try:
        os.replace(new, folder)
    except OSError:
        os.replace(old, folder)  # put the user's folder back
        raise
    shutil.rmtree(old)
