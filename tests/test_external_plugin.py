"""The contributor path end to end, with the example package in examples/ganzoo-fgan:
install it into a throwaway environment, find it through its entry point, run its
own tests, train its recipe, score it and rank it on a leaderboard.

Nothing is installed into the environment that runs the suite: the package goes
into a new virtual environment that sees this one's packages, and every command
runs there as a subprocess, as a contributor would type it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from .conftest import REPO

EXAMPLE = REPO / "examples" / "ganzoo-fgan"

LAUNCHER = """\
#!/bin/sh
# Like the console script: -P keeps the current folder off sys.path.
exec "{python}" -P -m {module} "$@"
"""


@dataclass
class ThrowawayEnv:
    """A virtual environment on top of this one, for installing packages into."""

    root: Path
    scratch: Path

    @classmethod
    def create(cls, root: Path, scratch: Path) -> ThrowawayEnv:
        # No pip of its own (ensurepip takes seconds): this environment's pip runs.
        command = [
            sys.executable,
            "-m",
            "venv",
            "--without-pip",
            "--system-site-packages",
        ]
        subprocess.run([*command, str(root)], check=True)
        python = root / "bin" / "python"
        purelib = subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

        # --system-site-packages reaches the base interpreter's packages, not this
        # environment's; a .pth line adds ours (torch, ganzoo, pip, setuptools),
        # with their own .pth files, behind the new environment's.
        ours = sysconfig.get_paths()["purelib"]
        line = f"import site; site.addsitedir({ours!r})\n"
        (Path(purelib) / "zz_parent_environment.pth").write_text(line)
        for name, module in (("ganzoo", "ganzoo"), ("pip", "pip")):
            launcher = root / "bin" / name
            launcher.write_text(LAUNCHER.format(python=python, module=module))
            launcher.chmod(0o755)
        return cls(root, scratch)

    def environment(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("GANZOO_PLUGINS", "PYTHONPATH", "PYTHONHOME")
        }
        env.update(
            PATH=f"{self.root / 'bin'}{os.pathsep}{env.get('PATH', '')}",
            VIRTUAL_ENV=str(self.root),
            GANZOO_CACHE=str(self.scratch / "cache"),
            GANZOO_DATA=str(self.scratch / "data"),
            OMP_NUM_THREADS="1",
            # Offline: build with the setuptools at hand (pip reads this variable
            # inverted: 0 turns build isolation off) and never query an index.
            PIP_NO_BUILD_ISOLATION="0",
            PIP_NO_INDEX="1",
            PIP_DISABLE_PIP_VERSION_CHECK="1",
            # Only the test's own plugins, not every one the environments hold.
            PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",
        )
        return env

    def run(
        self, command: list[str] | str, cwd: Path, env: dict[str, str] | None = None
    ) -> str:
        """Run ``command`` (a list or a shell line) here; its output on success."""
        done = subprocess.run(
            command,
            cwd=cwd,
            env={**self.environment(), **(env or {})},
            shell=isinstance(command, str),
            capture_output=True,
            text=True,
            timeout=300,
        )
        output = done.stdout + done.stderr
        shown = command if isinstance(command, str) else " ".join(map(str, command))
        assert done.returncode == 0, f"`{shown}` exited {done.returncode}:\n{output}"
        return output


def test_example_package_installs_trains_scores_and_ranks(tmp_path):
    env = ThrowawayEnv.create(tmp_path / "env", tmp_path)

    # Install a copy: an editable install would leave build files in the repository.
    package = tmp_path / "ganzoo-fgan"
    shutil.copytree(EXAMPLE, package, ignore=shutil.ignore_patterns("__pycache__"))
    env.run(["pip", "install", "--no-deps", "-e", str(package)], cwd=tmp_path)

    # Its own tests pass where it is installed, among them one that finds it
    # through its entry point, like the built-ins.
    python = str(env.root / "bin" / "python")
    output = env.run(
        [python, "-m", "pytest", "-v", "-p", "no:cacheprovider", "tests"], cwd=package
    )
    assert "test_the_loss_is_found_through_its_entry_point PASSED" in output
    assert " passed" in output and "failed" not in output

    # Score the recipe, briefly: eval trains it first, as there is no run yet.
    recipe = package / "recipes" / "ring-fgan.yaml"
    short = [
        "train.kimg=2",
        "train.tick_kimg=1",
        "train.snapshot_kimg=1",
        "data.n=2000",
        "eval.n_fake=1000",
    ]
    work = tmp_path / "work"
    work.mkdir()
    results = tmp_path / "board" / "results"
    scored = env.run(
        ["ganzoo", "eval", str(recipe), *short, "--results", str(results)], cwd=work
    )
    assert "using the finished run" not in scored and "status ok" in scored
    [run_dir] = (work / "runs").iterdir()
    assert (run_dir / "final.pt").is_file() and (run_dir / "stats.jsonl").is_file()
    [record_file] = results.glob("*.json")
    record = json.loads(record_file.read_text())
    assert record["status"] == "ok" and record["name"] == "ring-fgan-pearson"
    assert record["config"]["loss"] == {
        "name": "f-gan",
        "divergence": "pearson",
        "generator": "non-saturating",
    }
    assert 0 <= record["modes"] <= 8

    board = tmp_path / "board" / "leaderboard.md"
    env.run(
        ["ganzoo", "leaderboard", "--results", str(results), "--out", str(board)],
        cwd=work,
    )
    text = board.read_text()
    assert "## ring" in text and "ring-fgan-pearson" in text
    assert not (EXAMPLE / "ganzoo_fgan.egg-info").exists()
