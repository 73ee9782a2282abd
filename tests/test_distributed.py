"""Distributed training: two CPU processes over gloo, started by torchrun.

The runs are real: torchrun (or ``ganzoo train --nproc 2``) starts two
processes that train the tiny ring recipe with DistributedDataParallel. A small
wrapper script saves every rank's final weights, so that the test can compare
the processes with each other; a test regularizer fails or hangs one rank on
demand. Each launch costs about 15 s of process start-up on two cores, so the
runs are shared between the tests through module fixtures.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from PIL import Image

from ganzoo import GanzooError
from ganzoo.recipes import load_recipe
from ganzoo.training import FINAL, LAST, Trainer, load_checkpoint, prepare_run_dir
from ganzoo.training._distributed import (
    LaunchResult,
    ShardedSampler,
    World,
    _refuse_unsynced_steps,
    without_option,
)
from ganzoo.training._parts import BatchSampler

from .conftest import TINY_RING, listing, write

WAIT = 120.0  # seconds before a test gives up on a launch (and stops it)
NETWORKS = ("generator", "discriminator", "generator_ema")

# Test plugins: a regularizer that adds nothing but fails or hangs one rank at
# a chosen call, and a class-conditional MLP pair whose discriminator has batch
# norm (so the trainer sends reals and fakes through it apart).
HELPERS = '''\
import os
import time

import torch
from torch import nn
from ganzoo import Architecture, Regularizer, hookimpl


class Fault(Regularizer):
    """Test regularizer: zero, or a failure or hang on one rank at one call."""

    name = "fault"
    calls = [0]

    def penalty(self, discriminator, real, fake):
        self.calls[0] += 1
        at = int(os.environ.get("FAULT_AT_CALL", "0"))
        here = os.environ.get("RANK") == os.environ.get("FAULT_RANK", "1")
        if here and self.calls[0] == at:
            if os.environ.get("FAULT_KIND") == "hang":
                time.sleep(3600)
            raise RuntimeError("injected fault")
        return torch.zeros((), device=real.device)


class Generator(nn.Module):
    conditional = True

    def __init__(self, classes):
        super().__init__()
        self.num_classes, self.latent_dim, self.output_range = classes, 2, None
        self.embed = nn.Embedding(classes, 4)
        self.net = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 2))

    def forward(self, z, labels):
        return self.net(torch.cat([z, self.embed(labels)], dim=1))


class Discriminator(nn.Module):
    conditional = True

    def __init__(self, classes):
        super().__init__()
        self.num_classes = classes
        self.embed = nn.Embedding(classes, 4)
        self.net = nn.Sequential(
            nn.Linear(6, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 1)
        )

    def forward(self, points, labels):
        return self.net(torch.cat([points, self.embed(labels)], dim=1))


class ConditionalMlp(Architecture):
    """Test class-conditional MLPs; batch norm in the discriminator."""

    name = "conditional-mlp"

    def build_generator(self, data, **options):
        return Generator(data.num_classes)

    def build_discriminator(self, data, **options):
        return Discriminator(data.num_classes)


@hookimpl
def ganzoo_regularizers():
    return [Fault]


@hookimpl
def ganzoo_architectures():
    return [ConditionalMlp]
'''

# Saves each rank's final parameters beside the run directory, then exits as
# `python -m ganzoo` does. (Batch-norm running statistics are each rank's own.)
DUMP = """\
import sys

import torch
from ganzoo.cli import main
from ganzoo.training import Trainer

train = Trainer.run


def train_and_save(self, **options):
    final = train(self, **options)
    names = ("generator", "discriminator", "generator_ema")
    weights = {n: dict(getattr(self.nets, n).named_parameters()) for n in names}
    name = f"{self.run_dir.name}-rank{self.world.rank}.pt"
    torch.save(weights, self.run_dir.parent / name)
    return final


Trainer.run = train_and_save
sys.exit(main())
"""

# Sixty steps of a global batch of 100 with a gradient penalty, EMA and a
# checkpoint every five steps.
RING = "plugins: [helpers.py]\n" + TINY_RING.replace(
    "loss: {name: bce}\n",
    "loss: {name: bce}\n"
    "regularizers: [{name: gradient-penalty, weight: 1}, {name: fault}]\n",
).replace(
    "kimg: 2, tick_kimg: 1, snapshot_kimg: 1,",
    "kimg: 6, tick_kimg: 0.5, snapshot_kimg: 3, checkpoint_kimg: 0.5,",
)
CONDITIONAL = "plugins: [helpers.py]\n" + TINY_RING.replace(
    "  generator: {name: mlp, hidden: 32, depth: 2}\n"
    "  discriminator: {name: mlp, hidden: 32, depth: 2}\n",
    "  generator: {name: conditional-mlp}\n  discriminator: {name: conditional-mlp}\n",
).replace("loss: {name: bce}\n", "loss: {name: bce}\nregularizers: [{name: r1}]\n")


# Launching.


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "GANZOO_PLUGINS"}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **extra)
    return env


def launch(command: list, cwd: Path, **extra: str) -> subprocess.CompletedProcess:
    """Run ``command`` to its end, or stop it after WAIT seconds and fail.

    A launcher is stopped with SIGTERM, on which torchrun stops its workers.
    """
    process = subprocess.Popen(
        [str(part) for part in command],
        cwd=cwd,
        env=environment(**extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = process.communicate(timeout=WAIT)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
        pytest.fail(f"{command} still ran after {WAIT:.0f} s:\n{err[-3000:]}")
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def torchrun(*args, cwd: Path, script: str | None = None, **extra: str):
    """``python -m torch.distributed.run`` with two processes on a free port."""
    target = [script] if script else ["-m", "ganzoo"]
    runner = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    return launch([*runner, "--nproc_per_node", "2", *target, *args], cwd, **extra)


def ganzoo_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("ganzoo:")]


def ticks(run_dir: Path) -> list[dict]:
    lines = (run_dir / "stats.jsonl").read_text().splitlines()
    return [entry for entry in map(json.loads, lines) if "tick" in entry]


def assert_same_weights(a: dict, b: dict, what: str) -> None:
    for network in NETWORKS:
        for key, value in a[network].items():
            assert torch.equal(value, b[network][key]), f"{what}: {network}.{key}"


# The runs, shared by the tests.


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("distributed")
    write(folder / "helpers.py", HELPERS)
    write(folder / "dump.py", DUMP)
    write(folder / "ring.yaml", RING)
    write(folder / "conditional.yaml", CONDITIONAL)
    return folder


@pytest.fixture(scope="module")
def straight(work: Path) -> Path:
    """The ring recipe trained to the end by two processes (torchrun)."""
    result = torchrun(
        "train", "ring.yaml", "--run-dir", "straight", script="dump.py", cwd=work
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return work / "straight"


@pytest.fixture(scope="module")
def failed(work: Path) -> tuple[subprocess.CompletedProcess, float, Path]:
    """The same run by ``ganzoo train --nproc 2``, whose rank 1 fails in step 33
    (the gradient penalty's 33rd call), three steps after a checkpoint."""
    start = time.monotonic()
    result = launch(
        [sys.executable, "-m", "ganzoo", "train", "ring.yaml", "--nproc", "2"]
        + ["--run-dir", "failed", "--progress", "lines"],
        work,
        FAULT_AT_CALL="33",
    )
    return result, time.monotonic() - start, work / "failed"


# Two processes against each other, and against one.


def test_both_processes_end_with_identical_weights(straight, tmp_path):
    # Each rank trains on its own half of every batch with its own latents:
    # only gradients averaged over both keep the weights equal.
    ranks = [torch.load(straight.parent / f"straight-rank{r}.pt") for r in (0, 1)]
    assert_same_weights(ranks[0], ranks[1], "rank 0 and rank 1 differ")
    assert_same_weights(load_checkpoint(straight / FINAL), ranks[0], "final.pt")
    untrained = Trainer(load_recipe(straight.parent / "ring.yaml"), tmp_path, [])
    for network in ("generator", "discriminator"):
        before = getattr(untrained.nets, network).state_dict()["net.0.weight"]
        assert not torch.equal(ranks[0][network]["net.0.weight"], before), network


def test_two_processes_match_one_on_the_same_global_batch(straight, tmp_path):
    # The same seed gives both runs the same initial weights and the same global
    # batches; only the latents differ, since each rank draws its own. So the
    # runs are not equal step by step, but their loss curves stay close. Means
    # over the twelve ticks, measured: the two-process run differs from the
    # one-process run of its seed by 0.002 (d_loss, penalty) and 0.0001
    # (g_loss); runs of seeds 1 to 3 differ from it by 0.10 to 0.20 and 0.013
    # to 0.053. The tolerances, 0.01 and 0.005, sit between the two.
    recipe = load_recipe(straight.parent / "ring.yaml")
    trainer = Trainer(recipe, tmp_path / "one", [])
    prepare_run_dir(recipe, tmp_path / "one", resume=False)
    trainer.run(show_bar=False)

    one, two = ticks(tmp_path / "one"), ticks(straight)
    assert [t["kimg"] for t in one] == [t["kimg"] for t in two]
    tolerances = {"d_loss": 0.01, "reg/gradient-penalty": 0.01, "g_loss": 0.005}
    for key, tolerance in tolerances.items():
        mean_one = np.mean([t[key] for t in one])
        mean_two = np.mean([t[key] for t in two])
        assert abs(mean_one - mean_two) < tolerance, (key, mean_one, mean_two)
    assert one[0]["d_loss"] != two[0]["d_loss"], (
        "the ranks drew no latents of their own"
    )

    # The world size is recorded, not hashed; rank 0 alone wrote the run.
    assert {t["world_size"] for t in two} == {2} and "world_size" not in one[0]
    info = json.loads((straight / "run.json").read_text())
    assert info["world_size"] == 2 and info["finished"] is True
    assert info["recipe_hash"] == recipe.hash
    assert not list(straight.glob("error*.log"))
    assert len(list(straight.glob("fakes-kimg*.png"))) == 3


def test_class_conditional_run_with_batch_norm_and_r1_trains_in_two_processes(work):
    result = torchrun(
        "train",
        "conditional.yaml",
        "--run-dir",
        "conditional",
        script="dump.py",
        cwd=work,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(work / f"conditional-rank{r}.pt") for r in (0, 1)]
    assert_same_weights(ranks[0], ranks[1], "rank 0 and rank 1 differ")
    last = ticks(work / "conditional")[-1]
    assert last["step"] == 20 and np.isfinite(last["reg/r1"])


def test_translation_run_trains_in_two_processes(work):
    # pix2pix on a folder of side-by-side pairs: a U-Net with dropout (drawn
    # per rank), a PatchGAN with batch norm, and the L1 term.
    folder = work / "pairs"
    folder.mkdir()
    for index in range(16):
        pixels = np.zeros((16, 32, 3), np.uint8)
        pixels[:, :16], pixels[:, 16:] = 15 * index, 255 - 15 * index
        Image.fromarray(pixels).save(folder / f"{index:02d}.png")
    write(
        work / "pairs.yaml",
        """\
        data: {name: paired-folder, path: pairs, resolution: 16, test_fraction: 0}
        model:
          generator: {name: pix2pix, width: 4, max_width: 8}
          discriminator: {name: pix2pix, width: 4, layers: 1}
        loss: pix2pix
        train: {batch_size: 4, kimg: 0.024, tick_kimg: 0.008, snapshot_kimg: 0.024}
        """,
    )
    result = torchrun(
        "train", "pairs.yaml", "--run-dir", "pairs-run", script="dump.py", cwd=work
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(work / f"pairs-run-rank{r}.pt") for r in (0, 1)]
    assert_same_weights(ranks[0], ranks[1], "rank 0 and rank 1 differ")
    last = ticks(work / "pairs-run")[-1]
    assert last["step"] == 6 and last["world_size"] == 2
    assert np.isfinite(last["g_l1_loss"]) and np.isfinite(last["d_loss"])
    assert (work / "pairs-run" / FINAL).is_file()


# A rank that fails, and the resume.


def test_failing_rank_stops_the_run_with_its_message(failed):
    result, seconds, run_dir = failed
    assert result.returncode == 1
    assert seconds < 90, f"the run took {seconds:.0f} s to stop"
    lines = ganzoo_lines(result.stderr)
    assert any("rank 1 of 2: RuntimeError: injected fault" in x for x in lines), lines
    assert any("rank 0 of 2: LostContact: another process" in x for x in lines)
    assert lines[-1].startswith("ganzoo: failed: 2 of 2 processes stopped")
    assert "Traceback" in (run_dir / "error-rank1.log").read_text()

    # --nproc started the two processes; rank 0's checkpoint is at step 30.
    assert "distributed: 2 processes over gloo" in result.stdout
    assert json.loads((run_dir / "run.json").read_text())["world_size"] == 2
    assert load_checkpoint(run_dir / LAST)["step"] == 30
    assert not (run_dir / FINAL).exists()


def test_resumed_distributed_run_ends_with_the_same_weights(work, failed, straight):
    _, _, run_dir = failed
    result = torchrun(
        "train", "ring.yaml", "--run-dir", run_dir.name, "--resume", cwd=work
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resumed failed from checkpoint-last.pt at 3.0 kimg (step 30)" in (
        result.stdout
    )

    # Each rank draws from a seed derived again at every checkpoint, so the
    # resumed run draws what the uninterrupted one drew: bit for bit the same.
    resumed = load_checkpoint(run_dir / FINAL)
    assert resumed["step"] == 60
    assert_same_weights(resumed, load_checkpoint(straight / FINAL), "after resume")
    assert [t["step"] for t in ticks(run_dir)] == list(range(5, 61, 5))


def test_hung_rank_makes_the_others_time_out_instead_of_hanging(work):
    start = time.monotonic()
    result = torchrun(
        "train",
        "ring.yaml",
        "--run-dir",
        "hung",
        cwd=work,
        FAULT_AT_CALL="3",
        FAULT_KIND="hang",
        GANZOO_DIST_TIMEOUT_SEC="5",
    )
    assert result.returncode != 0
    assert time.monotonic() - start < 90
    [line] = [x for x in ganzoo_lines(result.stderr) if "LostContact" in x]
    assert "rank 0 of 2" in line and "did not answer within 5 s" in line


# Checked before any process starts, or in each process at start.


def test_batch_that_does_not_split_over_nproc_is_one_line(cli, ring_recipe, tmp_path):
    before = listing(tmp_path)
    status, _, err = cli("train", ring_recipe, "--nproc", "3")
    assert status == 2
    [line] = err.strip().splitlines()
    assert str(ring_recipe) in line and "train.batch_size: 100" in line
    assert "over 3 processes" in line
    assert listing(tmp_path) == before


def test_process_of_a_world_the_batch_does_not_split_over_refuses(
    monkeypatch, ring_recipe, tmp_path
):
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(GanzooError) as raised:
        Trainer(load_recipe(ring_recipe), tmp_path / "run", [])
    assert raised.value.key == "train.batch_size"
    assert not dist.is_initialized()


def test_trainer_with_steps_of_its_own_is_refused():
    class Custom(Trainer):
        def generator_step(self, batch_size):
            raise AssertionError("never called")

    with pytest.raises(GanzooError, match="Custom has its own generator_step"):
        _refuse_unsynced_steps(object.__new__(Custom))


# The pieces.


def test_ranks_take_disjoint_slices_that_make_up_each_global_batch():
    samples = torch.arange(1000)
    shards = [
        ShardedSampler(BatchSampler(samples, 100, seed=7), World(rank, 4))
        for rank in range(4)
    ]
    reference = BatchSampler(samples, 100, seed=7)
    for _ in range(25):  # more than two epochs
        parts = [shard.next_index() for shard in shards]
        assert [len(p) for p in parts] == [25] * 4
        assert torch.equal(torch.cat(parts), reference.next_index())
    states = [shard.state_dict() for shard in shards]
    assert all(s["position"] == states[0]["position"] for s in states)


def test_nproc_is_left_out_of_the_command_the_processes_run():
    for given in (
        ["train", "r.yaml", "--nproc", "2", "--resume"],
        ["train", "--nproc=2", "r.yaml", "--resume"],
        ["train", "r.yaml", "--resume", "--npr", "2"],
    ):
        assert without_option(given, "--nproc") == ["train", "r.yaml", "--resume"]


def test_launch_exit_status_says_what_kind_of_failure():
    assert LaunchResult(2, {}).exit_status == 0
    assert LaunchResult(2, {0: 2, 1: 2}).exit_status == 2
    assert LaunchResult(2, {1: 1, 0: -15}).exit_status == 1
    described = LaunchResult(2, {1: 1, 0: -15}).describe()
    assert "rank 0: killed by SIGTERM, rank 1: exit status 1" in described
