"""Training throughput of ``dcgan-seed``: ganzoo's trainer against a plain script.

The recipe ``recipes/fashion-mnist/dcgan-seed.yaml`` (the lecture's DCGAN on all
70,000 Fashion-MNIST images) at batch 64 and 256, three ways:

* ``plain``: ``benchmarks/plain_dcgan.py``, the same generator and discriminator
  modules in a hand-written loop fed by a torchvision-style Dataset
  (``transforms.ToTensor()`` per image) through a shuffling ``DataLoader`` with
  worker processes, as most public GAN examples are written;
* ``ganzoo``: ``Trainer.run`` on the recipe as written, the data set on the
  training device and batches drawn there by index, and (``train.channels_last``
  left at its default) channels-last convolutions;
* ``ganzoo-contiguous``: the same with ``train.channels_last=false``, the
  layout the plain script uses.

Every measurement is a fresh process with the same thread count, which trains
``--warmup`` untimed steps and then times ``--steps`` steps; the processes of a
round run one after another, the order rotating from round to round. The ganzoo
side reports a tick after every step (its progress line, stats.jsonl entry and
weight check count against it); its snapshot and checkpoint come after the timed
steps (``train_step.py`` measures their share). The figure is images per second
of wall time; CPU seconds are kept too, the plain side's including its loader
workers. Results go to ``benchmarks/results/throughput.json``; the exit status
is 1 when, at some batch size, ganzoo with the recipe as written is not faster
than the plain script.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "fashion-mnist" / "dcgan-seed.yaml"
PLAIN = Path(__file__).resolve().parent / "plain_dcgan.py"
RESULTS = Path(__file__).resolve().parent / "results" / "throughput.json"

VARIANTS = {
    "plain": None,
    "ganzoo": [],
    "ganzoo-contiguous": ["train.channels_last=false"],
}
"""Each variant and, for ganzoo's, the recipe overrides it adds."""

STEPS = {64: 10, 256: 4}
"""Timed steps per measurement at each batch size (about 15 s each on one core)."""


# The ganzoo side, run in its own process by ``--worker``.


def ganzoo_worker(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from ganzoo import Tracker
    from ganzoo.recipes import load_recipe
    from ganzoo.training import Trainer, prepare_run_dir
    from ganzoo.training._progress import peak_host_memory_gb

    torch.set_num_threads(args.threads)
    batch, warmup, steps = args.batch_size, args.warmup, args.steps

    class StepClock(Tracker):
        """Reads the clocks at the ticks that end the warm-up and the timed steps."""

        name = "benchmark-step-clock"

        def __init__(self) -> None:
            super().__init__()
            self.marks: dict[int, tuple[float, float]] = {}
            self.reported: list[float] = []

        def log_stats(self, stats: Mapping[str, Any], step: int) -> None:
            if step in (warmup, warmup + steps):
                if args.device == "cuda":
                    torch.cuda.synchronize()
                self.marks[step] = (time.perf_counter(), time.process_time())
            if warmup < step <= warmup + steps and "img_per_sec" in stats:
                self.reported.append(stats["img_per_sec"])

    kimg = (warmup + steps) * batch / 1000
    overrides = [
        f"train.batch_size={batch}",
        f"train.device={args.device}",
        f"train.kimg={kimg}",
        f"train.tick_kimg={batch / 1000}",
        f"train.snapshot_kimg={kimg}",
        f"train.checkpoint_kimg={kimg}",
        "eval.eval_kimg=null",  # no metric during training: the plain side has none
        *args.override,
    ]
    recipe = load_recipe(RECIPE, overrides)
    clock = StepClock()
    with tempfile.TemporaryDirectory(prefix="ganzoo-throughput-") as scratch:
        run_dir = Path(scratch) / "run"
        trainer = Trainer(recipe, run_dir, [clock])
        prepare_run_dir(recipe, run_dir, resume=False)
        trainer.run(show_bar=False)
    (wall_0, cpu_0), (wall_1, cpu_1) = clock.marks[warmup], clock.marks[warmup + steps]
    return {
        "side": "ganzoo",
        "batch_size": batch,
        "steps": steps,
        "warmup": warmup,
        "threads": args.threads,
        "device": args.device,
        "overrides": args.override,
        "wall_sec": wall_1 - wall_0,
        "cpu_sec": cpu_1 - cpu_0,
        "worker_cpu_sec": 0.0,
        "img_per_sec": steps * batch / (wall_1 - wall_0),
        "reported_img_per_sec": statistics.median(clock.reported),
        "peak_host_mem_gb": round(peak_host_memory_gb(), 3),
    }


# Measurements in fresh processes.


def measure(variant: str, batch: int, args: argparse.Namespace) -> dict[str, Any]:
    common = [
        f"--batch-size={batch}",
        f"--steps={args.steps or STEPS.get(batch, 4)}",
        f"--warmup={args.warmup}",
        f"--threads={args.threads}",
        f"--device={args.device}",
    ]
    if VARIANTS[variant] is None:
        command = [sys.executable, str(PLAIN), *common, f"--workers={args.workers}"]
    else:
        extra = [f"--override={o}" for o in VARIANTS[variant]]
        command = [sys.executable, __file__, "--worker", *common, *extra]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"{variant} at batch {batch} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["variant"] = variant
    return result


def summarize(batch: int, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median images per second of each variant and its ratio to the plain one."""
    by_variant: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        by_variant.setdefault(run["variant"], []).append(run)
    plain = by_variant["plain"]
    plain_rate = statistics.median(r["img_per_sec"] for r in plain)
    plain_cpu = statistics.median(r["cpu_sec"] + r["worker_cpu_sec"] for r in plain)
    rows = []
    for variant, measured in by_variant.items():
        rates = [r["img_per_sec"] for r in measured]
        cpu = statistics.median(r["cpu_sec"] + r["worker_cpu_sec"] for r in measured)
        per_round = sorted(
            r["img_per_sec"] / p["img_per_sec"]
            for r, p in zip(measured, plain, strict=True)
        )
        rows.append(
            {
                "variant": variant,
                "img_per_sec": statistics.median(rates),
                "img_per_sec_min": min(rates),
                "img_per_sec_max": max(rates),
                "ms_per_step": 1e3 * batch / statistics.median(rates),
                "cpu_sec_per_step": cpu / measured[0]["steps"],
                "speedup": statistics.median(rates) / plain_rate,
                "speedup_per_round_min": per_round[0],
                "speedup_per_round_max": per_round[-1],
                "cpu_speedup": plain_cpu / cpu,
                "reported_img_per_sec": statistics.median(
                    r["reported_img_per_sec"] for r in measured
                )
                if "reported_img_per_sec" in measured[0]
                else None,
                "peak_host_mem_gb": max(r["peak_host_mem_gb"] for r in measured),
                "runs": measured,
            }
        )
    return {"batch_size": batch, "rows": rows}


def print_table(results: list[dict[str, Any]]) -> None:
    print(
        f"\n{'batch':>5}  {'variant':<22} {'img/s':>7} {'range':>13} "
        f"{'speed-up':>8} {'per round':>11} {'cpu':>6} {'mem GB':>6}"
    )
    for result in results:
        for row in result["rows"]:
            spread = f"{row['img_per_sec_min']:.1f}-{row['img_per_sec_max']:.1f}"
            rounds = (
                f"{row['speedup_per_round_min']:.2f}-{row['speedup_per_round_max']:.2f}"
            )
            print(
                f"{result['batch_size']:>5}  {row['variant']:<22} "
                f"{row['img_per_sec']:>7.1f} {spread:>13} {row['speedup']:>8.2f} "
                f"{rounds:>11} {row['cpu_speedup']:>6.2f} "
                f"{row['peak_host_mem_gb']:>6.2f}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, action="append", dest="batches")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, help="timed steps (default: by batch)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed first steps")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--workers", type=int, default=2, help="plain side's workers")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--variant", action="append", choices=sorted(VARIANTS), dest="variants"
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--override", action="append", default=[], help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)

    if args.worker:
        args.batch_size = args.batches[0]
        print(json.dumps(ganzoo_worker(args)))
        return 0

    from train_step import machine

    batches = args.batches or [64, 256]
    variants = args.variants or list(VARIANTS)
    if "plain" not in variants:
        variants.insert(0, "plain")
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()
    begin = time.perf_counter()
    results = []
    for batch in batches:
        runs = []
        for round_index in range(args.rounds):
            shift = round_index % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                run = measure(variant, batch, args)
                print(
                    f"batch {batch:>4} round {round_index + 1}  {variant:<22} "
                    f"{run['img_per_sec']:7.1f} img/s",
                    flush=True,
                )
                runs.append(run)
        results.append(summarize(batch, runs))
    print_table(results)

    record = {
        "benchmark": "throughput",
        "recipe": str(RECIPE.relative_to(ROOT)),
        "date": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "threads": args.threads,
        "workers": args.workers,
        "device": args.device,
        "rounds": args.rounds,
        "warmup": args.warmup,
        "seconds": round(time.perf_counter() - begin, 1),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nwrote {args.output}")

    # The verdict: at every batch size, ganzoo with the recipe as written beats
    # the plain script on the wall clock (or, when only other variants ran, the
    # fastest of them does). The table shows each variant either way.
    def verdict(rows: list[dict[str, Any]]) -> float:
        ours = [r for r in rows if r["variant"] == "ganzoo"]
        return (ours or [max(rows, key=lambda r: r["speedup"])])[0]["speedup"]

    faster = all(
        verdict([r for r in result["rows"] if r["variant"] != "plain"]) > 1
        for result in results
    )
    return 0 if faster else 1


if __name__ == "__main__":
    sys.exit(main())
