"""docs/plugins.md, run: every file it gives is written and every command it shows
is run, in order, in an empty folder, so the guide cannot go stale.

A fenced block whose info string has ``file=NAME`` is written to NAME. In a
``console`` block, a line starting with ``$ `` is a command and the lines after
it are output it must print (whitespace-insensitive; ``...`` stands for any
text). ``ganzoo`` commands run through ``ganzoo.cli.main``, exactly as the console
script calls it, until the guide installs a package; from then on every command
runs in a throwaway environment, where the installed entry point is visible.
Other commands (pip, python) always run there.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

import pytest

from ganzoo.cli import main

from .conftest import REPO
from .test_external_plugin import ThrowawayEnv

GUIDE = REPO / "docs" / "plugins.md"

FENCE = re.compile(r"^```(?P<info>[^\n]*)\n(?P<body>.*?)^```$", re.M | re.S)
ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=")


@dataclass
class Command:
    """One ``$ `` line of a console block and the output shown under it."""

    line: str
    expected: list[str] = field(default_factory=list)


@dataclass
class Step:
    """A file to write or a command to run, in the guide's order."""

    file: str | None = None
    text: str = ""
    command: Command | None = None


def read_steps(markdown: str) -> list[Step]:
    steps = []
    for fence in FENCE.finditer(markdown):
        info, body = fence["info"].split(), fence["body"]
        names = [
            word.removeprefix("file=") for word in info if word.startswith("file=")
        ]
        if names:
            steps.append(Step(file=names[0], text=body))
        elif info[:1] == ["console"]:
            for line in body.splitlines():
                if line.startswith("$ "):
                    steps.append(Step(command=Command(line[2:].strip())))
                elif line.strip() and steps and steps[-1].command is not None:
                    steps[-1].command.expected.append(line)
    return steps


def shown_in(expected: str, output: str) -> bool:
    """Whether a line of ``output`` matches ``expected``; ``...`` matches anything."""
    pattern = r"\s+".join(
        ".*".join(re.escape(piece) for piece in words.split("..."))
        for words in expected.split()
    )
    return any(re.search(pattern, line) for line in output.splitlines())


def test_the_guide_has_files_commands_and_the_whole_contributor_path():
    steps = read_steps(GUIDE.read_text())
    files = [s.file for s in steps if s.file]
    commands = [s.command.line for s in steps if s.command]
    assert files == [
        "tiny_resmlp.py",
        "ring-resmlp.yaml",
        "pyproject.toml",
        "test_resmlp.py",
    ]
    for verb in ("check", "train", "eval", "leaderboard", "plugins", "new"):
        assert any(f"ganzoo {verb} " in command for command in commands), verb
    assert any(c.startswith("pip install") for c in commands)

    # The plugin itself is about 45 lines of code, as the guide says.
    plugin = next(s.text for s in steps if s.file == "tiny_resmlp.py")
    code = [line for line in plugin.splitlines() if line.strip()]
    assert len(code) <= 50


def test_every_file_and_command_of_the_guide_works(tmp_path, monkeypatch, capsys):
    work = tmp_path / "guide"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("GANZOO_PLUGINS", raising=False)
    monkeypatch.setenv("GANZOO_CACHE", str(tmp_path / "cache"))
    env = ThrowawayEnv.create(tmp_path / "env", tmp_path)
    installed = False

    for step in read_steps(GUIDE.read_text()):
        if step.file is not None:
            target = (work / step.file).resolve()
            assert target.is_relative_to(work.resolve()), step.file
            target.write_text(step.text)
            continue

        command = step.command
        words = shlex.split(command.line)
        settings = {}
        while words and ASSIGNMENT.match(words[0]):
            key, _, value = words.pop(0).partition("=")
            settings[key] = value
        if words[0] == "ganzoo" and not installed:
            with monkeypatch.context() as scoped:
                for key, value in settings.items():
                    scoped.setenv(key, value)
                status = main(words[1:])
            captured = capsys.readouterr()
            output = captured.out + captured.err
            assert status == 0, f"`{command.line}` exited {status}:\n{output}"
        else:
            output = env.run(command.line, cwd=work)
            installed = installed or words[:2] == ["pip", "install"]

        for line in command.expected:
            assert shown_in(line, output), (
                f"`{command.line}` did not print {line!r}; it printed:\n{output}"
            )

    # What the commands were for: a trained run, a record and a leaderboard.
    [run_dir] = (work / "runs").iterdir()
    assert (run_dir / "final.pt").is_file()
    [record] = (work / "board" / "results").glob("*.json")
    assert '"name": "ring-resmlp"' in record.read_text()
    board = (work / "board" / "leaderboard.md").read_text()
    assert "## ring" in board and "ring-resmlp" in board
    assert (work / "ganzoo-focal-logistic" / "pyproject.toml").is_file()


@pytest.mark.parametrize(
    ("expected", "output", "found"),
    [
        ("run runs/ring-...", "run runs/ring-1a2b  hash 1a2b", True),
        ("ring  status ok", "ring status ok  recipe 1a2b", True),
        ("ring status ok", "ring status failed", False),
        ("wrote board/x.md", "wrote board/y.md", False),
    ],
)
def test_shown_output_is_matched_by_line_with_ellipses(expected, output, found):
    assert shown_in(expected, output) is found
