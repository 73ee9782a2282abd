"""Reproduce every committed leaderboard record from its recipe, then render.

    python scripts/leaderboard.py [--only ring,grid] [--seeds 3] [--jobs 2]

Each standings recipe is evaluated with `ganzoo eval --seeds N` (finished runs are
reused), then leaderboard/LEADERBOARD.md and leaderboard/site/index.html are
regenerated. With --jobs J the seeds are first trained, then the recipes evaluated,
J at a time, each process on its share of the CPU threads, which beats one process
using every core on small models. With a CUDA device the budgets are multiplied
by --gpu-scale, so the same command runs longer budgets where a GPU is available.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]

STANDINGS = {
    "ring": ["gan", "mm-gan", "wgan-gp", "pacgan2"],
    "grid": ["gan", "mm-gan", "wgan-gp", "pacgan2"],
    "fashion-mnist": [
        "gan",
        "lsgan",
        "hinge",
        "wgan",
        "wgan-gp",
        "gan-r1",
        "dcgan-seed",
        "cgan-mlp",
        "cgan-concat",
        "cgan-projection",
        "acgan",
    ],
    "fashion-edges": ["pix2pix"],
}

ONE_SEED = {
    "dcgan-seed",
    "cgan-mlp",
    "cgan-concat",
    "cgan-projection",
    "acgan",
    "pix2pix",
}
"""Methods standing with one seed: the lecture's recipe, the conditional ones and
image-to-image translation."""


COMMITTED_LAYOUT = ["train.channels_last=false"]
"""The committed standings were trained with contiguous weights, the layout's
default before it became channels-last for convolutional networks. The option is
not hashed, so the records' runs are found either way; passing it keeps a retrain
bit for bit the committed one (on the same machine and torch) rather than a run
that differs by float rounding, which GAN training turns into different scores."""


def ganzoo(*args: str, threads: int | None = None) -> None:
    command = [sys.executable, "-m", "ganzoo", *args]
    environment = dict(os.environ)
    if threads is not None:
        environment["OMP_NUM_THREADS"] = str(threads)
    print("+", " ".join(command), flush=True)
    subprocess.run(command, cwd=REPO, check=True, env=environment)


def budget_overrides(recipe: str, gpu_scale: float) -> list[str]:
    if not torch.cuda.is_available():
        return []
    from ganzoo.recipes import load_recipe

    kimg = load_recipe(REPO / recipe).config["train"]["kimg"]
    return [f"train.kimg={kimg * gpu_scale:g}"]


def in_parallel(commands: list[list[str]], jobs: int) -> None:
    """Run ganzoo commands ``jobs`` at a time, each on its share of the threads."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    with ThreadPoolExecutor(jobs) as pool:
        futures = [
            pool.submit(ganzoo, *command, threads=threads) for command in commands
        ]
        for future in futures:
            future.result()


def train_in_parallel(runs: list[tuple[str, list[str]]], jobs: int) -> None:
    """Train every (recipe, overrides) first, `jobs` processes at a time.

    Finished runs are skipped and interrupted ones resumed, as `ganzoo eval` would.
    """
    from ganzoo.recipes import load_recipe
    from ganzoo.training import FINAL, LAST, default_run_dir

    commands = []
    for recipe, overrides in runs:
        run_dir = default_run_dir(load_recipe(REPO / recipe, overrides))
        if (run_dir / FINAL).is_file():
            continue
        resume = ["--resume"] if (run_dir / LAST).is_file() else []
        commands.append(["train", recipe, *overrides, *resume, "--progress", "lines"])
    in_parallel(commands, jobs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated data sets (default: all)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--gpu-scale",
        type=float,
        default=10.0,
        help="budget multiplier when CUDA is available",
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="training processes to run at once"
    )
    args = parser.parse_args()

    from ganzoo.recipes import load_recipe

    chosen = args.only.split(",") if args.only else list(STANDINGS)
    plan = []
    for dataset in chosen:
        for method in STANDINGS[dataset]:
            recipe = f"recipes/{dataset}/{method}.yaml"
            seeds = 1 if method in ONE_SEED else args.seeds
            overrides = [*COMMITTED_LAYOUT, *budget_overrides(recipe, args.gpu_scale)]
            plan.append((recipe, overrides, seeds))
    if args.jobs > 1:
        runs = []
        for recipe, overrides, seeds in plan:
            first = load_recipe(REPO / recipe, overrides).config["train"]["seed"]
            runs += [
                (recipe, [*overrides, f"train.seed={first + i}"]) for i in range(seeds)
            ]
        # The longest runs first, so that no single run is left running alone.
        runs.sort(key=lambda run: -load_recipe(REPO / run[0]).config["train"]["kimg"])
        train_in_parallel(runs, args.jobs)
    evaluations = [
        ["eval", recipe, *overrides, "--seeds", str(seeds), "--progress", "lines"]
        for recipe, overrides, seeds in plan
    ]
    if args.jobs > 1:
        in_parallel(evaluations, args.jobs)
    else:
        for command in evaluations:
            ganzoo(*command)
    ganzoo("leaderboard", "--format", "md", "--out", "leaderboard/LEADERBOARD.md")
    ganzoo("leaderboard", "--format", "html", "--out", "leaderboard/site/index.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
