"""Training speed of two processes over gloo against one, on the same global batch.

Each case trains a recipe for a small budget in three ways, all with the same
``train.batch_size`` (the global batch), seed and data:

* ``1 process, 2 threads``: ``ganzoo train`` with ``OMP_NUM_THREADS=2``;
* ``2 processes, 1 thread``: ``torchrun --standalone --nproc_per_node 2 -m
  ganzoo train`` with ``OMP_NUM_THREADS=1``: DistributedDataParallel over
  gloo, each process on half of every batch;
* ``1 process, 1 thread``: ``ganzoo train`` with ``OMP_NUM_THREADS=1``, the
  baseline both others are measured against.

On a machine with two cores, two one-thread processes against one two-thread
process is the fair comparison: both use the two cores. The figure is sec/kimg,
the loop's wall time per thousand real images, from rank 0's ``stats.jsonl``:
the median over the ticks after the first (which pays for warm-up). Snapshots
and checkpoints happen only at the end of the budget, so they are not in it;
process start-up is not either. The variants alternate, one run each per
repeat, so that a change in the machine's load touches them alike.

Run ``python benchmarks/distributed.py --help`` for the options; the results go
to ``benchmarks/results/distributed.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "distributed.json"
FASHION = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


@dataclasses.dataclass(frozen=True)
class Case:
    """One recipe with its budget: ``kimg`` in ticks of ``tick_kimg``."""

    name: str
    recipe: str
    batch: int
    kimg: float
    tick_kimg: float

    def overrides(self) -> list[str]:
        return [
            f"train.batch_size={self.batch}",
            f"train.kimg={self.kimg}",
            f"train.tick_kimg={self.tick_kimg}",
            f"train.snapshot_kimg={self.kimg}",
            f"train.checkpoint_kimg={self.kimg}",
            "eval.eval_kimg=null",
        ]


CASES = {
    "dcgan-seed": Case("dcgan-seed", "recipes/base/fashion-mnist.yaml", 128, 3.2, 0.64),
    "mlp-ring": Case("mlp-ring", "recipes/base/ring.yaml", 500, 60.0, 10.0),
}


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    processes: int
    threads: int


VARIANTS = (
    Variant("1 process, 2 threads", 1, 2),
    Variant("2 processes, 1 thread", 2, 1),
    Variant("1 process, 1 thread", 1, 1),
)


def train_once(case: Case, variant: Variant, folder: Path) -> dict[str, Any]:
    """One training run; its sec/kimg per tick, from rank 0's stats.jsonl."""
    run_dir = folder / f"{case.name}-{variant.processes}x{variant.threads}"
    command = [sys.executable]
    if variant.processes > 1:
        command += ["-m", "torch.distributed.run", "--standalone"]
        command += ["--nproc_per_node", str(variant.processes)]
    command += ["-m", "ganzoo", "train", str(ROOT / case.recipe), *case.overrides()]
    command += ["--run-dir", str(run_dir), "--progress", "lines"]
    env = {k: v for k, v in os.environ.items() if k != "GANZOO_PLUGINS"}
    env.update(OMP_NUM_THREADS=str(variant.threads), CUDA_VISIBLE_DEVICES="")
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    lines = (run_dir / "stats.jsonl").read_text().splitlines()
    ticks = [entry for entry in map(json.loads, lines) if "tick" in entry]
    per_tick = [t["sec_per_kimg"] for t in ticks[1:]]
    return {
        "sec_per_kimg": statistics.median(per_tick),
        "per_tick": per_tick,
        "world_size": ticks[-1].get("world_size", 1),
        "command_sec": round(wall, 2),
        "final_d_loss": ticks[-1]["d_loss"],
        "final_g_loss": ticks[-1]["g_loss"],
    }


def measure(case: Case, repeats: int) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {v.name: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="ganzoo-distributed-") as folder:
        for repeat in range(repeats):
            for variant in VARIANTS:
                run = train_once(case, variant, Path(folder) / str(repeat))
                runs[variant.name].append(run)
                print(
                    f"  {case.name:<11s} {variant.name:<22s} repeat {repeat + 1}: "
                    f"{run['sec_per_kimg']:.3f} sec/kimg",
                    flush=True,
                )
    baseline = statistics.median(r["sec_per_kimg"] for r in runs[VARIANTS[-1].name])
    rows = {}
    for variant in VARIANTS:
        sec = statistics.median(r["sec_per_kimg"] for r in runs[variant.name])
        rows[variant.name] = {
            "processes": variant.processes,
            "threads_per_process": variant.threads,
            "sec_per_kimg": round(sec, 4),
            "sec_per_kimg_range": [
                round(min(r["sec_per_kimg"] for r in runs[variant.name]), 4),
                round(max(r["sec_per_kimg"] for r in runs[variant.name]), 4),
            ],
            "speedup_over_1_thread": round(baseline / sec, 3),
            "runs": runs[variant.name],
        }
    return {
        "recipe": case.recipe,
        "batch_size": case.batch,
        "per_process_batch": {v.name: case.batch // v.processes for v in VARIANTS},
        "kimg": case.kimg,
        "tick_kimg": case.tick_kimg,
        "repeats": repeats,
        "variants": rows,
    }


def machine() -> dict[str, Any]:
    from train_step import machine as described

    return {**described(), "backend": "gloo"}


def print_table(name: str, result: dict[str, Any]) -> None:
    print(f"\n{name}: batch {result['batch_size']}, {result['kimg']} kimg")
    print(f"  {'variant':<24s}{'sec/kimg':>10s}{'range':>18s}{'speedup':>9s}")
    for variant, row in result["variants"].items():
        low, high = row["sec_per_kimg_range"]
        print(
            f"  {variant:<24s}{row['sec_per_kimg']:>10.3f}"
            f"{f'{low:.3f}-{high:.3f}':>18s}{row['speedup_over_1_thread']:>8.2f}x"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=(*CASES, "all"), default="all")
    parser.add_argument("--repeats", type=int, default=3, help="runs per variant")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    names = list(CASES) if args.case == "all" else [args.case]
    if "dcgan-seed" in names and not FASHION.exists():
        print("skipping dcgan-seed: Fashion-MNIST is not installed", file=sys.stderr)
        names.remove("dcgan-seed")
    # Cases measured before (another --case) keep their figures.
    results = {}
    if args.out.is_file():
        results = json.loads(args.out.read_text()).get("results", {})
    for name in names:
        load_before = os.getloadavg()
        result = measure(CASES[name], args.repeats)
        result["date"] = (
            datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        )
        result["load_average_before"] = load_before
        result["load_average_after"] = os.getloadavg()
        results[name] = result
        print_table(name, result)
    report = {
        "benchmark": "distributed",
        "machine": machine(),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
