"""Train the 28x28 classifier that ganzoo scores Fashion-MNIST (or MNIST) samples with.

The recipe is fixed and deterministic: one seed drives the initialisation, the
batch order, the augmentation and dropout, and PyTorch is asked for
deterministic algorithms. Rerunning it on the same kind of CPU with the same
number of threads (one by default) gives the same weights; other CPUs or thread
counts may differ in the last bits of floating point sums, and so by a few test
images.

The network is trained on the train split only and evaluated once, at the end,
on the test split. The weights go to ``plugins/weights/<name>.pt`` and a record
of how they were made to ``plugins/weights/<name>.json``.

    python scripts/train_classifier.py                    # fashion-classifier
    python scripts/train_classifier.py --dataset mnist    # mnist-classifier
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import io
import json
import math
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from ganzoo_plugins.datasets.idx import FashionMnist, IdxImages, Mnist
from ganzoo_plugins.feature_extractors.classifier import (
    WEIGHTS_DIR,
    Classifier,
    FashionClassifier,
    MnistClassifier,
    SmallCnn,
)

import ganzoo
from ganzoo import GanzooError, TensorData

DATASETS: dict[str, tuple[type[IdxImages], type[Classifier]]] = {
    "fashion-mnist": (FashionMnist, FashionClassifier),
    "mnist": (Mnist, MnistClassifier),
}
SHIFT = 2
"""Largest random translation in pixels, in each direction, during training."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="fashion-mnist")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads; one is fastest on a shared machine, and results depend "
        "on the number",
    )
    parser.add_argument(
        "--root",
        default=None,
        help="folder holding the four IDX files, if not the "
        "system location or the ganzoo data root",
    )
    parser.add_argument(
        "--no-download", action="store_true", help="never try to download the files"
    )
    parser.add_argument(
        "--out", type=Path, default=WEIGHTS_DIR, help="folder for the .pt and .json"
    )
    return parser.parse_args(argv)


def load_splits(args: argparse.Namespace) -> tuple[TensorData, TensorData]:
    """The train and test splits, or GanzooError saying where the files were sought."""
    dataset_cls = DATASETS[args.dataset][0]
    dataset = dataset_cls.create(root=args.root, download=not args.no_download)
    return dataset.load("train"), dataset.load("test")


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Shift each image by up to SHIFT pixels in each direction, filling with zeros.

    No mirroring: mirrored digits are other digits, and for Fashion-MNIST it made
    no difference to the test accuracy.
    """
    count, size = len(images), images.shape[-1]
    padded = F.pad(images[:, 0], (SHIFT, SHIFT, SHIFT, SHIFT))
    offsets = torch.randint(0, 2 * SHIFT + 1, (2, count), generator=generator)
    steps = torch.arange(size)
    rows = (offsets[0, :, None] + steps)[:, :, None]
    cols = (offsets[1, :, None] + steps)[:, None, :]
    return padded[torch.arange(count)[:, None, None], rows, cols].unsqueeze(1)


@torch.no_grad()
def accuracy(extractor: Classifier, data: TensorData) -> float:
    """Fraction of ``data`` that the extractor's logits classify correctly."""
    logits = extractor.extract(data.samples)["logits"]
    return float((logits.argmax(dim=1) == data.labels).double().mean())


def train(args: argparse.Namespace, train_data: TensorData) -> SmallCnn:
    """The whole training run: the network in eval mode at the end."""

    # Seeds and determinism: one generator for the data, the global one for init
    # and dropout.
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    network = SmallCnn()
    network.mean.fill_(float(train_data.samples.mean()))
    network.std.fill_(float(train_data.samples.std()))

    images, labels = train_data.samples, train_data.labels
    steps_per_epoch = math.ceil(len(images) / args.batch_size)
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=args.lr, weight_decay=args.weight_decay
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch
    )
    start = time.perf_counter()
    print(
        f"{'epoch':>5} {'kimg':>6} {'loss':>7} {'train':>7} {'sec/kimg':>8} {'eta':>6}"
    )

    for epoch in range(1, args.epochs + 1):
        network.train()
        order = torch.randperm(len(images), generator=generator)
        total_loss, correct = 0.0, 0
        for index in order.split(args.batch_size):
            batch = augment(images[index], generator)
            target = labels[index]

            # One optimisation step.
            logits = network(batch)
            loss = F.cross_entropy(logits, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()

            total_loss += float(loss.detach()) * len(index)
            correct += int((logits.argmax(dim=1) == target).sum())

        # One line per epoch: progress in thousands of images shown.
        elapsed = time.perf_counter() - start
        kimg = epoch * len(images) / 1000
        eta = elapsed / epoch * (args.epochs - epoch)
        print(
            f"{epoch:>5} {kimg:>6.0f} {total_loss / len(images):>7.4f} "
            f"{correct / len(images):>7.4f} {elapsed / kimg:>8.3f} {eta:>5.0f}s",
            flush=True,
        )

    network.requires_grad_(False)
    return network.eval()


def save(
    args: argparse.Namespace,
    network: SmallCnn,
    test_data: TensorData,
    train_data: TensorData,
    seconds: float,
) -> dict[str, Any]:
    """Write the weights and their record; the accuracy is measured on the file."""
    plugin = DATASETS[args.dataset][1]
    buffer = io.BytesIO()
    torch.save(network.state_dict(), buffer)
    raw = buffer.getvalue()
    args.out.mkdir(parents=True, exist_ok=True)
    weights = args.out / plugin.weights_file
    weights.write_bytes(raw)

    # Score the file as ganzoo will load it, so the record describes the file.
    test_accuracy = accuracy(plugin.create(weights=str(weights)), test_data)
    record = {
        "name": plugin.name,
        "dataset": args.dataset,
        "test_accuracy": round(test_accuracy, 6),
        "test_samples": len(test_data),
        "train_samples": len(train_data),
        "epochs": args.epochs,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "augmentation": f"random shift up to {SHIFT} px, zero fill",
        "architecture": "conv5x5/2(32)-conv3x3/2(64)-conv3x3/2(128)-fc256-fc10, "
        "batch norm after each conv, dropout before each fc",
        "parameters": sum(p.numel() for p in network.parameters()),
        "input_mean": round(float(network.mean), 6),
        "input_std": round(float(network.std), 6),
        "data_fingerprints": {
            "train": train_data.fingerprint,
            "test": test_data.fingerprint,
        },
        "sha256": hashlib.sha256(raw).hexdigest(),
        "size_bytes": len(raw),
        "train_seconds": round(seconds, 1),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "ganzoo": ganzoo.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "command": shlex.join(["python", "scripts/train_classifier.py", *sys.argv[1:]]),
    }
    weights.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)

    # Data.
    try:
        train_data, test_data = load_splits(args)
    except GanzooError as error:
        # The data set speaks of its recipe options; name this script's flags too.
        print(
            f"train_classifier.py: error: {error} (for this script, root is "
            "--root FOLDER, and download is on unless --no-download)",
            file=sys.stderr,
        )
        return 2
    print(
        f"{args.dataset}: {len(train_data)} train, {len(test_data)} test images; "
        f"{args.epochs} epochs, seed {args.seed}, {torch.get_num_threads()} threads"
    )

    # Training.
    start = time.perf_counter()
    network = train(args, train_data)
    seconds = time.perf_counter() - start

    # Weights and record.
    record = save(args, network, test_data, train_data, seconds)
    print(
        f"test accuracy {record['test_accuracy']:.4f} on {record['test_samples']} "
        f"images; {record['size_bytes'] / 1e6:.2f} MB written to "
        f"{args.out / DATASETS[args.dataset][1].weights_file} in {seconds:.0f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
