"""Soak: short trainings of every built-in recipe in one process, watching host memory.

Each recipe under ``recipes/`` (the ``base`` folder excepted) trains ``--steps``
generator steps on a small slice of its data with a small batch, in a fresh
temporary run directory, with a checkpoint and a snapshot at the end. The
whole list is trained ``--passes`` times in the same process. The first pass
warms up (imports, allocator pools, data caches); the resident set size (RSS)
after it is the baseline, and the growth from there to the end of the last pass
is what the soak measures: a leak of a few kilobytes per step shows up as
megabytes over the passes.

    python benchmarks/soak.py                    # every recipe, 200 steps, 2 passes
    python benchmarks/soak.py --only ring/gan.yaml,grid/gan.yaml --steps 20

The result goes to ``benchmarks/results/soak.json``; the exit status is 1 when
the growth exceeds ``--bound-mb``.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "soak.json"
DEFAULT_BOUND_MB = 64.0
"""Allowed RSS growth after the warm-up pass, whatever the number of recipes."""


def rss_mb() -> float:
    """The current resident set size of this process, in MiB (Linux)."""
    gc.collect()
    with open("/proc/self/statm") as file:
        resident_pages = int(file.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def builtin_recipes(only: list[str] | None = None) -> list[Path]:
    """The built-in recipes, or those of ``only`` (paths below ``recipes/``)."""
    folder = ROOT / "recipes"
    if only:
        return [folder / name for name in only]
    return sorted(p for p in folder.rglob("*.yaml") if "base" not in p.parts)


def soak_overrides(recipe: Path, steps: int, batch_size: int) -> list[str]:
    """A budget of ``steps`` generator steps at a small batch on a data slice."""
    from ganzoo.recipes import load_recipe

    config = load_recipe(recipe).config
    batch = min(config["train"]["batch_size"], batch_size)
    n_critic = config["train"]["n_critic"]
    kimg = steps * batch * n_critic / 1000
    data = ["data.n=2000"] if config["data"]["name"] in ("ring", "grid") else []
    if "limit" in config["data"]:
        data = ["data.limit=512"]
    return [
        *data,
        f"train.batch_size={batch}",
        f"train.kimg={kimg}",
        f"train.tick_kimg={kimg / 4}",
        f"train.snapshot_kimg={kimg}",
        f"train.checkpoint_kimg={kimg}",
        "train.grid=16",
        "eval.eval_kimg=null",
    ]


def train_once(recipe: Path, steps: int, batch_size: int) -> dict[str, Any]:
    """Train one recipe in a temporary run directory; its outcome and cost."""
    from ganzoo import GanzooError
    from ganzoo.recipes import load_recipe
    from ganzoo.training import build_trackers, prepare_run_dir
    from ganzoo.training._translation import trainer_class

    started = time.perf_counter()
    run_dir = Path(tempfile.mkdtemp(prefix="ganzoo-soak-")) / "run"
    try:
        loaded = load_recipe(recipe, soak_overrides(recipe, steps, batch_size))
        trainer = trainer_class(loaded)(loaded, run_dir, build_trackers(loaded))
        prepare_run_dir(loaded, run_dir, resume=False)
        trainer.run(show_bar=False)
        outcome = {"status": "ok", "steps": trainer.step}
    except GanzooError as error:  # e.g. a data set that is not installed
        outcome = {"status": "skipped", "reason": str(error)}
    finally:
        shutil.rmtree(run_dir.parent, ignore_errors=True)
    outcome["seconds"] = round(time.perf_counter() - started, 2)
    return outcome


def soak(
    recipes: list[Path],
    *,
    steps: int = 200,
    passes: int = 2,
    batch_size: int = 32,
    log=print,
) -> dict[str, Any]:
    """Train every recipe ``passes`` times; RSS after each recipe and each pass."""
    if passes < 2:
        raise ValueError("the soak needs two passes: a warm-up and a measured one")
    start_mb = rss_mb()
    rows: dict[str, dict[str, Any]] = {}
    pass_end_mb = []
    for index in range(passes):
        for recipe in recipes:
            name = str(recipe.relative_to(ROOT / "recipes"))
            outcome = train_once(recipe, steps, batch_size)
            row = rows.setdefault(name, {"rss_mb": [], **outcome})
            row.update(outcome)
            row["rss_mb"].append(round(rss_mb(), 1))
            log(
                f"pass {index + 1}/{passes}  {name:<32} {outcome['status']:<7} "
                f"{outcome['seconds']:>7.2f}s  rss {row['rss_mb'][-1]:8.1f} MiB"
            )
        pass_end_mb.append(round(rss_mb(), 1))
    growth = pass_end_mb[-1] - pass_end_mb[0]
    return {
        "steps": steps,
        "passes": passes,
        "batch_size": batch_size,
        "rss_start_mb": round(start_mb, 1),
        "rss_after_each_pass_mb": pass_end_mb,
        "growth_after_warmup_mb": round(growth, 1),
        "recipes": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="steps per recipe")
    parser.add_argument("--passes", type=int, default=2, help="passes (>= 2)")
    parser.add_argument("--batch-size", type=int, default=32, help="largest batch")
    parser.add_argument(
        "--only", help="comma-separated recipes below recipes/, e.g. ring/gan.yaml"
    )
    parser.add_argument(
        "--bound-mb",
        type=float,
        default=DEFAULT_BOUND_MB,
        help=f"allowed RSS growth after the warm-up (default {DEFAULT_BOUND_MB:g})",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="result JSON")
    args = parser.parse_args(argv)

    only = [s.strip() for s in args.only.split(",")] if args.only else None
    recipes = builtin_recipes(only)
    missing = [str(p) for p in recipes if not p.is_file()]
    if missing:
        parser.error(f"no such recipe: {', '.join(missing)}")

    result = soak(
        recipes, steps=args.steps, passes=args.passes, batch_size=args.batch_size
    )
    result.update(
        {
            "bound_mb": args.bound_mb,
            "within_bound": result["growth_after_warmup_mb"] <= args.bound_mb,
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "threads": torch.get_num_threads(),
            "command": " ".join(sys.argv),
        }
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"RSS growth after the warm-up: {result['growth_after_warmup_mb']:.1f} MiB "
        f"(bound {args.bound_mb:g} MiB) over {len(recipes)} recipes x "
        f"{args.passes - 1} measured passes; wrote {args.out}"
    )
    return 0 if result["within_bound"] else 1


if __name__ == "__main__":
    sys.exit(main())
