"""The lecture's DCGAN on Fashion-MNIST, trained the way most public examples do.

The reference side of ``benchmarks/throughput.py``: a plain PyTorch script with
the generator and discriminator modules of ganzoo's ``dcgan-seed`` (imported from
the built-in plugin, so the model is identical), and everything else as the usual
GAN tutorial writes it:

* a Dataset like ``torchvision.datasets.FashionMNIST``: the uint8 images in
  memory, each item made into a PIL image and passed through
  ``transforms.ToTensor()``;
* a ``DataLoader`` with ``shuffle=True`` and worker processes;
* the lecture's step: fakes and reals through the discriminator together, binary
  cross-entropy with 0.05 uniform label noise, then the generator towards "all
  real", each with its own Adam optimizer (the recipe's settings).

It trains ``--warmup`` steps, then times ``--steps`` steps and prints one JSON line:
wall seconds, the CPU seconds of this process and of its data loader workers,
images per second and peak host memory.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from ganzoo_plugins.architectures.dcgan_seed import SeedDiscriminator, SeedGenerator
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

DATA = Path("/usr/share/datasets/fashion-mnist")
FILES = ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz")
LABELS = ("train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def read_idx(path: Path, offset: int) -> np.ndarray:
    with gzip.open(path, "rb") as file:
        return np.frombuffer(file.read(), dtype=np.uint8, offset=offset)


class FashionMNIST(Dataset):
    """As torchvision's FashionMNIST: a PIL image and the transform per item."""

    def __init__(self, root: Path, transform) -> None:
        images = [read_idx(root / name, 16).reshape(-1, 28, 28) for name in FILES]
        labels = [read_idx(root / name, 8) for name in LABELS]
        self.data = torch.from_numpy(np.concatenate(images))  # train + test: 70,000
        self.targets = torch.from_numpy(np.concatenate(labels)).long()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        image = Image.fromarray(self.data[index].numpy(), mode="L")
        return self.transform(image), int(self.targets[index])


def worker_cpu_seconds() -> float:
    """User + system CPU seconds of this process's children (the loader workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid():  # fields[1] is the parent's pid
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed first steps")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    # The model, built from the same seed as ganzoo's run, so the weights match.
    torch.manual_seed(args.seed)
    generator = SeedGenerator(channels=1, latent_dim=128).to(device)
    discriminator = SeedDiscriminator(channels=1).to(device)
    g_optimizer = torch.optim.Adam(
        generator.parameters(), lr=4e-4, betas=(0.9, 0.999), eps=1e-7
    )
    d_optimizer = torch.optim.Adam(
        discriminator.parameters(), lr=3e-4, betas=(0.9, 0.999), eps=1e-7
    )

    dataset = FashionMNIST(args.data, transforms.ToTensor())
    loader = DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        drop_last=True,
        persistent_workers=args.workers > 0,
        pin_memory=device.type == "cuda",
    )
    size = args.batch_size
    labels = torch.cat([torch.zeros(size), torch.ones(size)]).to(device)
    all_real = torch.ones(size, device=device)

    def train_step(real: torch.Tensor) -> None:
        # Discriminator: fakes and reals together, noisy labels.
        with torch.no_grad():
            fake = generator(torch.randn(size, 128, device=device))
        logits = discriminator(torch.cat([fake, real])).reshape(-1)
        noisy = labels + 0.05 * torch.rand_like(labels)
        d_loss = F.binary_cross_entropy_with_logits(logits, noisy)
        d_optimizer.zero_grad()
        d_loss.backward()
        d_optimizer.step()

        # Generator: new latents through the frozen discriminator, target real.
        discriminator.requires_grad_(False)
        logits = discriminator(generator(torch.randn(size, 128, device=device)))
        logits = logits.reshape(-1)
        g_loss = F.binary_cross_entropy_with_logits(logits, all_real)
        g_optimizer.zero_grad()
        g_loss.backward()
        g_optimizer.step()
        discriminator.requires_grad_(True)

    # Warm-up, then the timed steps: the clock starts when the last warm-up step
    # ends, so it counts each timed step's batch fetch and the step itself.
    def clocks() -> tuple[float, float, float]:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter(), time.process_time(), worker_cpu_seconds()

    steps_done = 0
    total = args.warmup + args.steps
    start = clocks()
    while steps_done < total:
        for real, _ in loader:
            train_step(real.to(device, non_blocking=True))
            steps_done += 1
            if steps_done == args.warmup:
                start = clocks()
            if steps_done == total:
                break
    end = clocks()
    wall, cpu, workers = (b - a for a, b in zip(start, end, strict=True))

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30
    print(
        json.dumps(
            {
                "side": "plain",
                "batch_size": size,
                "steps": args.steps,
                "warmup": args.warmup,
                "threads": args.threads,
                "workers": args.workers,
                "device": str(device),
                "wall_sec": wall,
                "cpu_sec": cpu,
                "worker_cpu_sec": workers,
                "img_per_sec": args.steps * size / wall,
                "peak_host_mem_gb": round(peak, 3),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
