"""Speed on one device: mixed precision, channels-last, torch.compile, throughput."""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

import pytest
import torch

from ganzoo.evaluation import evaluate_recipe
from ganzoo.recipes import load_recipe
from ganzoo.training import (
    Trainer,
    _speed,
    load_checkpoint,
    prepare_run_dir,
    read_run_info,
)

from .conftest import REPO, TINY_RING, stop_after_checkpoints, write

QUICKSTART_HASH = "5689ed5025cdd2db"
"""The hash of recipes/quickstart.yaml that committed runs and records are stored
under: new options left at their defaults must not change it."""

TINY_CONV = """\
data: {name: digits, resolution: 28}
model:
  generator: {name: dcgan, latent_dim: 16, width: 8}
  discriminator: {name: dcgan-critic, width: 8}
loss: {name: bce}
train: {batch_size: 32, kimg: 0.064, tick_kimg: 0.064, snapshot_kimg: 0.064,
        grid: 16, ema: 0.9}
"""


def train(recipe_path: Path, run_dir: Path, overrides=(), resume=False) -> Trainer:
    recipe = load_recipe(recipe_path, list(overrides))
    trainer = Trainer(recipe, run_dir, [])
    prepare_run_dir(recipe, run_dir, resume=resume)
    trainer.run(resume=resume, show_bar=False)
    return trainer


def ticks(run_dir: Path) -> list[dict]:
    lines = (run_dir / "stats.jsonl").read_text().splitlines()
    return [entry for entry in map(json.loads, lines) if "tick" in entry]


def weights(path: Path, network: str = "generator") -> dict[str, torch.Tensor]:
    return load_checkpoint(path)[network]


@pytest.fixture
def ring(tmp_path: Path) -> Path:
    return write(tmp_path / "ring.yaml", TINY_RING)


@pytest.fixture
def conv(tmp_path: Path) -> Path:
    return write(tmp_path / "conv.yaml", TINY_CONV)


# Mixed precision.


def test_bf16_autocast_trains_with_finite_losses_and_float32_checkpoints(
    ring, tmp_path
):
    train(ring, tmp_path / "fp32")
    trainer = train(ring, tmp_path / "bf16", ["train.precision=bf16"])

    last = ticks(tmp_path / "bf16")[-1]
    for key in ("d_loss", "g_loss", "g_grad_norm"):
        assert torch.isfinite(torch.tensor(last[key])), key
    final = load_checkpoint(tmp_path / "bf16" / "final.pt")
    for network in ("generator", "discriminator", "generator_ema"):
        dtypes = {t.dtype for t in final[network].values() if t.is_floating_point()}
        assert dtypes == {torch.float32}, network
    assert "loss_scalers" not in final

    # The forwards did run in bfloat16: the weights differ from fp32's, a little.
    ours, theirs = (
        weights(tmp_path / "bf16" / "final.pt"),
        weights(tmp_path / "fp32" / "final.pt"),
    )
    gaps = [float((ours[k] - theirs[k]).abs().max()) for k in ours]
    assert 0 < max(gaps) < 0.05
    assert trainer.recipe.hash != load_recipe(ring).hash


def test_fp16_overflow_is_skipped_by_the_scaler_not_taken_for_divergence(
    ring, tmp_path
):
    recipe = load_recipe(ring, ["train.precision=fp16", "train.kimg=2"])
    run_dir = tmp_path / "run"
    trainer = Trainer(recipe, run_dir, [])
    # A loss scale far beyond float16's range: the first steps overflow, and
    # the scale halves at each until the gradients fit.
    start = 2.0**30
    trainer.speed.scalers = {
        role: torch.amp.GradScaler("cpu", init_scale=start)
        for role in ("generator", "discriminator")
    }
    prepare_run_dir(recipe, run_dir, resume=False)
    trainer.run(show_bar=False)  # skip_bad_steps is 0: a bad step would stop it

    assert trainer.bad_steps == 0
    assert read_run_info(run_dir).get("diverged") is None
    final = load_checkpoint(run_dir / "final.pt")
    for role in ("generator", "discriminator"):
        assert final["loss_scalers"][role]["scale"] < start
    torch.manual_seed(recipe.config["train"]["seed"])
    initial = recipe.network("generator", trainer.shape).state_dict()
    trained = final["generator"]
    assert all(torch.isfinite(t).all() for t in trained.values())
    assert any(not torch.equal(trained[k], initial[k]) for k in trained)
    last = ticks(run_dir)[-1]
    assert torch.isfinite(torch.tensor([last["g_loss"], last["d_loss"]])).all()


def test_fp16_run_resumes_with_its_loss_scales(ring, tmp_path, monkeypatch):
    # Scales that start far too high keep changing through the run, so a resumed
    # run matches the straight one only if it continues with the saved scales.
    scaler = torch.amp.GradScaler
    monkeypatch.setattr(
        torch.amp, "GradScaler", functools.partial(scaler, init_scale=2.0**30)
    )
    settings = [
        "train.precision=fp16",
        "train.kimg=2",
        "train.checkpoint_kimg=0.5",
        "train.tick_kimg=0.5",
    ]
    straight = train(ring, tmp_path / "straight", settings)

    undo = stop_after_checkpoints(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        train(ring, tmp_path / "resumed", settings)
    undo()
    resumed = train(ring, tmp_path / "resumed", settings, resume=True)

    assert resumed.step == straight.step
    for role in ("generator", "discriminator"):
        assert (
            resumed.speed.scalers[role].get_scale()
            == straight.speed.scalers[role].get_scale()
        )
        ours = getattr(resumed.nets, role).state_dict()
        theirs = getattr(straight.nets, role).state_dict()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours), role


def test_unsupported_precision_is_a_one_line_error_naming_the_key(
    ring, tmp_path, monkeypatch, cli
):
    monkeypatch.setattr(_speed, "autocast_works", lambda device, dtype: False)
    status, _, err = cli(
        "train", ring, "train.precision=fp16", "--run-dir", tmp_path / "run"
    )
    assert status == 2
    assert len(err.strip().splitlines()) == 1
    assert "train.precision" in err and "fp16" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "override, expected",
    [
        ("train.precision=fp8", "one of 'fp32', 'bf16', 'fp16'"),
        ("train.channels_last=sometimes", "true/false"),
        ("train.compile=3", "true/false"),
    ],
)
def test_bad_speed_option_is_a_one_line_error_naming_the_key(
    ring, tmp_path, cli, override, expected
):
    status, _, err = cli("train", ring, override, "--run-dir", tmp_path / "run")
    key = override.partition("=")[0]
    assert status == 2
    assert len(err.strip().splitlines()) == 1
    assert key in err and expected in err
    assert not (tmp_path / "run").exists()


# Channels-last.


def test_channels_last_gives_the_results_of_contiguous_weights(conv, tmp_path):
    # Left at its default, the layout is channels-last for convolutions.
    contiguous = train(conv, tmp_path / "contiguous", ["train.channels_last=false"])
    trainer = train(conv, tmp_path / "channels-last")

    def layouts(trainer: Trainer) -> set[bool]:
        # Kernels with one input channel or a 1x1 window are in both layouts.
        kernels = [
            p
            for p in trainer.nets.generator.parameters()
            if p.dim() == 4 and p.shape[1] > 1 and p.shape[2] * p.shape[3] > 1
        ]
        assert kernels
        return {p.is_contiguous(memory_format=torch.channels_last) for p in kernels}

    assert trainer.speed.channels_last is True and layouts(trainer) == {True}
    assert contiguous.speed.channels_last is False and layouts(contiguous) == {False}
    assert read_run_info(tmp_path / "channels-last")["layout"] == "channels-last"
    assert read_run_info(tmp_path / "contiguous")["layout"] == "contiguous"
    for network in ("generator", "discriminator", "generator_ema"):
        ours = weights(tmp_path / "channels-last" / "final.pt", network)
        theirs = weights(tmp_path / "contiguous" / "final.pt", network)
        for key in ours:
            torch.testing.assert_close(ours[key], theirs[key], rtol=1e-4, atol=1e-5)
    first, second = (
        ticks(tmp_path / "channels-last")[-1],
        ticks(tmp_path / "contiguous")[-1],
    )
    assert first["d_loss"] == pytest.approx(second["d_loss"], rel=1e-5)
    assert first["g_loss"] == pytest.approx(second["g_loss"], rel=1e-5)


def test_networks_without_convolutions_are_left_alone_by_default(ring, tmp_path):
    trainer = Trainer(load_recipe(ring), tmp_path / "run", [])
    assert trainer.speed.channels_last is False
    for network in (trainer.nets.generator, trainer.nets.discriminator):
        assert not isinstance(network.forward, _speed.FastForward)


# torch.compile.


def test_compile_that_fails_falls_back_to_eager_with_a_warning(
    ring, tmp_path, monkeypatch, caplog
):
    train(ring, tmp_path / "eager")

    def broken_compile(function, *args, **kwargs):
        def compiled(*args, **kwargs):
            raise RuntimeError("no C++ compiler found")

        return compiled

    monkeypatch.setattr(torch, "compile", broken_compile)
    with caplog.at_level(logging.WARNING, logger="ganzoo.train"):
        train(ring, tmp_path / "fallback", ["train.compile=true"])

    warned = [r.getMessage() for r in caplog.records if "train.compile" in r.message]
    assert len(warned) == 2  # once per network, then eager for good
    assert all("eager mode" in m and "no C++ compiler" in m for m in warned)
    ours = weights(tmp_path / "fallback" / "final.pt")
    theirs = weights(tmp_path / "eager" / "final.pt")
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_compile_that_is_unavailable_warns_and_trains_eagerly(
    ring, tmp_path, monkeypatch, caplog
):
    def unavailable(function, *args, **kwargs):
        raise RuntimeError("torch.compile is not supported on this Python")

    monkeypatch.setattr(torch, "compile", unavailable)
    with caplog.at_level(logging.WARNING, logger="ganzoo.train"):
        trainer = train(ring, tmp_path / "run", ["train.compile=true"])
    assert "not available" in caplog.text and "eager mode" in caplog.text
    assert trainer.nets.generator.forward.compiled is None
    assert (tmp_path / "run" / "final.pt").is_file()


def test_compile_leaves_a_twice_differentiated_discriminator_eager(
    ring, tmp_path, monkeypatch
):
    monkeypatch.setattr(torch, "compile", lambda function, *a, **k: function)
    recipe = load_recipe(ring, ["train.compile=true", "regularizers=[r1]"])
    trainer = Trainer(recipe, tmp_path / "run", [])
    assert trainer.nets.generator.forward.compiled is not None
    assert trainer.nets.discriminator.forward.compiled is None


# The recipe hash.


def test_quickstart_hash_is_unchanged_by_the_speed_options():
    path = REPO / "recipes" / "quickstart.yaml"
    assert load_recipe(path).hash == QUICKSTART_HASH
    for same in (
        ["train.precision=fp32"],
        ["train.channels_last=true"],
        ["train.compile=true"],
    ):
        assert load_recipe(path, same).hash == QUICKSTART_HASH, same


def test_reduced_precision_changes_the_hash():
    path = REPO / "recipes" / "quickstart.yaml"
    bf16 = load_recipe(path, ["train.precision=bf16"]).hash
    fp16 = load_recipe(path, ["train.precision=fp16"]).hash
    assert len({QUICKSTART_HASH, bf16, fp16}) == 3


# Throughput and memory in every report.


def test_throughput_and_memory_are_in_stats_the_console_and_the_record(
    tmp_path, monkeypatch, caplog
):
    monkeypatch.setenv("GANZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    recipe = write(tmp_path / "ring.yaml", TINY_RING + "eval: {n_fake: 500}\n")
    run_dir = tmp_path / "run"
    with caplog.at_level(logging.INFO, logger="ganzoo.train"):
        train(recipe, run_dir)

    lines = [r.getMessage() for r in caplog.records if r.message.startswith("tick")]
    assert len(lines) == 2
    for line in lines:
        assert "sec/kimg" in line and "img/s" in line and "mem" in line

    for tick in ticks(run_dir):
        assert tick["img_per_sec"] > 0 and tick["sec_per_kimg"] > 0
        assert tick["img_per_sec"] == pytest.approx(
            1000 / tick["sec_per_kimg"], rel=1e-2
        )
        assert tick["peak_host_mem_gb"] > 0
        assert tick["peak_device_mem_gb"] == 0.0  # a CPU run has no device memory

    record = evaluate_recipe(recipe, [], run_dir=run_dir)
    training = record["training"]
    for key in ("sec_per_kimg", "img_per_sec", "peak_host_mem_gb"):
        assert training[key] > 0, key
    assert "peak_device_mem_gb" in training
    assert training["img_per_sec"] == pytest.approx(
        1000 * training["kimg"] / training["time_sec"], rel=1e-2
    )
    assert record["seeds"][0]["training"]["img_per_sec"] == training["img_per_sec"]
    assert training["layout"] == "contiguous"  # the ring's MLPs have no convolutions
