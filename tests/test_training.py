"""The trainer end to end: recipes train, runs resume exactly, samples are seeded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ganzoo.recipes import load_recipe
from ganzoo.training import Trainer, build_trackers, load_checkpoint, prepare_run_dir
from ganzoo.training import _checkpoint as ckpt
from ganzoo.training._translation import trainer_class

from .conftest import (
    FASHION,
    REPO,
    TINY_RING,
    listing,
    needs_fashion,
    stop_after_checkpoints,
    write,
)

RECIPES = sorted(p for p in (REPO / "recipes").rglob("*.yaml") if "base" not in p.parts)


def tiny_overrides(path: Path) -> list[str]:
    """A budget of two discriminator steps on a small slice of the data."""
    config = load_recipe(path).config
    batch = min(config["train"]["batch_size"], 64)
    n_critic = config["train"]["n_critic"]
    name = config["data"]["name"]
    data = ["data.n=1000"] if name in ("ring", "grid") else ["data.limit=256"]
    kimg = batch * n_critic * 2 / 1000
    return [
        *data,
        f"train.batch_size={batch}",
        f"train.kimg={kimg}",
        f"train.tick_kimg={kimg}",
        f"train.snapshot_kimg={kimg}",
        "train.grid=16",
    ]


def train(recipe_path: Path, run_dir: Path, overrides=(), resume=False):
    recipe = load_recipe(recipe_path, list(overrides))
    trainer = trainer_class(recipe)(recipe, run_dir, build_trackers(recipe))
    prepare_run_dir(recipe, run_dir, resume=resume)
    trainer.run(resume=resume, show_bar=False)
    return trainer


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_builtin_recipe_trains_a_few_steps(path, tmp_path):
    if (
        load_recipe(path).config["data"]["name"] == "fashion-mnist"
        and not FASHION.exists()
    ):
        pytest.skip(
            "Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)"
        )
    trainer = train(path, tmp_path / "run", tiny_overrides(path))
    lines = (tmp_path / "run" / "stats.jsonl").open()
    stats = [json.loads(line) for line in lines if '"tick"' in line]
    assert stats, "no tick was reported"
    last = stats[-1]
    for key in (
        "kimg",
        "sec_per_kimg",
        "eta_sec",
        "d_loss",
        "g_loss",
        "d_acc_real",
        "d_acc_fake",
        "g_grad_norm",
        "peak_host_mem_gb",
    ):
        assert key in last
    assert np.isfinite(last["d_loss"]) and np.isfinite(last["g_loss"])
    assert (tmp_path / "run" / "final.pt").is_file()
    assert trainer.step == 2
    assert len(list((tmp_path / "run").glob("fakes-kimg*.png"))) == 2


def test_ring_samples_move_from_the_origin_onto_the_ring(tmp_path):
    path = REPO / "recipes" / "ring" / "gan.yaml"
    trainer = train(
        path,
        tmp_path / "run",
        ["train.kimg=400", "train.snapshot_kimg=400", "eval.eval_kimg=null"],
    )
    final = load_checkpoint(tmp_path / "run" / "final.pt")
    assert final["kimg"] == pytest.approx(400)

    def on_ring(generator) -> float:
        with torch.no_grad():
            points = generator(
                torch.randn(2500, 2, generator=torch.Generator().manual_seed(1))
            )
        return float(((points.norm(dim=1) - 1).abs() < 0.1).float().mean())

    fresh = load_recipe(path).network("generator", trainer.shape)
    before, after = on_ring(fresh), on_ring(trainer.nets.generator)
    assert before < 0.2, f"an untrained generator should not sit on the ring ({before})"
    assert after > 0.6, f"after 400 kimg most samples should be on the ring ({after})"


def test_resumed_run_ends_with_the_same_weights(tmp_path, monkeypatch, ring_recipe):
    settings = ["train.kimg=2", "train.checkpoint_kimg=0.5", "train.tick_kimg=0.5"]
    straight = train(ring_recipe, tmp_path / "straight", settings)

    # Interrupt the second run right after its second checkpoint is on disk.
    undo = stop_after_checkpoints(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        train(ring_recipe, tmp_path / "resumed", settings)
    undo()
    assert load_checkpoint(tmp_path / "resumed" / ckpt.LAST)["kimg"] == pytest.approx(
        1.0
    )
    assert not (tmp_path / "resumed" / ckpt.FINAL).exists()

    resumed = train(ring_recipe, tmp_path / "resumed", settings, resume=True)
    assert resumed.step == straight.step
    for name in ("generator", "discriminator", "generator_ema"):
        a = getattr(straight.nets, name).state_dict()
        b = getattr(resumed.nets, name).state_dict()
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name}.{key} differs after resume"
    a_opt = straight.d_optimizer.state_dict()["state"]
    b_opt = resumed.d_optimizer.state_dict()["state"]
    assert all(torch.equal(a_opt[k]["exp_avg"], b_opt[k]["exp_avg"]) for k in a_opt)


def test_same_seed_gives_identical_weights_and_another_seed_does_not(
    tmp_path, ring_recipe
):
    first = train(ring_recipe, tmp_path / "a")
    second = train(ring_recipe, tmp_path / "b")
    other = train(ring_recipe, tmp_path / "c", ["train.seed=1"])
    weights = [next(t.nets.generator.parameters()) for t in (first, second, other)]
    assert torch.equal(weights[0], weights[1])
    assert not torch.equal(weights[0], weights[2])


def test_run_directory_holds_resolved_recipe_and_reloads_to_the_same_hash(
    tmp_path, ring_recipe
):
    train(ring_recipe, tmp_path / "run")
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    recipe = load_recipe(ring_recipe)
    assert info["recipe_hash"] == recipe.hash and info["finished"] is True
    stored = yaml.safe_load((tmp_path / "run" / "recipe.yaml").read_text())
    assert stored["loss"] == {
        "name": "bce",
        "generator": "non-saturating",
        "label_noise": 0.0,
        "label_smoothing": 0.0,
    }
    assert load_recipe(tmp_path / "run" / "recipe.yaml").hash == recipe.hash


def test_existing_run_directory_is_not_overwritten(tmp_path, ring_recipe, cli):
    train(ring_recipe, tmp_path / "run")
    before = listing(tmp_path / "run")
    status, _, err = cli("train", ring_recipe, "--run-dir", tmp_path / "run")
    assert status == 2 and "--resume" in err
    assert listing(tmp_path / "run") == before


def test_resume_without_checkpoint_is_a_user_error(tmp_path, ring_recipe, cli):
    status, _, err = cli(
        "train", ring_recipe, "--run-dir", tmp_path / "none", "--resume"
    )
    assert status == 2 and "nothing to resume" in err
    assert not (tmp_path / "none").exists()


def test_sample_is_deterministic_per_seed(tmp_path, ring_recipe, cli):
    assert cli("train", ring_recipe, "--run-dir", tmp_path / "run")[0] == 0
    paths = {name: tmp_path / f"{name}.npy" for name in ("a", "b", "c")}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        status, _, _ = cli(
            "sample", tmp_path / "run", "--n", 100, "--seed", seed, "--out", paths[name]
        )
        assert status == 0
    a, b, c = (np.load(paths[n]) for n in "abc")
    assert a.shape == (100, 2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert (
        cli("sample", tmp_path / "run", "--n", 50, "--out", tmp_path / "g.png")[0] == 0
    )
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_fashion
def test_sample_png_grid_of_images(tmp_path, cli):
    recipe = REPO / "recipes" / "fashion-mnist" / "gan.yaml"
    status, _, _ = cli(
        "train", recipe, *tiny_overrides(recipe), "--run-dir", tmp_path / "r"
    )
    assert status == 0
    assert (
        cli("sample", tmp_path / "r", "--n", 16, "--out", tmp_path / "grid.png")[0] == 0
    )
    from PIL import Image

    grid = Image.open(tmp_path / "grid.png")
    assert grid.size == (4 * 30 + 2, 4 * 30 + 2)
    status, _, _ = cli(
        "sample", tmp_path / "r", "--n", 8, "--out", tmp_path / "raw.npy"
    )
    raw = np.load(tmp_path / "raw.npy")
    assert raw.shape == (8, 1, 28, 28) and raw.min() >= 0 and raw.max() <= 1


def test_wandb_offline_run_leaves_its_files(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    recipe = write(
        tmp_path / "r.yaml", TINY_RING + "tracking: {wandb: {mode: offline}}\n"
    )
    train(recipe, tmp_path / "run")
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    [log_file] = runs[0].glob("*.wandb")
    assert log_file.stat().st_size > 0
    assert (tmp_path / "run" / "wandb-id.txt").read_text().strip() in runs[0].name


def test_tensorboard_writes_event_files(tmp_path):
    recipe = write(tmp_path / "r.yaml", TINY_RING + "tracking: {tensorboard: {}}\n")
    train(recipe, tmp_path / "run")
    events = list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


def test_failure_inside_training_exits_1_with_a_message(
    tmp_path, monkeypatch, cli, ring_recipe
):
    def explode(self, real, labels=None):
        raise RuntimeError("simulated fault")

    monkeypatch.setattr(Trainer, "discriminator_step", explode)
    status, _, err = cli("train", ring_recipe, "--run-dir", tmp_path / "run")
    assert status == 1
    assert "simulated fault" in err and len(err.strip().splitlines()) == 1
    assert "Traceback" in (tmp_path / "run" / "error.log").read_text()


@pytest.mark.parametrize("left", ["lock-only", "run-json"])
def test_resume_of_a_run_killed_before_its_first_checkpoint_starts_over(
    left, tmp_path, ring_recipe, cli
):
    # What a process killed while it set up the run directory leaves behind.
    run_dir = tmp_path / "run"
    if left == "lock-only":
        run_dir.mkdir()
    else:
        prepare_run_dir(load_recipe(ring_recipe), run_dir, resume=False)
    (run_dir / ".lock").write_text("12345\n")
    (run_dir / ".run.json.abc123.tmp").write_text('{"half": ')

    status, out, err = cli("train", ring_recipe, "--run-dir", run_dir, "--resume")
    assert status == 0, err
    assert "has no checkpoint yet: starting from step 0" in out
    assert load_checkpoint(run_dir / "final.pt")["step"] == 20
    assert json.loads((run_dir / "run.json").read_text())["finished"] is True
    assert not list(run_dir.glob(".*")), "the stale lock or temporary is left"


@needs_fashion
@pytest.mark.parametrize(
    ("recipe", "batches"),
    [("dcgan-seed.yaml", [16]), ("dcgan-bn.yaml", [8, 8])],
)
def test_batch_norm_discriminators_see_reals_and_fakes_apart(recipe, batches, tmp_path):
    # A joint batch would give batch norm statistics that the fakes-only batch of
    # the generator's step never has; a discriminator without it keeps the
    # lecture's joint batch.
    path = REPO / "recipes" / "fashion-mnist" / recipe
    trainer = Trainer(load_recipe(path, ["train.batch_size=8"]), tmp_path / "run", [])
    seen = []
    trainer.nets.discriminator.register_forward_hook(
        lambda module, inputs, output: seen.append(len(inputs[0]))
    )
    stats = trainer.discriminator_step(trainer.sampler.next())
    assert seen == batches
    assert torch.isfinite(stats["d_loss"])
