"""The cheap metric computed during training, which picks the best checkpoint.

Images are scored by FID on ``eval.during_n`` samples with the recipe's
extractor; the 2-D mixtures by their mode scores (more modes first, then the
lower reverse KL). Latents come from their own generator, so the training
random streams, and therefore resumed runs, are untouched.
"""

from __future__ import annotations

from typing import Any

import torch

from ..recipes import Recipe
from ..training._sampling import sample_network
from ._scoring import Scorer, quantize


class PeriodicEval:
    """Scores the EMA generator every ``eval.eval_kimg``; ranks the scores."""

    def __init__(self, recipe: Recipe) -> None:
        self.settings = recipe.config["eval"]
        self.dataset = recipe.dataset()
        shape = self.dataset.data_shape()
        self.images = shape.kind == "image"
        self.scorer = Scorer.create(
            recipe.registry,
            shape,
            dataset_name=self.dataset.name,
            extractor=self.settings["feature_extractor"],
            metrics=["fid"] if self.images else ["modes"],
        )
        self.real = None

    def __call__(self, generator: torch.nn.Module) -> dict[str, Any]:
        if self.real is None:
            self.real, _ = self.scorer.real_set(
                self.dataset,
                self.settings["reference_split"],
                n_real=self.settings["n_real"],
                seed=self.settings["seed"],
            )
        was_training = generator.training
        generator.eval()
        samples = sample_network(
            generator, self.settings["during_n"], seed=self.settings["seed"]
        )
        generator.train(was_training)
        if self.images:
            samples = quantize(samples)
        scores, _ = self.scorer.score(
            self.real, self.scorer.sample_set("training", samples)
        )
        keep = ("fid",) if self.images else ("modes", "high_quality", "reverse_kl")
        return {key: scores[key] for key in keep}

    def rank(self, scores: dict[str, Any]) -> tuple:
        """A key where smaller is better."""
        if self.images:
            return (scores["fid"],)
        kl = scores["reverse_kl"]
        return (-scores["modes"], kl if kl is not None else float("inf"))
