"""Reproduce every committed leaderboard record from its recipe, then render.

    python scripts/leaderboard.py [--only ring,grid] [--seeds 3]

Each standings recipe is evaluated with `ganzoo eval --seeds N` (finished runs are
reused), then leaderboard/LEADERBOARD.md and leaderboard/site/index.html are
regenerated. With a CUDA device the budgets are multiplied by --gpu-scale, so the
same command runs longer budgets where a GPU is available.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]

STANDINGS = {
    "ring": ["gan", "mm-gan", "wgan-gp", "pacgan2"],
    "grid": ["gan", "mm-gan", "wgan-gp", "pacgan2"],
    "fashion-mnist": [
        "gan",
        "mm-gan",
        "lsgan",
        "hinge",
        "wgan",
        "wgan-gp",
        "gan-r1",
        "dcgan-seed",
    ],
}


def ganzoo(*args: str) -> None:
    command = [sys.executable, "-m", "ganzoo", *args]
    print("+", " ".join(command), flush=True)
    subprocess.run(command, cwd=REPO, check=True)


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
    args = parser.parse_args()

    chosen = args.only.split(",") if args.only else list(STANDINGS)
    for dataset in chosen:
        for method in STANDINGS[dataset]:
            recipe = f"recipes/{dataset}/{method}.yaml"
            overrides = []
            if torch.cuda.is_available():
                from ganzoo.recipes import load_recipe

                kimg = load_recipe(REPO / recipe).config["train"]["kimg"]
                overrides = [f"train.kimg={kimg * args.gpu_scale:g}"]
            seeds = 1 if method == "dcgan-seed" else args.seeds
            ganzoo(
                "eval", recipe, *overrides, "--seeds", str(seeds), "--progress", "lines"
            )
    ganzoo("leaderboard", "--format", "md", "--out", "leaderboard/LEADERBOARD.md")
    ganzoo("leaderboard", "--format", "html", "--out", "leaderboard/site/index.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
