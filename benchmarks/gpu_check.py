"""A few minutes on one GPU: training throughput, device memory, evaluation time.

Trains ``dcgan-seed`` (``recipes/fashion-mnist/dcgan-seed.yaml``) at batch 64 and
256, in fp32 and bf16, each with contiguous and channels-last weights, and
reports images per second over the timed steps (after a warm-up) and the peak
device memory of each run; then times ``ganzoo eval``'s work on one finished
run: 10,000 generated samples scored against the test split, once with an
empty feature cache and once with the reference features cached.

``benchmarks/gpu_check.sh`` runs it under an 8-minute limit. Without a CUDA
device it stops at once with a message, unless ``--device cpu`` is given;
``--quick`` shrinks every size so that the script itself can be checked on a
CPU in a few minutes. Results go to ``benchmarks/results/gpu_check.json`` (with
``--quick``, only where ``--output`` says).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "fashion-mnist" / "dcgan-seed.yaml"
RESULTS = Path(__file__).resolve().parent / "results" / "gpu_check.json"


class Sizes:
    """How much each part does: the full check, or ``--quick``."""

    def __init__(self, quick: bool) -> None:
        self.batches = (4, 8) if quick else (64, 256)
        self.warmup = 1 if quick else 50  # steps before the clock starts
        self.ticks = 1 if quick else 4  # timed ticks of ``warmup`` steps each
        self.n_fake = 500 if quick else 10_000
        self.n_real = 500 if quick else None  # None: the whole test split
        self.data = ["data.limit=256", "train.grid=16"] if quick else []


def no_cuda_message() -> str:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    where = f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else ""
    return (
        f"gpu_check: no CUDA device is available to torch {torch.__version__}"
        f"{where}; run it on a machine with a GPU, or check the script itself "
        "on the CPU with --device cpu --quick"
    )


# Training.


def train_once(
    batch: int,
    precision: str,
    channels_last: bool,
    sizes: Sizes,
    device: str,
    run_dir: Path,
) -> dict[str, Any]:
    """Train warm-up steps, then timed ticks; images per second of the timed ones."""
    from ganzoo import Tracker
    from ganzoo.recipes import load_recipe
    from ganzoo.training import Trainer, prepare_run_dir

    warmup, total = sizes.warmup, sizes.warmup * (1 + sizes.ticks)

    class TickClock(Tracker):
        name = "gpu-check-clock"

        def __init__(self) -> None:
            super().__init__()
            self.marks: dict[int, float] = {}
            self.stats: list[Mapping[str, Any]] = []

        def log_stats(self, stats: Mapping[str, Any], step: int) -> None:
            if "tick" not in stats:
                return
            if device == "cuda":
                torch.cuda.synchronize()
            self.marks[step] = time.perf_counter()
            self.stats.append(dict(stats))

    kimg = total * batch / 1000
    overrides = [
        *sizes.data,
        f"train.batch_size={batch}",
        f"train.device={device}",
        f"train.precision={precision}",
        f"train.channels_last={str(channels_last).lower()}",
        f"train.kimg={kimg}",
        f"train.tick_kimg={warmup * batch / 1000}",
        f"train.snapshot_kimg={kimg}",
        f"train.checkpoint_kimg={kimg}",
        "eval.eval_kimg=null",
    ]
    recipe = load_recipe(RECIPE, overrides)
    clock = TickClock()
    trainer = Trainer(recipe, run_dir, [clock])
    prepare_run_dir(recipe, run_dir, resume=False)
    trainer.run(show_bar=False)

    seconds = clock.marks[total] - clock.marks[warmup]
    timed = clock.stats[1:]
    return {
        "batch_size": batch,
        "precision": precision,
        "channels_last": channels_last,
        "timed_steps": total - warmup,
        "seconds": seconds,
        "img_per_sec": (total - warmup) * batch / seconds,
        "reported_img_per_sec": statistics.median(s["img_per_sec"] for s in timed),
        "peak_device_mem_gb": max(s["peak_device_mem_gb"] for s in clock.stats),
        "peak_host_mem_gb": max(s["peak_host_mem_gb"] for s in clock.stats),
        "last_d_loss": timed[-1].get("d_loss"),
        "last_g_loss": timed[-1].get("g_loss"),
        "overrides": overrides,
    }


# Evaluation.


def time_evaluation(run: dict[str, Any], sizes: Sizes, run_dir: Path) -> dict:
    """``ganzoo eval --run-dir``'s work, with a cold and then a warm feature cache."""
    from ganzoo.evaluation import evaluate_recipe

    overrides = [*run["overrides"], f"eval.n_fake={sizes.n_fake}"]
    if sizes.n_real is not None:
        overrides.append(f"eval.n_real={sizes.n_real}")
    timings = {}
    for cache in ("cold", "warm"):
        start = time.perf_counter()
        record = evaluate_recipe(RECIPE, overrides, run_dir=run_dir)
        timings[f"{cache}_cache_sec"] = time.perf_counter() - start
    scores = {
        key: value
        for key, value in record.items()
        if key in ("fid", "kid", "is", "precision", "recall", "density", "coverage")
    }
    return {
        "n_fake": record["protocol"]["n_fake"],
        "n_real": record["protocol"]["n_real"],
        "scored_run": {k: run[k] for k in ("batch_size", "precision")},
        **timings,
        "scores": scores,
        "peak_device_mem_gb": (
            torch.cuda.max_memory_allocated() / 2**30
            if torch.cuda.is_available()
            else 0.0
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--quick", action="store_true", help="tiny sizes")
    parser.add_argument("--output", type=Path, help=f"JSON results (default {RESULTS})")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(no_cuda_message(), file=sys.stderr)
        return 2
    output = args.output or (None if args.quick else RESULTS)
    sizes = Sizes(args.quick)
    begin = time.perf_counter()
    started = datetime.datetime.now(datetime.timezone.utc)

    with tempfile.TemporaryDirectory(prefix="ganzoo-gpu-check-") as scratch:
        # The feature cache starts empty, so the first evaluation is a cold one.
        os.environ["GANZOO_CACHE"] = str(Path(scratch) / "cache")
        runs = []
        print(
            f"{'batch':>5} {'precision':>9} {'layout':>13} {'img/s':>9} "
            f"{'device GB':>9} {'host GB':>7}",
            flush=True,
        )
        for batch in sizes.batches:
            for precision in ("fp32", "bf16"):
                for channels_last in (False, True):
                    name = f"{batch}-{precision}-{'cl' if channels_last else 'c'}"
                    run = train_once(
                        batch,
                        precision,
                        channels_last,
                        sizes,
                        args.device,
                        Path(scratch) / name,
                    )
                    runs.append(run)
                    layout = "channels-last" if channels_last else "contiguous"
                    print(
                        f"{batch:>5} {precision:>9} {layout:>13} "
                        f"{run['img_per_sec']:>9.0f} "
                        f"{run['peak_device_mem_gb']:>9.3f} "
                        f"{run['peak_host_mem_gb']:>7.2f}",
                        flush=True,
                    )
        scored = runs[0]
        evaluation = time_evaluation(
            scored, sizes, Path(scratch) / f"{scored['batch_size']}-fp32-c"
        )
    print(
        f"\nevaluation of {evaluation['n_fake']:,} samples against "
        f"{evaluation['n_real']:,} real: {evaluation['cold_cache_sec']:.1f} s "
        f"(empty feature cache), {evaluation['warm_cache_sec']:.1f} s (cached); "
        f"peak device memory {evaluation['peak_device_mem_gb']:.3f} GB"
    )
    total = time.perf_counter() - begin
    print(f"total {total:.0f} s")

    if output is not None:
        from train_step import machine

        record = {
            "benchmark": "gpu_check",
            "date": started.isoformat(timespec="seconds"),
            "machine": machine(),
            "device": args.device,
            "quick": args.quick,
            "seconds": round(total, 1),
            "training": runs,
            "evaluation": evaluation,
        }
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
