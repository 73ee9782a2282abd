"""The training loop: the lecture's D/G alternation, with EMA, snapshots and resume.

One iteration of :meth:`Trainer.run` is the algorithm of the lecture's
``train_step``, generalised to any loss:

1. ``n_critic`` discriminator steps, each on one real batch and one batch of
   fakes, pushed through the discriminator together;
2. one generator step towards the generator objective ("all real" for BCE);
3. an update of the generator's exponential moving average.

Progress is counted in kimg: thousands of real images shown to the
discriminator. Around the loop, :mod:`._guard` turns Ctrl-C into a checkpoint
at the next step boundary and stops a run whose losses or weights diverge.
Under torchrun, :mod:`._distributed` makes each process train its part of
every batch with DistributedDataParallel; only rank 0 writes the run directory.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from .._errors import GanzooError
from .._plugin import Constraint, Loss, Regularizer, RunInfo, TensorData, Tracker
from ..recipes import Recipe
from . import _checkpoint as ckpt
from . import _distributed as distributed
from ._conditioning import Conditioning
from ._grids import from_unit_range, save_picture, to_unit_range
from ._guard import (
    InterruptGuard,
    TrainingDiverged,
    TrainingInterrupted,
    finite,
    first_bad_parameter,
)
from ._parts import BatchSampler, Networks, make_optimizer, pick_device, seed_everything
from ._progress import Progress
from ._rundir import RunLock, check_run_dir, prepare_run_dir, update_run_info
from ._speed import Speed

log = logging.getLogger("ganzoo.train")

POINT_SNAPSHOT = 2500  # points per scatter snapshot: the toy-mixture protocol's count


class Trainer:
    """Trains one resolved recipe into one run directory."""

    def __init__(self, recipe: Recipe, run_dir: Path, trackers: list[Tracker]) -> None:
        self.recipe = recipe
        self.run_dir = run_dir
        self.trackers = trackers
        config = recipe.config
        self.train_options = config["train"]
        # One process of several under torchrun: its rank, and its CUDA device.
        self.world = distributed.join(
            pick_device(self.train_options["device"]), self.train_options["batch_size"]
        )
        self.device = self.world.device

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
        # Mixed precision, channels-last and torch.compile (train.precision,
        # train.channels_last, train.compile); with the defaults, nothing changes.
        self.speed = Speed(
            self.train_options,
            self.device,
            input_gradients=bool(config["regularizers"]),
        )
        self.speed.prepare(self.nets)
        self.output_range = getattr(generator, "output_range", None)
        self.latent_dim = int(generator.latent_dim)
        self.batch_statistics = any(
            isinstance(module, torch.nn.modules.batchnorm._BatchNorm)
            for module in discriminator.modules()
        )

        self.loss: Loss = recipe.plugin("loss", config["loss"])
        self.conditioning = Conditioning.of(generator, discriminator, self.loss, data)
        self.real = from_unit_range(data.samples, self.output_range).to(self.device)
        self.real_labels = (
            data.labels.to(self.device) if self.conditioning.active else None
        )
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
        self.regularizers: list[Regularizer] = recipe.plugins(
            "regularizer", "regularizers"
        )
        self.constraints: list[Constraint] = recipe.plugins("constraint", "constraints")
        self.speed.attach(generator=self.g_optimizer, discriminator=self.d_optimizer)

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
        self.fixed_labels = None
        if self.conditioning.active:
            # One class per row of the near-square grid.
            columns = math.ceil(math.sqrt(count))
            self.fixed_labels = (
                torch.arange(count) // columns % self.conditioning.num_classes
            ).to(self.device)

        # The cheap metric during training, which keeps the best checkpoint.
        self.periodic = None
        if config["eval"]["eval_kimg"] is not None:
            from ..evaluation._periodic import PeriodicEval

            self.periodic = PeriodicEval(recipe)
        self.best: dict[str, Any] | None = None

        self.step = 0
        self.images_seen = 0
        self.bad_steps = 0
        self.saved_step: int | None = None  # the step of the checkpoint on disk
        self.snapshot_index = 0
        self.checkpoint_index = 0
        self.eval_index = 0

        # Distributed runs: this process's part of each batch, its random numbers
        # and the networks as the passes that train them call them.
        self.synced = distributed.prepare(self)

    def _check_discriminator_batch(self) -> None:
        """Push one batch through the discriminator, so a shape it cannot take is a
        user error before the run directory exists rather than a crash at step 1."""
        batch = self.train_options["batch_size"]
        index = torch.arange(2 * batch, device=self.device) % len(self.real)
        discriminator = self.nets.discriminator
        discriminator.eval()
        try:
            with torch.no_grad():
                self.probe_discriminator(index)
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

    def probe_discriminator(self, index: torch.Tensor) -> None:
        """Judge the training samples at ``index`` as a step does, gradients and
        mode left to the caller; a batch the discriminator cannot take raises."""
        labels = None if self.real_labels is None else self.real_labels[index]
        self.conditioning.judge(self.nets.discriminator, self.real[index], labels)

    # Phases of one iteration.

    def next_real(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The next real batch and, for a conditional run, its labels."""
        index = self.sampler.next_index()
        labels = None if self.real_labels is None else self.real_labels[index]
        return self.real[index], labels

    def discriminator_step(
        self, real: torch.Tensor, real_labels: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        generator, discriminator = self.nets.generator, self.nets.discriminator
        conditioning = self.conditioning
        with torch.no_grad():
            latents = torch.randn(len(real), self.latent_dim, device=self.device)
            fake_labels = conditioning.sample_labels(len(real), self.device)
            fake = conditioning.generate(generator, latents, fake_labels)

        # Fakes and reals go through the discriminator together, as in the lecture,
        # unless it normalises with batch statistics: in a joint batch those would
        # differ from the fakes-only batch of the generator's step, so each half
        # goes through alone, as in the DCGAN paper.
        if self.batch_statistics:
            fake_logits, fake_classes = conditioning.judge(
                self.synced.discriminator, fake, fake_labels
            )
            real_logits, real_classes = conditioning.judge(
                discriminator, real, real_labels
            )
        else:
            labels = None
            if conditioning.active:
                labels = torch.cat([fake_labels, real_labels])
            logits, classes = conditioning.judge(
                self.synced.discriminator, torch.cat([fake, real]), labels
            )
            fake_logits, real_logits = logits.chunk(2)
            fake_classes, real_classes = (
                (None, None) if classes is None else classes.chunk(2)
            )
        loss = self.loss.discriminator_loss(real_logits, fake_logits)
        stats = {"d_adv_loss": loss}
        if conditioning.auxiliary:
            term = self.loss.classification_loss(
                real_classes, real_labels
            ) + self.loss.classification_loss(fake_classes, fake_labels)
            stats["d_cls_loss"] = term
            stats["d_cls_acc_real"] = (
                (real_classes.argmax(dim=1) == real_labels).float().mean()
            )
            loss = loss + term
        judged = conditioning.for_regularizers(discriminator, real_labels)
        for regularizer in self.regularizers:
            term = regularizer.penalty(judged, real, fake)
            stats[f"reg/{regularizer.name}"] = term
            loss = loss + term

        return self.update_discriminator(loss, stats, real_logits, fake_logits)

    def update_discriminator(
        self,
        loss: torch.Tensor,
        stats: dict[str, torch.Tensor],
        real_logits: torch.Tensor,
        fake_logits: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Step the discriminator on ``loss`` unless it is not finite, then apply
        the constraints; returns ``stats`` with the loss and accuracies, or {}
        for a skipped step."""
        checked = self.world.mean(loss)  # the same value on every process
        if not finite(checked):
            self.world.finish_skipped_backward(loss)
            self.skip_bad_step("discriminator", f"loss is {float(checked.detach())}")
            return {}
        self.d_optimizer.zero_grad(set_to_none=True)
        self.speed.backward(loss, self.d_optimizer)
        self.speed.step(self.d_optimizer)
        for constraint in self.constraints:
            constraint.apply(self.nets.discriminator)

        stats["d_loss"] = loss
        stats["d_acc_real"] = (real_logits > 0).float().mean()
        stats["d_acc_fake"] = (fake_logits < 0).float().mean()
        return stats

    def generator_step(self, batch_size: int) -> dict[str, torch.Tensor]:
        discriminator = self.nets.discriminator
        conditioning = self.conditioning
        latents = torch.randn(batch_size, self.latent_dim, device=self.device)
        labels = conditioning.sample_labels(batch_size, self.device)

        # The discriminator's weights are not trained here, so no gradient is kept.
        discriminator.requires_grad_(False)
        fake = conditioning.generate(self.synced.generator, latents, labels)
        logits, classes = conditioning.judge(discriminator, fake, labels)
        loss = self.loss.generator_loss(logits)
        stats = {}
        if conditioning.auxiliary:
            term = self.loss.classification_loss(classes, labels)
            stats["g_cls_loss"] = term
            loss = loss + term
        return self.update_generator(loss, stats)

    def update_generator(
        self, loss: torch.Tensor, stats: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Step the generator on ``loss`` unless it or the gradients are not
        finite; the discriminator, frozen for the generator's pass, is unfrozen.
        Returns ``stats`` with the loss and gradient norm, or {} when skipped."""
        generator = self.nets.generator
        self.g_optimizer.zero_grad(set_to_none=True)
        self.speed.backward(loss, self.g_optimizer)
        self.nets.discriminator.requires_grad_(True)
        grads = [p.grad for p in generator.parameters() if p.grad is not None]
        grad_norm = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros(())
        checked = self.world.mean(loss)  # the same value on every process
        if not finite(checked, grad_norm):
            if self.speed.absorbs_overflow(checked):
                # fp16: the gradients overflowed at this loss scale; the scaler
                # skips the update and lowers the scale. Not a bad step.
                self.speed.step(self.g_optimizer)
                return {"g_loss": loss, **stats}
            what = "loss" if not finite(checked) else "gradient norm"
            value = float(checked.detach()) if what == "loss" else float(grad_norm)
            self.skip_bad_step("generator", f"{what} is {value}")
            return {}
        self.speed.step(self.g_optimizer)
        return {"g_loss": loss, "g_grad_norm": grad_norm, **stats}

    # Divergence.

    def skip_bad_step(self, network: str, problem: str) -> None:
        """Count a step that must not update ``network``; stop beyond the budget.

        Weights that are already not finite explain the loss and cannot be
        skipped past, so they stop the run whatever the budget.
        """
        self.check_weights()
        self.bad_steps += 1
        allowed = self.train_options["skip_bad_steps"]
        if self.bad_steps > allowed:
            self.diverged(network, f"the {network} {problem}")
        log.warning(
            "step %d: the %s %s; skipped without an update (%d of %d allowed)",
            self.step + 1,
            network,
            problem,
            self.bad_steps,
            allowed,
        )

    def check_weights(self, step: int | None = None) -> None:
        """Stop when a network's weights are no longer finite.

        ``step`` is the step to blame: by default the one in progress.
        """
        for network in ("generator", "discriminator"):
            bad = first_bad_parameter(getattr(self.nets, network))
            if bad is not None:
                problem = f"the {network} weight {bad} is not finite"
                self.diverged(network, problem, step)

    def diverged(self, network: str, problem: str, step: int | None = None) -> None:
        """Record the divergence in run.json and stop the run."""
        step = self.step + 1 if step is None else step
        if self.saved_step is None:
            kept = "no checkpoint was written before it"
        else:
            kept = f"the last good checkpoint is {ckpt.LAST} (step {self.saved_step})"
        message = (
            f"training diverged in step {step} ({self.kimg:.2f} kimg): "
            f"{problem}; {kept}"
        )
        if self.world.main:
            update_run_info(
                self.run_dir,
                diverged={
                    "step": step,
                    "kimg": self.kimg,
                    "network": network,
                    "message": message,
                    "skip_bad_steps": self.train_options["skip_bad_steps"],
                },
            )
        raise TrainingDiverged(message, step=step, network=network, kimg=self.kimg)

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
        labels = self.fixed_labels
        samples = torch.cat(
            [
                self.conditioning.generate(
                    generator,
                    self.fixed_latents[start : start + 256],
                    None if labels is None else labels[start : start + 256],
                )
                for start in range(0, len(self.fixed_latents), 256)
            ]
        )
        generator.train(was_training)
        return self.publish_snapshot(
            lambda partial: save_picture(
                to_unit_range(samples, self.output_range),
                self.shape,
                partial,
                reference=self.reference,
                title=f"{self.kimg:.1f} kimg",
            )
        )

    def publish_snapshot(self, draw: Callable[[Path], None]) -> Path:
        """Have ``draw`` write this kimg's snapshot to a partial file, move it into
        place whole, and show it to the trackers; returns its path."""
        path = self.run_dir / f"fakes-kimg{self.kimg:08.2f}.png"
        partial = path.with_name(f".{path.stem}.tmp{path.suffix}")
        try:
            draw(partial)
            os.replace(partial, path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        for tracker in self.trackers:
            tracker.log_image("fakes", path, self.step)
        return path

    def state_dict(self, progress: Progress) -> dict[str, Any]:
        """Everything a resumed run needs to continue bit for bit."""
        self.check_weights(self.step)
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
            "bad_steps": self.bad_steps,
            "tick": progress.tick,
            "elapsed_sec": progress.elapsed,
            **self.speed.state_dict(),  # the fp16 loss scalers, if any
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
        self.bad_steps = state.get("bad_steps", 0)
        self.speed.load_state_dict(state)
        self.saved_step = self.step
        self.world.reseed(self.train_options["seed"], self.step)
        progress.resume_from(self.kimg, state["tick"], state["elapsed_sec"])

    def save_last(self, progress: Progress) -> None:
        """Write the resumable checkpoint, keeping the one it replaces."""
        state = self.state_dict(progress)
        if self.world.main:
            ckpt.keep_previous(self.run_dir / ckpt.LAST, self.run_dir / ckpt.PREVIOUS)
            ckpt.save_atomic(state, self.run_dir / ckpt.LAST)
        self.saved_step = self.step
        # Distributed runs draw afresh from here, as a run resumed here will.
        self.world.reseed(self.train_options["seed"], self.step)

    def evaluate(self, progress: Progress) -> None:
        """Score the EMA generator now; keep the checkpoint when it is the best."""
        assert self.periodic is not None
        self.check_weights(self.step)
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
            update_run_info(
                self.run_dir, best={k: v for k, v in self.best.items() if k != "rank"}
            )

    # The loop.

    def run(self, *, resume: bool = False, show_bar: bool | None = None) -> Path:
        """Train to ``train.kimg`` and return the path of the final checkpoint.

        Raises :class:`TrainingInterrupted` after Ctrl-C or SIGTERM (with a
        checkpoint written at the step boundary) and :class:`TrainingDiverged`
        when a loss or a network's weights stop being finite.
        """
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

        progress = self.world.progress(
            self.run_dir, options["kimg"], self.device, self.trackers, show_bar=show_bar
        )
        if resume:
            self.resume(progress)
        if self.world.main:
            update_run_info(
                self.run_dir,
                device=str(self.device),
                world_size=self.world.size,
                layout="channels-last" if self.speed.channels_last else "contiguous",
                diverged=None,
            )
        info = RunInfo(
            self.run_dir,
            self.recipe.config,
            self.recipe.hash,
            self.recipe.name,
            resumed=resume,
        )
        for tracker in self.trackers:
            tracker.start(info)

        try:
            # Under torchrun, SIGTERM is how the launcher stops the processes
            # of a run when one of them fails: it keeps its default meaning.
            terminate = not self.world.distributed
            with InterruptGuard(terminate=terminate) as interrupt:
                if self.images_seen == 0 and self.world.main:
                    self.snapshot()
                next_tick = self._next(tick_images)
                while self.images_seen < total_images:
                    # Discriminator steps.
                    for _ in range(n_critic):
                        progress.add(self.discriminator_step(*self.next_real()))
                        self.images_seen += batch_size

                    # Generator step, then the moving average.
                    progress.add(self.generator_step(batch_size))
                    self.update_ema()
                    self.step += 1

                    done = self.images_seen >= total_images
                    if self.images_seen >= next_tick or done:
                        self.check_weights(self.step)
                        progress.report(self.kimg, self.step)
                        next_tick = self._next(tick_images)
                    progress.advance_bar(self.kimg)
                    if (
                        self.images_seen >= (self.snapshot_index + 1) * snapshot_images
                        or done
                    ):
                        self.snapshot_index = self.images_seen // snapshot_images
                        if self.world.main:
                            self.snapshot()
                    if eval_images and (
                        self.images_seen >= (self.eval_index + 1) * eval_images or done
                    ):
                        self.eval_index = self.images_seen // eval_images
                        if self.world.main:
                            self.evaluate(progress)
                    next_checkpoint = (self.checkpoint_index + 1) * checkpoint_images
                    if self.images_seen >= next_checkpoint:
                        self.checkpoint_index = self.images_seen // checkpoint_images
                        self.save_last(progress)
                    if self.world.any(interrupt.requested) and not done:
                        self.stop_interrupted(progress, interrupt.signum)

            # The end: the resumable checkpoint and the final one.
            if self.saved_step != self.step:
                self.save_last(progress)
            if self.world.main:
                ckpt.save_atomic(self.state_dict(progress), self.run_dir / ckpt.FINAL)
                update_run_info(
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

    def resume(self, progress: Progress) -> None:
        """Load the newest good checkpoint, or start over when none was written."""
        # Rank 0 reads the run directory and hands the checkpoint to the others.
        found = self.world.from_main(lambda: ckpt.load_resumable(self.run_dir, "cpu"))
        if found is None:
            log.info("%s has no checkpoint yet: starting from step 0", self.run_dir)
        else:
            state, path = found
            self.load_state_dict(state, progress)
            log.info(
                "resumed %s from %s at %.1f kimg (step %d)",
                self.run_dir,
                path.name,
                self.kimg,
                self.step,
            )
        if self.world.main:
            _trim_stats(self.run_dir / "stats.jsonl", self.step)

    def stop_interrupted(self, progress: Progress, signum: int = signal.SIGINT) -> None:
        if self.saved_step != self.step:
            self.save_last(progress)
        raise TrainingInterrupted(
            f"stopped after step {self.step} ({self.kimg:.2f} kimg); "
            f"{self.run_dir / ckpt.LAST} is written: continue with --resume",
            signum=signum,
        )

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


def train_recipe(
    recipe: Recipe, run_dir: Path, *, resume: bool = False, show_bar: bool | None = None
) -> Path:
    """Build everything, then create the run directory and train; returns final.pt.

    Everything that can fail on bad input (data, networks, trackers) is built
    before the run directory is created.
    """
    try:
        trackers = build_trackers(recipe)
        from ._translation import trainer_class  # paired data: TranslationTrainer

        trainer = trainer_class(recipe)(recipe, run_dir, trackers)
        if trainer.world.main:  # the only process that touches the run directory
            check_run_dir(recipe, run_dir, resume=resume)
    except GanzooError as error:
        if error.key is not None:  # a recipe key is at fault: say where it is
            file, line = recipe.locate(error.key)
            error.at(file=file or recipe.source, line=line)
        raise

    # Checked again under the lock: another process may have started meanwhile.
    if not trainer.world.main:
        return trainer.run(resume=resume, show_bar=show_bar)
    with RunLock(run_dir):
        prepare_run_dir(recipe, run_dir, resume=resume)
        log.info("run %s  hash %s  device %s", run_dir, recipe.hash, trainer.device)
        log.info("speed: %s", trainer.speed.describe())
        return trainer.run(resume=resume, show_bar=show_bar)


def _trim_stats(path: Path, step: int) -> None:
    """Keep the stats.jsonl entries up to ``step``: those after it are redone.

    A process killed while appending can leave half a line; it goes too.
    """
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("step", 0) <= step:
            kept.append(line + "\n")
    ckpt.write_text_atomic(path, "".join(kept))
