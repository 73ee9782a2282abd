"""Time and memory of ganzoo's k-NN pass against prdc and torch-fidelity.

The project requires that ``precision_recall_density_coverage`` (all four
metrics) is at least 3x faster than ``prdc.compute_prdc`` (all four) and at least
2x faster than torch-fidelity's precision/recall, on 10,000 real and 10,000 fake
features of dimension 2,048, in the same run on the same machine, with a peak
memory increase under 2 GB.

The features are standard normal (float32, fixed seed), real and fake from the
same distribution as in prdc's README. Every measurement runs in a fresh
subprocess that first makes the features, then times one call (wall clock and
process CPU time) and takes the peak resident set size (``VmHWM``, reset just
before the call) minus the resident size just before the call: the memory the
call itself added. Rounds repeat all methods in a rotated order, so that a
change in the machine's load touches every method; the verdict compares medians
over the rounds.

The methods, each with its own settings:

* ``ganzoo``: ``precision_recall_density_coverage(real, fake)`` with its
  defaults (k_pr 3, k_dc 5, block 1024 on the CPU), everything computed in the
  call;
* ``ganzoo-cached-reference``: the same call given the real set's k-NN radii
  (``real_radii``), computed by ``knn_radii`` before the clock starts. This is
  how ``ganzoo eval`` runs once a reference has been scored: the radii are
  cached on disk beside the reference features, so each later evaluation (each
  seed, each checkpoint, each run) computes only the fake radii and the cross
  pass;
* ``prdc``: ``compute_prdc(real, fake, nearest_k=5)`` on float32 arrays; prdc
  calls sklearn's ``pairwise_distances`` with ``n_jobs=8`` (fixed in its code);
* ``torch-fidelity``: ``prc_features_to_metric(fake, real)`` with its defaults,
  ``prc_neighborhood=3``, ``prc_batch_size=10000``, ``save_cpu_ram=False`` (full
  distance matrices, its fastest mode);
* ``torch-fidelity-streamed``: the same with ``save_cpu_ram=True``, which
  streams the matrices in blocks and computes the real x fake one twice;
* ``products-only``: no metric, only as many float32 matrix products as an
  exact pass cannot do without: real x fake whole, and a set against itself on
  one side of the diagonal for each set, which is as much work as a second real
  x fake product. It runs the real x fake product twice, in strips of 2,048
  rows, with the two extra columns of ganzoo's tiles. Its time bounds what an
  exact method built on these products can reach on the machine; the summary
  reports torch-fidelity's time over it as the ceiling of the speed-up.

Known limit: on a CPU the float32 matrix products dominate both this pass and
torch-fidelity. torch-fidelity forms three N x N products (real x real, fake x
fake, real x fake); an exact pass needs at least two, since a set against itself
is symmetric, and this one needs a little over two. Computing everything in the
call, the 2x over torch-fidelity is therefore within reach only where its k-th
value selection costs about as much as a product, or where everything besides
the two products costs almost nothing: ``products-only`` measures that bound.
With the reference radii cached, the pass needs about one and a half.

Run ``python benchmarks/prdc.py --help`` for the options; results go to
``benchmarks/results/prdc.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "prdc.json"

# This file is named like the package it measures: keep its folder off the path
# so that `import prdc` finds the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != RESULTS.parent.parent]

METHODS = (
    "ganzoo",
    "ganzoo-cached-reference",
    "prdc",
    "torch-fidelity",
    "torch-fidelity-streamed",
    "products-only",
)
# (ours, reference, required speed-up)
SPEEDUPS = (
    ("ganzoo", "prdc", 3.0),
    ("ganzoo", "torch-fidelity", 2.0),
    ("ganzoo-cached-reference", "torch-fidelity", 2.0),
)
PEAK_LIMIT_MB = 2048.0


# One measurement, in its own process.


def features(n: int, dim: int, seed: int) -> tuple[Any, Any]:
    import torch

    generator = torch.Generator().manual_seed(seed)
    real = torch.randn(n, dim, generator=generator)
    fake = torch.randn(n, dim, generator=generator)
    return real, fake


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def resident_mb() -> float:
    """Current resident set size of this process, after resetting its peak.

    The reset (Linux's ``clear_refs`` 5) keeps work done before the timed call,
    such as computing cached radii, out of the call's peak.
    """
    Path("/proc/self/clear_refs").write_text("5")
    return _status_mb("VmRSS")


def peak_mb() -> float:
    """Peak resident set size since the last reset."""
    return _status_mb("VmHWM")


def measure(method: str, n: int, dim: int, seed: int) -> dict[str, Any]:
    """Make the features, then time one call of ``method`` on them."""
    import torch

    real, fake = features(n, dim, seed)
    if method.startswith("ganzoo"):
        from ganzoo.evaluation._knn import (
            knn_radii,
            precision_recall_density_coverage,
        )

        radii = knn_radii(real, (3, 5)) if method == "ganzoo-cached-reference" else None

        def call() -> dict[str, float]:
            return precision_recall_density_coverage(real, fake, real_radii=radii)

    elif method == "prdc":
        from prdc import compute_prdc

        real_np, fake_np = real.numpy(), fake.numpy()  # shared memory, float32

        def call() -> dict[str, float]:
            with contextlib.redirect_stdout(io.StringIO()):  # it prints the sizes
                scores = compute_prdc(
                    real_features=real_np, fake_features=fake_np, nearest_k=5
                )
            return {key: float(value) for key, value in scores.items()}

    elif method == "products-only":

        def call() -> dict[str, float]:
            n = real.shape[0]
            rows, cols = (torch.cat([x, torch.ones(n, 2)], 1) for x in (real, fake))
            out = torch.empty(2048, n)
            for _ in range(2):
                for r0 in range(0, n, 2048):
                    strip = rows[r0 : r0 + 2048]
                    torch.mm(strip, cols.T, out=out[: strip.shape[0]])
            return {}

    else:
        from torch_fidelity.metric_prc import prc_features_to_metric

        streamed = method == "torch-fidelity-streamed"

        def call() -> dict[str, float]:
            # Convention: input1 (features_1) is generated, input2 real.
            scores = prc_features_to_metric(
                fake,
                real,
                prc_neighborhood=3,
                prc_batch_size=10000,
                save_cpu_ram=streamed,
                verbose=False,
            )
            return {"precision": scores["precision"], "recall": scores["recall"]}

    before = resident_mb()
    cpu = time.process_time()
    start = time.perf_counter()
    scores = call()
    wall = time.perf_counter() - start
    return {
        "method": method,
        "wall_s": round(wall, 3),
        "cpu_s": round(time.process_time() - cpu, 3),
        "peak_increase_mb": round(peak_mb() - before, 1),
        "threads": torch.get_num_threads(),
        "scores": scores,
    }


# The driver.


def run_worker(method: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        method,
        f"--n={args.n}",
        f"--dim={args.dim}",
        f"--seed={args.seed}",
    ]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.exit(f"{method} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def versions() -> dict[str, str]:
    import numpy
    import prdc
    import sklearn
    import torch
    import torch_fidelity

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_fidelity": torch_fidelity.__version__,
        "prdc": getattr(prdc, "__version__", "0.2"),
        "scikit_learn": sklearn.__version__,
        "numpy": numpy.__version__,
    }


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
    }


def summarize(runs: list[dict[str, Any]], methods: list[str]) -> dict[str, Any]:
    """Medians per method, speed-ups over the references, and agreement."""
    by_method = {m: [r for r in runs if r["method"] == m] for m in methods}
    summary: dict[str, Any] = {}
    for method, rows in by_method.items():
        walls = [r["wall_s"] for r in rows]
        summary[method] = {
            "wall_s": walls,
            "median_wall_s": round(statistics.median(walls), 3),
            "median_cpu_s": round(statistics.median(r["cpu_s"] for r in rows), 3),
            "peak_increase_mb": max(r["peak_increase_mb"] for r in rows),
            "scores": rows[0]["scores"],
        }

    # Speed-ups within each round, whose methods ran close together in time,
    # so that a change of the machine's load between rounds cancels out.
    ours = summary["ganzoo"]
    checks = []
    for own, reference, factor in SPEEDUPS:
        if own not in summary or reference not in summary:
            continue
        pairs = list(zip(by_method[reference], by_method[own], strict=True))
        per_round = [ref["wall_s"] / own["wall_s"] for ref, own in pairs]
        cpu_ratio = statistics.median(ref["cpu_s"] / own["cpu_s"] for ref, own in pairs)
        ratio = statistics.median(per_round)
        checks.append(
            {
                "check": f"{own} at least {factor:g}x faster than {reference}",
                "ratio": round(ratio, 2),
                "ratio_per_round": [round(r, 2) for r in per_round],
                "cpu_time_ratio": round(cpu_ratio, 2),
                "passed": ratio >= factor,
            }
        )
    ceiling = None
    if "products-only" in summary and "torch-fidelity" in summary:
        pairs = zip(
            by_method["torch-fidelity"], by_method["products-only"], strict=True
        )
        per_round = [ref["wall_s"] / own["wall_s"] for ref, own in pairs]
        ceiling = {
            "what": "torch-fidelity over the products alone: the speed-up an exact "
            "pass could reach if everything besides its matrix products were free",
            "ratio": round(statistics.median(per_round), 2),
            "ratio_per_round": [round(r, 2) for r in per_round],
        }
    checks.append(
        {
            "check": f"ganzoo peak memory increase under {PEAK_LIMIT_MB:g} MB",
            "peak_increase_mb": ours["peak_increase_mb"],
            "passed": ours["peak_increase_mb"] < PEAK_LIMIT_MB,
        }
    )

    # The same definitions should give the same numbers.
    agreement = {}
    if "prdc" in summary:
        for key in ("density", "coverage"):
            agreement[f"{key} vs prdc"] = abs(
                ours["scores"][key] - summary["prdc"]["scores"][key]
            )
    for method in ("torch-fidelity", "torch-fidelity-streamed"):
        if method in summary:
            for key in ("precision", "recall"):
                agreement[f"{key} vs {method}"] = abs(
                    ours["scores"][key] - summary[method]["scores"][key]
                )
    return {
        "methods": summary,
        "checks": checks,
        "ceiling": ceiling,
        "agreement": agreement,
    }


def print_table(summary: dict[str, Any]) -> None:
    print(
        f"\n{'method':26s} {'wall s per round':>22s} {'median':>8s} {'cpu s':>8s}"
        f" {'peak MB':>8s}  scores"
    )
    for method, row in summary["methods"].items():
        walls = " ".join(f"{w:6.1f}" for w in row["wall_s"])
        scores = " ".join(f"{k[:4]}={v:.4f}" for k, v in row["scores"].items())
        print(
            f"{method:26s} {walls:>22s} {row['median_wall_s']:8.1f}"
            f" {row['median_cpu_s']:8.1f} {row['peak_increase_mb']:8.0f}  {scores}"
        )
    print()
    for check in summary["checks"]:
        verdict = "PASS" if check["passed"] else "FAIL"
        if "ratio" in check:
            figure = (
                f"{check['ratio']} (median of rounds {check['ratio_per_round']}; "
                f"CPU time {check['cpu_time_ratio']})"
            )
        else:
            figure = f"{check['peak_increase_mb']} MB"
        print(f"{verdict}  {check['check']}: {figure}")
    if ceiling := summary["ceiling"]:
        print(
            f"      ceiling (torch-fidelity over products-only): {ceiling['ratio']} "
            f"(rounds {ceiling['ratio_per_round']})"
        )
    for name, difference in summary["agreement"].items():
        print(f"      |difference| {name}: {difference:.2e}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10000, help="points per set")
    parser.add_argument("--dim", type=int, default=2048, help="feature dimension")
    parser.add_argument("--seed", type=int, default=0, help="seed of the features")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of all methods")
    parser.add_argument(
        "--method",
        choices=METHODS,
        action="append",
        help="method to run (repeatable; default: all; ganzoo always runs)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=RESULTS,
        help=f"JSON results (default {RESULTS.relative_to(ROOT)})",
    )
    parser.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(measure(args.worker, args.n, args.dim, args.seed)))
        return 0

    methods = list(dict.fromkeys(["ganzoo", *(args.method or METHODS)]))
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()
    runs = []
    for round_ in range(args.rounds):
        # Rotate the order so that no method always runs first.
        shift = round_ % len(methods)
        for method in methods[shift:] + methods[:shift]:
            row = run_worker(method, args)
            row["round"] = round_
            runs.append(row)
            print(
                f"round {round_ + 1}/{args.rounds}  {method:24s} "
                f"{row['wall_s']:7.1f} s  peak +{row['peak_increase_mb']:.0f} MB",
                flush=True,
            )

    summary = summarize(runs, methods)
    print_table(summary)
    record = {
        "benchmark": "prdc",
        "date": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions(),
        "protocol": {
            "n_real": args.n,
            "n_fake": args.n,
            "dim": args.dim,
            "features": "standard normal, float32, real then fake from one generator",
            "seed": args.seed,
            "rounds": args.rounds,
            "k_pr": 3,
            "k_dc": 5,
            "timing": "wall clock of one call in a fresh process; speed-up is the "
            "median over rounds of the ratio within a round",
            "memory": "peak RSS (VmHWM, reset just before the call) minus RSS "
            "just before the call",
            "prdc": "compute_prdc(nearest_k=5); sklearn pairwise_distances, n_jobs=8",
            "torch_fidelity": "prc_features_to_metric, prc_batch_size=10000; "
            "save_cpu_ram False (torch-fidelity) and True (-streamed)",
        },
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "runs": runs,
        **summary,
        "passed": all(check["passed"] for check in summary["checks"]),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nwrote {args.output}")
    return 0 if record["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
