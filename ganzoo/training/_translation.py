"""Image-to-image translation (pix2pix): the training loop on paired data.

:class:`TranslationTrainer` is the :class:`~ganzoo.training.Trainer` with the
steps of Isola et al. 2017. Each iteration draws a batch of pairs (A, B) and

1. trains the discriminator on real pairs (A, B) against fake pairs (A, G(A)),
   the pair concatenated on channels, its loss averaged over every patch logit;
2. trains the generator towards "real" on (A, G(A)) plus the loss's
   reconstruction term (pix2pix: 100 times the L1 distance of G(A) to B), on the
   same batch;
3. updates the generator's moving average.

Everything around the steps (kimg, ticks, checkpoints, resume, divergence
checks, Ctrl-C, the metric during training) is the base class's. Snapshots show
fixed training pairs as rows of A | G(A) | B.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._errors import GanzooError
from .._plugin import DataShape, TensorData
from .._registry import Registry, build_registry
from ..recipes import Recipe
from . import _checkpoint as ckpt
from ._grids import from_unit_range, to_unit_range
from ._sampling import LoadedGenerator, checkpoint_path
from ._trainer import Trainer


def trainer_class(recipe: Recipe) -> type[Trainer]:
    """The trainer for a recipe: :class:`TranslationTrainer` for paired data.

    A loss with a reconstruction term compares translations with their targets,
    so on unpaired data it is an error, raised before anything is loaded.
    """
    paired = recipe.dataset().data_shape().paired
    loss = recipe.plugin("loss", recipe.config["loss"])
    if not paired and callable(getattr(loss, "reconstruction_loss", None)):
        raise GanzooError(
            f"the loss {loss.name!r} compares each translation with its target, "
            f"so it needs paired data, but the data set "
            f"{recipe.config['data']['name']!r} is unpaired; use a paired data set "
            "(paired-folder, fashion-edges) or a loss without a reconstruction "
            "term (bce)",
            key="loss",
        )
    return TranslationTrainer if paired else Trainer


class TranslationTrainer(Trainer):
    """Trains a translation generator and a pair discriminator on paired data.

    Its steps train through ``self.synced`` as the base class's do, so a
    distributed run (torchrun) averages both networks' gradients over the
    processes; each process translates its own slice of every batch of pairs.
    """

    steps_use_synced = True

    def __init__(self, recipe: Recipe, run_dir: Path, trackers: list) -> None:
        super().__init__(recipe, run_dir, trackers)

        # Fixed training pairs for the snapshot grids, from their own generator.
        count = min(self.train_options["grid"], len(self.real))
        rng = torch.Generator().manual_seed(self.train_options["seed"] + 2)
        pick = torch.randperm(len(self.real), generator=rng)[:count].to(self.device)
        self.fixed_inputs, self.fixed_targets = self.inputs[pick], self.real[pick]

        if self.periodic is not None:
            from ..evaluation._translation import PeriodicTranslationEval

            self.periodic = PeriodicTranslationEval(recipe)

    def _reference_points(self, data: TensorData) -> None:
        # The base class hands the loaded data set to this method once the
        # networks are built, and before the processes of a distributed run are
        # joined: the inputs are taken from it and checked against the networks
        # here (the targets are self.real), so that the data set is not loaded
        # twice and every process checks its part of the batch with pairs.
        generator = self.nets.generator
        input_shape = getattr(generator, "input_shape", None)
        if input_shape is None:
            raise GanzooError(
                f"the data set is paired, but the generator "
                f"{self.recipe.config['model']['generator']['name']!r} does not "
                "translate images (it has no input_shape); use 'pix2pix'",
                key="model.generator",
            )
        if tuple(input_shape) != tuple(self.shape.input_shape):
            raise GanzooError(
                f"the generator translates {_describe(input_shape)} but the "
                f"data set's inputs are {_describe(self.shape.input_shape)}",
                key="model.generator",
            )

        # Inputs in the generator's range, as the targets are (self.real).
        assert data.inputs is not None
        self.inputs = from_unit_range(data.inputs, self.output_range).to(self.device)
        self.reconstruction = getattr(self.loss, "reconstruction_loss", None)
        self.per_patch = bool(getattr(self.nets.discriminator, "per_patch", False))
        self._check_pair_batch()
        self.batch: tuple[torch.Tensor, torch.Tensor] | None = None
        return None

    def _check_discriminator_batch(self) -> None:
        # The inputs are not there yet when the base class calls this; the
        # pairs are checked by _check_pair_batch instead.
        return None

    def _check_pair_batch(self) -> None:
        """Push one batch of pairs through both networks before any file exists."""
        batch = self.train_options["batch_size"]
        index = torch.arange(batch, device=self.device) % len(self.real)
        nets = self.nets
        nets.generator.eval()
        nets.discriminator.eval()
        try:
            with torch.no_grad():
                fake = nets.generator(self.inputs[index])
                if fake.shape != self.real[index].shape:
                    raise GanzooError(
                        f"the generator turns {batch} inputs into a tensor of "
                        f"shape {tuple(fake.shape)}; expected "
                        f"{(batch, *self.shape.shape)}",
                        key="model.generator",
                    )
                self.judge(nets.discriminator, torch.cat([self.inputs[index], fake], 1))
        except RuntimeError as error:
            first = str(error).strip().splitlines()[0]
            raise GanzooError(
                f"the networks cannot take a batch of {batch} pairs of "
                f"{_describe(self.shape.input_shape)} and "
                f"{self.shape.describe()}: {first}",
                key="model",
            ) from None
        finally:
            nets.generator.train()
            nets.discriminator.train()

    def probe_discriminator(self, index: torch.Tensor) -> None:
        pairs = torch.cat([self.inputs[index], self.real[index]], dim=1)
        self.judge(self.nets.discriminator, pairs)

    def judge(self, discriminator: nn.Module, pairs: torch.Tensor) -> torch.Tensor:
        """The logits of pairs (A and B on channels), flattened to one dimension.

        A PatchGAN (``per_patch``) gives one logit per patch, and the loss
        averages over them all; another discriminator gives one per pair.
        """
        if self.per_patch:
            return discriminator(pairs, patches=True).reshape(-1)
        return discriminator(pairs).reshape(-1)

    # Phases of one iteration. They follow the base class's steps, through the
    # same mixed-precision and divergence handling, with pairs for samples.

    def next_real(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next batch of targets B and, in the place of labels, their inputs A."""
        index = self.sampler.next_index()
        return self.real[index], self.inputs[index]

    def discriminator_step(
        self, real: torch.Tensor, inputs: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        assert inputs is not None, "a translation step needs the batch's inputs"
        self.batch = (inputs, real)
        discriminator = self.nets.discriminator
        with torch.no_grad():
            fake = self.nets.generator(inputs)
        real_pairs = torch.cat([inputs, real], dim=1)
        fake_pairs = torch.cat([inputs, fake], dim=1)

        # As in the base class: one joint batch, unless the discriminator
        # normalises with batch statistics.
        if self.batch_statistics:
            fake_logits = self.judge(self.synced.discriminator, fake_pairs)
            real_logits = self.judge(discriminator, real_pairs)
        else:
            pairs = torch.cat([fake_pairs, real_pairs])
            fake_logits, real_logits = self.judge(
                self.synced.discriminator, pairs
            ).chunk(2)
        loss = self.loss.discriminator_loss(real_logits, fake_logits)
        stats = {"d_adv_loss": loss}
        # Regularizers see pairs: a gradient penalty is taken with respect to A
        # and B together.
        for regularizer in self.regularizers:
            term = regularizer.penalty(discriminator, real_pairs, fake_pairs)
            stats[f"reg/{regularizer.name}"] = term
            loss = loss + term

        return self.update_discriminator(loss, stats, real_logits, fake_logits)

    def generator_step(self, batch_size: int) -> dict[str, torch.Tensor]:
        # The batch of the last discriminator step, as in pix2pix.
        assert self.batch is not None, "the discriminator step comes first"
        inputs, target = self.batch
        discriminator = self.nets.discriminator
        fake = self.synced.generator(inputs)

        discriminator.requires_grad_(False)
        logits = self.judge(discriminator, torch.cat([inputs, fake], dim=1))
        adversarial = self.loss.generator_loss(logits)
        stats = {"g_adv_loss": adversarial}
        loss = adversarial
        if callable(self.reconstruction):
            term = self.reconstruction(fake.float(), target)
            stats["g_l1_loss"] = term
            loss = loss + term
        return self.update_generator(loss, stats)

    # Snapshots and checkpoints.

    @torch.no_grad()
    def snapshot(self) -> Path:
        """Save rows of A | G(A) | B for the fixed pairs, G the EMA generator."""
        generator = self.nets.generator_ema
        was_training = generator.training
        generator.eval()
        fakes = torch.cat([generator(a) for a in self.fixed_inputs.split(256)])
        generator.train(was_training)
        columns = [
            to_unit_range(part, self.output_range)
            for part in (self.fixed_inputs, fakes, self.fixed_targets)
        ]
        return self.publish_snapshot(lambda partial: save_pair_grid(*columns, partial))

    def state_dict(self, progress) -> dict[str, Any]:
        """The base class's state, with the input shape kept in ``data_shape``."""
        state = super().state_dict(progress)
        state["data_shape"]["input_shape"] = list(self.shape.input_shape)
        return state


def save_pair_grid(
    inputs: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor, path: Path
) -> None:
    """Save triplets A | G(A) | B (each (N, C, H, W) in [0, 1]) as a PNG grid.

    The triplets are laid out in a near-square block of rows, with a wider gap
    between triplets than inside one. Grayscale sides are shown in RGB when the
    other side has colour.
    """
    from PIL import Image

    channels = max(inputs.shape[1], outputs.shape[1], targets.shape[1])
    parts = [
        _channels(t.detach().float().cpu().clamp(0, 1), channels)
        for t in (inputs, outputs, targets)
    ]
    count, _, height, width = parts[0].shape
    groups = max(1, round(math.sqrt(count / 3)))
    rows = math.ceil(count / groups)
    pad, gap = 2, 8
    triplet = 3 * width + 2 * pad
    canvas = torch.ones(
        channels,
        rows * (height + pad) + pad,
        groups * triplet + (groups - 1) * gap + 2 * pad,
    )
    for index in range(count):
        group, row = divmod(index, rows)
        top = pad + row * (height + pad)
        for side, images in enumerate(parts):
            left = pad + group * (triplet + gap) + side * (width + pad)
            canvas[:, top : top + height, left : left + width] = images[index]
    array = (canvas * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    mode = "L" if channels == 1 else "RGB"
    Image.fromarray(array[..., 0] if channels == 1 else array, mode=mode).save(path)


def _channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    return images.expand(-1, channels, -1, -1) if images.shape[1] == 1 else images


def _describe(shape) -> str:
    channels, height, width = shape
    return f"{channels}x{height}x{width} images"


# Loading a trained translation run.


@dataclass
class LoadedTranslator(LoadedGenerator):
    """A translation generator rebuilt from a checkpoint; ``shape`` is paired."""

    def translate(self, inputs: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """Outputs in [0, 1] for (N, C, H, W) inputs in [0, 1]."""
        return translate_images(self.generator, inputs, batch_size=batch_size)


@torch.no_grad()
def translate_images(
    generator: nn.Module, inputs: torch.Tensor, *, batch_size: int = 500
) -> torch.Tensor:
    """Translate (N, C, H, W) inputs in [0, 1] in eval mode; outputs in [0, 1]."""
    device = next(generator.parameters()).device
    output_range = getattr(generator, "output_range", None)
    was_training = generator.training
    generator.eval()
    parts = []
    for batch in inputs.split(batch_size):
        batch = from_unit_range(batch, output_range).to(device)
        parts.append(to_unit_range(generator(batch), output_range).cpu())
    generator.train(was_training)
    if not parts:
        return inputs.new_empty(0)
    return torch.cat(parts).contiguous()


def load_translator(
    run_dir: Path,
    which: str = "final",
    *,
    ema: bool = True,
    device: str = "cpu",
    registry: Registry | None = None,
) -> LoadedTranslator:
    """Rebuild the translation generator of a run from its checkpoint and recipe.

    As :func:`~ganzoo.training.load_generator`, but the data shape keeps the
    input shape that the generator was built for; a run on unpaired data is a
    GanzooError.
    """
    path = checkpoint_path(run_dir, which)
    state = ckpt.load_checkpoint(path, device)
    meta = state["data_shape"]
    if not meta.get("input_shape"):
        raise GanzooError(
            f"{path} is not a translation run: it was trained on unpaired data, "
            "so it generates from latents; use `ganzoo sample`"
        )
    config = state["config"]
    recipe = Recipe(
        config,
        state["recipe_hash"],
        config.get("name") or run_dir.name,
        None,
        registry or build_registry(),
    )
    shape = DataShape(
        meta["kind"],
        tuple(meta["shape"]),
        meta["num_classes"],
        input_shape=tuple(meta["input_shape"]),
    )
    generator: nn.Module = recipe.network("generator", shape)
    generator.load_state_dict(state["generator_ema" if ema else "generator"])
    generator.to(device).eval().requires_grad_(False)
    return LoadedTranslator(generator, shape, recipe, path, float(state["kimg"]))


__all__ = [
    "LoadedTranslator",
    "TranslationTrainer",
    "load_translator",
    "save_pair_grid",
    "trainer_class",
    "translate_images",
]
