"""The built-in metrics: FID, KID and IS through torch-fidelity, precision/recall and
density/coverage by one k-NN pass, and mode-collapse scores.

Every metric returns flat score keys (the record's public names: ``fid``, ``kid``,
``is``, ``precision``, ...) and a ``protocol`` mapping with the settings that
produced them.
"""

from __future__ import annotations

import math
import statistics
from typing import Any, ClassVar

import torch

from ganzoo import GanzooError, Metric, Option, SampleSet, hookimpl


def _features(side: SampleSet) -> torch.Tensor:
    return side.features.detach().to("cpu", torch.float64)


class FrechetDistance(Metric):
    """Fréchet distance between Gaussian fits of real and generated features (FID).

    Heusel et al. 2017, computed with torch-fidelity's statistics functions on
    features extracted once. With fewer samples than feature dimensions the
    covariance is rank-deficient and the record marks the estimate as biased.
    """

    name = "fid"

    def compute(self, real: SampleSet, fake: SampleSet) -> dict[str, Any]:
        from torch_fidelity.metric_fid import (
            fid_features_to_statistics,
            fid_statistics_to_metric,
        )

        real_stats = fid_features_to_statistics(_features(real))
        fake_stats = fid_features_to_statistics(_features(fake))
        value = fid_statistics_to_metric(real_stats, fake_stats, verbose=False)
        dim = real.features.shape[1]
        smallest = min(len(real), len(fake))
        return {
            "fid": float(value["frechet_inception_distance"]),
            "protocol": {"fid_biased": smallest < dim, "fid_feature_dim": int(dim)},
        }


class KernelDistance(Metric):
    """Kernel Inception Distance: unbiased MMD^2 with a cubic polynomial kernel (KID).

    Bińkowski et al. 2018, through torch-fidelity: the mean and standard
    deviation over random subsets. Smaller sets shrink the subset size, and the
    record says so.
    """

    name = "kid"
    options = (
        Option("subsets", int, 100, "number of random subsets", minimum=1),
        Option("subset_size", int, 1000, "samples per subset", minimum=2),
        Option("seed", int, 2020, "seed of the subset draws", minimum=0),
    )

    def compute(self, real: SampleSet, fake: SampleSet) -> dict[str, Any]:
        from torch_fidelity.metric_kid import kid_features_to_metric

        size = min(self.subset_size, len(real), len(fake))
        value = kid_features_to_metric(
            _features(real).float(),
            _features(fake).float(),
            kid_subsets=self.subsets,
            kid_subset_size=size,
            rng_seed=self.seed,
            verbose=False,
        )
        return {
            "kid": float(value["kernel_inception_distance_mean"]),
            "kid_std": float(value["kernel_inception_distance_std"]),
            "protocol": {
                "kid_subsets": self.subsets,
                "kid_subset_size": size,
                "kid_subset_size_reduced": size < self.subset_size,
            },
        }


class InceptionScore(Metric):
    """Inception Score: exp E[KL(p(y|x) || p(y))] over the extractor's logits (IS).

    Salimans et al. 2016, through torch-fidelity, over ``splits`` splits of the
    generated set. Only the generated side is used.
    """

    name = "is"
    requires: ClassVar[tuple[str, ...]] = ("logits",)
    options = (
        Option("splits", int, 10, "number of splits", minimum=1),
        Option("seed", int, 2020, "seed of the shuffle before splitting", minimum=0),
    )

    def applies_to(self, real: SampleSet) -> bool:
        return real.logits is not None and real.logits.dim() == 2

    def compute(self, real: SampleSet, fake: SampleSet) -> dict[str, Any]:
        from torch_fidelity.metric_isc import isc_features_to_metric

        value = isc_features_to_metric(
            fake.logits.detach().cpu(),
            splits=self.splits,
            shuffle=True,
            rng_seed=self.seed,
        )
        return {
            "is": float(value["inception_score_mean"]),
            "is_std": float(value["inception_score_std"]),
            "protocol": {"is_splits": self.splits},
        }


class PrecisionRecallDensityCoverage(Metric):
    """Improved precision/recall (k=3) and density/coverage (k=5) from one k-NN pass.

    Kynkäänniemi et al. 2019 (membership <=, self excluded) and Naeem et al. 2020
    (membership <). Distances are computed blockwise, never as a full matrix.
    For 2-D point data the points themselves are the features.
    """

    name = "prdc"
    requires: ClassVar[tuple[str, ...]] = ()
    options = (
        Option("k_pr", int, 3, "neighbours for precision/recall", minimum=1),
        Option("k_dc", int, 5, "neighbours for density/coverage", minimum=1),
        Option(
            "max_samples",
            int,
            10000,
            "subsample each side to at most this many",
            minimum=10,
        ),
    )

    def applies_to(self, real: SampleSet) -> bool:
        return real.features is not None or (
            real.samples is not None and real.samples.dim() == 2
        )

    def compute(self, real: SampleSet, fake: SampleSet) -> dict[str, Any]:
        from ganzoo.evaluation._knn import (
            knn_radii,
            precision_recall_density_coverage,
        )

        def vectors(side: SampleSet) -> torch.Tensor:
            values = side.features if side.features is not None else side.samples
            return values.detach().float()[: self.max_samples]

        # The real radii are a third of the work and the same for every run
        # scored against a cached reference: cached beside its features.
        reference, radii = vectors(real), None
        if real.cache_key is not None:
            ks = sorted({self.k_pr, self.k_dc})
            stored = real.statistic(
                "knn-radii",
                {"ks": ks, "n": len(reference)},
                lambda: {str(k): r for k, r in knn_radii(reference, ks).items()},
            )
            radii = {int(k): r for k, r in stored.items()}
        scores = precision_recall_density_coverage(
            reference, vectors(fake), k_pr=self.k_pr, k_dc=self.k_dc, real_radii=radii
        )
        return {
            **{k: float(v) for k, v in scores.items()},
            "protocol": {
                "k_pr": self.k_pr,
                "k_dc": self.k_dc,
                "prdc_n_real": min(len(real), self.max_samples),
                "prdc_n_fake": min(len(fake), self.max_samples),
            },
        }


def mixture_scores(
    points: torch.Tensor, means: torch.Tensor, std: float, threshold: float = 3.0
) -> dict[str, Any]:
    """Modes captured, % high quality and reverse KL of 2-D samples (PacGAN protocol).

    A sample is high quality within ``threshold`` standard deviations of its
    nearest mean; a mode is captured when a high-quality sample is nearest to it;
    the reverse KL compares the high-quality samples' mode histogram with the
    uniform one. With no high-quality sample at all it is undefined (None).
    """
    points = points.detach().double().cpu()
    means = means.double().cpu()
    distances = torch.cdist(points, means)
    nearest_distance, nearest = distances.min(dim=1)
    good = nearest_distance <= threshold * std
    counts = torch.bincount(nearest[good], minlength=len(means)).double()
    modes = int((counts > 0).sum())
    reverse_kl = None
    if counts.sum() > 0:
        p = counts / counts.sum()
        q = 1.0 / len(means)
        nonzero = p > 0
        reverse_kl = float((p[nonzero] * (p[nonzero] / q).log()).sum())
    return {
        "modes": modes,
        "high_quality": float(good.double().mean() * 100),
        "reverse_kl": reverse_kl,
        "protocol": {
            "modes_total": len(means),
            "high_quality_threshold_std": threshold,
            "mixture_std": std,
            "n_fake_modes": len(points),
        },
    }


class MixtureModes(Metric):
    """Modes captured, % high-quality samples and reverse KL on the 2-D mixtures.

    The VEEGAN/PacGAN protocol on 2,500 samples: high quality within 3 std of the
    nearest mean, a mode captured when a high-quality sample is nearest to it,
    reverse KL = KL(generated mode histogram || uniform).
    """

    name = "modes"
    requires: ClassVar[tuple[str, ...]] = ("samples",)
    options = (
        Option(
            "threshold",
            float,
            3.0,
            "high quality within this many std",
            minimum=0.0,
            exclusive_minimum=True,
        ),
        Option("n", int, 2500, "samples scored (the protocol's 2,500)", minimum=1),
    )

    def applies_to(self, real: SampleSet) -> bool:
        return real.dataset is not None and callable(
            getattr(real.dataset, "means", None)
        )

    def compute(self, real: SampleSet, fake: SampleSet) -> dict[str, Any]:
        if fake.samples is None or fake.samples.dim() != 2:
            raise GanzooError(f"{fake.name}: mode scores need 2-D points")
        return mixture_scores(
            fake.samples[: self.n],
            real.dataset.means(),
            float(real.dataset.std),
            self.threshold,
        )


def class_histogram(logits: torch.Tensor) -> torch.Tensor:
    predicted = logits.detach().argmax(dim=-1).cpu().reshape(-1)
    return torch.bincount(predicted, minlength=logits.shape[-1]).double()


def kl_divergence(p: torch.Tensor, q: torch.Tensor) -> float:
    """KL(p || q) of two histograms (normalised here); terms with p = 0 vanish."""
    p, q = p / p.sum(), q / q.sum()
    nonzero = p > 0
    if bool((q[nonzero] == 0).any()):
        return math.inf
    return float((p[nonzero] * (p[nonzero] / q[nonzero]).log()).sum())


class ClassCoverage(Metric):
    """Classes covered and KL between generated and real predicted-class histograms.

    Uses the classifier's logits (``fashion-classifier`` for Fashion-MNIST): a
    class is covered when its share of the generated predictions is at least a
    tenth of the uniform share.
    """

    name = "classes"
    requires: ClassVar[tuple[str, ...]] = ("logits",)
    options = (
        Option(
            "min_share",
            float,
            0.1,
            "covered at this fraction of the uniform share",
            minimum=0.0,
        ),
    )

    def applies_to(self, real: SampleSet) -> bool:
        return real.logits is not None and real.logits.dim() == 2

    def compute(self, real: SampleSet, fake: SampleSet) -> dict[str, Any]:
        real_hist, fake_hist = (
            class_histogram(real.logits),
            class_histogram(fake.logits),
        )
        classes = real.logits.shape[-1]
        share = fake_hist / fake_hist.sum()
        covered = int((share >= self.min_share / classes).sum())
        return {
            "classes_covered": covered,
            "class_kl": kl_divergence(fake_hist, real_hist),
            "protocol": {"classes_total": classes, "class_min_share": self.min_share},
        }


class ConditionalScores(Metric):
    """Intra-class FID and the classifier's accuracy on each requested class.

    For class-conditional generators: the Fréchet distance between the real and
    the generated features of each class, and their mean, the intra-class FID of
    Miyato & Koyama 2018; and how often the feature extractor's classifier
    assigns a generated sample to the class it was generated for. Per-class
    values are ``intra_fid_<k>`` and ``class_accuracy_<k>``.
    """

    name = "conditional"
    requires: ClassVar[tuple[str, ...]] = ("features", "logits", "labels")

    def applies_to(self, real: SampleSet) -> bool:
        return super().applies_to(real) and real.logits.dim() == 2

    def compute(self, real: SampleSet, fake: SampleSet) -> dict[str, Any]:
        from torch_fidelity.metric_fid import (
            fid_features_to_statistics,
            fid_statistics_to_metric,
        )

        classes = real.logits.shape[-1]
        real_labels, fake_labels = real.labels.cpu(), fake.labels.cpu()
        predicted = fake.logits.detach().argmax(dim=-1).cpu()
        scores: dict[str, Any] = {}
        fids, smallest = [], math.inf
        for k in range(classes):
            real_k = _features(real)[real_labels == k]
            fake_k = _features(fake)[fake_labels == k]
            if len(fake_k):
                hits = predicted[fake_labels == k] == k
                scores[f"class_accuracy_{k}"] = float(hits.double().mean())
            if len(real_k) < 2 or len(fake_k) < 2:
                continue
            smallest = min(smallest, len(real_k), len(fake_k))
            value = fid_statistics_to_metric(
                fid_features_to_statistics(real_k),
                fid_features_to_statistics(fake_k),
                verbose=False,
            )["frechet_inception_distance"]
            scores[f"intra_fid_{k}"] = float(value)
            fids.append(float(value))
        if len(fids) < classes:
            raise GanzooError(
                f"intra-class FID needs at least 2 real and 2 generated samples of "
                f"each of the {classes} classes; {fake.name} or {real.name} has "
                "fewer for some class (raise eval.n_fake or eval.n_real)"
            )
        dim = real.features.shape[1]
        return {
            "intra_fid": statistics.fmean(fids),
            "class_accuracy": float((predicted == fake_labels).double().mean()),
            **scores,
            "protocol": {
                "intra_fid_min_per_class": int(smallest),
                "intra_fid_biased": smallest < dim,
                "fake_labels": "every class in turn",
            },
        }


class StackedModes(Metric):
    """Modes covered (of 1,000) and KL against uniform on stacked 3-channel data.

    Each channel is classified separately; the mode is the three predicted
    classes, as in VEEGAN and PacGAN's Stacked MNIST.
    """

    name = "stacked-modes"
    requires: ClassVar[tuple[str, ...]] = ("logits",)

    def applies_to(self, real: SampleSet) -> bool:
        return real.logits is not None and real.logits.dim() == 3

    def compute(self, real: SampleSet, fake: SampleSet) -> dict[str, Any]:
        digits = fake.logits.detach().argmax(dim=-1).cpu()
        classes = fake.logits.shape[-1]
        codes = (digits * torch.tensor([classes**2, classes, 1])).sum(dim=1)
        total = classes ** digits.shape[1]
        counts = torch.bincount(codes, minlength=total).double()
        uniform = torch.ones(total, dtype=torch.float64)
        return {
            "modes": int((counts > 0).sum()),
            "reverse_kl": kl_divergence(counts, uniform),
            "protocol": {"modes_total": total},
        }


@hookimpl
def ganzoo_metrics() -> list[type[Metric]]:
    return [
        FrechetDistance,
        KernelDistance,
        InceptionScore,
        PrecisionRecallDensityCoverage,
        MixtureModes,
        ClassCoverage,
        ConditionalScores,
        StackedModes,
    ]
