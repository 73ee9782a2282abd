"""The evaluation harness end to end: eval, metrics, records, the feature cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from ganzoo_plugins.datasets import FashionMnist

from ganzoo._registry import build_registry
from ganzoo.evaluation import Scorer
from ganzoo.training import load_checkpoint
from ganzoo.training._checkpoint import save_atomic

from .conftest import REPO, TINY_RING, listing, needs_fashion, write


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANZOO_CACHE", str(tmp_path / "cache"))


def test_eval_of_a_tiny_ring_recipe_trains_scores_and_writes_a_record(
    tmp_path, monkeypatch, cli
):
    monkeypatch.chdir(tmp_path)
    recipe = write(tmp_path / "ring.yaml", TINY_RING + "eval: {n_fake: 2500}\n")
    status, out, err = cli("eval", recipe, "--json")
    assert status == 0, err
    record = json.loads(out[out.index("{") :])
    for key in (
        "modes",
        "high_quality",
        "reverse_kl",
        "precision",
        "recall",
        "density",
        "coverage",
    ):
        assert key in record
    assert 0 <= record["modes"] <= 8
    protocol = record["protocol"]
    assert (
        protocol["n_fake"] == 2500 and protocol["k_pr"] == 3 and protocol["k_dc"] == 5
    )
    assert protocol["reference"]["split"] == "test"
    assert protocol["versions"]["torch"] == torch.__version__
    assert protocol["recipe_hash"] == record["recipe_hash"]
    [stored] = list((tmp_path / "leaderboard" / "results").glob("*.json"))
    assert json.loads(stored.read_text())["recipe_hash"] == record["recipe_hash"]

    # A second evaluation finds the finished run and does not train again.
    run_dir = Path(record["seeds"][0]["run_dir"])
    stamp = (run_dir / "final.pt").stat().st_mtime_ns
    status, out, _ = cli("eval", recipe)
    assert status == 0 and "using the finished run" in out
    assert (run_dir / "final.pt").stat().st_mtime_ns == stamp
    assert len(list((tmp_path / "leaderboard" / "results").glob("*.json"))) == 2


def test_eval_with_seeds_reports_mean_and_std(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    recipe = write(tmp_path / "ring.yaml", TINY_RING + "eval: {n_fake: 500}\n")
    status, out, _ = cli("eval", recipe, "--seeds", 2, "--json")
    assert status == 0
    record = json.loads(out[out.index("{") :])
    assert record["n_seeds"] == 2 and [s["seed"] for s in record["seeds"]] == [0, 1]
    assert record["seeds"][0]["run_dir"] != record["seeds"][1]["run_dir"]
    values = [s["final"]["high_quality"] for s in record["seeds"]]
    assert record["high_quality"] == pytest.approx(np.mean(values))
    assert record["std"]["high_quality"] == pytest.approx(np.std(values, ddof=1))


def test_eval_of_invalid_recipe_writes_nothing(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    recipe = write(tmp_path / "bad.yaml", TINY_RING + "eval: {metrics: [fid, modez]}\n")
    before = listing(tmp_path)
    status, _, err = cli("eval", recipe)
    assert status == 2 and "eval.metrics[1]" in err and "did you mean 'modes'" in err
    assert listing(tmp_path) == before


def test_metrics_command_on_ring_points(tmp_path, cli):
    collapsed = np.tile(np.array([[1.0, 0.0]], dtype=np.float32), (2500, 1))
    np.save(tmp_path / "fake.npy", collapsed)
    status, out, _ = cli("metrics", "ring", tmp_path / "fake.npy", "--json")
    assert status == 0
    result = json.loads(out)
    assert result["modes"] == 1 and result["high_quality"] == pytest.approx(100.0)
    status, out, _ = cli("metrics", "ring", "ring:train", "--json")
    assert json.loads(out)["modes"] == 8


def test_metrics_command_on_feature_arrays(tmp_path, cli):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "a.npy", rng.normal(size=(1200, 8)).astype(np.float32))
    np.save(tmp_path / "b.npy", rng.normal(size=(1200, 8)).astype(np.float32) + 5)
    status, out, _ = cli("metrics", tmp_path / "a.npy", tmp_path / "b.npy", "--json")
    result = json.loads(out)
    assert status == 0
    assert result["precision"] == 0.0 and result["fid"] > 100
    assert result["protocol"]["feature_extractor"] is None
    status, out, _ = cli("metrics", tmp_path / "a.npy", tmp_path / "a.npy", "--json")
    same = json.loads(out)
    assert same["fid"] == pytest.approx(0, abs=1e-6) and same["recall"] == 1.0


def test_metrics_command_rejects_mismatched_sides(tmp_path, cli):
    np.save(tmp_path / "points.npy", np.zeros((10, 2), dtype=np.float32))
    status, _, err = cli("metrics", "fashion-mnist", tmp_path / "points.npy")
    assert status == 2 and "the sides differ" in err
    status, _, err = cli("metrics", "no-such-thing", tmp_path / "points.npy")
    assert status == 2 and "not a run directory" in err


def test_metrics_command_rejects_bad_arrays_in_one_line(tmp_path, cli):
    rng = np.random.default_rng(0)
    good = tmp_path / "good.npy"
    np.save(good, rng.normal(size=(50, 8)).astype(np.float32))
    np.save(tmp_path / "wide.npy", rng.normal(size=(50, 16)).astype(np.float32))
    np.savez(tmp_path / "two.npz", a=np.zeros((50, 8)), b=np.ones((50, 8)))
    np.savez(tmp_path / "one.npz", rng.normal(size=(50, 8)).astype(np.float32))
    values = rng.normal(size=(50, 8)).astype(np.float32)
    values[7, 3] = np.nan
    np.save(tmp_path / "nan.npy", values)
    np.save(tmp_path / "empty.npy", np.zeros((0, 8), dtype=np.float32))
    np.save(tmp_path / "tiny.npy", values[:3])
    (tmp_path / "garbage.npy").write_bytes(b"not an array at all")
    (tmp_path / "cut.npz").write_bytes((tmp_path / "one.npz").read_bytes()[:300])
    expected = {
        "wide.npy": "good.npy holds 8-D feature vectors, "
        f"{tmp_path / 'wide.npy'} holds 16-D feature vectors",
        "two.npz": "expected one array in the .npz file, found 2 (a, b)",
        "nan.npy": "1 of 50 samples hold NaN or infinite values (first at index 7)",
        "empty.npy": "the array holds no samples",
        "tiny.npy": "prdc of",
        "garbage.npy": "not a .npy file",
        "cut.npz": "cannot read the array",
    }
    for name, message in expected.items():
        status, out, err = cli("metrics", good, tmp_path / name)
        assert status == 2, (name, err)
        assert message in err and len(err.strip().splitlines()) == 1, (name, err)
        assert "Traceback" not in err and out == ""
    status, out, _ = cli("metrics", good, tmp_path / "one.npz", "--json")
    assert status == 0 and json.loads(out)["protocol"]["n_fake"] == 50


def test_nan_samples_are_an_error_naming_the_run(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    recipe = write(tmp_path / "ring.yaml", TINY_RING + "eval: {n_fake: 500}\n")
    assert cli("train", recipe, "--run-dir", tmp_path / "run")[0] == 0
    # Training refuses to save a diverged network, so write one the way it saves.
    final = tmp_path / "run" / "final.pt"
    state = load_checkpoint(final)  # verified, digest removed
    for values in state["generator_ema"].values():
        values.fill_(float("nan"))
    save_atomic(state, final)
    status, _, err = cli("eval", recipe, "--run-dir", tmp_path / "run")
    assert status == 1
    assert str(tmp_path / "run") in err and "NaN" in err
    [stored] = list((tmp_path / "leaderboard" / "results").glob("*.json"))
    record = json.loads(stored.read_text())
    assert record["status"] == "failed" and "fid" not in record


@needs_fashion
def test_real_features_are_cached_by_content(tmp_path):
    registry = build_registry()
    dataset = FashionMnist.create(limit=300)
    scorer = Scorer.create(registry, dataset.data_shape(), dataset_name="fashion-mnist")
    first, reference = scorer.real_set(dataset, "test")
    assert reference["cache"] == "miss"
    again, reference = scorer.real_set(dataset, "test")
    assert reference["cache"] == "hit"
    assert torch.equal(first.features, again.features)

    # Another subset, another split or other weights miss the cache.
    assert scorer.real_set(dataset, "test", n_real=100)[1]["cache"] == "miss"
    assert scorer.real_set(dataset, "train")[1]["cache"] == "miss"
    weights = (
        Path(scorer.extractor.weights_path)
        if hasattr(scorer.extractor, "weights_path")
        else None
    )
    if weights is not None:
        changed = tmp_path / "changed.pt"
        state = torch.load(weights, weights_only=True)
        first_key = next(iter(state))
        state[first_key] = state[first_key] + 1
        torch.save(state, changed)
        other = Scorer.create(
            registry, dataset.data_shape(), dataset_name="fashion-mnist"
        )
        other.extractor = registry.get(
            "feature-extractor", "fashion-classifier"
        ).cls.create(weights=str(changed))
        assert other.real_set(dataset, "test")[1]["cache"] == "miss"

    # A damaged cache file is recomputed, not trusted.
    for path in (tmp_path / "cache" / "features").glob("*.pt"):
        path.write_bytes(b"not a tensor file")
    recomputed, reference = scorer.real_set(dataset, "test")
    assert reference["cache"] == "miss"
    assert torch.equal(recomputed.features, first.features)


@needs_fashion
def test_reference_knn_radii_are_cached_beside_its_features(tmp_path):
    registry = build_registry()
    dataset = FashionMnist.create(limit=300)
    scorer = Scorer.create(registry, dataset.data_shape(), dataset_name="fashion-mnist")
    prdc = registry.get("metric", "prdc").cls.create()
    real, _ = scorer.real_set(dataset, "test")
    generator = torch.Generator().manual_seed(0)
    noise = torch.rand(200, 1, 28, 28, generator=generator)
    fake = scorer.sample_set("fake", noise)
    cache = tmp_path / "cache" / "features"
    features_only = set(cache.glob("*.pt"))

    first = prdc.compute(real, fake)
    radii_files = set(cache.glob("*.pt")) - features_only
    assert len(radii_files) == 1
    # Read from the cache, the radii give the same scores as computing afresh.
    again = prdc.compute(scorer.real_set(dataset, "test")[0], fake)
    real.cache_key = None
    fresh = prdc.compute(real, fake)
    assert first == again == fresh
    assert set(cache.glob("*.pt")) - features_only == radii_files

    # Other neighbour counts are another statistic.
    other = registry.get("metric", "prdc").cls.create(k_dc=4)
    other.compute(scorer.real_set(dataset, "test")[0], fake)
    assert len(set(cache.glob("*.pt")) - features_only) == 2


@needs_fashion
def test_eval_of_a_tiny_fashion_mnist_recipe(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    recipe = REPO / "recipes" / "fashion-mnist" / "gan.yaml"
    overrides = [
        "data.limit=512",
        "train.kimg=0.256",
        "train.tick_kimg=0.128",
        "train.snapshot_kimg=0.256",
        "eval.n_fake=600",
        "eval.n_real=500",
        "eval.eval_kimg=0.128",
        "eval.during_n=200",
    ]
    status, out, err = cli("eval", recipe, *overrides, "--json")
    assert status == 0, err
    record = json.loads(out[out.index("{") :])
    for key in (
        "fid",
        "kid",
        "kid_std",
        "is",
        "precision",
        "recall",
        "density",
        "coverage",
        "classes_covered",
        "class_kl",
    ):
        assert key in record, key
    protocol = record["protocol"]
    assert protocol["feature_extractor"]["name"] == "fashion-classifier"
    assert len(protocol["feature_extractor"]["weights_hash"]) >= 8
    assert protocol["kid_subset_size"] == 500 and protocol["kid_subset_size_reduced"]
    assert protocol["n_real"] == 500 and protocol["n_fake"] == 600
    assert "best" in record and record["best"]["kimg"] <= record["kimg"]
    run_dir = Path(record["seeds"][0]["run_dir"])
    evals = [
        json.loads(line)
        for line in (run_dir / "stats.jsonl").open()
        if '"eval"' in line
    ]
    assert [round(e["kimg"], 3) for e in evals] == [0.128, 0.256]
    assert (run_dir / "best.pt").is_file()


def test_a_best_checkpoint_equal_to_the_final_one_is_scored_once(
    tmp_path, monkeypatch, cli
):
    monkeypatch.chdir(tmp_path)
    # One metric during training, at the end: best.pt holds the final weights.
    recipe = write(
        tmp_path / "ring.yaml", TINY_RING + "eval: {n_fake: 500, eval_kimg: 2}\n"
    )
    status, out, _ = cli("eval", recipe, "--json")
    assert status == 0
    record = json.loads(out)
    checkpoints = record["seeds"][0]["checkpoints"]
    assert checkpoints["best"]["same_weights_as"] == "final"
    assert checkpoints["best"]["path"].endswith("best.pt")
    assert record["best"]["modes"] == record["modes"]
    assert record["best"]["reverse_kl"] == record["reverse_kl"]
