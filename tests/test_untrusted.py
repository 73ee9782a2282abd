"""Untrusted files run no code: checkpoints, records, run files and image folders.

A checkpoint is data. Loading one unpickles only tensors and plain containers,
and a plugin path written into a checkpoint, ``run.json`` or an evaluation
record is never imported. Each payload here would create a marker file if it
ran; the tests prove first that it would, then that it did not.
"""

from __future__ import annotations

import ast
import io
import json
import logging
import struct
import zlib
from pathlib import Path

import pytest
import torch
from PIL import Image

from ganzoo.leaderboard import write_record
from ganzoo.training import FINAL, load_checkpoint
from ganzoo.training import _checkpoint as ckpt

from .conftest import REPO, TINY_RING, listing, write


class CreatesAFile:
    """Unpickling this object opens (creates) ``path`` for writing."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def plugin_that_marks(path: Path, marker: Path) -> Path:
    """A plugin module that creates ``marker`` as soon as it is imported."""
    return write(path, f"from pathlib import Path\nPath({str(marker)!r}).touch()\n")


@pytest.fixture
def trained(cli, tmp_path) -> tuple[Path, Path]:
    recipe = write(tmp_path / "ring.yaml", TINY_RING)
    assert cli("train", recipe, "--run-dir", tmp_path / "run")[0] == 0
    return recipe, tmp_path / "run"


# Pickles.


def test_every_torch_load_in_the_project_is_weights_only():
    calls = []
    for path in [*(REPO / "ganzoo").rglob("*.py"), *(REPO / "plugins").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "load"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "torch"
            ):
                options = {k.arg: k.value for k in node.keywords}
                safe = options.get("weights_only")
                ok = isinstance(safe, ast.Constant) and safe.value is True
                calls.append((f"{path.relative_to(REPO)}:{node.lineno}", ok))
    assert calls, "no torch.load found: the scan is broken"
    assert [where for where, ok in calls if not ok] == []


def test_checkpoint_with_a_pickle_payload_is_refused_and_never_runs(
    cli, tmp_path, trained
):
    recipe, run_dir = trained
    marker = tmp_path / "payload-ran"
    evil = tmp_path / "evil.pt"
    state = load_checkpoint(run_dir / FINAL)
    state["generator"]["extra"] = CreatesAFile(marker)
    torch.save(state, evil)

    # The payload is real: an unsafe load runs it.
    torch.load(evil, weights_only=False)
    assert marker.exists()
    marker.unlink()

    before = listing(tmp_path)
    out = tmp_path / "s.npy"
    for args in (
        ("sample", run_dir, "--checkpoint", evil, "--n", 4, "--out", out),
        ("eval", recipe, "--checkpoint", evil, "--results", tmp_path / "results"),
    ):
        status, _, err = cli(*args)
        assert status == 2
        assert err.startswith(f"ganzoo: error: refused to load checkpoint {evil}")
        assert "GLOBAL io.open" in err and "could run code" in err
        assert len(err.strip().splitlines()) == 1
    assert not marker.exists()
    assert listing(tmp_path) == before


def test_resume_refuses_a_planted_pickle_and_falls_back(cli, tmp_path, caplog):
    recipe = write(tmp_path / "ring.yaml", TINY_RING)
    run_dir = tmp_path / "run"
    every_half_kimg = "train.checkpoint_kimg=0.5"
    assert cli("train", recipe, every_half_kimg, "--run-dir", run_dir)[0] == 0
    marker = tmp_path / "payload-ran"
    state = load_checkpoint(run_dir / ckpt.LAST)
    state["rng"] = CreatesAFile(marker)
    torch.save(state, run_dir / ckpt.LAST)
    (run_dir / FINAL).unlink()

    status, out, err = cli(
        "train", recipe, every_half_kimg, "--run-dir", run_dir, "--resume"
    )
    assert status == 0, err
    assert "refused to load checkpoint" in err and ckpt.PREVIOUS in out
    assert not marker.exists()


# Plugin paths supplied by files.


def test_plugin_named_in_a_checkpoint_is_never_imported(cli, tmp_path, trained):
    _, run_dir = trained
    marker = tmp_path / "imported"
    plugin = plugin_that_marks(tmp_path / "planted.py", marker)
    state = load_checkpoint(run_dir / FINAL)
    state["config"]["plugins"] = [str(plugin), "planted"]
    ckpt.save_atomic(state, run_dir / FINAL)

    status, _, err = cli("sample", run_dir, "--n", 8, "--out", tmp_path / "s.npy")
    assert status == 0, err
    assert (tmp_path / "s.npy").is_file() and not marker.exists()

    # An architecture only the planted plugin could provide: a clear error.
    state["config"]["model"]["generator"]["name"] = "planted-arch"
    ckpt.save_atomic(state, run_dir / FINAL)
    status, _, err = cli("sample", run_dir, "--n", 8, "--out", tmp_path / "t.npy")
    assert status == 2 and "unknown architecture 'planted-arch'" in err
    assert "GANZOO_PLUGINS" in err and str(plugin) in err
    assert not marker.exists() and not (tmp_path / "t.npy").exists()


def test_plugin_named_in_run_json_or_a_record_is_never_imported(
    cli, tmp_path, trained, monkeypatch
):
    recipe, run_dir = trained
    marker = tmp_path / "imported"
    plugin = plugin_that_marks(tmp_path / "planted.py", marker)
    info = json.loads((run_dir / "run.json").read_text())
    info["plugins"] = [str(plugin)]
    info["source"] = str(plugin)
    (run_dir / "run.json").write_text(json.dumps(info))

    results = tmp_path / "results"
    status, _, err = cli("eval", recipe, "--run-dir", run_dir, "--results", results)
    assert status == 0, err
    [path] = results.glob("*.json")
    record = json.loads(path.read_text())
    record["config"]["plugins"] = [str(plugin), "planted"]
    record["recipe"] = str(plugin)
    record["protocol"]["plugins"] = [str(plugin)]
    forged = write_record(record, results)

    monkeypatch.syspath_prepend(str(tmp_path))  # "planted" would import from here
    assert cli("leaderboard", "--results", results)[0] == 0
    assert cli("leaderboard", "--results", results, "--format", "json")[0] == 0
    assert cli("compare", path, forged, "--results", results)[0] == 0
    assert cli("compare", run_dir, "--results", results)[0] == 0
    assert cli("sample", run_dir, "--n", 4, "--out", tmp_path / "s.npy")[0] == 0
    assert not marker.exists()


# Image folders.


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, format="PNG")
    raw = bytearray(buffer.getvalue())
    header = b"IHDR" + struct.pack(">II", width, height) + bytes(raw[24:29])
    raw[12:29] = header
    raw[29:33] = struct.pack(">I", zlib.crc32(header))
    return bytes(raw)


def _image_bytes(image: Image.Image, format: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format)
    return buffer.getvalue()


def test_image_folder_skips_hostile_files_and_counts_them(tmp_path, caplog):
    from ganzoo_plugins.datasets import ImageFolder

    folder = tmp_path / "images"
    good = {
        "cmyk.jpg": _image_bytes(Image.new("CMYK", (30, 20), (0, 80, 0, 0)), "JPEG"),
        "bits.png": _image_bytes(Image.new("1", (9, 13), 1), "PNG"),
        "gray-alpha.png": _image_bytes(Image.new("LA", (16, 8), (90, 128)), "PNG"),
        "float.tif": _image_bytes(Image.new("F", (12, 12), 0.5), "TIFF"),
        "wide.png": _image_bytes(Image.new("RGB", (200, 3), (1, 2, 3)), "PNG"),
    }
    full = _image_bytes(Image.new("RGB", (64, 64), (255, 0, 0)), "JPEG")
    bad = {
        "bomb.png": _png_claiming(40000, 40000),  # 1.6 G pixels claimed
        "cut.jpg": full[: len(full) // 2],
        "empty.png": b"",
        "script.py": b"open('pwned', 'w')\n",
    }
    for name, data in {**good, **bad}.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)

    with caplog.at_level(logging.WARNING):
        data = ImageFolder.create(path=str(folder), resolution=8).load()

    assert data.samples.shape == (len(good), 3, 8, 8)
    assert torch.isfinite(data.samples).all()
    assert f"skipped {len(bad)} of {len(good) + len(bad)} files" in caplog.text
    assert "1 too large to decode" in caplog.text
    assert "2 not an image" in caplog.text and "1 damaged or truncated" in caplog.text
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


def test_image_folder_with_nothing_usable_fails_before_a_run_exists(cli, tmp_path):
    folder = tmp_path / "junk"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (folder / "b.jpg").write_bytes(b"")
    recipe = write(
        tmp_path / "folder.yaml",
        f"""\
        data: {{name: image-folder, path: {folder}, resolution: 28, channels: 1}}
        model:
          generator: {{name: dcgan, width: 8}}
          discriminator: {{name: dcgan, width: 8}}
        loss: {{name: bce}}
        train: {{batch_size: 2, kimg: 0.004}}
        """,
    )
    status, _, err = cli("train", recipe, "--run-dir", tmp_path / "run")
    assert status == 2
    [line] = [x for x in err.splitlines() if x.startswith("ganzoo:")]
    assert "no usable image" in line and str(folder) in line
    assert "skipped 2 of 2 files" in err
    assert not (tmp_path / "run").exists()
