"""``ganzoo eval``: train if needed, generate in memory, score, and write a record.

Each seed is its own run (the seed is part of the recipe hash), so a finished
run is found again by its hash and never trained twice. A seed whose training
diverged is not retried: it becomes a failed entry of the record, which the
leaderboard shows but does not rank.
"""

from __future__ import annotations

import logging
import math
import statistics
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .._errors import GanzooError
from ..recipes import Recipe, load_recipe
from ..training import (
    FINAL,
    TrainingDiverged,
    default_run_dir,
    generate,
    load_generator,
    read_run_info,
    software_versions,
    train_recipe,
)
from ..training._conditioning import takes_labels
from ..training._rundir import has_resumable_state, holds_run
from ..training._sampling import LoadedGenerator, balanced_labels
from ._scoring import NonFiniteError, Scorer, quantize

log = logging.getLogger(__name__)


@dataclass
class SeedResult:
    seed: int
    run_dir: Path | None
    results: dict[str, dict[str, Any]]  # "final"/"best" -> scores (and kimg)
    protocol: dict[str, Any]
    training: dict[str, Any]
    status: str = "ok"
    error: str | None = None


def scorer_for(recipe: Recipe, device: str | None = None) -> Scorer:
    """Resolve the recipe's extractor and metrics against its data shape."""
    dataset = recipe.dataset()
    settings = recipe.config["eval"]
    shape = dataset.data_shape()
    generator = recipe.network("generator", shape)
    return Scorer.create(
        recipe.registry,
        shape,
        dataset_name=dataset.name,
        extractor=settings["feature_extractor"],
        metrics=settings["metrics"],
        device=device,
        conditional=takes_labels(generator) > 0,
    )


def score_checkpoint(
    loaded: LoadedGenerator,
    scorer: Scorer,
    real,
    reference: Mapping[str, Any],
    settings: Mapping[str, Any],
    label: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Generate ``n_fake`` samples in memory and score them against ``real``."""
    n_fake = settings["n_fake"]
    labels = None
    if takes_labels(loaded.generator):
        labels = balanced_labels(n_fake, takes_labels(loaded.generator))
    samples = generate(loaded, n_fake, seed=settings["seed"], labels=labels)
    if loaded.shape.kind == "image":
        samples = quantize(samples)
    fake = scorer.sample_set(label, samples, labels=labels)
    scores, details = scorer.score(real, fake)
    protocol = {
        "feature_extractor": scorer.describe_extractor(),
        "reference": dict(reference),
        "n_real": len(real),
        "n_fake": len(fake),
        "fake_quantized_8bit": loaded.shape.kind == "image",
        "eval_seed": settings["seed"],
        **details,
    }
    scores["kimg"] = loaded.kimg
    return scores, protocol


def evaluate_recipe(
    recipe_path: Path,
    overrides: list[str],
    *,
    seeds: int = 1,
    retrain: bool = False,
    run_dir: Path | None = None,
    checkpoint: Path | None = None,
    show_bar: bool | None = None,
) -> dict[str, Any]:
    """Evaluate a recipe into a record, training seeds that have no finished run."""
    recipe = load_recipe(recipe_path, overrides)
    scorer = scorer_for(recipe)
    if seeds > 1 and (run_dir or checkpoint):
        raise GanzooError(
            "--seeds trains several runs; it cannot be combined with "
            "--run-dir or --checkpoint"
        )
    base_seed = recipe.config["train"]["seed"]
    seed_recipes = [
        recipe
        if i == 0
        else load_recipe(recipe_path, [*overrides, f"train.seed={base_seed + i}"])
        for i in range(seeds)
    ]

    settings = recipe.config["eval"]
    dataset = recipe.dataset()
    real, reference = scorer.real_set(
        dataset,
        settings["reference_split"],
        n_real=settings["n_real"],
        seed=settings["seed"],
    )
    results = []
    for seed_recipe in seed_recipes:
        seed = seed_recipe.config["train"]["seed"]
        directory = run_dir or default_run_dir(seed_recipe)
        diverged = None
        if checkpoint is None and not (directory / FINAL).is_file():
            diverged = _divergence(directory, seed_recipe)
        if (
            run_dir is not None
            and checkpoint is None
            and diverged is None
            and not (run_dir / FINAL).is_file()
        ):
            raise GanzooError(
                f"--run-dir {run_dir} holds no finished run ({FINAL}); "
                "train it first or leave out --run-dir"
            )
        if run_dir is None and checkpoint is None and (retrain or diverged is None):
            diverged = _ensure_trained(
                seed_recipe, directory, retrain=retrain, show_bar=show_bar
            )
        if diverged is not None:
            results.append(_failed_seed(seed, directory, diverged))
            continue
        results.append(
            _score_run(
                seed,
                directory,
                checkpoint,
                scorer,
                real,
                reference,
                settings,
                registry=recipe.registry,
            )
        )
    return build_record(recipe, results, recipe_path)


def _divergence(run_dir: Path, recipe: Recipe) -> str | None:
    """The message of a run that stopped because it diverged, if it did.

    A recipe that now allows more bad steps to be skipped than the run had
    (``train.skip_bad_steps`` is not part of the hash) gets to continue it.
    """
    diverged = read_run_info(run_dir).get("diverged")
    if not isinstance(diverged, dict):
        return None
    if recipe.config["train"]["skip_bad_steps"] > diverged.get("skip_bad_steps", 0):
        return None
    return str(diverged.get("message") or "training diverged")


def _failed_seed(
    seed: int, run_dir: Path, message: str, protocol: dict | None = None
) -> SeedResult:
    """A seed without scores: its run diverged, or its samples were not finite."""
    log.warning("seed %d: %s", seed, message)
    return SeedResult(
        seed,
        run_dir,
        {},
        protocol or {},
        _training(run_dir),
        status="failed",
        error=message,
    )


def _ensure_trained(
    recipe: Recipe, run_dir: Path, *, retrain: bool, show_bar: bool | None
) -> str | None:
    """Train or continue the run; the divergence message when it diverges."""
    finished = (run_dir / FINAL).is_file()
    if finished and not retrain:
        log.info("using the finished run %s", run_dir)
        return None
    if retrain and run_dir.exists():
        kept = run_dir.with_name(
            f"{run_dir.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}"
        )
        run_dir.rename(kept)
        log.info("--retrain: moved the old run to %s", kept)
    resume = holds_run(run_dir) and has_resumable_state(run_dir, recipe)
    if resume:
        log.info("continuing the unfinished run %s", run_dir)
    try:
        train_recipe(recipe, run_dir, resume=resume, show_bar=show_bar)
    except TrainingDiverged as error:
        return str(error)
    return None


def _score_run(
    seed, run_dir, checkpoint, scorer, real, reference, settings, *, registry=None
) -> SeedResult:
    if scorer.shape.paired:  # image-to-image translation: scored on held-out pairs
        from ._translation import score_translation_run

        args = (seed, run_dir, checkpoint, scorer, real, reference, settings)
        return score_translation_run(*args, registry=registry)
    which = ["final"]
    if (
        settings["checkpoint"] in ("best", "both")
        and run_dir is not None
        and (run_dir / "best.pt").is_file()
    ):
        which = ["best"] if settings["checkpoint"] == "best" else ["final", "best"]
    results, protocol, scored = {}, {}, {}
    # Samples come from the scorer's device (a GPU when present); the latents
    # are drawn on the CPU, so they are the same on any device.
    device = str(scorer.device)
    for name in which:
        source = str(checkpoint) if checkpoint is not None else name
        loaded = load_generator(run_dir, source, device=device, registry=registry)
        label = f"{run_dir if checkpoint is None else checkpoint} ({name})"
        same = next(
            (other for other, net in scored.items() if _same_weights(net, loaded)), None
        )
        if same is not None:  # the best checkpoint is often the final one
            log.info("%s holds the weights of %s: scores reused", label, same)
            results[name] = results[same]
            protocol["checkpoints"][name] = {
                "kimg": loaded.kimg,
                "path": str(loaded.checkpoint),
                "same_weights_as": same,
            }
            continue
        scored[name] = loaded
        try:
            results[name], protocol = score_checkpoint(
                loaded, scorer, real, reference, settings, label
            )
        except NonFiniteError as error:
            return _failed_seed(seed, run_dir, str(error), protocol)
        protocol.setdefault("checkpoints", {})[name] = {
            "kimg": loaded.kimg,
            "path": str(loaded.checkpoint),
        }
    return SeedResult(seed, run_dir, results, protocol, _training(run_dir))


def _same_weights(a: LoadedGenerator, b: LoadedGenerator) -> bool:
    first, second = a.generator.state_dict(), b.generator.state_dict()
    return first.keys() == second.keys() and all(
        torch.equal(first[key], second[key]) for key in first
    )


def _curve(run_dir: Path | None) -> list:
    """The metric computed during training: [[kimg, scores], ...] from stats.jsonl."""
    if run_dir is None or not (run_dir / "stats.jsonl").is_file():
        return []
    entries = [entry for entry in _stats(run_dir) if "eval" in entry]
    return [[entry["kimg"], entry["eval"]] for entry in entries if "eval" in entry]


def _training(run_dir: Path | None) -> dict[str, Any]:
    """Training cost from the run's stats.jsonl: kimg, sec/kimg, memory, device,
    and the weights' memory layout (runs from before it was recorded lack it)."""
    if run_dir is None or not (run_dir / "stats.jsonl").is_file():
        return {}
    ticks = [entry for entry in _stats(run_dir) if "tick" in entry]
    info = read_run_info(run_dir)
    if not ticks:
        return {}
    last = ticks[-1]
    return {
        "kimg": last["kimg"],
        "time_sec": last["time_sec"],
        "sec_per_kimg": round(last["time_sec"] / max(last["kimg"], 1e-9), 3),
        "img_per_sec": round(1000 * last["kimg"] / max(last["time_sec"], 1e-9), 2),
        "peak_host_mem_gb": max(t["peak_host_mem_gb"] for t in ticks),
        "peak_device_mem_gb": max(t["peak_device_mem_gb"] for t in ticks),
        "device": info.get("device", "cpu"),
        **({"layout": info["layout"]} if "layout" in info else {}),
    }


def _stats(run_dir: Path) -> list[dict[str, Any]]:
    """The entries of stats.jsonl; a line cut short by a killed process is skipped."""
    import json

    entries = []
    with (run_dir / "stats.jsonl").open() as file:
        for line in file:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                entries.append(entry)
    return entries


def build_record(
    recipe: Recipe, results: list[SeedResult], recipe_path: Path | None
) -> dict[str, Any]:
    """One evaluation record: mean scores at the top, per-seed detail below."""
    ok = [r for r in results if r.status == "ok"]
    record: dict[str, Any] = {
        "format": 1,
        "name": recipe.name,
        "status": "ok" if len(ok) == len(results) else "failed",
        "dataset": recipe.config["data"]["name"],
        "recipe": _relative(recipe_path) if recipe_path else None,
        "recipe_hash": recipe.hash,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "n_seeds": len(results),
    }
    if len(ok) < len(results):
        record["errors"] = [r.error for r in results if r.error]
    if ok:
        final = [r.results["final"] for r in ok if "final" in r.results]
        record.update(_mean(final))
        record["std"] = _std(final)
        best = [r.results["best"] for r in ok if "best" in r.results]
        if best:
            record["best"] = {**_mean(best), "std": _std(best)}
    protocol = dict(ok[0].protocol if ok else results[0].protocol)
    protocol.pop("checkpoints", None)
    protocol.update(
        {
            "train_seeds": [r.seed for r in results],
            "recipe_hash": recipe.hash,
            "git_commit": _git_commit(),
            "versions": software_versions(),
        }
    )
    record["protocol"] = protocol
    record["training"] = _mean([r.training for r in ok if r.training], keep_text=True)
    record["config"] = recipe.config
    record["seeds"] = [
        {
            "seed": r.seed,
            "run_dir": str(r.run_dir) if r.run_dir else None,
            "status": r.status,
            **({"error": r.error} if r.error else {}),
            **r.results,
            "checkpoints": r.protocol.get("checkpoints", {}),
            "training": r.training,
            "curve": _curve(r.run_dir),
        }
        for r in results
    ]
    return record


def _relative(path: Path) -> str:
    """The recipe path relative to the working directory when it lies below it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _mean(items: list[dict[str, Any]], keep_text: bool = False) -> dict[str, Any]:
    if not items:
        return {}
    result: dict[str, Any] = {}
    for key in items[0]:
        values = [item.get(key) for item in items]
        if all(_number(v) for v in values):
            result[key] = statistics.fmean(values)
        elif keep_text:
            result[key] = values[0]
        else:
            result[key] = None
    return result


def _std(items: list[dict[str, Any]]) -> dict[str, float]:
    if len(items) < 2:
        return {}
    return {
        key: statistics.stdev([item[key] for item in items])
        for key in items[0]
        if all(_number(item.get(key)) for item in items)
    }


def _number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def _git_commit() -> str | None:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None
