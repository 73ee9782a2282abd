"""Invalid recipes and command lines: status 2, one line that says where, no files.

Every file in ``tests/recipes/invalid/`` (its ``parts/`` folder holds helpers) is a
recipe that ``ganzoo train`` must reject. Each run happens in an empty working
directory without ``--run-dir``, so a rejected recipe that still created the
default ``runs/`` folder, or any other file, fails its case.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import TINY_RING, listing, loss_plugin, write

CASES = Path(__file__).parent / "recipes" / "invalid"
RING = CASES / "parts" / "ring.yaml"
COMMAND_LINE = "command line"


@dataclass(frozen=True)
class Rejected:
    """Where the error must point, and the words that must appear in it.

    ``file`` is the file the message names, relative to the case folder, when it
    is not the case itself; ``line`` and ``key`` are None where there is none.
    """

    line: int | None
    key: str | None
    fragments: tuple[str, ...]
    file: str | None = None
    known_bug: str | None = None


EXPECTED: dict[str, Rejected] = {
    # Files that are not a YAML mapping.
    "yaml-syntax-error.yaml": Rejected(
        4, None, ("invalid YAML", "expected ',' or '}'")
    ),
    "tab-indentation.yaml": Rejected(
        2, None, ("invalid YAML", "'\\t'", "spaces, not tabs")
    ),
    "duplicate-key.yaml": Rejected(
        9, "train.batch_size", ("duplicate key 'batch_size' on lines 7 and 9",)
    ),
    "duplicate-key-same-line.yaml": Rejected(
        2, "train.kimg", ("duplicate key 'kimg' on line 2",)
    ),
    "empty.yaml": Rejected(
        None, None, ("recipe is empty", "expected a mapping of sections")
    ),
    "binary.yaml": Rejected(None, None, ("not a text file", "NUL bytes")),
    "not-utf8.yaml": Rejected(3, None, ("not valid UTF-8", "save the recipe as")),
    "python-tag.yaml": Rejected(
        3,
        "loss",
        ("unsupported YAML tag '!!python/object/apply:os.system'", "plain YAML"),
    ),
    "top-level-list.yaml": Rejected(
        1, None, ("expected a mapping of sections at the top, got a list",)
    ),
    "two-documents.yaml": Rejected(
        4, None, ("expected a single document", "found another document")
    ),
    "deep-nesting.yaml": Rejected(None, None, ("invalid YAML", "nested too deeply")),
    "alias-bomb.yaml": Rejected(
        6, "e", ("expands to more than 100,000 values", "aliases")
    ),
    "recursive-alias.yaml": Rejected(
        2, "description[0]", ("alias refers to", "cannot be recursive")
    ),
    # Sections.
    "unknown-section.yaml": Rejected(
        2,
        "trian",
        ("unknown section", "did you mean 'train'", "recipe sections are: extends,"),
    ),
    "missing-loss.yaml": Rejected(
        None, "loss", ("the recipe has no 'loss' section", "required")
    ),
    "model-not-a-mapping.yaml": Rejected(
        2, "model", ("expected a mapping with 'generator' and 'discriminator'",)
    ),
    "model-missing-discriminator.yaml": Rejected(
        2, "model", ("model needs a 'discriminator'",)
    ),
    "name-with-slash.yaml": Rejected(
        2, "name", ("expected a run name", "one folder name", "'../outside'")
    ),
    # Plugin names and options.
    "unknown-loss.yaml": Rejected(
        2,
        "loss.name",
        (
            "unknown loss 'hinje'",
            "did you mean 'hinge'",
            "known: ",
            "bce, hinge, least-squares",
        ),
    ),
    "loss-without-name.yaml": Rejected(
        3, "loss", ("expected a mapping with the loss's 'name'",)
    ),
    "unknown-loss-option.yaml": Rejected(
        4,
        "loss.label_nosie",
        (
            "unknown option for loss 'bce'",
            "did you mean 'label_noise'",
            "its options are: generator, label_noise, label_smoothing",
        ),
    ),
    "bad-choice.yaml": Rejected(
        4,
        "loss.generator",
        ("expected one of 'non-saturating', 'minimax'", "got 'saturating'"),
    ),
    "label-noise-out-of-range.yaml": Rejected(
        4, "loss.label_noise", ("expected a number in [0, 1]", "got 1.5")
    ),
    "regularizers-not-a-list.yaml": Rejected(
        2, "regularizers", ("expected a list of regularizers",)
    ),
    "regularizer-negative-weight.yaml": Rejected(
        5, "regularizers[1].weight", ("expected a number >= 0", "got -10")
    ),
    "unknown-tracker.yaml": Rejected(
        3,
        "tracking.wandbb",
        ("unknown tracker 'wandbb'", "did you mean 'wandb'", "known: tensorboard"),
    ),
    "tracker-not-a-mapping.yaml": Rejected(
        3, "tracking.wandb", ("expected a mapping of wandb options", "'offline'")
    ),
    # Types and ranges of the core sections.
    "batch-size-string.yaml": Rejected(
        3, "train.batch_size", ("expected an integer >= 1", "got '64'")
    ),
    "batch-size-bool.yaml": Rejected(
        3, "train.batch_size", ("expected an integer >= 1", "got True")
    ),
    "float-batch-size.yaml": Rejected(
        2, "train.batch_size", ("expected an integer >= 1", "got 64.0")
    ),
    "batch-size-zero.yaml": Rejected(
        3, "train.batch_size", ("expected an integer >= 1", "got 0")
    ),
    "kimg-negative.yaml": Rejected(
        3, "train.kimg", ("expected a number > 0", "got -5")
    ),
    "infinite-kimg.yaml": Rejected(
        2, "train.kimg", ("expected a number > 0", "got inf")
    ),
    "unknown-device.yaml": Rejected(
        2, "train.device", ("expected one of 'auto', 'cpu', 'cuda'", "got 'gpu'")
    ),
    "lr-zero.yaml": Rejected(
        4, "optim.generator.lr", ("expected a number > 0", "got 0")
    ),
    "lr-negative.yaml": Rejected(
        3, "optim.discriminator.lr", ("expected a number > 0", "got -0.001")
    ),
    "betas-three-values.yaml": Rejected(
        4,
        "optim.generator.betas",
        ("expected two numbers in [0, 1)", "got [0.5, 0.9, 0.999]"),
    ),
    "betas-not-numbers.yaml": Rejected(
        4,
        "optim.discriminator.betas",
        ("expected a list of numbers", "item 1 is not a number"),
    ),
    "unknown-optimizer.yaml": Rejected(
        3,
        "optim.generator.name",
        ("expected one of 'adam', 'adamw', 'rmsprop', 'sgd'", "got 'adamm'"),
    ),
    # extends and plugins.
    "extends-missing-file.yaml": Rejected(
        2, "extends", ("base recipe not found", "parts/no-such-base.yaml")
    ),
    "extends-a-folder.yaml": Rejected(1, "extends", ("base recipe is not a file",)),
    "extends-not-a-string.yaml": Rejected(
        1, "extends", ("expected a relative path to a base recipe",)
    ),
    "extends-cycle.yaml": Rejected(
        1,
        "extends",
        ("forms a cycle", "extends-cycle.yaml -> ", "cycle-back.yaml -> "),
        file="parts/cycle-back.yaml",
    ),
    "plugin-file-missing.yaml": Rejected(
        3, "plugins[0]", ("plugin file not found", "parts/no_such_plugin.py")
    ),
    "plugin-module-missing.yaml": Rejected(
        2,
        "plugins[0]",
        ("failed to import", "No module named 'ganzoo_no_such_plugin_module'"),
    ),
    "plugins-not-a-list.yaml": Rejected(
        2, "plugins", ("expected a list of plugin files or modules",)
    ),
    # Data the networks cannot serve.
    "seed-architecture-on-points.yaml": Rejected(
        3,
        "model.generator.name",
        ("'dcgan-seed' supports only 28x28 images", "the data are 2-D points"),
    ),
    "dcgan-wrong-resolution.yaml": Rejected(
        5,
        "model.generator.name",
        ("square images of 28, 32, 64 pixels", "1x48x48 images", "'resolution'"),
    ),
    "discriminator-only-as-generator.yaml": Rejected(
        3,
        "model.generator.name",
        ("architecture 'timm' provides no generator", "it provides: discriminator"),
    ),
    "image-folder-missing-path.yaml": Rejected(
        3, "data.path", ("no/such/folder does not exist", "expected a folder")
    ),
    "image-folder-without-path.yaml": Rejected(
        1, "data.path", ("required by dataset 'image-folder'", "expected a string")
    ),
    "unknown-split.yaml": Rejected(
        1, "data.split", ("expected one of 'train', 'test', 'all'", "'validation'")
    ),
    "pack-not-dividing-batch.yaml": Rejected(
        4, "model.discriminator", ("packs 3 samples", "a multiple of pack=3")
    ),
    "pix2pix-loss-on-unpaired-data.yaml": Rejected(
        3, "loss", ("'pix2pix' compares each translation", "needs paired data")
    ),
}

COMMAND_LINES: dict[str, tuple[list[str], Rejected]] = {
    "override-not-a-number": (
        [RING, "train.kimg=abc"],
        Rejected(None, "train.kimg", ("expected a number > 0", "got 'abc'")),
    ),
    "override-unknown-section": (
        [RING, "nosuch.key=1"],
        Rejected(None, "nosuch", ("unknown section", "recipe sections are:")),
    ),
    "override-without-equals": (
        [RING, "train.kimg"],
        Rejected(None, None, ("bad override 'train.kimg'", "expected KEY=VALUE")),
    ),
    "override-without-key": (
        [RING, "=5"],
        Rejected(None, None, ("bad override '=5'", "expected KEY=VALUE")),
    ),
    "override-empty-key-part": (
        [RING, "train..kimg=1"],
        Rejected(None, None, ("bad override 'train..kimg=1'",)),
    ),
    "override-index-into-missing-list": (
        [RING, "regularizers.0.weight=5"],
        Rejected(None, "regularizers[0]", ("regularizers is not set", "no item")),
    ),
    "override-index-past-the-end": (
        [RING, "regularizers=[r1]", "regularizers.2.weight=5"],
        Rejected(
            None,
            "regularizers[2]",
            ("no item 2 to override", "a list of 1 item, indexed 0 to 0"),
        ),
    ),
    "override-inside-a-number": (
        [RING, "train.kimg.x=1"],
        Rejected(None, "train.kimg", ("train.kimg is the value 2, not a mapping",)),
    ),
    "override-unknown-plugin": (
        [RING, "loss.name=hinje"],
        Rejected(None, "loss.name", ("unknown loss 'hinje'", "did you mean 'hinge'")),
    ),
    "override-out-of-range": (
        [RING, "model.generator.hidden=0"],
        Rejected(None, "model.generator.hidden", ("expected an integer >= 1", "got 0")),
    ),
    "override-extends": (
        [RING, "extends=other.yaml"],
        Rejected(None, "extends", ("cannot be overridden",)),
    ),
    "override-bad-yaml": (
        [RING, "train.kimg=[1"],
        Rejected(
            1,
            None,
            ("invalid YAML", "expected ',' or ']'"),
            file=f"{COMMAND_LINE} (train.kimg=[1)",
        ),
    ),
    "override-python-tag": (
        [RING, "loss=!!python/object/apply:os.system [touch pwned]"],
        Rejected(
            1,
            None,
            ("unsupported YAML tag '!!python/object/apply:os.system'",),
            file=f"{COMMAND_LINE} (loss=!!python/object/apply:os.system [touch pwned])",
        ),
    ),
    "missing-recipe-file": (
        ["no-such-recipe.yaml"],
        Rejected(None, None, ("recipe file not found",), file="no-such-recipe.yaml"),
    ),
    "recipe-is-a-folder": (
        ["."],
        Rejected(None, None, ("recipe path is not a file",), file="."),
    ),
}


def rejected_message(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str | Path
) -> str:
    """Run ``ganzoo train ARGS`` in an empty directory; check the common promises.

    Returns the single error line after the ``ganzoo: error:`` prefix.
    """
    monkeypatch.chdir(tmp_path)
    before = listing(tmp_path)
    status, out, err = cli("train", *args)

    assert "Traceback" not in out + err
    assert status == 2, err
    assert err.startswith("ganzoo: error: ")
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert listing(tmp_path) == before, "a rejected command wrote files"
    return err.removeprefix("ganzoo: error: ").rstrip("\n")


def check_place(message: str, file: str, expected: Rejected) -> None:
    """The message starts with FILE[:LINE]: [KEY: ] and has every fragment."""
    where = file + (f":{expected.line}" if expected.line is not None else "")
    key = f"{expected.key}: " if expected.key else ""
    assert message.startswith(f"{where}: {key}"), message
    for fragment in expected.fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def case_params() -> list:
    params = []
    for path in sorted(CASES.glob("*.yaml")):
        expected = EXPECTED.get(path.name)
        marks = []
        if expected is not None and expected.known_bug:
            marks = [pytest.mark.xfail(reason=expected.known_bug, strict=True)]
        params.append(pytest.param(path.name, id=path.stem, marks=marks))
    return params


def test_case_folder_and_expectations_name_the_same_files():
    files = {path.name for path in CASES.glob("*.yaml")}
    assert files == set(EXPECTED)
    assert len(files) >= 25


@pytest.mark.parametrize("name", case_params())
def test_invalid_recipe_is_rejected_with_file_line_and_key(
    name, cli, tmp_path, monkeypatch
):
    expected = EXPECTED[name]
    message = rejected_message(cli, tmp_path, monkeypatch, CASES / name)
    file = CASES / (expected.file or name)
    check_place(message, str(file), expected)


@pytest.mark.parametrize(
    ("args", "expected"),
    [pytest.param(*case, id=name) for name, case in COMMAND_LINES.items()],
)
def test_invalid_command_line_is_rejected_and_names_the_place(
    args, expected, cli, tmp_path, monkeypatch
):
    message = rejected_message(cli, tmp_path, monkeypatch, *args)
    check_place(message, expected.file or COMMAND_LINE, expected)


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        pytest.param([], ("the following arguments are required: recipe",), id="none"),
        pytest.param(
            [RING, "--no-such-flag"],
            ("unrecognized arguments: --no-such-flag",),
            id="unknown-flag",
        ),
        pytest.param(
            [RING, "--resume"],
            ("nothing to resume", "runs/invalid-parts-ring-"),
            id="resume-without-run",
        ),
        pytest.param(
            [RING, "--progress", "fancy"],
            ("argument --progress: invalid choice: 'fancy'",),
            id="bad-progress",
        ),
    ],
)
def test_command_line_usage_errors_are_one_line(
    args, fragments, cli, tmp_path, monkeypatch
):
    message = rejected_message(cli, tmp_path, monkeypatch, *args)
    for fragment in fragments:
        assert fragment in message


def test_python_tag_runs_nothing(cli, tmp_path, monkeypatch):
    rejected_message(cli, tmp_path, monkeypatch, CASES / "python-tag.yaml")
    assert not (tmp_path / "pwned").exists()


def test_override_error_points_at_the_override_not_at_the_file(
    cli, tmp_path, monkeypatch
):
    recipe = write(tmp_path / "ring.yaml", TINY_RING)
    message = rejected_message(cli, tmp_path, monkeypatch, recipe, "train.kimg=-1")
    assert message.startswith(f"{COMMAND_LINE}: train.kimg: ")


def test_error_in_base_recipe_names_the_base_file(cli, tmp_path, monkeypatch):
    write(tmp_path / "base.yaml", TINY_RING.replace("kimg: 2", "kimg: 0"))
    child = write(tmp_path / "child.yaml", "extends: base.yaml\nloss: hinge\n")
    message = rejected_message(cli, tmp_path, monkeypatch, child)
    assert message.startswith(f"{tmp_path / 'base.yaml'}:6: train.kimg: ")


def test_rejected_recipe_with_a_plugin_file_writes_no_bytecode(
    cli, tmp_path, monkeypatch
):
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    loss_plugin(tmp_path / "gap_loss.py", name="gap-b", cls="GapB")
    recipe = write(
        tmp_path / "r.yaml",
        TINY_RING.replace(
            "loss: {name: bce}", "plugins: [gap_loss.py]\nloss: gap-b"
        ).replace("kimg: 2", "kimg: -1"),
    )
    rejected_message(cli, tmp_path, monkeypatch, recipe)


def unlabeled_images(folder: Path, count: int = 4) -> Path:
    from PIL import Image

    folder.mkdir()
    for i in range(count):
        Image.new("L", (28, 28), color=40 * i).save(folder / f"{i}.png")
    return folder


def test_conditional_model_on_unlabeled_images_is_rejected(cli, tmp_path, monkeypatch):
    unlabeled_images(tmp_path / "faces")
    recipe = write(
        tmp_path / "r.yaml",
        "data: {name: image-folder, path: faces, resolution: 28, channels: 1}\n"
        "model:\n"
        "  generator: {name: cdcgan}\n"
        "  discriminator: {name: cdcgan}\n"
        "loss: bce\n",
    )
    message = rejected_message(cli, tmp_path, monkeypatch, recipe)
    assert message.startswith(f"{recipe}:3: model.generator.name: "), message
    assert "needs a labeled data set" in message and "have no labels" in message


def test_conditional_generator_with_an_unconditional_discriminator_is_rejected(
    cli, tmp_path, monkeypatch
):
    recipe = write(
        tmp_path / "r.yaml",
        "data: {name: fashion-mnist}\n"
        "model:\n"
        "  generator: {name: cdcgan}\n"
        "  discriminator: {name: dcgan-seed}\n"
        "loss: bce\n"
        "train: {kimg: 1}\n",
    )
    message = rejected_message(cli, tmp_path, monkeypatch, recipe)
    assert message.startswith(f"{recipe}:4: model.discriminator"), message
    assert "never sees a label" in message
