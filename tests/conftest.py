"""Shared fixtures: tiny real recipes, and the command line run in-process."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ganzoo.cli import main
from ganzoo.training import _checkpoint as ckpt

REPO = Path(__file__).resolve().parents[1]
FASHION = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
needs_fashion = pytest.mark.skipif(
    not FASHION.exists(),
    reason="Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)",
)

TINY_RING = """\
data: {name: ring, n: 2000}
model:
  generator: {name: mlp, hidden: 32, depth: 2}
  discriminator: {name: mlp, hidden: 32, depth: 2}
loss: {name: bce}
train: {batch_size: 100, kimg: 2, tick_kimg: 1, snapshot_kimg: 1, ema: 0.9}
"""

LOSS_PLUGIN = '''\
import torch
from ganzoo import Loss, Option, hookimpl


class {cls}(Loss):
    """A test loss that is the mean logit gap."""

    name = "{name}"
    options = (Option("scale", float, 1.0, "multiplier", minimum=0.0),)

    def discriminator_loss(self, real_logits, fake_logits):
        return self.scale * (fake_logits.mean() - real_logits.mean())

    def generator_loss(self, fake_logits):
        return -self.scale * fake_logits.mean()


@hookimpl
def ganzoo_losses():
    return [{cls}]
'''


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def loss_plugin(path: Path, name: str = "gap", cls: str = "Gap") -> Path:
    return write(path, LOSS_PLUGIN.format(name=name, cls=cls))


@pytest.fixture
def ring_recipe(tmp_path: Path) -> Path:
    return write(tmp_path / "ring.yaml", TINY_RING)


@pytest.fixture
def cli(capsys):
    """Run ``ganzoo ARGS`` in this process; returns (status, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        status = main([str(a) for a in args])
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run


def stop_after_checkpoints(monkeypatch, count: int):
    """Make training raise KeyboardInterrupt right after its ``count``-th
    checkpoint is on disk, as a Ctrl-C there would; returns the undo."""
    real_save, saves = ckpt.save_atomic, []

    def save_then_stop(state, path):
        real_save(state, path)
        saves.append(path)
        if len(saves) == count:
            raise KeyboardInterrupt

    monkeypatch.setattr(ckpt, "save_atomic", save_then_stop)
    return lambda: monkeypatch.setattr(ckpt, "save_atomic", real_save)


def listing(root: Path) -> set[str]:
    """Every path under ``root``, to prove that a command wrote nothing."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}
