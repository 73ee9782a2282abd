"""The training loop: the lecture's D/G alternation, with EMA, snapshots and resume.

One iteration of :meth:`Trainer.run` is the algorithm of the lecture's
``train_step``, generalised to any loss:

1. ``n_critic`` discriminator steps, each on one real batch and one batch of
   fakes, pushed through the discriminator together;
2. one generator step towards the generator objective ("all real" for BCE);
3. an update of the generator's exponential moving average.

Progress is counted in kimg: thousands of real images shown to the
discriminator.
"""

from __future__ import annotations

import copy
import json
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from .. import __version__
from .._errors import GanzooError
from .._plugin import Constraint, Loss, Regularizer, RunInfo, TensorData, Tracker
from ..recipes import Recipe
from . import _checkpoint as ckpt
from ._grids import from_unit_range, save_picture, to_unit_range
from ._progress import Progress

log = logging.getLogger("ganzoo.train")

POINT_SNAPSHOT = 2500  # points per scatter snapshot: the toy-mixture protocol's count


def pick_device(choice: str) -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        raise GanzooError(
            "train.device is 'cuda' but no CUDA device is available", key="train.device"
        )
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(choice)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_optimizer(parameters, options: dict[str, Any]) -> torch.optim.Optimizer:
    name, lr = options["name"], options["lr"]
    if name in ("adam", "adamw"):
        kind = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        return kind(
            parameters,
            lr=lr,
            betas=tuple(options["betas"]),
            eps=options["eps"],
            weight_decay=options["weight_decay"],
        )
    if name == "rmsprop":
        return torch.optim.RMSprop(
            parameters,
            lr=lr,
            eps=options["eps"],
            momentum=options["momentum"],
            weight_decay=options["weight_decay"],
        )
    return torch.optim.SGD(
        parameters,
        lr=lr,
        momentum=options["momentum"],
        weight_decay=options["weight_decay"],
    )


class BatchSampler:
    """Shuffled batches drawn from a tensor on the training device.

    Each epoch is one permutation from its own generator, so the data order is
    independent of every other random draw and can be saved and restored.
    """

    def __init__(self, samples: torch.Tensor, batch_size: int, seed: int) -> None:
        self.samples = samples
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.order = torch.randperm(len(samples), generator=self.generator)
        self.position = 0

    def next(self) -> torch.Tensor:
        if self.position + self.batch_size > len(self.order):
            self.order = torch.randperm(len(self.samples), generator=self.generator)
            self.position = 0
        index = self.order[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return self.samples[index.to(self.samples.device)]

    def state_dict(self) -> dict[str, Any]:
        return {
            "generator": self.generator.get_state(),
            "order": self.order,
            "position": self.position,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.order = state["order"]
        self.position = state["position"]


@dataclass
class Networks:
    generator: nn.Module
    discriminator: nn.Module
    generator_ema: nn.Module


class Trainer:
    """Trains one resolved recipe into one run directory."""

    def __init__(self, recipe: Recipe, run_dir: Path, trackers: list[Tracker]) -> None:
        self.recipe = recipe
        self.run_dir = run_dir
        self.trackers = trackers
        config = recipe.config
        self.train_options = config["train"]
        self.device = pick_device(self.train_options["device"])

        # Data, loaded before any file is written so that a missing data set
        # leaves nothing behind.
        dataset = recipe.dataset()
        self.dataset = dataset
        data: TensorData = dataset.load(config["data"].get("split", "train"))
        if len(data) < self.train_options["batch_size"]:
            raise GanzooError(
                f"the data set has {len(data)} samples, fewer than one batch "
                f"({self.train_options['batch_size']})",
                key="train.batch_size",
            )
        self.shape = data.shape

        # Networks, seeded so that the initial weights depend only on the seed.
        seed_everything(self.train_options["seed"])
        generator = recipe.network("generator", data.shape).to(self.device)
        discriminator = recipe.network("discriminator", data.shape).to(self.device)
        if self.train_options["ema"] > 0:
            generator_ema = copy.deepcopy(generator).eval().requires_grad_(False)
        else:
            generator_ema = generator
        self.nets = Networks(generator, discriminator, generator_ema)
        self.output_range = getattr(generator, "output_range", None)
        self.latent_dim = int(generator.latent_dim)

        self.real = from_unit_range(data.samples, self.output_range).to(self.device)
        self._check_discriminator_batch()
        self.sampler = BatchSampler(
            self.real, self.train_options["batch_size"], self.train_options["seed"] + 1
        )
        self.reference = self._reference_points(data)

        self.g_optimizer = make_optimizer(
            generator.parameters(), config["optim"]["generator"]
        )
        self.d_optimizer = make_optimizer(
            discriminator.parameters(), config["optim"]["discriminator"]
        )
        self.loss: Loss = recipe.plugin("loss", config["loss"])
        self.regularizers: list[Regularizer] = recipe.plugins(
            "regularizer", "regularizers"
        )
        self.constraints: list[Constraint] = recipe.plugins("constraint", "constraints")

        # Fixed latents for the snapshot grids, from their own generator.
        count = (
            POINT_SNAPSHOT
            if data.shape.kind == "points"
            else self.train_options["grid"]
        )
        latent_rng = torch.Generator().manual_seed(self.train_options["seed"] + 2)
        self.fixed_latents = torch.randn(
            count, self.latent_dim, generator=latent_rng
        ).to(self.device)

        # The cheap metric during training, which keeps the best checkpoint.
        self.periodic = None
        if config["eval"]["eval_kimg"] is not None:
            from ..evaluation._periodic import PeriodicEval

            self.periodic = PeriodicEval(recipe)
        self.best: dict[str, Any] | None = None

        self.step = 0
        self.images_seen = 0
        self.snapshot_index = 0
        self.checkpoint_index = 0
        self.eval_index = 0

    def _check_discriminator_batch(self) -> None:
        """Push one batch through the discriminator, so a shape it cannot take is a
        user error before the run directory exists rather than a crash at step 1."""
        batch = self.train_options["batch_size"]
        probe = self.real[torch.arange(2 * batch, device=self.device) % len(self.real)]
        discriminator = self.nets.discriminator
        discriminator.eval()
        try:
            with torch.no_grad():
                discriminator(probe)
        except GanzooError as error:
            raise error.at(key="model.discriminator") from None
        except RuntimeError as error:
            first = str(error).strip().splitlines()[0]
            raise GanzooError(
                f"the discriminator cannot take a batch of {2 * batch} "
                f"{self.shape.describe()}: {first}",
                key="model.discriminator",
            ) from None
        finally:
            discriminator.train()

    # Phases of one iteration.

    def discriminator_step(self, real: torch.Tensor) -> dict[str, torch.Tensor]:
        generator, discriminator = self.nets.generator, self.nets.discriminator
        with torch.no_grad():
            latents = torch.randn(len(real), self.latent_dim, device=self.device)
            fake = generator(latents)

        # Fakes and reals go through the discriminator together, as in the lecture.
        logits = discriminator(torch.cat([fake, real])).reshape(-1)
        fake_logits, real_logits = logits.chunk(2)
        loss = self.loss.discriminator_loss(real_logits, fake_logits)
        stats = {"d_adv_loss": loss}
        for regularizer in self.regularizers:
            term = regularizer.penalty(discriminator, real, fake)
            stats[f"reg/{regularizer.name}"] = term
            loss = loss + term

        self.d_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.d_optimizer.step()
        for constraint in self.constraints:
            constraint.apply(discriminator)

        stats["d_loss"] = loss
        stats["d_acc_real"] = (real_logits > 0).float().mean()
        stats["d_acc_fake"] = (fake_logits < 0).float().mean()
        return stats

    def generator_step(self, batch_size: int) -> dict[str, torch.Tensor]:
        generator, discriminator = self.nets.generator, self.nets.discriminator
        latents = torch.randn(batch_size, self.latent_dim, device=self.device)

        # The discriminator's weights are not trained here, so no gradient is kept.
        discriminator.requires_grad_(False)
        loss = self.loss.generator_loss(discriminator(generator(latents)).reshape(-1))
        self.g_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        discriminator.requires_grad_(True)
        grads = [p.grad for p in generator.parameters() if p.grad is not None]
        grad_norm = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros(())
        self.g_optimizer.step()
        return {"g_loss": loss, "g_grad_norm": grad_norm}

    @torch.no_grad()
    def update_ema(self) -> None:
        if self.nets.generator_ema is self.nets.generator:
            return
        # Warm-up: early on, when the average would still be mostly the random
        # initial weights, follow the generator more closely.
        decay = min(self.train_options["ema"], (1 + self.step) / (10 + self.step))
        ema_params = list(self.nets.generator_ema.parameters())
        torch._foreach_lerp_(
            ema_params, list(self.nets.generator.parameters()), 1 - decay
        )
        for ema_buffer, buffer in zip(
            self.nets.generator_ema.buffers(),
            self.nets.generator.buffers(),
            strict=True,
        ):
            ema_buffer.copy_(buffer)

    # Snapshots and checkpoints.

    @property
    def kimg(self) -> float:
        return self.images_seen / 1000

    @torch.no_grad()
    def snapshot(self) -> Path:
        """Save the fixed-latent samples of the EMA generator at the current kimg."""
        generator = self.nets.generator_ema
        was_training = generator.training
        generator.eval()
        samples = torch.cat([generator(z) for z in self.fixed_latents.split(256)])
        generator.train(was_training)
        path = self.run_dir / f"fakes-kimg{self.kimg:08.2f}.png"
        save_picture(
            to_unit_range(samples, self.output_range),
            self.shape,
            path,
            reference=self.reference,
            title=f"{self.kimg:.1f} kimg",
        )
        for tracker in self.trackers:
            tracker.log_image("fakes", path, self.step)
        return path

    def state_dict(self, progress: Progress) -> dict[str, Any]:
        return {
            "format": 1,
            "ganzoo_version": __version__,
            "recipe_hash": self.recipe.hash,
            "config": json.loads(json.dumps(self.recipe.config, default=str)),
            "data_shape": {
                "kind": self.shape.kind,
                "shape": list(self.shape.shape),
                "num_classes": self.shape.num_classes,
            },
            "generator": self.nets.generator.state_dict(),
            "generator_ema": self.nets.generator_ema.state_dict(),
            "discriminator": self.nets.discriminator.state_dict(),
            "g_optimizer": self.g_optimizer.state_dict(),
            "d_optimizer": self.d_optimizer.state_dict(),
            "sampler": self.sampler.state_dict(),
            "rng": ckpt.capture_rng(),
            "step": self.step,
            "images_seen": self.images_seen,
            "kimg": self.kimg,
            "snapshot_index": self.snapshot_index,
            "checkpoint_index": self.checkpoint_index,
            "eval_index": self.eval_index,
            "best": self.best,
            "tick": progress.tick,
            "elapsed_sec": progress.elapsed,
        }

    def load_state_dict(self, state: dict[str, Any], progress: Progress) -> None:
        if state.get("recipe_hash") != self.recipe.hash:
            raise GanzooError(
                f"{self.run_dir} was trained from a different recipe (hash "
                f"{state.get('recipe_hash')}, this recipe {self.recipe.hash}); "
                "resume with the same recipe or choose another --run-dir"
            )
        self.nets.generator.load_state_dict(state["generator"])
        self.nets.discriminator.load_state_dict(state["discriminator"])
        if self.nets.generator_ema is not self.nets.generator:
            self.nets.generator_ema.load_state_dict(state["generator_ema"])
        self.g_optimizer.load_state_dict(state["g_optimizer"])
        self.d_optimizer.load_state_dict(state["d_optimizer"])
        self.sampler.load_state_dict(state["sampler"])
        ckpt.restore_rng(state["rng"])
        self.step = state["step"]
        self.images_seen = state["images_seen"]
        self.snapshot_index = state["snapshot_index"]
        self.checkpoint_index = state["checkpoint_index"]
        self.eval_index = state["eval_index"]
        self.best = state["best"]
        progress.resume_from(self.kimg, state["tick"], state["elapsed_sec"])

    def evaluate(self, progress: Progress) -> None:
        """Score the EMA generator now; keep the checkpoint when it is the best."""
        assert self.periodic is not None
        scores = self.periodic(self.nets.generator_ema)
        rank = self.periodic.rank(scores)
        improved = self.best is None or rank < tuple(self.best["rank"])
        if improved:
            self.best = {
                "kimg": self.kimg,
                "step": self.step,
                "scores": scores,
                "rank": list(rank),
            }
        entry = {
            "kimg": round(self.kimg, 3),
            "step": self.step,
            "eval": scores,
            "best": improved,
            "timestamp": time.time(),
        }
        with (self.run_dir / "stats.jsonl").open("a") as file:
            file.write(json.dumps(entry) + "\n")
        shown = "  ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
            for k, v in scores.items()
        )
        log.info(
            "eval  kimg %-8.1f %s%s", self.kimg, shown, "  (best)" if improved else ""
        )
        for tracker in self.trackers:
            tracker.log_stats(
                {
                    f"eval/{k}": v
                    for k, v in scores.items()
                    if isinstance(v, int | float)
                },
                self.step,
            )
        if improved:
            ckpt.save_atomic(self.state_dict(progress), self.run_dir / ckpt.BEST)
            _update_run_info(
                self.run_dir, best={k: v for k, v in self.best.items() if k != "rank"}
            )

    # The loop.

    def run(self, *, resume: bool = False, show_bar: bool | None = None) -> Path:
        """Train to ``train.kimg`` and return the path of the final checkpoint."""
        options = self.train_options
        batch_size, n_critic = options["batch_size"], options["n_critic"]
        total_images = round(options["kimg"] * 1000)
        tick_images = round(options["tick_kimg"] * 1000)
        snapshot_images = round(options["snapshot_kimg"] * 1000)
        checkpoint_images = round(
            (options["checkpoint_kimg"] or options["snapshot_kimg"]) * 1000
        )
        eval_kimg = self.recipe.config["eval"]["eval_kimg"]
        eval_images = round(eval_kimg * 1000) if eval_kimg else None

        progress = Progress(
            self.run_dir, options["kimg"], self.device, self.trackers, show_bar=show_bar
        )
        if resume:
            self.load_state_dict(
                ckpt.load_checkpoint(self.run_dir / ckpt.LAST, "cpu"), progress
            )
            log.info(
                "resumed %s at %.1f kimg (step %d)", self.run_dir, self.kimg, self.step
            )
        _update_run_info(self.run_dir, device=str(self.device))
        info = RunInfo(
            self.run_dir,
            self.recipe.config,
            self.recipe.hash,
            self.recipe.name,
            resumed=resume,
        )
        for tracker in self.trackers:
            tracker.start(info)
        if self.images_seen == 0:
            self.snapshot()

        try:
            next_tick = self._next(tick_images)
            while self.images_seen < total_images:
                # Discriminator steps.
                for _ in range(n_critic):
                    progress.add(self.discriminator_step(self.sampler.next()))
                    self.images_seen += batch_size

                # Generator step, then the moving average.
                progress.add(self.generator_step(batch_size))
                self.update_ema()
                self.step += 1

                done = self.images_seen >= total_images
                if self.images_seen >= next_tick or done:
                    progress.report(self.kimg, self.step)
                    next_tick = self._next(tick_images)
                progress.advance_bar(self.kimg)
                if (
                    self.images_seen >= (self.snapshot_index + 1) * snapshot_images
                    or done
                ):
                    self.snapshot_index = self.images_seen // snapshot_images
                    self.snapshot()
                if eval_images and (
                    self.images_seen >= (self.eval_index + 1) * eval_images or done
                ):
                    self.eval_index = self.images_seen // eval_images
                    self.evaluate(progress)
                if self.images_seen >= (self.checkpoint_index + 1) * checkpoint_images:
                    self.checkpoint_index = self.images_seen // checkpoint_images
                    ckpt.save_atomic(
                        self.state_dict(progress), self.run_dir / ckpt.LAST
                    )

            state = self.state_dict(progress)
            ckpt.save_atomic(state, self.run_dir / ckpt.LAST)
            ckpt.save_atomic(state, self.run_dir / ckpt.FINAL)
            _update_run_info(
                self.run_dir,
                finished=True,
                kimg=self.kimg,
                step=self.step,
                time_sec=round(progress.elapsed, 2),
            )
        finally:
            progress.close()
            for tracker in self.trackers:
                tracker.finish()
        return self.run_dir / ckpt.FINAL

    def _next(self, every: int) -> int:
        return (self.images_seen // every + 1) * every

    def _reference_points(self, data: TensorData) -> torch.Tensor | None:
        if data.shape.kind != "points":
            return None
        means = getattr(self.dataset, "means", None)
        return means() if callable(means) else data.samples[:500]


def build_trackers(recipe: Recipe) -> list[Tracker]:
    """Instantiate the trackers the recipe enables under ``tracking``."""
    return [
        recipe.plugin("tracker", {"name": name, **options})
        for name, options in recipe.config["tracking"].items()
    ]


def default_run_dir(recipe: Recipe, root: Path = Path("runs")) -> Path:
    """``runs/NAME-HASH``: the same recipe always maps to the same directory."""
    return root / f"{recipe.name}-{recipe.hash[:10]}"


def train_recipe(
    recipe: Recipe, run_dir: Path, *, resume: bool = False, show_bar: bool | None = None
) -> Path:
    """Build everything, then create the run directory and train; returns final.pt.

    Everything that can fail on bad input (data, networks, trackers) is built
    before the run directory is created.
    """
    try:
        trackers = build_trackers(recipe)
        trainer = Trainer(recipe, run_dir, trackers)
        prepare_run_dir(recipe, run_dir, resume=resume)
    except GanzooError as error:
        if error.key is not None:  # a recipe key is at fault: name the recipe too
            error.at(file=recipe.source)
        raise
    log.info("run %s  hash %s  device %s", run_dir, recipe.hash, trainer.device)
    return trainer.run(resume=resume, show_bar=show_bar)


def prepare_run_dir(recipe: Recipe, run_dir: Path, *, resume: bool) -> None:
    """Check the run directory, then create it and write the resolved recipe."""
    last = run_dir / ckpt.LAST
    if resume:
        if not last.is_file():
            raise GanzooError(f"nothing to resume: {run_dir} has no {ckpt.LAST}")
        return
    if run_dir.exists() and any(run_dir.iterdir()):
        raise GanzooError(
            f"{run_dir} already holds a run; pass --resume to continue it, or "
            "--run-dir "
            "to train into another directory"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "recipe.yaml").write_text(
        yaml.safe_dump(recipe.config, sort_keys=False, default_flow_style=None)
    )
    _update_run_info(
        run_dir,
        name=recipe.name,
        recipe_hash=recipe.hash,
        source=str(recipe.source) if recipe.source else None,
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        versions=software_versions(),
        finished=False,
    )


def software_versions() -> dict[str, str]:
    import platform

    versions = {
        "ganzoo": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    try:
        import torch_fidelity

        versions["torch_fidelity"] = torch_fidelity.__version__
    except ImportError:
        pass
    return versions


def _update_run_info(run_dir: Path, **values: Any) -> None:
    path = run_dir / "run.json"
    info = json.loads(path.read_text()) if path.exists() else {}
    info.update(values)
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(info, indent=2) + "\n")
    temporary.replace(path)
