"""Class-conditional runs: the label checks before training and the per-class scores."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganzoo import DataShape, GanzooError, SampleSet, TensorData
from ganzoo._registry import build_registry
from ganzoo.evaluation import default_metrics
from ganzoo.training._conditioning import Conditioning, takes_labels


@pytest.fixture(scope="module")
def registry():
    return build_registry()


def loss(registry, name):
    return registry.get("loss", name).cls.create()


def labeled(classes=3, n=12, with_labels=True):
    return TensorData(
        torch.rand(n, 1, 4, 4),
        DataShape("image", (1, 4, 4), num_classes=classes),
        "test",
        labels=torch.arange(n) % classes if with_labels else None,
    )


class Net(nn.Module):
    """A stand-in network that only carries the attributes the checks read."""

    def __init__(self, classes=0, conditional=False, auxiliary=False):
        super().__init__()
        self.num_classes = classes
        self.conditional = conditional
        self.auxiliary_classifier = auxiliary


def test_a_num_classes_attribute_alone_does_not_make_a_network_conditional():
    # timm and torchvision models carry num_classes for their output width.
    assert takes_labels(Net(classes=1)) == 0
    assert takes_labels(Net(classes=10, conditional=True)) == 10
    assert takes_labels(Net(classes=10, auxiliary=True)) == 10


def test_unconditional_networks_need_no_labels(registry):
    conditioning = Conditioning.of(Net(), Net(), loss(registry, "bce"), labeled())
    assert not conditioning.active
    assert conditioning.sample_labels(5, torch.device("cpu")) is None


def conditional(classes=3):
    return Net(classes, conditional=True)


DISAGREEMENTS = {
    "d-only": (Net(), conditional(), "bce", labeled(), "model.generator",
               "fakes would have no class"),
    "g-only": (conditional(), Net(), "bce", labeled(), "model.discriminator",
               "never sees a label"),
    "auxiliary-without-term": (conditional(), Net(3, auxiliary=True), "bce",
                               labeled(), "loss", "use the 'acgan' loss"),
    "term-without-auxiliary": (conditional(), conditional(), "acgan", labeled(),
                               "loss", "the discriminator has none"),
    "unlabeled": (conditional(), conditional(), "bce", labeled(with_labels=False),
                  "data", "has no labels"),
    "class-count": (conditional(4), conditional(), "bce", labeled(),
                    "model.generator", "built for 4 classes"),
}  # fmt: skip


@pytest.mark.parametrize(
    ("generator", "discriminator", "loss_name", "data", "key", "words"),
    list(DISAGREEMENTS.values()),
    ids=list(DISAGREEMENTS),
)
def test_disagreements_about_labels_are_recipe_errors(
    registry, generator, discriminator, loss_name, data, key, words
):
    with pytest.raises(GanzooError) as caught:
        Conditioning.of(generator, discriminator, loss(registry, loss_name), data)
    assert caught.value.key == key
    assert words in caught.value.message


def test_regularizers_see_the_discriminator_bound_to_the_real_labels():
    class Projection(nn.Module):
        num_classes, conditional = 3, True

        def forward(self, x, labels):
            return x.flatten(1).sum(1) * (labels.float() + 1)

    conditioning = Conditioning(3, discriminator_takes_labels=True)
    judged = conditioning.for_regularizers(Projection(), torch.tensor([0, 1, 2]))
    assert torch.equal(judged(torch.ones(3, 2)), torch.tensor([2.0, 4.0, 6.0]))


def conditional_sets(classes=3, per_class=400, dim=4, shifted_class=1):
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(classes * per_class) % classes
    centres = torch.eye(classes, dim) * 5
    real = centres[labels] + torch.randn(len(labels), dim, generator=gen)
    fake = centres[labels] + torch.randn(len(labels), dim, generator=gen)
    fake[labels == shifted_class] += 1.0  # one class generated off by a unit shift
    logits = torch.nn.functional.one_hot(labels, classes).float()
    fake_logits = logits.clone()
    fake_logits[: per_class // 2 * classes : classes] = torch.tensor([0.0, 0.0, 1.0])
    return (
        SampleSet("real", features=real, logits=logits, labels=labels),
        SampleSet("fake", features=fake, logits=fake_logits, labels=labels.clone()),
    )


def test_intra_class_fid_is_the_mean_of_fids_on_hand_split_classes(registry):
    real, fake = conditional_sets()
    scores = registry.get("metric", "conditional").cls.create().compute(real, fake)
    fid = registry.get("metric", "fid").cls.create()
    by_hand = [
        fid.compute(
            SampleSet("r", features=real.features[real.labels == k]),
            SampleSet("f", features=fake.features[fake.labels == k]),
        )["fid"]
        for k in range(3)
    ]
    for k in range(3):
        assert scores[f"intra_fid_{k}"] == pytest.approx(by_hand[k], abs=1e-9)
    assert scores["intra_fid"] == pytest.approx(sum(by_hand) / 3, abs=1e-9)
    # The shifted class is the one that is far off; the overall FID would mix
    # the classes and could not say which.
    assert (
        scores["intra_fid_1"] > 0.8 > max(scores["intra_fid_0"], scores["intra_fid_2"])
    )


def test_class_accuracy_counts_samples_classified_as_requested(registry):
    real, fake = conditional_sets()
    scores = registry.get("metric", "conditional").cls.create().compute(real, fake)
    # Half of class 0's fakes were made to look like class 2.
    assert scores["class_accuracy_0"] == pytest.approx(0.5)
    assert scores["class_accuracy_1"] == scores["class_accuracy_2"] == 1.0
    assert scores["class_accuracy"] == pytest.approx(2.5 / 3)


def test_intra_class_fid_needs_samples_of_every_class(registry):
    real, fake = conditional_sets()
    keep = fake.labels != 2
    fake = SampleSet(
        "fake", features=fake.features[keep], logits=fake.logits[keep],
        labels=fake.labels[keep],
    )  # fmt: skip
    with pytest.raises(GanzooError, match="each of the 3 classes"):
        registry.get("metric", "conditional").cls.create().compute(real, fake)


def test_per_class_scores_are_default_only_for_conditional_generators():
    shape = DataShape("image", (1, 28, 28), num_classes=10)
    assert "conditional" in default_metrics(shape, conditional=True)
    assert "conditional" not in default_metrics(shape)
