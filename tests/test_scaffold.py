"""``ganzoo new``: bad input writes nothing, and every kind it scaffolds installs,
is found through its entry point, trains its recipe and passes its own tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ganzoo._registry import build_registry
from ganzoo._scaffold import SCAFFOLDS, scaffold
from ganzoo.recipes import load_recipe
from ganzoo.testing import check_plugin

from .conftest import listing, write
from .test_external_plugin import ThrowawayEnv

KINDS = list(SCAFFOLDS)


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        (["new", "archtecture", "x"], "did you mean 'architecture'?"),
        (["new", "tracker", "x"], "tracker plugins are not scaffolded"),
        (["new", "loss", "../escape"], "invalid plugin name '../escape'"),
        (["new", "loss", "a/b"], "invalid plugin name 'a/b'"),
        (["new", "loss", "/tmp/x"], "invalid plugin name '/tmp/x'"),
        (["new", "loss", "Focal"], "invalid plugin name 'Focal'"),
        (["new", "loss", "focal--x"], "invalid plugin name 'focal--x'"),
        (["new", "loss", "2-focal"], "invalid plugin name '2-focal'"),
        (["new", "loss", "x" * 33], "at most 32 characters"),
        (["new", "loss", "focal", "--dir", "full"], "full is not empty"),
        (["new", "loss", "focal", "--dir", "full/note.txt"], "is not a folder"),
        (["new", "loss"], "the following arguments are required: name"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    tmp_path, monkeypatch, cli, arguments, complaint
):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "full" / "note.txt", "already here\n")
    before = listing(tmp_path)
    status, _, err = cli(*arguments)
    assert status == 2
    assert complaint in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert listing(tmp_path) == before


def test_new_writes_a_package_into_an_empty_folder(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    status, out, err = cli("new", "dataset", "ring-noise", "--dir", "empty")
    assert status == 0, err
    assert sorted(
        str(p.relative_to(tmp_path / "empty"))
        for p in (tmp_path / "empty").rglob("*.*")
    ) == [
        "README.md",
        "ganzoo_ring_noise/__init__.py",
        "pyproject.toml",
        "recipes/ring-noise.yaml",
        "tests/test_ring_noise.py",
    ]
    assert "pip install -e empty" in out
    pyproject = (tmp_path / "empty" / "pyproject.toml").read_text()
    assert (
        '[project.entry-points.ganzoo]\nring-noise = "ganzoo_ring_noise"' in pyproject
    )


def test_class_names_never_shadow_what_the_module_imports(tmp_path):
    [module] = [
        p for p in scaffold("loss", "loss", tmp_path / "p") if p.name == "__init__.py"
    ]
    assert "class LossPlugin(Loss):" in module.read_text()


@pytest.mark.parametrize("kind", KINDS)
def test_each_scaffolded_plugin_registers_conforms_and_validates_its_recipe(
    kind, tmp_path, monkeypatch
):
    name = f"my-{kind}"
    written = scaffold(kind, name, tmp_path / name)
    module = next(p for p in written if p.name == "__init__.py")
    recipe = next(p for p in written if p.suffix == ".yaml")
    for path in written:
        if path.suffix == ".py":
            compile(path.read_text(), str(path), "exec")

    monkeypatch.setenv("GANZOO_PLUGINS", str(module))
    registry = build_registry()
    assert not registry.problems
    entry = registry.get(kind, name)
    report = check_plugin(entry)
    assert report.ok and report.unavailable is None, report.line()
    config = load_recipe(recipe, registry=registry).config
    assert name in json.dumps(config)


def test_scaffolded_code_passes_ruff(tmp_path):
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.is_file():
        pytest.skip(f"ruff is not installed beside {sys.executable}")
    for kind in KINDS:
        scaffold(kind, f"{kind}-{'x' * (31 - len(kind))}", tmp_path / kind)
    for kind in KINDS:
        for command in (["check"], ["format", "--check"]):
            done = subprocess.run(
                [ruff, *command, "--no-cache", "."],
                cwd=tmp_path / kind,
                capture_output=True,
                text=True,
            )
            assert done.returncode == 0, done.stdout + done.stderr


def test_every_kind_installs_trains_and_passes_its_own_tests(tmp_path):
    env = ThrowawayEnv.create(tmp_path / "env", tmp_path)
    folders = [tmp_path / f"ganzoo-my-{kind}" for kind in KINDS]
    for kind, folder in zip(KINDS, folders, strict=True):
        scaffold(kind, f"my-{kind}", folder)

    editable = [arg for folder in folders for arg in ("-e", str(folder))]
    env.run(
        ["pip", "install", "--no-deps", "--no-build-isolation", *editable], cwd=tmp_path
    )

    # Each package's own tests: the kit, discovery by the registry and by `ganzoo
    # plugins`, and an eval that trains its recipe.
    python = str(env.root / "bin" / "python")
    tests = [str(folder / "tests") for folder in folders]
    output = env.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], cwd=tmp_path
    )
    assert f"{4 * len(KINDS)} passed" in output, output
