"""Valid recipes: extends merging, overrides, defaults, shorthands and the hash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ganzoo.recipes import Recipe, load_recipe
from ganzoo.recipes._sections import EVAL, OPTIMIZER, TRAIN

from .conftest import REPO, TINY_RING, write

FASHION = """\
data: {name: fashion-mnist, split: train}
model:
  generator: {name: dcgan-seed, latent_dim: 64}
  discriminator: {name: dcgan-seed}
loss: {name: bce, label_noise: 0.05, generator: minimax}
optim:
  generator: {lr: 4.0e-4, betas: [0.9, 0.999]}
train: {batch_size: 64, kimg: 1}
"""


def load(tmp_path: Path, text: str, *overrides: str, name: str = "r.yaml") -> Recipe:
    return load_recipe(write(tmp_path / name, text), overrides)


def child_of(tmp_path: Path, base: str, child: str) -> Recipe:
    write(tmp_path / "base.yaml", base)
    return load(tmp_path, "extends: base.yaml\n" + child, name="child.yaml")


def value_at(config: dict[str, Any], dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        value = value[int(part)] if part.isdigit() else value[part]
    return value


# extends.


def test_child_value_overrides_the_base_and_the_rest_is_kept(tmp_path):
    recipe = child_of(tmp_path, TINY_RING, "train: {kimg: 5}\n")
    train = recipe.config["train"]
    assert train["kimg"] == 5.0
    assert (train["batch_size"], train["tick_kimg"], train["ema"]) == (100, 1.0, 0.9)


def test_nested_mappings_merge_key_by_key(tmp_path):
    recipe = child_of(
        tmp_path,
        FASHION,
        "optim:\n  generator: {lr: 1.0e-4}\nmodel:\n  generator: {latent_dim: 32}\n",
    )
    assert recipe.config["optim"]["generator"]["lr"] == 1.0e-4
    assert recipe.config["optim"]["generator"]["betas"] == [0.9, 0.999]
    assert recipe.config["model"]["generator"] == {
        "name": "dcgan-seed",
        "latent_dim": 32,
    }


def test_same_plugin_name_in_the_child_merges_its_options(tmp_path):
    recipe = child_of(tmp_path, FASHION, "loss: {name: bce, label_smoothing: 0.1}\n")
    assert recipe.config["loss"] == {
        "name": "bce",
        "generator": "minimax",
        "label_noise": 0.05,
        "label_smoothing": 0.1,
    }


def test_plugin_section_with_a_new_name_replaces_the_base_section(tmp_path):
    recipe = child_of(
        tmp_path,
        FASHION,
        "loss: {name: hinge}\nmodel:\n  generator: {name: dcgan}\n",
    )
    assert recipe.config["loss"] == {"name": "hinge"}

    # dcgan also has latent_dim, but the base's 64 was dcgan-seed's setting.
    assert recipe.config["model"]["generator"] == {
        "name": "dcgan",
        "latent_dim": 100,
        "width": 64,
    }


def test_lists_in_the_child_replace_the_base_list(tmp_path):
    base = TINY_RING + "regularizers: [{name: r1, weight: 1.0}, {name: r1}]\n"
    recipe = child_of(tmp_path, base, "regularizers: [gradient-penalty]\n")
    assert recipe.config["regularizers"] == [
        {"name": "gradient-penalty", "weight": 10.0, "target": 1.0}
    ]


def test_extends_chains_resolve_relative_to_each_file(tmp_path):
    write(tmp_path / "bases" / "grand.yaml", TINY_RING)
    write(tmp_path / "bases" / "parent.yaml", "extends: grand.yaml\nloss: hinge\n")
    recipe = load(tmp_path, "extends: bases/parent.yaml\ntrain: {seed: 3}\n")
    assert recipe.config["loss"] == {"name": "hinge"}
    assert recipe.config["train"]["seed"] == 3
    assert recipe.config["data"] == {"name": "ring", "n": 2000, "seed": 0}


def test_shipped_ring_recipe_takes_the_base_and_adds_its_loss():
    recipe = load_recipe(REPO / "recipes" / "ring" / "gan.yaml")
    assert recipe.config["data"]["n"] == 100_000
    assert recipe.config["loss"]["generator"] == "non-saturating"
    assert recipe.name == "ring-gan"


# Overrides.


@pytest.mark.parametrize(
    ("override", "key", "expected"),
    [
        ("train.batch_size=50", "train.batch_size", 50),
        ("train.kimg=0.5", "train.kimg", 0.5),
        ("train.kimg=3", "train.kimg", 3.0),
        ("data.download=false", "data.download", False),
        ("data.download=yes", "data.download", True),
        ("train.checkpoint_kimg=null", "train.checkpoint_kimg", None),
        ("train.checkpoint_kimg=~", "train.checkpoint_kimg", None),
        ("optim.generator.lr=2e-4", "optim.generator.lr", 2.0e-4),
        ("optim.generator.lr=1.5E+3", "optim.generator.lr", 1500.0),
        ("optim.generator.betas=[0.0, 0.99]", "optim.generator.betas", [0.0, 0.99]),
        ("optim.generator.betas.0=0.25", "optim.generator.betas.0", 0.25),
        ("name='007'", "name", "007"),
        ("data.classes=[1, 3]", "data.classes", [1, 3]),
    ],
)
def test_override_values_are_parsed_as_yaml(tmp_path, override, key, expected):
    value = value_at(load(tmp_path, FASHION, override).config, key)
    assert value == expected
    assert type(value) is type(expected)


def test_override_reaches_into_a_list_item_by_index(tmp_path):
    text = TINY_RING + "regularizers: [{name: r1}, {name: gradient-penalty}]\n"
    recipe = load(tmp_path, text, "regularizers.1.weight=5")
    assert recipe.config["regularizers"][0]["weight"] == 10.0
    assert recipe.config["regularizers"][1]["weight"] == 5.0


def test_override_into_a_shorthand_name_expands_it(tmp_path):
    text = TINY_RING.replace("loss: {name: bce}", "loss: bce")
    text += "regularizers: [r1]\n"
    recipe = load(tmp_path, text, "loss.label_noise=0.1", "regularizers.0.weight=2")
    assert recipe.config["loss"]["label_noise"] == 0.1
    assert recipe.config["regularizers"] == [{"name": "r1", "weight": 2.0}]


def test_override_of_a_plugin_name_starts_its_section_afresh(tmp_path):
    other = load(tmp_path, FASHION, "loss.name=hinge").config["loss"]
    same = load(tmp_path, FASHION, "loss.name=bce", "loss.label_smoothing=0.2")
    assert other == {"name": "hinge"}
    assert same.config["loss"]["label_noise"] == 0.05
    assert same.config["loss"]["label_smoothing"] == 0.2


def test_override_creates_a_missing_section(tmp_path):
    recipe = load(tmp_path, TINY_RING, "tracking.wandb.mode=disabled")
    assert recipe.config["tracking"] == {
        "wandb": {"mode": "disabled", "project": "ganzoo", "entity": None}
    }


def test_later_override_wins(tmp_path):
    recipe = load(tmp_path, TINY_RING, "train.kimg=3", "train.kimg=4")
    assert recipe.config["train"]["kimg"] == 4.0


# Defaults and shorthands.


def test_every_option_of_every_section_is_filled_in(tmp_path):
    text = TINY_RING + "regularizers: [r1]\nconstraints: [weight-clip]\n"
    recipe = load(tmp_path, text, "tracking.tensorboard=true")
    config, registry = recipe.config, recipe.registry

    def declared(kind: str, section: dict[str, Any], group: str = "options"):
        entry = registry.get(kind, section["name"])
        return {o.name: o.default for o in getattr(entry.cls, group)}

    def without_name(section: dict[str, Any]) -> set[str]:
        return set(section) - {"name"}

    assert without_name(config["data"]) == set(declared("dataset", config["data"]))
    assert without_name(config["loss"]) == set(declared("loss", config["loss"]))
    for role in ("generator", "discriminator"):
        section = config["model"][role]
        options = declared("architecture", section, f"{role}_options")
        assert without_name(section) == set(options)
        assert config["optim"][role] == {o.name: o.default for o in OPTIMIZER}
    for key, kind in (("regularizers", "regularizer"), ("constraints", "constraint")):
        (section,) = config[key]
        assert {k: v for k, v in section.items() if k != "name"} == declared(
            kind, section
        )
    assert set(config["train"]) == {o.name for o in TRAIN}
    assert config["train"]["n_critic"] == 1
    # The reference split defaults to the data set's test split where it has one.
    assert config["eval"] == {
        **{o.name: o.default for o in EVAL},
        "reference_split": "test",
    }
    assert config["tracking"] == {"tensorboard": {"flush_secs": 30}}


def test_loss_shorthand_is_the_name_alone(tmp_path):
    text = TINY_RING.replace("loss: {name: bce}", "loss: hinge")
    assert load(tmp_path, text).config["loss"] == {"name": "hinge"}


def test_model_shorthand_fills_every_architecture_default(tmp_path):
    text = "data: ring\nmodel: {generator: mlp, discriminator: mlp}\nloss: bce\n"
    config = load(tmp_path, text).config
    assert config["data"] == {"name": "ring", "n": 100_000, "seed": 0}
    assert config["model"]["generator"] == {
        "name": "mlp",
        "latent_dim": 2,
        "hidden": 128,
        "depth": 3,
        "activation": "relu",
    }
    assert config["loss"]["generator"] == "non-saturating"


def test_exponents_without_a_dot_are_numbers_in_files(tmp_path):
    text = TINY_RING + "optim:\n  generator: {lr: 2e-4, eps: 1e-7}\n"
    generator = load(tmp_path, text).config["optim"]["generator"]
    assert (generator["lr"], generator["eps"]) == (2.0e-4, 1.0e-7)


# The hash.

TINY_RING_REWRITTEN = """\
# The same recipe: other order, block style, quotes, explicit defaults.
train:
  ema: 0.90
  snapshot_kimg: 1
  tick_kimg: 1.0
  kimg: 2.0
  batch_size: 100
  seed: 0
loss: "bce"
model:
  discriminator:
    depth: 2
    hidden: 32
    name: mlp
  generator: {depth: 2, name: 'mlp', hidden: 32, latent_dim: 2}
data:
  n: 2000
  name: ring
"""


def test_hash_ignores_key_order_formatting_and_explicit_defaults(tmp_path):
    first = load(tmp_path, TINY_RING, name="a.yaml")
    second = load(tmp_path, TINY_RING_REWRITTEN, name="b.yaml")
    assert first.config == second.config
    assert first.hash == second.hash
    assert len(first.hash) == 16 and int(first.hash, 16) >= 0


def test_hash_is_the_same_through_extends_or_overrides(tmp_path):
    flat = load(tmp_path, TINY_RING.replace("kimg: 2", "kimg: 3"), name="flat.yaml")
    child = child_of(tmp_path, TINY_RING, "train: {kimg: 3}\n")
    override = load(tmp_path, TINY_RING, "train.kimg=3", name="over.yaml")
    assert flat.hash == child.hash == override.hash


@pytest.mark.parametrize(
    "override",
    [
        "data.n=3000",
        "data.seed=1",
        "model.generator.hidden=64",
        "model.generator.latent_dim=8",
        "model.discriminator.pack=2",
        "model.discriminator.activation=leaky-relu",
        "loss=hinge",
        "loss.label_noise=0.1",
        "regularizers=[r1]",
        "constraints=[weight-clip]",
        "optim.generator.lr=0.002",
        "optim.discriminator.betas=[0.0, 0.9]",
        "optim.discriminator.name=sgd",
        "train.seed=1",
        "train.kimg=3",
        "train.batch_size=50",
        "train.n_critic=2",
        "train.ema=0.5",
    ],
)
def test_hash_changes_with_any_training_value(tmp_path, override):
    base = load(tmp_path, TINY_RING)
    changed = load(tmp_path, TINY_RING, override)
    assert changed.config != base.config
    assert changed.hash != base.hash


@pytest.mark.parametrize(
    "override",
    [
        "eval.n_fake=100",
        "eval.seed=3",
        "eval.reference_split=train",
        "tracking.wandb.mode=disabled",
        "tracking.tensorboard=true",
        "name=another-name",
        "description=the same run, described",
        "train.skip_bad_steps=3",
    ],
)
def test_hash_ignores_what_does_not_change_the_weights(tmp_path, override):
    base = load(tmp_path, TINY_RING)
    changed = load(tmp_path, TINY_RING, override)
    assert changed.config != base.config
    assert changed.hash == base.hash


def test_committed_recipe_reference_is_up_to_date(monkeypatch):
    from ganzoo._reference import render_reference
    from ganzoo._registry import build_registry

    from .conftest import REPO

    monkeypatch.delenv("GANZOO_PLUGINS", raising=False)
    committed = (REPO / "docs" / "recipes.md").read_text()
    assert render_reference(build_registry()) == committed, (
        "docs/recipes.md is stale: run `ganzoo reference --out docs/recipes.md`"
    )
