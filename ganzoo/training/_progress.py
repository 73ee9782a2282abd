"""Progress in kimg: one fixed-width line per tick, the same values to stats.jsonl."""

from __future__ import annotations

import json
import logging
import os
import resource
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from .._plugin import Tracker

log = logging.getLogger("ganzoo.train")


def peak_host_memory_gb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024
    return peak * scale / 2**30


def peak_device_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return 0.0


def format_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"


class Progress:
    """Accumulates per-step statistics and reports them once per tick.

    Values are summed as tensors on the training device and read back once per
    tick, so reporting adds no synchronisation to the steps themselves.
    """

    def __init__(
        self,
        run_dir: Path,
        total_kimg: float,
        device: torch.device,
        trackers: Iterable[Tracker] = (),
        show_bar: bool | None = None,
    ) -> None:
        self.stats_path = run_dir / "stats.jsonl"
        self.total_kimg = total_kimg
        self.device = device
        self.trackers = list(trackers)
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}
        # Values written with every tick as they are (a distributed run's world size).
        self.constants: dict[str, Any] = {}
        self.tick = 0
        self.tick_start_time = time.perf_counter()
        self.tick_start_kimg = 0.0
        self.start_time = time.perf_counter()
        self.elapsed_before = 0.0
        if device.type == "cuda":  # the peak of this run, not of the process
            torch.cuda.reset_peak_memory_stats(device)
        if show_bar is None:
            show_bar = sys.stderr.isatty() and not os.environ.get("CI")
        self.bar = None
        if show_bar:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total_kimg,
                unit="kimg",
                bar_format=(
                    "{l_bar}{bar}| {n:.1f}/{total:.1f} kimg [{elapsed}<{remaining}]"
                ),
                dynamic_ncols=True,
            )

    def resume_from(self, kimg: float, tick: int, elapsed: float) -> None:
        self.tick = tick
        self.tick_start_kimg = kimg
        self.elapsed_before = elapsed
        if self.bar is not None:
            self.bar.update(kimg)

    @property
    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.start_time

    def add(self, values: Mapping[str, torch.Tensor]) -> None:
        for key, value in values.items():
            value = value.detach().float()
            self.sums[key] = self.sums[key] + value if key in self.sums else value
            self.counts[key] = self.counts.get(key, 0) + 1

    def advance_bar(self, kimg: float) -> None:
        if self.bar is not None:
            self.bar.update(kimg - self.bar.n)

    def report(self, kimg: float, step: int) -> dict[str, Any]:
        """Write one tick: a log line, a stats.jsonl entry, and the trackers."""
        now = time.perf_counter()
        tick_kimg = max(kimg - self.tick_start_kimg, 1e-9)
        sec_per_kimg = (now - self.tick_start_time) / tick_kimg
        remaining = max(self.total_kimg - kimg, 0.0) * sec_per_kimg
        stats: dict[str, Any] = {
            "tick": self.tick,
            "kimg": round(kimg, 3),
            "step": step,
            "time_sec": round(self.elapsed, 2),
            "sec_per_kimg": round(sec_per_kimg, 4),
            "img_per_sec": round(1000 / max(sec_per_kimg, 1e-9), 2),
            "eta_sec": round(remaining, 1),
            "peak_host_mem_gb": round(peak_host_memory_gb(), 3),
            "peak_device_mem_gb": round(peak_device_memory_gb(self.device), 3),
        }
        stats.update(self.constants)
        for key in sorted(self.sums):
            stats[key] = float(self.sums[key] / self.counts[key])
        stats["timestamp"] = time.time()

        with self.stats_path.open("a") as file:
            file.write(json.dumps(stats) + "\n")
        line = (
            f"tick {stats['tick']:<5d} kimg {kimg:<8.1f} "
            f"sec/kimg {sec_per_kimg:<7.2f} img/s {stats['img_per_sec']:<7.0f} "
            f"eta {format_duration(remaining):>8s}  "
            + "  ".join(
                f"{_short(k)} {stats[k]:<7.3g}"
                for k in ("d_loss", "g_loss", "d_acc_real", "d_acc_fake", "g_grad_norm")
                if k in stats
            )
            + f"  mem {stats['peak_host_mem_gb']:.2f}GB"
            + (
                f" gpu {stats['peak_device_mem_gb']:.2f}GB"
                if self.device.type == "cuda"
                else ""
            )
        )
        if self.bar is not None:
            self.bar.write(line)
        else:
            log.info(line)
        for tracker in self.trackers:
            tracker.log_stats(stats, step)

        self.sums.clear()
        self.counts.clear()
        self.tick += 1
        self.tick_start_time = now
        self.tick_start_kimg = kimg
        return stats

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _short(key: str) -> str:
    return {
        "d_acc_real": "acc_real",
        "d_acc_fake": "acc_fake",
        "g_grad_norm": "g_grad",
    }.get(key, key)
