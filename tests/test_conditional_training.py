"""A class-conditional recipe, trained for real: asking for a class gets that class."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ganzoo._registry import build_registry

from .conftest import REPO, needs_fashion

RECIPE = REPO / "recipes" / "fashion-mnist" / "cgan-mlp.yaml"
CHANCE = 0.1  # ten classes


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The MLP cGAN recipe at its own budget (120 kimg, about two CPU minutes)."""
    from ganzoo.cli import main

    run_dir = tmp_path_factory.mktemp("cgan") / "run"
    status = main(
        ["train", str(RECIPE), "eval.eval_kimg=null", "--run-dir", str(run_dir)]
    )
    assert status == 0
    return run_dir


@pytest.fixture(scope="module")
def classify():
    extractor = build_registry().get("feature-extractor", "fashion-classifier")
    model = extractor.cls.create()
    return lambda images: model.extract(torch.from_numpy(images))["logits"].argmax(1)


@needs_fashion
@pytest.mark.parametrize("k", [1, 7])  # trousers, sneakers
def test_samples_of_a_requested_class_are_classified_as_it_well_above_chance(
    trained, classify, cli, tmp_path, k
):
    out = tmp_path / f"class{k}.npy"
    status, _, err = cli(
        "sample", trained, "--class", str(k), "--n", "200", "--out", out
    )
    assert status == 0, err
    predicted = classify(np.load(out))
    assert float((predicted == k).float().mean()) > 3 * CHANCE


@needs_fashion
def test_the_evaluation_of_a_conditional_run_has_intra_class_fid_and_accuracy(
    trained, cli, tmp_path
):
    status, out, err = cli(
        "eval", RECIPE, "eval.eval_kimg=null", "eval.n_fake=2000", "--run-dir",
        trained, "--results", tmp_path, "--json",
    )  # fmt: skip
    assert status == 0, err
    import json

    record = json.loads(out)
    assert record["class_accuracy"] > 2 * CHANCE
    per_class = [record[f"intra_fid_{k}"] for k in range(10)]
    assert record["intra_fid"] == pytest.approx(sum(per_class) / 10)
    assert "conditional" in record["protocol"]["metrics"]
