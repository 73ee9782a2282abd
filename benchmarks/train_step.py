"""Cost of one ganzoo training step against a bare PyTorch loop of the same model.

The project requires that a training step through ganzoo costs at most 5% more
than a hand-written PyTorch loop for ``dcgan-seed`` on Fashion-MNIST at batch 64,
and at most 10% more for ``mlp`` on the 2-D ring at batch 512.

Both sides run in the same process, on the same modules (built by the recipe's
architecture plugin from the same seed, so the weights start equal), with the
same optimizer settings, the same batch size and the data already in memory. The
bare side is the lecture's train step written out by hand; the ganzoo side is a
:class:`ganzoo.training.Trainer` built from the recipe. Two comparisons are made,
each interleaved with the bare loop block by block after a warm-up:

* ``phases``: the calls :meth:`Trainer.run` makes for one iteration
  (``discriminator_step``, ``generator_step``, ``update_ema`` and the progress
  bookkeeping), repeated by this script, with EMA as in the recipe and toggled;
* ``run``: a real :meth:`Trainer.run` in a temporary run directory. A tracker
  times each tick from inside the loop and runs a bare block between ticks, so
  the tick reports and the loop's own checks are included. Snapshots and
  checkpoints are timed separately and spread over the steps between them at the
  recipe's own ``snapshot_kimg``: that sum is the honest per-step figure.

Run ``python benchmarks/train_step.py --help`` for the options; the results go to
``benchmarks/results/train_step.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import ganzoo
from ganzoo import RunInfo, Tracker
from ganzoo.recipes import Recipe, load_recipe
from ganzoo.training import Trainer, prepare_run_dir
from ganzoo.training import _checkpoint as checkpoint

# Progress is internal to the training package; the benchmark needs it to do the
# same per-step bookkeeping as Trainer.run.
from ganzoo.training._progress import Progress

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "train_step.json"


@dataclasses.dataclass(frozen=True)
class Case:
    """One required comparison: a recipe, its overrides, the bound and the sizes."""

    name: str
    recipe: str
    overrides: tuple[str, ...]
    bound: float
    steps: int  # steps per timed block
    rounds: int  # timed blocks per variant, after one warm-up block


CASES = {
    "dcgan-seed": Case(
        "dcgan-seed", "recipes/base/fashion-mnist.yaml", (), 1.05, steps=2, rounds=8
    ),
    "mlp-ring": Case(
        "mlp-ring",
        "recipes/base/ring.yaml",
        ("train.batch_size=512",),
        1.10,
        steps=5,
        rounds=80,
    ),
}


# The bare loop.


class BareLoop:
    """The lecture's train step in plain PyTorch, on the recipe's own modules."""

    def __init__(
        self,
        recipe: Recipe,
        samples: torch.Tensor,
        shape: Any,
        *,
        channels_last: bool,
    ) -> None:
        """``channels_last``: the weight layout, the trainer's own, so that both
        sides run the same convolution kernels."""
        config = recipe.config
        loss = config["loss"]
        if loss["name"] != "bce" or loss["generator"] != "non-saturating":
            sys.exit(f"{recipe.source}: the bare loop implements only the bce loss")
        if loss["label_smoothing"] or config["regularizers"] or config["constraints"]:
            sys.exit(f"{recipe.source}: the bare loop has no smoothing or regularizers")
        if config["train"]["n_critic"] != 1:
            sys.exit(f"{recipe.source}: the bare loop makes one D step per G step")

        # Same modules and the same initial weights as the Trainer: same seed.
        torch.manual_seed(config["train"]["seed"])
        device = samples.device
        self.generator = recipe.network("generator", shape).to(device)
        self.discriminator = recipe.network("discriminator", shape).to(device)
        if channels_last:
            for network in (self.generator, self.discriminator):
                network.to(memory_format=torch.channels_last)
        self.g_optimizer = adam(self.generator, config["optim"]["generator"])
        self.d_optimizer = adam(self.discriminator, config["optim"]["discriminator"])

        self.samples = samples
        self.batch_size = config["train"]["batch_size"]
        self.latent_dim = self.generator.latent_dim
        self.label_noise = loss["label_noise"]
        self.order = torch.randperm(len(samples), device=device)
        self.position = 0

        # Labels for the combined batch (fakes 0, reals 1) and the generator's
        # target "all real", made once.
        size = self.batch_size
        self.labels = torch.cat([torch.zeros(size), torch.ones(size)]).to(device)
        self.all_real = torch.ones(size, device=device)

    def real_batch(self) -> torch.Tensor:
        """Random indices into the in-memory data: one permutation per epoch."""
        if self.position + self.batch_size > len(self.samples):
            self.order = torch.randperm(len(self.samples), device=self.samples.device)
            self.position = 0
        index = self.order[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return self.samples[index]

    def step(self) -> None:
        size, device = self.batch_size, self.samples.device

        # Discriminator: fakes and reals in one forward pass, noisy labels.
        real = self.real_batch()
        with torch.no_grad():
            fake = self.generator(torch.randn(size, self.latent_dim, device=device))
        logits = self.discriminator(torch.cat([fake, real])).reshape(-1)
        labels = self.labels
        if self.label_noise > 0:
            labels = labels + self.label_noise * torch.rand_like(labels)
        d_loss = F.binary_cross_entropy_with_logits(logits, labels)
        self.d_optimizer.zero_grad()
        d_loss.backward()
        self.d_optimizer.step()

        # Generator: new latents through the frozen discriminator, target real.
        self.discriminator.requires_grad_(False)
        latents = torch.randn(size, self.latent_dim, device=device)
        logits = self.discriminator(self.generator(latents)).reshape(-1)
        g_loss = F.binary_cross_entropy_with_logits(logits, self.all_real)
        self.g_optimizer.zero_grad()
        g_loss.backward()
        self.g_optimizer.step()
        self.discriminator.requires_grad_(True)


def adam(module: torch.nn.Module, options: Mapping[str, Any]) -> torch.optim.Adam:
    if options["name"] != "adam" or options["weight_decay"]:
        sys.exit("the bare loop uses plain Adam, as the benchmarked recipes do")
    return torch.optim.Adam(
        module.parameters(),
        lr=options["lr"],
        betas=tuple(options["betas"]),
        eps=options["eps"],
    )


# The ganzoo side.


def ganzoo_iteration(trainer: Trainer, progress: Progress) -> Callable[[], None]:
    """The body of Trainer.run's loop, without its tick and snapshot checks."""
    batch_size = trainer.train_options["batch_size"]
    n_critic = trainer.train_options["n_critic"]

    def iteration() -> None:
        for _ in range(n_critic):
            progress.add(trainer.discriminator_step(*trainer.next_real()))
            trainer.images_seen += batch_size
        progress.add(trainer.generator_step(batch_size))
        trainer.update_ema()
        trainer.step += 1

    return iteration


class TickTimer(Tracker):
    """Times each tick of Trainer.run from inside the loop, with bare blocks between.

    The time between two ``log_stats`` calls is one tick of ganzoo's loop: its
    steps, its tick report and its per-step checks. A bare block runs inside each
    call, outside that interval. The first tick, which holds the initial snapshot
    and the warm-up, is not counted, nor is the first bare block; its time is
    kept as ``first_tick``.
    """

    name = "benchmark-tick-timer"

    def __init__(self, bare: BareLoop, steps: int, device: torch.device) -> None:
        super().__init__()
        self.bare, self.steps, self.device = bare, steps, device
        self.ganzoo: list[Reading] = []
        self.bare_times: list[Reading] = []
        self.mark: Reading | None = None
        self.started: Reading | None = None
        self.first_tick: Reading | None = None

    def start(self, run: RunInfo) -> None:
        self.started = Reading.now()

    def log_stats(self, stats: Mapping[str, Any], step: int) -> None:
        synchronize(self.device)
        now = Reading.now()
        bare = time_block(self.bare.step, self.steps, self.device)
        if self.mark is not None:
            self.ganzoo.append((now - self.mark) / self.steps)
            self.bare_times.append(bare)
        elif self.started is not None:
            self.first_tick = now - self.started
        self.mark = Reading.now()


# Timing.


@dataclasses.dataclass(frozen=True)
class Reading:
    """Seconds on two clocks: wall time, and CPU time of this process.

    On a shared machine the wall clock also counts the time other processes hold
    the cores; with one thread, the CPU clock counts only this process's work.
    """

    wall: float
    cpu: float

    @classmethod
    def now(cls) -> Reading:
        return cls(time.perf_counter(), time.process_time())

    def __sub__(self, other: Reading) -> Reading:
        return Reading(self.wall - other.wall, self.cpu - other.cpu)

    def __truediv__(self, count: float) -> Reading:
        return Reading(self.wall / count, self.cpu / count)


def median_reading(readings: list[Reading]) -> Reading:
    return Reading(
        statistics.median(r.wall for r in readings),
        statistics.median(r.cpu for r in readings),
    )


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_block(step: Callable[[], None], steps: int, device: torch.device) -> Reading:
    """Seconds per step over ``steps`` consecutive steps."""
    synchronize(device)
    start = Reading.now()
    for _ in range(steps):
        step()
    synchronize(device)
    return (Reading.now() - start) / steps


def summarize(
    name: str,
    times: list[Reading],
    bare: list[Reading],
    bound: float,
    required: bool,
    clock: str,
    extra: Reading | None = None,
) -> dict:
    """Median per step, the ratio of medians and the spread of per-round ratios.

    The verdict uses ``clock``; the other clock's figures are kept for the record.
    ``extra`` is a per-step cost added to the ganzoo side (snapshots and
    checkpoints spread over the steps). ``required`` marks the rows the bound
    applies to: the recipe as written.
    """
    row: dict[str, Any] = {"variant": name, "clock": clock}
    for which in (clock, *(c for c in CLOCKS if c != clock)):
        added = getattr(extra, which) if extra is not None else 0.0
        ours = [getattr(t, which) + added for t in times]
        theirs = [getattr(t, which) for t in bare]
        paired = sorted(g / b for g, b in zip(ours, theirs, strict=True))
        figures = {
            "ms_per_step": 1e3 * statistics.median(ours),
            "bare_ms_per_step": 1e3 * statistics.median(theirs),
            "ratio": statistics.median(ours) / statistics.median(theirs),
            "paired_ratio_min": paired[0],
            "paired_ratio_median": statistics.median(paired),
            "paired_ratio_max": paired[-1],
            "ms_per_block": [round(1e3 * t, 3) for t in ours],
            "bare_ms_per_block": [round(1e3 * t, 3) for t in theirs],
        }
        if which == clock:
            row.update(figures)
        else:
            row[which] = figures
    row.update(bound=bound, passed=row["ratio"] <= bound, required=required)
    return row


CLOCKS = ("cpu", "wall")


def build_trainer(case: Case, run_dir: Path, extra: list[str]) -> Trainer:
    recipe = load_recipe(ROOT / case.recipe, [*case.overrides, *extra])
    prepare_run_dir(recipe, run_dir, resume=False)
    return Trainer(recipe, run_dir, trackers=[])


def ema_variants(recipe_ema: float) -> list[tuple[str, str | None]]:
    """The recipe's EMA first (the required figure), then the other setting."""
    if recipe_ema > 0:
        return [(f"ema {recipe_ema:g} (recipe)", None), ("ema off", "train.ema=0")]
    return [("ema off (recipe)", None), ("ema 0.999", "train.ema=0.999")]


# The two comparisons.


def compare_phases(
    case: Case, extra: list[str], scratch: Path, clock: str
) -> list[dict]:
    """Trainer phases against the bare loop, blocks in rotating order."""
    first = build_trainer(case, scratch / "phases-0", extra)
    bare = BareLoop(
        first.recipe,
        first.real,
        first.shape,
        channels_last=bool(first.speed.channels_last),
    )
    for ours, theirs in zip(
        bare.generator.state_dict().values(),
        first.nets.generator.state_dict().values(),
        strict=True,
    ):
        assert torch.equal(ours, theirs), "the bare generator must start identical"

    # One bare variant and one ganzoo variant per EMA setting.
    variants: list[tuple[str, Callable[[], None]]] = [("bare", bare.step)]
    for index, (label, override) in enumerate(ema_variants(first.train_options["ema"])):
        if index == 0:
            trainer = first
        else:
            run_dir = scratch / f"phases-{index}"
            trainer = build_trainer(case, run_dir, [*extra, override])
        progress = Progress(trainer.run_dir, 1.0, trainer.device, show_bar=False)
        variants.append((f"phases, {label}", ganzoo_iteration(trainer, progress)))
    device = first.device

    # Warm-up, then rounds; each round starts with the next variant.
    times: dict[str, list[Reading]] = {name: [] for name, _ in variants}
    for _, step in variants:
        time_block(step, case.steps, device)
    for round_index in range(case.rounds):
        shift = round_index % len(variants)
        for name, step in variants[shift:] + variants[:shift]:
            times[name].append(time_block(step, case.steps, device))

    return [
        summarize(name, times[name], times["bare"], case.bound, index == 0, clock)
        for index, (name, _) in enumerate(variants[1:])
    ]


def compare_run(case: Case, extra: list[str], scratch: Path, clock: str) -> dict:
    """A real Trainer.run, tick by tick, against bare blocks between the ticks."""
    probe = load_recipe(ROOT / case.recipe, [*case.overrides, *extra]).config["train"]
    batch_size = probe["batch_size"]
    tick_kimg = case.steps * batch_size / 1000
    kimg = (case.rounds + 1) * tick_kimg

    # Ticks of case.steps steps; snapshot and checkpoint only after the last tick.
    overrides = [
        *extra,
        f"train.tick_kimg={tick_kimg}",
        f"train.kimg={kimg}",
        f"train.snapshot_kimg={kimg}",
        f"train.checkpoint_kimg={kimg}",
    ]
    run_dir = scratch / "run"
    trainer = build_trainer(case, run_dir, overrides)
    bare = BareLoop(
        trainer.recipe,
        trainer.real,
        trainer.shape,
        channels_last=bool(trainer.speed.channels_last),
    )
    timer = TickTimer(bare, case.steps, trainer.device)
    trainer.trackers.append(timer)
    time_block(bare.step, case.steps, trainer.device)
    start = time.perf_counter()
    trainer.run(show_bar=False)
    wall = time.perf_counter() - start

    # Snapshot and checkpoint, each as Trainer.run makes them, timed three times.
    progress = Progress(run_dir, kimg, trainer.device, show_bar=False)
    snapshots, checkpoints = [], []
    for _ in range(3):
        begin = Reading.now()
        trainer.snapshot()
        middle = Reading.now()
        checkpoint.save_atomic(trainer.state_dict(progress), run_dir / checkpoint.LAST)
        snapshots.append(middle - begin)
        checkpoints.append(Reading.now() - middle)
    snapshot_cost = median_reading(snapshots)
    checkpoint_cost = median_reading(checkpoints)

    # Spread them over the steps between them at the recipe's own intervals.
    snapshot_steps = probe["snapshot_kimg"] * 1000 / batch_size
    checkpoint_steps = (probe["checkpoint_kimg"] or probe["snapshot_kimg"]) * 1000
    checkpoint_steps /= batch_size
    amortised = Reading(
        *(
            getattr(snapshot_cost, c) / snapshot_steps
            + getattr(checkpoint_cost, c) / checkpoint_steps
            for c in ("wall", "cpu")
        )
    )

    steady = summarize(
        "run, steady", timer.ganzoo, timer.bare_times, case.bound, False, clock
    )
    result = summarize(
        "run, ema as recipe",
        timer.ganzoo,
        timer.bare_times,
        case.bound,
        True,
        clock,
        extra=amortised,
    )
    result.update(
        steady_ms_per_step=steady["ms_per_step"],
        steady_ratio=steady["ratio"],
        snapshot_ms=1e3 * getattr(snapshot_cost, clock),
        checkpoint_ms=1e3 * getattr(checkpoint_cost, clock),
        snapshot_every_steps=snapshot_steps,
        checkpoint_every_steps=checkpoint_steps,
        amortised_ms_per_step=1e3 * getattr(amortised, clock),
        run_wall_sec=wall,
        first_tick_sec=getattr(timer.first_tick, clock, None),
        run_steps=trainer.step,
        ticks_counted=len(timer.ganzoo),
    )
    return result


# Report.


def machine() -> dict[str, Any]:
    model = platform.processor() or "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "ganzoo": ganzoo.__version__,
        "platform": platform.platform(),
    }


def print_table(case: Case, rows: list[dict]) -> None:
    """One line per variant; ``*`` marks the rows the bound applies to."""
    clock = rows[0]["clock"]
    other = next(c for c in CLOCKS if c != clock)
    print(f"\n{case.name}  ({case.recipe} {' '.join(case.overrides)})".rstrip())
    print(
        f"  {'variant':<28} {'ganzoo ms':>10} {'bare ms':>9} {'ratio':>6} "
        f"{'per-round ratio':>15} {other + ' ratio':>10} {'bound':>5}  verdict"
        f"   ({clock} clock, median per step)"
    )
    for row in rows:
        spread = f"{row['paired_ratio_min']:.3f}-{row['paired_ratio_max']:.3f}"
        verdict = "PASS" if row["passed"] else "FAIL"
        mark = "*" if row["required"] else " "
        print(
            f"{mark} {row['variant']:<28} {row['ms_per_step']:>10.2f} "
            f"{row['bare_ms_per_step']:>9.2f} {row['ratio']:>6.3f} {spread:>15} "
            f"{row[other]['ratio']:>10.3f} {row['bound']:>5.2f}  {verdict}"
        )
        if "steady_ratio" in row:
            print(
                f"{'':<4}= steady {row['steady_ms_per_step']:.2f} ms "
                f"(ratio {row['steady_ratio']:.3f}) + snapshot "
                f"{row['snapshot_ms']:.0f} ms / {row['snapshot_every_steps']:.0f} "
                f"steps + checkpoint {row['checkpoint_ms']:.0f} ms / "
                f"{row['checkpoint_every_steps']:.0f} steps "
                f"({row['amortised_ms_per_step']:.3f} ms/step)"
            )
            print(
                f"{'':<4}whole Trainer.run: {row['run_wall_sec']:.1f} s wall for "
                f"{row['run_steps']} steps, bare blocks included"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--case",
        choices=sorted(CASES),
        action="append",
        help="comparison to run (repeatable; default: all)",
    )
    parser.add_argument("--steps", type=int, help="steps per timed block")
    parser.add_argument("--rounds", type=int, help="timed blocks per variant")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch.set_num_threads (default 1)"
    )
    parser.add_argument("--device", default="cpu", help="train.device (default cpu)")
    parser.add_argument(
        "--clock",
        choices=("auto", *CLOCKS),
        default="auto",
        help="clock for the verdict; auto: cpu for one thread on the CPU, else wall",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=RESULTS,
        help=f"JSON results (default {RESULTS.relative_to(ROOT)})",
    )
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    clock = args.clock
    if clock == "auto":
        clock = "cpu" if args.device == "cpu" and args.threads == 1 else "wall"
    extra = [f"train.device={args.device}"]
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()
    results = []
    for name in args.case or list(CASES):
        case = CASES[name]
        case = dataclasses.replace(
            case, steps=args.steps or case.steps, rounds=args.rounds or case.rounds
        )
        begin = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="ganzoo-bench-") as scratch:
            rows = compare_phases(case, extra, Path(scratch), clock)
            rows.append(compare_run(case, extra, Path(scratch), clock))
        print_table(case, rows)
        results.append(
            {
                "case": case.name,
                "recipe": case.recipe,
                "overrides": list(case.overrides),
                "steps_per_block": case.steps,
                "rounds": case.rounds,
                "seconds": round(time.perf_counter() - begin, 1),
                "passed": all(row["passed"] for row in rows if row["required"]),
                "rows": rows,
            }
        )

    record = {
        "benchmark": "train_step",
        "date": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "threads": args.threads,
        "clock": clock,
        "device": args.device,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nwrote {args.output}")
    return 0 if all(result["passed"] for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
