"""Time of ``ganzoo eval`` against torch-fidelity's command line on the same samples.

The project requires a figure for what ``ganzoo eval`` of an existing checkpoint,
with the reference features already cached, costs next to the usual route
without ganzoo: write the same generated samples as PNG files and score the two
folders with torch-fidelity's own command line. This script reports the ratio.

Everything happens in a scratch folder, with ``GANZOO_CACHE`` and ``TORCH_HOME``
pointing inside it and no GPU visible (``CUDA_VISIBLE_DEVICES=""``), so the
user's caches are never touched. Setup, not part of the comparison:

1. train ``recipes/fashion-mnist/gan.yaml`` with ``train.kimg=2`` once;
2. run ``ganzoo eval`` once on that run, which fills ganzoo's feature cache;
3. write the reference split (Fashion-MNIST test, 10,000 images) as PNG files.

Then each round, every command in a fresh process:

* ganzoo: ``ganzoo eval RECIPE train.kimg=2 eval.metrics=[fid,kid,is,prdc]
  --run-dir RUN``, which generates 10,000 samples in memory and scores FID, KID,
  IS, precision/recall and, in the same k-NN pass, density/coverage (which
  torch-fidelity does not have);
* torch-fidelity: ``ganzoo sample RUN --n 10000 --seed 0 --out x.npy`` (the same
  samples ``ganzoo eval`` generates), the 8-bit PNG folder written from it with
  PIL, then torch-fidelity's ``main()`` with ``--fid --kid --isc --prc`` and the
  same ``fashion-classifier`` extractor, once with ``--input2-cache-name`` (its
  real side cached too, after one untimed warm-up) and once without (it
  extracts the 10,000 real images again).

The two groups alternate which runs first from round to round. The ratios are
torch-fidelity's route over ``ganzoo eval``, with the medians over the rounds and
the range of the per-round ratios. The scores of both routes are compared too.

Run ``python benchmarks/eval_vs_fidelity.py --help`` for the options; the
results go to ``benchmarks/results/eval_vs_fidelity.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import functools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "eval_vs_fidelity.json"

RECIPE = "recipes/fashion-mnist/gan.yaml"
TRAIN_OVERRIDES = ("train.kimg=2",)
EVAL_OVERRIDES = (*TRAIN_OVERRIDES, "eval.metrics=[fid,kid,is,prdc]")
N_FAKE = 10000
EVAL_SEED = 0
EXTRACTOR = "fashion-classifier"
FIDELITY_CACHE_NAME = "fashion-mnist-test"

# torch-fidelity's command line, with ganzoo's extractor registered beforehand:
# the module registers it on import, and the parser lists the names it knows.
FIDELITY_MAIN = (
    "import sys\n"
    "import ganzoo_plugins.feature_extractors.classifier\n"
    "from torch_fidelity.fidelity import main\n"
    "sys.argv[0] = 'fidelity'\n"
    "main()\n"
)

# Record keys of ganzoo against the keys of torch-fidelity's JSON output.
SAME_SCORES = {
    "fid": "frechet_inception_distance",
    "kid": "kernel_inception_distance_mean",
    "kid_std": "kernel_inception_distance_std",
    "is": "inception_score_mean",
    "is_std": "inception_score_std",
    "precision": "precision",
    "recall": "recall",
}

# The steps of one round, and the routes built from them.
GANZOO = "ganzoo eval"
SAMPLE = "ganzoo sample (npy)"
PNG = "png write"
CACHED = "fidelity cli, real cached"
UNCACHED = "fidelity cli, no cache"
ROUTES = {
    "(i) cli, real side cached": (CACHED,),
    "(ii) png write + cli, real side cached": (PNG, CACHED),
    "(iii) cli, no cache": (UNCACHED,),
    "(iii) png write + cli, no cache": (PNG, UNCACHED),
    "(iv) sample + png write + cli, real side cached": (SAMPLE, PNG, CACHED),
    "(iv) sample + png write + cli, no cache": (SAMPLE, PNG, UNCACHED),
}


# Timing.


@dataclasses.dataclass(frozen=True)
class Reading:
    """Seconds on two clocks: wall time, and the CPU time (user + system) spent.

    For a subprocess the CPU time is that of the child and of every process it
    waited for (torch-fidelity's data loader workers included). On a shared
    machine the wall clock also counts the time other processes hold the cores.
    """

    wall: float
    cpu: float

    def as_dict(self) -> dict[str, float]:
        return {"wall_sec": round(self.wall, 3), "cpu_sec": round(self.cpu, 3)}


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_timed(
    label: str, command: Sequence[str], env: dict[str, str]
) -> tuple[Reading, str]:
    """Run ``command`` from the repository root; its time and its stdout.

    A failing command ends the benchmark with its exit status and the end of
    its stderr: a figure from a command that did not do its work means nothing.
    """
    cpu_before = children_cpu()
    start = time.perf_counter()
    done = subprocess.run(
        list(command), cwd=ROOT, env=env, capture_output=True, text=True
    )
    reading = Reading(time.perf_counter() - start, children_cpu() - cpu_before)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        sys.exit(f"{label}: exit status {done.returncode}: {' '.join(command)}\n{tail}")
    return reading, done.stdout


def time_in_process(action: Any) -> Reading:
    cpu_before = time.process_time()
    start = time.perf_counter()
    action()
    return Reading(time.perf_counter() - start, time.process_time() - cpu_before)


# The commands.


@dataclasses.dataclass(frozen=True)
class Scratch:
    """The scratch folder's layout."""

    root: Path

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def real(self) -> Path:
        return self.root / "real-png"

    @property
    def fake(self) -> Path:
        return self.root / "fake-png"

    @property
    def samples(self) -> Path:
        return self.root / "samples.npy"

    @property
    def fidelity_cache(self) -> Path:
        return self.root / "fidelity-cache"

    def results(self, name: str) -> Path:
        return self.root / "results" / name

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            GANZOO_CACHE=str(self.root / "ganzoo-cache"),
            TORCH_HOME=str(self.root / "torch-home"),
            CUDA_VISIBLE_DEVICES="",
        )
        return env


def ganzoo(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "ganzoo", *arguments]


def eval_command(scratch: Scratch, results: Path) -> list[str]:
    return ganzoo(
        "eval",
        RECIPE,
        *EVAL_OVERRIDES,
        "--run-dir",
        str(scratch.run),
        "--results",
        str(results),
        "--progress",
        "lines",
    )


def fidelity_command(scratch: Scratch, batch_size: int, cached: bool) -> list[str]:
    """torch-fidelity's CLI: generated folder as input1, real folder as input2."""
    command = [
        sys.executable,
        "-c",
        FIDELITY_MAIN,
        "--input1",
        str(scratch.fake),
        "--input2",
        str(scratch.real),
        "--cpu",
        "--feature-extractor",
        EXTRACTOR,
        "--fid",
        "--kid",
        "--isc",
        "--prc",
        "--batch-size",
        str(batch_size),
        "--cache-root",
        str(scratch.fidelity_cache),
        "--json",
        "--silent",
    ]
    if cached:
        command += ["--input2-cache-name", FIDELITY_CACHE_NAME]
    return command


def read_record(folder: Path) -> dict[str, Any]:
    """The one evaluation record ``ganzoo eval`` wrote into ``folder``."""
    records = sorted(folder.glob("*.json"))
    if len(records) != 1:
        sys.exit(f"{folder}: expected one evaluation record, found {len(records)}")
    record = json.loads(records[0].read_text())
    if record["status"] != "ok":
        sys.exit(f"{records[0]}: status {record['status']}: {record.get('errors')}")
    return record


def parse_fidelity(stdout: str) -> dict[str, float]:
    """The metrics torch-fidelity printed with ``--json``."""
    start = stdout.find("{")
    if start < 0:
        sys.exit(f"torch-fidelity printed no JSON:\n{stdout[-2000:]}")
    return {key: float(value) for key, value in json.loads(stdout[start:]).items()}


def write_pngs(images: np.ndarray, folder: Path) -> None:
    """One 8-bit grayscale PNG per image of an (N, H, W) uint8 array."""
    from PIL import Image

    folder.mkdir(parents=True)
    for index, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{index:05d}.png")


def to_levels(images: np.ndarray) -> np.ndarray:
    """(N, 1, H, W) floats in [0, 1] to (N, H, W) uint8, rounded as ganzoo does."""
    return np.rint(np.clip(images[:, 0], 0.0, 1.0) * 255).astype(np.uint8)


def write_fake_pngs(scratch: Scratch) -> None:
    """The timed PNG step: read the sampled array, quantise, write the folder."""
    write_pngs(to_levels(np.load(scratch.samples)), scratch.fake)


def check_fake_levels(scratch: Scratch) -> bool:
    """Whether the PNG levels are exactly the 8-bit samples ``ganzoo eval`` scores."""
    import torch

    from ganzoo.evaluation._scoring import quantize

    samples = torch.from_numpy(np.load(scratch.samples))
    ganzoo_levels = (quantize(samples) * 255).round().to(torch.uint8)[:, 0]
    return bool(np.array_equal(ganzoo_levels.numpy(), to_levels(samples.numpy())))


def write_real_pngs(scratch: Scratch, split: str, count: int) -> Reading:
    """The reference split as PNG files, from ganzoo's own data set plugin."""
    from ganzoo.recipes import load_recipe

    def write() -> None:
        recipe = load_recipe(ROOT / RECIPE, list(TRAIN_OVERRIDES))
        samples = recipe.dataset().load(split).samples.numpy()
        levels = to_levels(samples)
        if np.abs(levels / 255.0 - samples[:, 0]).max() > 1e-6:
            sys.exit(f"the {split} split is not 8-bit data; its PNGs would differ")
        if len(levels) != count:
            sys.exit(f"the {split} split has {len(levels)} images, ganzoo used {count}")
        write_pngs(levels, scratch.real)

    shutil.rmtree(scratch.real, ignore_errors=True)
    return time_in_process(write)


# The benchmark.


def set_up(scratch: Scratch, env: dict[str, str]) -> tuple[dict[str, Any], dict]:
    """Train once, warm ganzoo's cache once, write the real PNG folder once."""
    setup: dict[str, Any] = {}
    if (scratch.run / "final.pt").is_file():
        print(f"setup: using the finished run {scratch.run}", flush=True)
    else:
        command = ganzoo(
            "train", RECIPE, *TRAIN_OVERRIDES, "--run-dir", str(scratch.run)
        )
        print(f"setup: {' '.join(command[2:])}", flush=True)
        reading, _ = run_timed("train", [*command, "--progress", "lines"], env)
        setup["train"] = reading.as_dict()

    print("setup: ganzoo eval, filling the feature cache", flush=True)
    results = scratch.results("warm-up")
    shutil.rmtree(results, ignore_errors=True)
    reading, _ = run_timed("warm-up eval", eval_command(scratch, results), env)
    record = read_record(results)
    reference = record["protocol"]["reference"]
    setup["warm_up_eval"] = {**reading.as_dict(), "cache": reference["cache"]}

    print(f"setup: {reference['split']} split as PNG files", flush=True)
    reading = write_real_pngs(scratch, reference["split"], reference["n_real"])
    setup["real_png_write"] = reading.as_dict()
    return setup, record


def ganzoo_group(scratch: Scratch, env: dict[str, str], index: int) -> dict[str, Any]:
    results = scratch.results(f"round-{index}")
    shutil.rmtree(results, ignore_errors=True)
    reading, _ = run_timed(GANZOO, eval_command(scratch, results), env)
    record = read_record(results)
    cache = record["protocol"]["reference"]["cache"]
    if cache != "hit":
        sys.exit(f"round {index}: ganzoo's reference features were a cache {cache}")
    scores = {key: record[key] for key in (*SAME_SCORES, "density", "coverage")}
    return {GANZOO: reading, "scores": {GANZOO: scores}, "extra": {}}


def fidelity_group(
    scratch: Scratch, env: dict[str, str], index: int, batch_size: int
) -> dict[str, Any]:
    """Sample, write the PNGs, then the CLI with and without its real-side cache."""
    found: dict[str, Any] = {"scores": {}, "extra": {}}
    scratch.samples.unlink(missing_ok=True)
    shutil.rmtree(scratch.fake, ignore_errors=True)
    command = ganzoo(
        "sample",
        str(scratch.run),
        "--n",
        str(N_FAKE),
        "--seed",
        str(EVAL_SEED),
        "--out",
        str(scratch.samples),
    )
    found[SAMPLE], _ = run_timed(SAMPLE, command, env)
    found[PNG] = time_in_process(lambda: write_fake_pngs(scratch))

    # The first round fills torch-fidelity's cache of the real side, untimed.
    if index == 0:
        command = fidelity_command(scratch, batch_size, cached=True)
        reading, _ = run_timed("fidelity warm-up", command, env)
        found["extra"]["fidelity_warm_up"] = reading.as_dict()
        found["extra"]["png_levels_equal_ganzoo"] = check_fake_levels(scratch)

    variants = [(CACHED, True), (UNCACHED, False)]
    for name, cached in variants if index % 2 == 0 else variants[::-1]:
        command = fidelity_command(scratch, batch_size, cached)
        found[name], stdout = run_timed(name, command, env)
        found["scores"][name] = parse_fidelity(stdout)
    return found


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians and ranges per step, and each route's ratio to ``ganzoo eval``."""
    steps = {}
    for name in (GANZOO, SAMPLE, PNG, CACHED, UNCACHED):
        steps[name] = {}
        for clock in ("wall", "cpu"):
            seconds = [getattr(entry[name], clock) for entry in rounds]
            steps[name][clock] = {
                "median_sec": round(statistics.median(seconds), 3),
                "min_sec": round(min(seconds), 3),
                "max_sec": round(max(seconds), 3),
                "per_round_sec": [round(value, 3) for value in seconds],
            }

    routes = {}
    for route, parts in ROUTES.items():
        routes[route] = {"steps": list(parts)}
        for clock in ("wall", "cpu"):
            ours = [getattr(entry[GANZOO], clock) for entry in rounds]
            theirs = [
                sum(getattr(entry[part], clock) for part in parts) for entry in rounds
            ]
            paired = sorted(t / o for t, o in zip(theirs, ours, strict=True))
            routes[route][clock] = {
                "median_sec": round(statistics.median(theirs), 3),
                "ratio": round(statistics.median(theirs) / statistics.median(ours), 3),
                "per_round_ratio_min": round(paired[0], 3),
                "per_round_ratio_max": round(paired[-1], 3),
            }
    return {"steps": steps, "routes": routes}


def compare_scores(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Each score of both routes, their difference, and the spread over rounds."""
    table = {}
    for ours_key, theirs_key in SAME_SCORES.items():
        ours = [entry["scores"][GANZOO][ours_key] for entry in rounds]
        row: dict[str, Any] = {"ganzoo": ours[0], "torch_fidelity_key": theirs_key}
        values = list(ours)
        for name in (CACHED, UNCACHED):
            theirs = [entry["scores"][name][theirs_key] for entry in rounds]
            row[name] = theirs[0]
            values += theirs
        difference = row[CACHED] - row["ganzoo"]
        row["difference"] = difference
        scale = max(abs(row["ganzoo"]), abs(row[CACHED]))
        row["relative_difference"] = difference / scale if scale else 0.0
        row["spread_over_all_runs"] = max(values) - min(values)
        table[ours_key] = row
    for only_ours in ("density", "coverage"):
        table[only_ours] = {
            "ganzoo": rounds[0]["scores"][GANZOO][only_ours],
            "torch_fidelity_key": None,
        }
    return table


def run_rounds(
    scratch: Scratch, env: dict[str, str], rounds: int, batch_size: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rounds of both groups, the group that starts alternating."""
    found, extra = [], {}
    for index in range(rounds):
        groups = [
            functools.partial(ganzoo_group, scratch, env, index),
            functools.partial(fidelity_group, scratch, env, index, batch_size),
        ]
        entry: dict[str, Any] = {"scores": {}, "order": []}
        for group in groups if index % 2 == 0 else groups[::-1]:
            result = group()
            entry["scores"].update(result.pop("scores"))
            extra.update(result.pop("extra"))
            entry["order"] += list(result)
            entry.update(result)
        found.append(entry)
        print(
            f"round {index + 1}/{rounds}: "
            + "  ".join(f"{name} {entry[name].wall:.1f}s" for name in entry["order"]),
            flush=True,
        )
    return found, extra


# Report.


def machine() -> dict[str, Any]:
    import PIL
    import torch
    import torch_fidelity
    from train_step import machine as described

    return {
        **described(),
        "gpu": None,  # hidden from every command (CUDA_VISIBLE_DEVICES="")
        "torch_threads": torch.get_num_threads(),
        "torch_fidelity": torch_fidelity.__version__,
        "pillow": PIL.__version__,
    }


def print_report(summary: dict[str, Any], scores: dict[str, Any], rounds: int) -> None:
    print(f"\nsteps, {rounds} rounds (median, min-max over rounds)")
    print(f"  {'step':<28} {'wall s':>8} {'wall min-max':>15} {'cpu s':>8}")
    for name, figures in summary["steps"].items():
        wall, cpu = figures["wall"], figures["cpu"]
        spread = f"{wall['min_sec']:.1f}-{wall['max_sec']:.1f}"
        print(
            f"  {name:<28} {wall['median_sec']:>8.1f} {spread:>15} "
            f"{cpu['median_sec']:>8.1f}"
        )

    print("\ntorch-fidelity route / ganzoo eval (ratio of medians, per-round range)")
    print(f"  {'route':<48} {'wall':>6} {'range':>12} {'cpu':>6} {'range':>12}")
    for route, figures in summary["routes"].items():
        cells = []
        for clock in ("wall", "cpu"):
            f = figures[clock]
            spread = f"{f['per_round_ratio_min']:.2f}-{f['per_round_ratio_max']:.2f}"
            cells.append(f"{f['ratio']:>6.2f} {spread:>12}")
        print(f"  {route:<48} {' '.join(cells)}")

    print("\nscores (first round)")
    print(
        f"  {'score':<10} {'ganzoo':>14} {'torch-fidelity':>14} {'relative diff':>14}"
    )
    for key, row in scores.items():
        if row["torch_fidelity_key"] is None:
            print(f"  {key:<10} {row['ganzoo']:>14.6g} {'-':>14} {'(ganzoo only)':>14}")
            continue
        print(
            f"  {key:<10} {row['ganzoo']:>14.7g} {row[CACHED]:>14.7g} "
            f"{row['relative_difference']:>14.2e}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds", type=int, default=2, help="timed rounds of each side (default 2)"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=1000,
        help="torch-fidelity's --batch-size (default 1000, ganzoo's own batch)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="keep the scratch files here; a finished run in it is not trained "
        "again (default: a temporary folder, removed at the end)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=RESULTS,
        help=f"JSON results (default {RESULTS.relative_to(ROOT)})",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    started = datetime.datetime.now(datetime.timezone.utc)
    begin = time.perf_counter()
    load_before = os.getloadavg()
    if args.work_dir is not None:
        args.work_dir.mkdir(parents=True, exist_ok=True)
        folder = contextlib.nullcontext(str(args.work_dir.resolve()))
    else:
        folder = tempfile.TemporaryDirectory(prefix="ganzoo-bench-")
    with folder as root:
        scratch = Scratch(Path(root))
        env = scratch.environment()
        setup, warm_record = set_up(scratch, env)
        found, extra = run_rounds(scratch, env, args.rounds, args.batch_size)
        commands = {
            GANZOO: eval_command(scratch, scratch.results("round-N"))[2:],
            CACHED: fidelity_command(scratch, args.batch_size, True)[3:],
            UNCACHED: fidelity_command(scratch, args.batch_size, False)[3:],
        }

    summary = summarize(found)
    scores = compare_scores(found)
    setup["fidelity_warm_up"] = extra["fidelity_warm_up"]
    print_report(summary, scores, args.rounds)

    record = {
        "benchmark": "eval_vs_fidelity",
        "date": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "seconds": round(time.perf_counter() - begin, 1),
        "recipe": RECIPE,
        "overrides": list(EVAL_OVERRIDES),
        "n_fake": N_FAKE,
        "n_real": warm_record["protocol"]["n_real"],
        # The warm-up filled the cache ("miss"); every timed round found it ("hit").
        "reference": {
            key: value
            for key, value in warm_record["protocol"]["reference"].items()
            if key != "cache"
        },
        "ganzoo_cache_in_rounds": "hit",
        "feature_extractor": warm_record["protocol"]["feature_extractor"],
        "fidelity_batch_size": args.batch_size,
        "rounds": args.rounds,
        "commands": {name: " ".join(command) for name, command in commands.items()},
        "fidelity_wrapper": f"python -c {FIDELITY_MAIN!r} ARGUMENTS",
        "png_levels_equal_ganzoo": extra["png_levels_equal_ganzoo"],
        "setup": setup,
        "steps": summary["steps"],
        "routes": summary["routes"],
        "scores": scores,
        "round_order": [entry["order"] for entry in found],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
