"""Faults lose nothing: signals, damaged checkpoints, divergence, full disks.

Every test here does the bad thing for real: processes are killed with
signals, checkpoint files are cut short or have a byte flipped, a loss plugin
returns NaN, and writes fail because a file-size limit or a full or read-only
file system refuses them.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch

from ganzoo.leaderboard import build_standings, read_records
from ganzoo.training import FINAL, LAST, PREVIOUS, load_checkpoint

from .conftest import TINY_RING, listing, write

# Sixty steps of 100 points, a checkpoint after every step: a kill at a random
# moment lands inside a checkpoint write about as often as between two.
STEPS = 60
KILL_RECIPE = TINY_RING.replace(
    "train: {batch_size: 100, kimg: 2, tick_kimg: 1, snapshot_kimg: 1, ema: 0.9}",
    "train: {batch_size: 100, kimg: 6, tick_kimg: 0.1, snapshot_kimg: 3, "
    "checkpoint_kimg: 0.1, ema: 0.9}",
)
KILL_SEED = 20240611
WAIT = 120.0  # seconds before a test gives up on a process it waits for

# A loss that goes bad on chosen calls; SLOW_LOSS_SECONDS slows it down.
BAD_LOSS = '''\
import os
import time

import torch
from ganzoo import Constraint, Loss, Option, hookimpl


class BadLoss(Loss):
    """BCE-like test loss that returns NaN on chosen calls."""

    name = "bad-loss"
    options = (
        Option("network", str, "discriminator", "whose loss goes bad"),
        Option("bad_from", int, 0, "first bad call, 1-based (0: never)"),
        Option("bad_count", int, 1, "how many calls in a row are bad"),
    )
    calls = {"discriminator": 0, "generator": 0}

    def _value(self, network, loss):
        self.calls[network] += 1
        slow = float(os.environ.get("SLOW_LOSS_SECONDS", "0"))
        if slow and self.calls[network] > 1:
            time.sleep(slow)
        first, call = self.bad_from, self.calls[network]
        if network == self.network and first <= call < first + self.bad_count:
            return loss * float("nan")
        return loss

    def discriminator_loss(self, real_logits, fake_logits):
        loss = torch.nn.functional.softplus(-real_logits).mean()
        loss = loss + torch.nn.functional.softplus(fake_logits).mean()
        return self._value("discriminator", loss)

    def generator_loss(self, fake_logits):
        loss = torch.nn.functional.softplus(-fake_logits).mean()
        return self._value("generator", loss)


class Poison(Constraint):
    """Test constraint that sets one discriminator weight to infinity once."""

    name = "poison"
    options = (Option("at", int, 0, "call on which to poison, 1-based"),)
    calls = [0]

    def apply(self, discriminator):
        self.calls[0] += 1
        if self.calls[0] == self.at:
            with torch.no_grad():
                next(discriminator.parameters()).view(-1)[0] = float("inf")


@hookimpl
def ganzoo_losses():
    return [BadLoss]


@hookimpl
def ganzoo_constraints():
    return [Poison]
'''


# Helpers: processes, files, weights.


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "GANZOO_PLUGINS"}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **extra)
    return env


def start(args, cwd: Path, name: str, env=None, **popen) -> subprocess.Popen:
    """``ganzoo ARGS`` in a new process; stdout and stderr go to files in ``cwd``."""
    out = (cwd / f"{name}.out").open("w")
    err = (cwd / f"{name}.err").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "ganzoo", *map(str, args)],
        cwd=cwd,
        stdout=out,
        stderr=err,
        env=env or environment(),
        **popen,
    )
    process.out_path, process.err_path = cwd / f"{name}.out", cwd / f"{name}.err"
    return process


def finish(process: subprocess.Popen, timeout: float = WAIT) -> tuple[int, str, str]:
    try:
        status = process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise
    return status, process.out_path.read_text(), process.err_path.read_text()


def poll(condition, what: str, timeout: float = WAIT, process=None):
    """Wait until ``condition()`` is truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            return condition()
        time.sleep(0.005)
    pytest.fail(f"timed out waiting for {what}")


def steps_reported(process: subprocess.Popen) -> int:
    """The last step this process reported on its own progress lines."""
    ticks = [
        x for x in process.out_path.read_text().splitlines() if x.startswith("tick")
    ]
    return round(float(ticks[-1].split()[3]) * 10) if ticks else 0


def stats_steps(run_dir: Path) -> list[int]:
    path = run_dir / "stats.jsonl"
    if not path.is_file():
        return []
    steps = []
    for line in path.read_text().splitlines():
        try:
            steps.append(json.loads(line)["step"])
        except (ValueError, KeyError):
            continue
    return steps


def assert_same_training_state(a: dict, b: dict) -> None:
    assert a["step"] == b["step"] and a["images_seen"] == b["images_seen"]
    for part in ("generator", "discriminator", "generator_ema"):
        for key, value in a[part].items():
            assert torch.equal(value, b[part][key]), f"{part}.{key} differs"
    for part in ("g_optimizer", "d_optimizer"):
        for index, slots in a[part]["state"].items():
            for slot, value in slots.items():
                assert torch.equal(value, b[part]["state"][index][slot]), (
                    f"{part} state {index}.{slot} differs"
                )


def every_checkpoint_loads(run_dir: Path) -> dict[str, int]:
    """Load every checkpoint file present (digest checked); name -> step."""
    return {p.name: load_checkpoint(p)["step"] for p in sorted(run_dir.glob("*.pt"))}


@pytest.fixture
def one_thread():
    """Train in this process on one thread, as the subprocesses do, so that
    runs continued here are bit for bit comparable with theirs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def straight_run(tmp_path, cli, one_thread) -> dict:
    """The uninterrupted run every interrupted one must reproduce exactly."""
    recipe = write(tmp_path / "straight.yaml", KILL_RECIPE)
    assert cli("train", recipe, "--run-dir", tmp_path / "straight")[0] == 0
    return load_checkpoint(tmp_path / "straight" / FINAL)


# SIGKILL at random moments.


def test_sigkill_at_random_moments_then_resume_gives_the_same_weights(
    tmp_path, straight_run, cli
):
    recipe = write(tmp_path / "ring.yaml", KILL_RECIPE)
    run_dir = tmp_path / "run"
    rng = random.Random(KILL_SEED)
    # The first kill comes as soon as the process holds the run directory,
    # usually before its first checkpoint; then at two random steps.
    first = rng.randrange(5, 25)
    targets = [0, first, rng.randrange(first + 10, STEPS - 5)]
    killed_at = []

    for attempt, target in enumerate(targets):
        resume = ["--resume"] if attempt else []
        args = ["train", recipe, "--run-dir", run_dir, "--progress", "lines", *resume]
        process = start(args, tmp_path, f"attempt{attempt}")
        poll(lambda: (run_dir / ".lock").is_file(), "the run directory lock")
        poll(
            lambda p=process, t=target: steps_reported(p) >= t,
            f"step {target}",
            process=process,
        )
        time.sleep(rng.uniform(0, 0.02))  # a random moment inside the step
        process.send_signal(signal.SIGKILL)
        status, _, err = finish(process)
        assert status == -signal.SIGKILL, f"attempt {attempt} ended first: {err}"
        assert not (run_dir / FINAL).exists()

        # Whatever is on disk is whole; the lock of the dead process remains.
        steps = every_checkpoint_loads(run_dir)
        assert (run_dir / ".lock").is_file()
        killed_at.append(steps.get(LAST))

    assert killed_at[1] is not None and killed_at[2] > killed_at[1]

    status, out, err = cli("train", recipe, "--run-dir", run_dir, "--resume")
    assert status == 0, err
    assert f"at {killed_at[2] / 10:.1f} kimg (step {killed_at[2]})" in out

    assert_same_training_state(load_checkpoint(run_dir / FINAL), straight_run)
    assert stats_steps(run_dir) == list(range(1, STEPS + 1)), "stats.jsonl not trimmed"
    assert not list(run_dir.glob(".*tmp*")) and not (run_dir / ".lock").exists()


# Ctrl-C.


@pytest.mark.parametrize(
    "signum, status_code, said",
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
    ids=["ctrl-c", "sigterm"],
)
def test_ctrl_c_or_sigterm_stops_at_a_step_boundary_with_a_checkpoint(
    tmp_path, straight_run, cli, signum, status_code, said
):
    recipe = write(tmp_path / "ring.yaml", KILL_RECIPE)
    run_dir = tmp_path / "run"
    args = ["train", recipe, "--run-dir", run_dir, "--progress", "lines"]
    process = start(args, tmp_path, "train")
    poll(lambda: steps_reported(process) >= 10, "ten steps", process=process)
    process.send_signal(signum)
    status, _, err = finish(process)

    assert status == status_code, err
    [line] = [x for x in err.splitlines() if x.startswith("ganzoo:")]
    assert line.startswith(f"ganzoo: {said}: stopped after step ")
    assert "continue with --resume" in line
    stopped = int(line.split("after step ")[1].split()[0])
    assert 10 <= stopped < STEPS
    assert load_checkpoint(run_dir / LAST)["step"] == stopped
    assert not (run_dir / FINAL).exists() and not (run_dir / ".lock").exists()

    status, _, err = cli(*args[:4], "--resume")
    assert status == 0, err
    assert_same_training_state(load_checkpoint(run_dir / FINAL), straight_run)


def test_second_ctrl_c_stops_at_once_without_a_checkpoint(tmp_path):
    write(tmp_path / "bad_loss.py", BAD_LOSS)
    recipe = write(
        tmp_path / "slow.yaml",
        "plugins: [bad_loss.py]\n"
        + TINY_RING.replace("loss: {name: bce}", "loss: {name: bad-loss}").replace(
            "tick_kimg: 1", "tick_kimg: 0.1, checkpoint_kimg: 2"
        ),
    )
    run_dir = tmp_path / "run"
    # Each step after the first sleeps 2 s in its loss, so the first Ctrl-C
    # finds the run in the middle of a step that is far from its end.
    process = start(
        ["train", recipe, "--run-dir", run_dir, "--progress", "lines"],
        tmp_path,
        "train",
        env=environment(SLOW_LOSS_SECONDS="2"),
    )
    poll(lambda: steps_reported(process) >= 1, "the first step", process=process)
    process.send_signal(signal.SIGINT)
    poll(lambda: "interrupt: stopping" in process.err_path.read_text(), "the notice")
    process.send_signal(signal.SIGINT)
    status, _, err = finish(process)

    assert status == 130
    assert "ganzoo: interrupted: interrupted twice: stopped at once" in err
    assert not (run_dir / LAST).exists() and not (run_dir / FINAL).exists()
    assert "Traceback" not in err


# Damaged checkpoints.


def _tensor_data_offset(path: Path) -> int:
    """The file offset of the first byte of the largest tensor's data."""
    with zipfile.ZipFile(path) as archive:
        tensors = [i for i in archive.infolist() if "/data/" in i.filename]
        info = max(tensors, key=lambda i: i.file_size)
    with path.open("rb") as file:
        file.seek(info.header_offset + 26)  # the local header's two lengths
        name_length = int.from_bytes(file.read(2), "little")
        extra_length = int.from_bytes(file.read(2), "little")
    return info.header_offset + 30 + name_length + extra_length


def _finished_run_missing_its_final(cli, tmp_path: Path) -> tuple[Path, Path, dict]:
    recipe = write(tmp_path / "ring.yaml", TINY_RING)
    settings = ["train.checkpoint_kimg=0.5"]
    run_dir = tmp_path / "run"
    assert cli("train", recipe, *settings, "--run-dir", run_dir)[0] == 0
    final = load_checkpoint(run_dir / FINAL)
    (run_dir / FINAL).unlink()
    assert load_checkpoint(run_dir / PREVIOUS)["step"] == 15
    return recipe, run_dir, final


@pytest.mark.parametrize("damage", ["truncated", "flipped-byte"])
def test_damaged_last_checkpoint_is_named_and_resume_falls_back(
    damage, cli, tmp_path, caplog
):
    recipe, run_dir, final = _finished_run_missing_its_final(cli, tmp_path)
    last = run_dir / LAST
    raw = bytearray(last.read_bytes())
    if damage == "truncated":
        last.write_bytes(raw[: len(raw) // 2])
    else:
        raw[_tensor_data_offset(last) + 3] ^= 0x10
        last.write_bytes(raw)

    status, _, err = cli(
        "sample", run_dir, "--checkpoint", last, "--n", 4, "--out", tmp_path / "s.npy"
    )
    assert status == 2 and str(last) in err and "damaged" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "s.npy").exists()

    status, out, err = cli(
        "train", recipe, "train.checkpoint_kimg=0.5", "--run-dir", run_dir, "--resume"
    )
    assert status == 0, err
    assert f"{last}" in err and "trying an older checkpoint" in err
    assert "resumed" in out and PREVIOUS in out and "(step 15)" in out
    assert_same_training_state(load_checkpoint(run_dir / FINAL), final)


def test_resume_with_every_checkpoint_damaged_names_them(cli, tmp_path):
    recipe, run_dir, _ = _finished_run_missing_its_final(cli, tmp_path)
    for name in (LAST, PREVIOUS):
        (run_dir / name).write_bytes(b"PK\x03\x04 not really")
    before = listing(run_dir)
    status, _, err = cli(
        "train", recipe, "train.checkpoint_kimg=0.5", "--run-dir", run_dir, "--resume"
    )
    assert status == 2
    [line] = [x for x in err.splitlines() if x.startswith("ganzoo:")]
    assert "no good checkpoint is left" in line
    assert str(run_dir / LAST) in line and str(run_dir / PREVIOUS) in line
    assert listing(run_dir) == before


# Divergence.


def _bad_recipe(tmp_path: Path, loss: str, train: str = "", extra: str = "") -> Path:
    write(tmp_path / "bad_loss.py", BAD_LOSS)
    text = TINY_RING.replace("loss: {name: bce}", f"loss: {loss}").replace(
        "ema: 0.9}", f"ema: 0.9, checkpoint_kimg: 0.5{train}}}"
    )
    return write(tmp_path / "bad.yaml", "plugins: [bad_loss.py]\n" + text + extra)


def test_nan_loss_stops_the_run_and_eval_records_a_failure(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = _bad_recipe(tmp_path, "{name: bad-loss, bad_from: 8}")
    status, _, err = cli("train", recipe)
    [run_dir] = (tmp_path / "runs").iterdir()

    assert status == 1
    [line] = [x for x in err.splitlines() if x.startswith("ganzoo:")]
    assert "training diverged in step 8" in line
    assert "the discriminator loss is nan" in line
    assert f"the last good checkpoint is {LAST} (step 5)" in line
    assert every_checkpoint_loads(run_dir) == {LAST: 5}
    assert json.loads((run_dir / "run.json").read_text())["diverged"]["step"] == 8

    # Evaluating it does not train again; the record is failed and not ranked.
    results = tmp_path / "results"
    status, _, err = cli("eval", recipe, "--results", results)
    assert status == 1 and "training diverged in step 8" in err
    [record] = read_records(results)
    assert record["status"] == "failed" and "step 8" in record["errors"][0]
    assert every_checkpoint_loads(run_dir) == {LAST: 5}
    standings = build_standings([record])
    assert all(not table.rows for table in standings.tables)
    assert [r["name"] for r in standings.failed["ring"]] == [record["name"]]
    status, out, _ = cli("leaderboard", "--results", results)
    assert status == 0 and "**failed**" in out

    # Allowing a bad step (not part of the hash) continues the same run.
    status, _, err = cli("eval", recipe, "train.skip_bad_steps=1", "--results", results)
    assert status == 0, err
    assert "skipped without an update (1 of 1 allowed)" in err
    assert load_checkpoint(run_dir / FINAL)["bad_steps"] == 1
    assert sorted(r["status"] for r in read_records(results)) == ["failed", "ok"]


def test_nan_generator_loss_is_skipped_up_to_the_budget(cli, tmp_path):
    loss = "{name: bad-loss, network: generator, bad_from: 4, bad_count: 2}"
    recipe = _bad_recipe(tmp_path, loss, ", skip_bad_steps: 2")
    status, _, err = cli("train", recipe, "--run-dir", tmp_path / "run")
    assert status == 0, err
    assert err.count("skipped without an update") == 2
    assert "step 4: the generator loss is nan" in err and "(2 of 2 allowed)" in err
    final = load_checkpoint(tmp_path / "run" / FINAL)
    assert final["bad_steps"] == 2 and final["step"] == 20
    assert all(torch.isfinite(v).all() for v in final["generator"].values())

    # One more bad step than allowed stops the run, at the step beyond the budget.
    recipe = _bad_recipe(tmp_path, loss, ", skip_bad_steps: 1")
    status, _, err = cli("train", recipe, "--run-dir", tmp_path / "stopped")
    assert status == 1 and "training diverged in step 5" in err
    assert "the generator loss is nan" in err


def test_skipped_step_leaves_the_weights_untouched(tmp_path):
    from ganzoo.recipes import load_recipe
    from ganzoo.training import Trainer

    recipe = load_recipe(
        _bad_recipe(tmp_path, "{name: bad-loss, bad_from: 1}", ", skip_bad_steps: 1")
    )
    trainer = Trainer(recipe, tmp_path / "run", [])
    before = {k: v.clone() for k, v in trainer.nets.discriminator.state_dict().items()}
    assert trainer.discriminator_step(trainer.sampler.next()) == {}
    after = trainer.nets.discriminator.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert trainer.bad_steps == 1
    assert trainer.discriminator_step(trainer.sampler.next())["d_loss"].isfinite()
    assert not all(torch.equal(before[k], after[k]) for k in before)


def test_infinite_weight_stops_the_run_and_names_the_network(cli, tmp_path):
    recipe = _bad_recipe(
        tmp_path,
        "{name: bad-loss}",
        extra="constraints: [{name: poison, at: 7}]\n",
    )
    status, _, err = cli("train", recipe, "--run-dir", tmp_path / "run")
    assert status == 1
    [line] = [x for x in err.splitlines() if x.startswith("ganzoo:")]
    # Poisoned in step 7: the generator's loss turns NaN in the same step, and
    # the weights are checked before blaming a network.
    assert "training diverged in step 7" in line
    assert "the discriminator weight" in line and "is not finite" in line
    assert every_checkpoint_loads(tmp_path / "run") == {LAST: 5}


# Full disks and read-only folders.

# One process runs every case, so that the suite pays for one start of Python:
# a record into a full tmpfs, a run directory on a read-only tmpfs, and a
# checkpoint over the file-size limit. Each case prints its exit status, what
# it printed on stderr, and what its target folder holds afterwards.
DISK_DRIVER = """\
import contextlib, io, json, os, resource, signal, sys
from ganzoo.cli import main

def case(name, folder, *args):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = main(list(args))
    left = sorted(os.listdir(folder)) if os.path.isdir(folder) else None
    print(json.dumps({"case": name, "status": status, "err": err.getvalue(),
                      "left": left}), flush=True)

recipe, cases = sys.argv[1], sys.argv[2:]
if "full" in cases:
    case("full", "results", "eval", recipe, "--run-dir", "run", "--results", "results")
if "readonly" in cases:
    case("readonly", "readonly", "train", recipe, "--run-dir", "readonly/run")
if "size" in cases:
    # Big enough for the recipe, run.json and snapshots, too small for a checkpoint.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail with EFBIG instead
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    resource.setrlimit(resource.RLIMIT_FSIZE, (32 * 1024, hard))
    case("size", "big", "train", recipe, "--run-dir", "big")
"""

# A tmpfs filled to the last byte for the results, and a read-only one.
MOUNTS = (
    "mount -t tmpfs -o size=16k tmpfs results && "
    "(head -c 1000000 /dev/zero > results/filler 2>/dev/null; true) && "
    "mount -t tmpfs -o ro tmpfs readonly && "
)


def _mount_namespace_works() -> bool:
    if sys.platform != "linux" or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=4k tmpfs /mnt"],
        capture_output=True,
    )
    return probe.returncode == 0


def test_full_disk_read_only_folder_and_size_limit_fail_cleanly(cli, tmp_path):
    recipe = write(tmp_path / "ring.yaml", TINY_RING)
    assert cli("train", recipe, "--run-dir", tmp_path / "run")[0] == 0
    (tmp_path / "results").mkdir()
    (tmp_path / "readonly").mkdir()
    driver = write(tmp_path / "driver.py", DISK_DRIVER)
    python = [sys.executable, str(driver), str(recipe)]
    mounts = _mount_namespace_works()
    if mounts:
        quoted = " ".join(f"'{part}'" for part in python)
        command = ["unshare", "-m", "sh", "-c", f"{MOUNTS}{quoted} full readonly size"]
    else:
        command = [*python, "size"]
    done = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, env=environment()
    )
    assert done.returncode == 0, done.stderr
    results = {c["case"]: c for c in map(json.loads, done.stdout.splitlines())}

    def failure(case: dict) -> str:
        assert case["status"] == 1 and "Traceback" not in case["err"]
        [line] = [x for x in case["err"].splitlines() if x.startswith("ganzoo:")]
        return line

    # A checkpoint over the size limit: no checkpoint, whole or partial, is left.
    line = failure(results["size"])
    assert line.startswith("ganzoo: failed: cannot write big/checkpoint-last.pt: File")
    assert "recipe.yaml" in results["size"]["left"]
    assert not [n for n in results["size"]["left"] if n.endswith(".pt")]
    assert not [n for n in results["size"]["left"] if n.startswith(".")]
    if not mounts:
        pytest.skip(
            "the full and read-only file systems need a private mount namespace "
            "(unshare -m, as root on Linux); only the size limit was tried"
        )

    # A record into a full file system: none is written, no temporary is left.
    line = failure(results["full"])
    assert "cannot write results/" in line and "No space left on device" in line
    assert results["full"]["left"] == ["filler"]

    # A read-only file system refuses the run directory before any work.
    line = failure(results["readonly"])
    assert line == "ganzoo: failed: cannot write readonly/run: Read-only file system"
    assert results["readonly"]["left"] == []
