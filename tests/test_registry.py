"""Plugin discovery through entry points, GANZOO_PLUGINS and recipes; bad plugins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ganzoo import GanzooError
from ganzoo._registry import build_registry
from ganzoo.recipes import load_recipe

from .conftest import TINY_RING, loss_plugin, write


def test_builtins_register_through_the_entry_point_group():
    registry = build_registry()
    entry = registry.get("loss", "bce")
    assert entry.origin.startswith("entry point losses = ganzoo_plugins.losses")
    for kind, name in [
        ("architecture", "dcgan-seed"),
        ("dataset", "fashion-mnist"),
        ("regularizer", "gradient-penalty"),
        ("constraint", "weight-clip"),
        ("tracker", "wandb"),
    ]:
        assert registry.get(kind, name).kind == kind
    assert registry.problems == []


def test_installed_third_party_package_is_found_by_entry_point(tmp_path, monkeypatch):
    loss_plugin(tmp_path / "thirdparty_gap.py")
    dist = tmp_path / "thirdparty_gap-1.0.dist-info"
    write(
        dist / "METADATA", "Metadata-Version: 2.1\nName: thirdparty-gap\nVersion: 1.0\n"
    )
    write(dist / "entry_points.txt", "[ganzoo]\ngap = thirdparty_gap\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = build_registry().get("loss", "gap")
    assert entry.origin == "entry point gap = thirdparty_gap (thirdparty-gap 1.0)"


def test_environment_variable_loads_a_plugin_file(tmp_path, monkeypatch):
    path = loss_plugin(tmp_path / "envplugin.py", name="env-gap", cls="EnvGap")
    monkeypatch.setenv("GANZOO_PLUGINS", str(path))
    entry = build_registry().get("loss", "env-gap")
    assert str(path) in entry.origin and "GANZOO_PLUGINS" in entry.origin


def test_recipe_plugins_list_loads_an_uninstalled_file(tmp_path):
    loss_plugin(tmp_path / "mine" / "gap_loss.py", name="my-gap", cls="MyGap")
    recipe_path = write(
        tmp_path / "r.yaml",
        TINY_RING.replace(
            "loss: {name: bce}",
            "plugins: [mine/gap_loss.py]\nloss: {name: my-gap, scale: 2}",
        ),
    )
    recipe = load_recipe(recipe_path)
    assert recipe.config["loss"] == {"name": "my-gap", "scale": 2.0}
    assert recipe.plugin("loss", recipe.config["loss"]).scale == 2.0


def test_unknown_loss_suggests_close_match_and_lists_all():
    with pytest.raises(GanzooError) as caught:
        build_registry().get("loss", "hinje")
    message = str(caught.value)
    assert "unknown loss 'hinje'" in message
    assert "did you mean 'hinge'" in message
    assert "bce, hinge, least-squares" in message and "wasserstein" in message


def test_duplicate_name_error_names_both_origins(tmp_path, monkeypatch):
    first = loss_plugin(tmp_path / "one.py", name="twin", cls="One")
    second = loss_plugin(tmp_path / "two.py", name="twin", cls="Two")
    monkeypatch.setenv("GANZOO_PLUGINS", f"{first},{second}")
    registry = build_registry()
    with pytest.raises(GanzooError) as caught:
        registry.get("loss", "twin")
    assert str(first) in str(caught.value) and str(second) in str(caught.value)
    assert registry.get("loss", "bce").name == "bce"


def test_broken_module_is_reported_and_others_still_work(tmp_path, monkeypatch, cli):
    broken = write(tmp_path / "broken.py", "import no_such_module_here\n")
    good = loss_plugin(tmp_path / "good.py", name="still-fine", cls="Fine")
    monkeypatch.setenv("GANZOO_PLUGINS", f"{broken},{good}")
    status, out, _ = cli("plugins", "--json")
    assert status == 0
    listing = json.loads(out)
    assert {"still-fine", "bce"} <= {e["name"] for e in listing["loss"]}
    [problem] = listing["broken"]
    assert str(broken) in problem["origin"]
    assert "ModuleNotFoundError" in problem["error"]
    status, out, _ = cli("plugins")
    assert "broken:" in out and str(broken) in out


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('class Bad(Loss):\n    """Doc."""\n    name = "Bad_Name"\n', "kebab-case"),
        ('class Bad(Loss):\n    name = "no-doc"\n', "no docstring"),
        ('class Bad:\n    """Doc."""\n    name = "not-a-loss"\n', "not a subclass"),
        (
            'class Bad(Loss):\n    """Doc."""\n    name = "bad-opts"\n'
            '    options = ["x"]\n',
            "tuple of ganzoo.Option",
        ),
    ],
)
def test_malformed_registration_is_reported_with_origin(
    tmp_path, monkeypatch, body, expected
):
    path = write(
        tmp_path / "malformed.py",
        "from ganzoo import Loss, hookimpl\n"
        + body
        + "\n@hookimpl\ndef ganzoo_losses():\n    return [Bad]\n",
    )
    monkeypatch.setenv("GANZOO_PLUGINS", str(path))
    registry = build_registry()
    [problem] = registry.problems
    assert str(path) in problem.origin
    assert expected in problem.message
    assert "bce" in registry.names("loss")


def test_misspelled_hook_is_reported(tmp_path, monkeypatch):
    path = write(
        tmp_path / "typo.py",
        "from ganzoo import hookimpl\n\n@hookimpl\ndef ganzoo_loss():\n    return []\n",
    )
    monkeypatch.setenv("GANZOO_PLUGINS", str(path))
    [problem] = build_registry().problems
    assert "invalid hook implementation" in problem.message
    assert "ganzoo_loss" in problem.message


def test_plugins_json_lists_every_kind_with_name_and_origin(cli):
    status, out, _ = cli("plugins", "--json")
    listing = json.loads(out)
    assert status == 0
    for kind in (
        "architecture",
        "loss",
        "regularizer",
        "constraint",
        "dataset",
        "feature-extractor",
        "metric",
        "tracker",
    ):
        assert kind in listing
        for entry in listing[kind]:
            assert entry["name"] and entry["origin"]
    names = {e["name"] for e in listing["architecture"]}
    assert {"dcgan-seed", "mlp", "dcgan", "dcgan-critic", "timm"} <= names


def test_plugins_kind_filter(cli):
    status, out, _ = cli("plugins", "--kind", "loss", "--json")
    assert status == 0
    assert list(json.loads(out)) == ["loss", "broken"]
    status, _, err = cli("plugins", "--kind", "losses")
    assert status == 2 and "did you mean 'loss'" in err


def test_plugin_file_that_fails_named_in_recipe_is_a_user_error(tmp_path):
    write(tmp_path / "bad.py", "raise RuntimeError('boom')\n")
    recipe_path = write(tmp_path / "r.yaml", "plugins: [bad.py]\n" + TINY_RING)
    with pytest.raises(GanzooError) as caught:
        load_recipe(recipe_path)
    assert "RuntimeError: boom" in str(caught.value)
    assert caught.value.line == 1 and caught.value.key == "plugins[0]"


def test_same_file_twice_registers_once(tmp_path, monkeypatch):
    path = loss_plugin(tmp_path / "once.py", name="once", cls="Once")
    monkeypatch.setenv("GANZOO_PLUGINS", f"{path},{Path(path)}")
    registry = build_registry()
    registry.load(str(path))
    assert len(registry.entries["loss"]["once"]) == 1
