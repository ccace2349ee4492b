"""rvae data groove: the Groove MIDI Dataset from a zip the user has (--from) or downloaded.

No test reaches the internet: each makes a tiny zip shaped like the real one (groove/info.csv,
groove/drummer1/session1/1_funk_80_beat_4-4.mid ...) and serves it, when a download is tested,
from an http.server on 127.0.0.1 started in the test, with its URL, size and SHA-256 passed in."""

from __future__ import annotations

import functools
import hashlib
import http.server
import socket
import threading
import zipfile
from pathlib import Path

import pytest
from conftest import write_midi_file

from rvae import data
from rvae.cli import main
from rvae.dataset import load_dataset
from rvae.errors import UserError

# A bar of 4/4: 8 hats, kick on 1 and 3, snare on 2 and 4 (12 hits), two bars per file.
ROCK = [(42, 80, i / 2) for i in range(8)] + [(36, 100, 0.0), (36, 100, 2.0), (38, 110, 1.0), (38, 110, 3.0)]
TWO_BARS = ROCK + [(n, v, q + 4) for n, v, q in ROCK]
HEADER = "drummer,session,id,style,bpm,beat_type,time_signature,midi_filename,audio_filename,duration,split\n"
FILES = [
    "drummer1/session1/1_funk_80_beat_4-4.mid",
    "drummer1/session1/2_rock_120_beat_4-4.mid",
    "drummer2/eval_session/1_funk-groove1_138_beat_4-4.mid",
]


def make_zip(tmp_path: Path, name="groove.zip", files=FILES, info=True, top="groove", extra=()) -> Path:
    """A zip shaped like groove-v1.0.0-midionly.zip: ``top``/info.csv and ``top``/<files>."""
    midi = write_midi_file(tmp_path / "src" / "clip.mid", TWO_BARS).read_bytes()
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{top}/", "")
        if info:
            rows = "".join(f"{f.split('/')[0]},x,x,funk,80,beat,4-4,{f},,2.0,train\n" for f in files)
            z.writestr(f"{top}/info.csv", HEADER + rows)
        z.writestr(f"{top}/LICENSE", "CC BY 4.0\n")
        for f in files:
            z.writestr(f"{top}/{f}", midi)
        for member, content in extra:
            z.writestr(member, content)
    return path


def leftovers(folder: Path) -> list[str]:
    """Temporary folders or downloads left beside ``folder``."""
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}."))


def test_from_a_zip_unpacks_the_dataset_and_says_how_to_train_on_it(tmp_path, capsys):
    zip_path, out = make_zip(tmp_path), tmp_path / "data" / "groove"
    assert main(["data", "groove", str(out), "--from", str(zip_path)]) == 0
    said = capsys.readouterr()
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == sorted(
        [*FILES, "LICENSE", "info.csv"]
    )
    with zipfile.ZipFile(zip_path) as z:
        assert (out / FILES[0]).read_bytes() == z.read(f"groove/{FILES[0]}")
    assert f"into {out}/: 3 MIDI files from 2 drummers, info.csv lists 3 performances" in said.out
    assert "not the official v1.0.0 zip" in said.out  # a zip made here
    assert f"rvae train {out} -o checkpoints/groove.pt" in said.out
    assert f"created the folder {out.parent}/" in said.err
    assert leftovers(out) == []
    ds = load_dataset([out])  # what the printed command trains on
    assert len(ds.loops) == 6 and not ds.skipped


def test_an_existing_folder_is_replaced_only_with_force(tmp_path, capsys):
    zip_path, out = make_zip(tmp_path), tmp_path / "groove"
    out.mkdir()
    (out / "mine.txt").write_text("mine")
    assert main(["data", "groove", str(out), "--from", str(zip_path)]) == 2
    err = capsys.readouterr().err
    assert err == f"rvae data: {out} exists; pass --force to replace it\n"
    assert (out / "mine.txt").read_text() == "mine"
    assert main(["data", "groove", str(out), "--from", str(zip_path), "--force"]) == 0
    assert not (out / "mine.txt").exists() and (out / "info.csv").is_file()
    assert leftovers(out) == []


def damaged(tmp_path: Path) -> Path:
    """A zip whose first MIDI member's bytes were changed after it was written (its CRC fails)."""
    path = make_zip(tmp_path, "damaged.zip")
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(f"groove/{FILES[0]}")
    raw = bytearray(path.read_bytes())
    at = info.header_offset + 30 + len(info.filename) + len(info.extra) + 5  # inside its compressed data
    raw[at] ^= 0xFF
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize(
    "make, said",
    [
        (lambda t: t.joinpath("notes.zip").write_text("not a zip") and t / "notes.zip", "is not a zip file"),
        (lambda t: make_zip(t, info=False), "is not the Groove MIDI Dataset: it has no groove/info.csv"),
        (lambda t: make_zip(t, top="maestro"), "is not the Groove MIDI Dataset: it has no groove/info.csv"),
        (lambda t: make_zip(t, extra=[("groove/../../evil.txt", "x")]), "a path outside the folder"),
        (damaged, "is damaged"),
        (lambda t: t / "missing.zip", "no such file"),
    ],
    ids=["not-a-zip", "no-info-csv", "another-dataset", "path-outside", "damaged", "missing"],
)
def test_a_zip_that_is_not_the_dataset_is_one_sentence_and_leaves_nothing(tmp_path, capsys, make, said):
    zip_path, out = make(tmp_path), tmp_path / "groove"
    assert main(["data", "groove", str(out), "--from", str(zip_path)]) == 2
    err = capsys.readouterr().err
    assert said in err and err.startswith("rvae data: ") and err.count("\n") == 1, err
    assert not out.exists() and leftovers(out) == []
    assert not (tmp_path.parent / "evil.txt").exists()


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving ``tmp_path/www``; yields its base URL."""
    www = tmp_path / "www"
    www.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # no request lines on the test's output
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def served(tmp_path: Path, url: str) -> data.Download:
    zip_path = make_zip(tmp_path, "www/groove-v1.0.0-midionly.zip")
    blob = zip_path.read_bytes()
    return data.Download(f"{url}/{zip_path.name}", len(blob), hashlib.sha256(blob).hexdigest())


def test_download_checks_size_and_checksum_then_unpacks(tmp_path, server):
    download, out = served(tmp_path, server), tmp_path / "groove"
    heard: list[str] = []
    u = data.groove(out, download=download, progress=False, report=heard.append)
    assert (u.midi_files, u.drummers, u.listed, u.official) == (3, 2, 3, False)
    assert heard == [f"downloading {download.url} (0.0 MB)"]
    assert (out / FILES[2]).is_file() and (out / "info.csv").is_file()
    assert leftovers(out) == []  # neither the downloaded zip nor a temporary folder


@pytest.mark.parametrize(
    "change, said",
    [
        ({"sha256": "0" * 64}, "has SHA-256 "),
        ({"size": 1}, "bytes, not the published 1"),
        ({"url": "/missing.zip"}, "answered 404"),
    ],
    ids=["checksum", "size", "not-found"],
)
def test_a_bad_download_is_refused_and_leaves_nothing(tmp_path, server, change, said):
    download, out = served(tmp_path, server), tmp_path / "groove"
    if "url" in change:
        change = {"url": server + change["url"]}
    with pytest.raises(UserError, match=said) as e:
        data.groove(out, download=data.Download(**{**download.__dict__, **change}), progress=False)
    assert "\n" not in str(e.value)
    assert not out.exists() and leftovers(out) == []


def test_no_network_is_one_sentence(tmp_path, monkeypatch, capsys):
    with socket.socket() as s:  # a port nothing listens on: the connection is refused, as offline
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(data, "GROOVE", data.Download(f"http://127.0.0.1:{port}/groove.zip", 10, "0" * 64))
    out = tmp_path / "groove"
    assert main(["data", "groove", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"downloading http://127.0.0.1:{port}/groove.zip (0.0 MB)"
    assert err[1].startswith(f"rvae data: cannot reach http://127.0.0.1:{port}/groove.zip (")
    assert err[1].endswith("check the network, or download the zip yourself and pass --from FILE") and len(err) == 2
    assert not out.exists() and leftovers(out) == []
