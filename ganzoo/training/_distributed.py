"""Training on several processes: DistributedDataParallel, launched by torchrun.

``torchrun --nproc_per_node N -m ganzoo train RECIPE`` starts N copies of the
command (``ganzoo train --nproc N`` does the same on one machine). Each joins
one process group and trains on its share of every batch:

- ``train.batch_size`` is the global batch. Every process draws the indices of
  each global batch from the same :class:`~ganzoo.training._parts.BatchSampler`,
  seeded alike, and rank r trains on the r-th of ``world size`` equal slices.
- Both networks are wrapped in DistributedDataParallel, which averages their
  gradients over the processes in each backward pass. A wrapper expects one
  backward after each forward through it, so only the passes that train a
  network go through its wrapper: the discriminator's main pass in its step and
  the generator's pass in the generator step. Penalties on input gradients, the
  second pass of a batch-norm discriminator and the discriminator's pass in the
  generator step call the bare module; their gradients reach the same
  parameters and are summed there before the wrapper averages them.
- Random numbers (latents, fake labels, interpolation weights, label noise,
  dropout) come from a seed derived from ``train.seed``, the rank and the step
  of the last checkpoint, derived again after every checkpoint. A resumed run
  therefore draws what the uninterrupted run drew, with no per-process
  generator state in the checkpoint, and may even resume on another world size.
- Every decision that skips or ends a step is taken on values that all
  processes share (the loss averaged over them, the averaged gradients, a
  Ctrl-C seen by any of them), so the processes never part ways.
- Only rank 0 touches the run directory: it holds the lock, writes run.json,
  stats.jsonl, snapshots, checkpoints and the evaluations during training, and
  on resume it reads the checkpoint and hands it to the others. The others log
  only their errors.
- A process that fails exits, and torchrun stops the others. A process that
  hangs makes the others' next collective fail after ``GANZOO_DIST_TIMEOUT_SEC``
  seconds (30 minutes by default), which must also cover what rank 0 does
  alone between two steps: evaluations and checkpoints.

One process (no torchrun, or a world of one) never touches torch.distributed
and trains exactly as before.

Batch norm normalises over each process's part of the batch, not over the
global batch: SyncBatchNorm is not used (it needs CUDA, and it would
synchronise inside the bare passes as well). The running statistics are not
synchronised either; they only matter in eval mode, and checkpoints hold rank
0's. A network with parameters that do not reach the loss fails with
DistributedDataParallel's own error, since unused-parameter detection is off:
no built-in network has any, and the detection costs a graph walk per pass.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import re
import signal
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .._errors import GanzooError
from .._plugin import Tracker
from ._parts import BatchSampler, seed_everything
from ._progress import Progress

if TYPE_CHECKING:
    from ._trainer import Trainer

log = logging.getLogger("ganzoo.train")

TIMEOUT_VARIABLE = "GANZOO_DIST_TIMEOUT_SEC"
DEFAULT_TIMEOUT_SEC = 1800.0

T = TypeVar("T")


# Where this process stands.


def launched_ranks() -> tuple[int, int, int]:
    """``(rank, world size, local rank)`` as torchrun sets them; one process
    when they are not set."""
    size = _environment_int("WORLD_SIZE", 1)
    rank = _environment_int("RANK", 0)
    local_rank = _environment_int("LOCAL_RANK", rank)
    if size < 1 or not 0 <= rank < size:
        raise GanzooError(
            f"the environment describes rank {rank} of a world of {size} "
            "processes; start distributed runs with torchrun"
        )
    return rank, size, local_rank


@dataclass(frozen=True)
class World:
    """The processes of one run, as seen from one of them.

    In a run of one process every method is the identity or does nothing, so
    the trainer calls them unconditionally.
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        """Whether this is rank 0, the process that writes the run directory."""
        return self.rank == 0

    # Values all processes agree on.

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """``value`` averaged over the processes (detached); ``value`` itself in a
        run of one process."""
        if not self.distributed:
            return value
        total = value.detach().clone()
        dist.all_reduce(total)
        return total / self.size

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any process."""
        if not self.distributed:
            return flag
        value = torch.tensor([float(flag)], device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def average(self, values: dict[str, torch.Tensor]) -> None:
        """Replace each tensor of ``values`` by its mean over the processes, in
        one collective; every process must hold the same keys."""
        if not self.distributed or not values:
            return
        keys = sorted(values)
        flat = torch.cat([values[k].detach().float().reshape(-1) for k in keys])
        dist.all_reduce(flat)
        flat /= self.size
        for key, part in zip(
            keys, flat.split([values[k].numel() for k in keys]), strict=True
        ):
            values[key] = part.reshape(values[key].shape)

    def from_main(self, make: Callable[[], T]) -> T:
        """``make()`` called on rank 0 and its result handed to every process."""
        if not self.distributed:
            return make()
        box = [make() if self.main else None]
        dist.broadcast_object_list(box, src=0, device=self._object_device())
        return box[0]  # type: ignore[return-value]

    def _object_device(self) -> torch.device | None:
        return self.device if self.device.type == "cuda" else None

    # Random numbers.

    def reseed(self, seed: int, step: int) -> None:
        """Seed this process's random numbers from the seed, its rank and ``step``."""
        if self.distributed:
            seed_everything(derived_seed(seed, self.rank, step))

    # Steps.

    def finish_skipped_backward(self, loss: torch.Tensor) -> None:
        """Run the backward pass of a step that is skipped without an update.

        A DistributedDataParallel wrapper waits for one backward after each
        forward through it; without it, the next forward fails. The gradients
        it leaves are cleared before the next update.
        """
        if self.distributed:
            loss.backward()

    def progress(
        self,
        run_dir: Path,
        total_kimg: float,
        device: torch.device,
        trackers: Iterable[Tracker] = (),
        show_bar: bool | None = None,
    ) -> Progress:
        """The trainer's :class:`Progress`; shared over the processes when there
        are several."""
        if not self.distributed:
            return Progress(run_dir, total_kimg, device, trackers, show_bar=show_bar)
        return SharedProgress(self, run_dir, total_kimg, device, trackers, show_bar)


def derived_seed(seed: int, rank: int, step: int) -> int:
    """A seed for one process at one step, independent of the others' seeds."""
    sequence = np.random.SeedSequence([seed, rank, step])
    return int(sequence.generate_state(1, dtype=np.uint32)[0])


# Joining and leaving the process group.


def join(device: torch.device, batch_size: int) -> World:
    """The world this process belongs to, with its process group started.

    A run of one process gets a world of one and nothing is started. Otherwise
    ``batch_size`` (the global batch) must split evenly over the processes,
    and on CUDA each process takes the device of its local rank.
    """
    rank, size, local_rank = launched_ranks()
    if size == 1:
        return World(device=device)
    check_batch_split(batch_size, size)
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise GanzooError(
                f"torchrun started local rank {local_rank}, but this machine has "
                f"{torch.cuda.device_count()} CUDA devices; start at most one "
                "process per device (--nproc_per_node)"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(
            "nccl" if device.type == "cuda" else "gloo",
            timeout=timedelta(seconds=timeout_seconds()),
        )
    if rank != 0:
        # Rank 0 logs for all; the others keep only their errors.
        logging.getLogger("ganzoo").setLevel(logging.ERROR)
    return World(rank, size, local_rank, device)


def check_batch_split(batch_size: int, size: int) -> None:
    """Raise GanzooError (key ``train.batch_size``) unless the global batch
    splits evenly over ``size`` processes."""
    if batch_size % size:
        raise GanzooError(
            f"{batch_size} does not split evenly over {size} processes: the "
            f"batch is global and each process trains on batch_size / {size} of "
            f"it; use a multiple of {size}",
            key="train.batch_size",
        )


def timeout_seconds() -> float:
    """How long a collective may wait for the other processes."""
    text = os.environ.get(TIMEOUT_VARIABLE, "").strip()
    if not text:
        return DEFAULT_TIMEOUT_SEC
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise GanzooError(
            f"{TIMEOUT_VARIABLE} must be a positive number of seconds, got {text!r}"
        )
    return seconds


@contextlib.contextmanager
def session() -> Iterator[None]:
    """Around one distributed training command: leave the process group at the
    end, and on a failure leave it at once, so that the other processes stop
    waiting for this one instead of hanging until their timeout."""
    try:
        yield
    except BaseException as error:
        # The command line reports the error; the process group goes first.
        if not dist.is_initialized():
            raise
        with contextlib.suppress(Exception):
            dist.destroy_process_group()
        if isinstance(error, RuntimeError) and _COLLECTIVE_FAILURE.search(str(error)):
            raise LostContact(_lost_contact(error)) from error
        raise
    if dist.is_initialized():
        dist.destroy_process_group()


class LostContact(RuntimeError):
    """A collective failed: another process of the run stopped or stopped answering."""


# What gloo and NCCL say when a peer is gone or silent.
_COLLECTIVE_FAILURE = re.compile(
    r"gloo|nccl|connection (reset|closed|refused)|timed out", re.IGNORECASE
)


def _lost_contact(error: RuntimeError) -> str:
    first = (str(error).strip().splitlines() or [""])[0]
    first = re.sub(r"^\[[^\]]*\]\s*", "", first)  # the C++ source location
    first = first.split(". This is typically")[0][:200]
    if "timed out" in first.lower():
        return (
            "another process of the run did not answer within "
            f"{timeout_seconds():g} s ({TIMEOUT_VARIABLE}): it hangs, or is busy "
            f"for longer than that ({first})"
        )
    return f"another process of the run stopped (its own message says why): {first}"


# The trainer's side.


@dataclass
class Synced:
    """The networks as the passes that train them call them: each wrapped in
    DistributedDataParallel in a distributed run, the bare module otherwise."""

    generator: nn.Module
    discriminator: nn.Module


def prepare(trainer: Trainer) -> Synced:
    """Make a built trainer one of the processes of its world.

    Called at the end of :class:`Trainer` construction: checks that each
    process's part of the batch fits the discriminator, shards the sampler,
    wraps the networks and seeds this process's random numbers. In a run of one
    process it only returns the bare networks.
    """
    world: World = trainer.world
    nets = trainer.nets
    if not world.distributed:
        return Synced(nets.generator, nets.discriminator)

    _refuse_unsynced_steps(trainer)
    _check_process_batch(trainer)
    if not world.main:
        trainer.trackers = []
    trainer.sampler = ShardedSampler(trainer.sampler, world)
    synced = Synced(_wrap(nets.generator, world), _wrap(nets.discriminator, world))
    world.reseed(trainer.train_options["seed"], 0)
    log.info(
        "distributed: %d processes over %s, %d samples each per batch",
        world.size,
        dist.get_backend(),
        trainer.train_options["batch_size"] // world.size,
    )
    return synced


def _wrap(network: nn.Module, world: World) -> nn.Module:
    ids = [world.device.index] if world.device.type == "cuda" else None
    # Buffers (batch-norm running statistics) are not synchronised at each
    # forward: training uses batch statistics, and checkpoints hold rank 0's.
    # Newer torch names the switch forward_sync_buffers.
    wrapper = nn.parallel.DistributedDataParallel
    if "forward_sync_buffers" in inspect.signature(wrapper).parameters:
        no_sync: dict[str, Any] = {"forward_sync_buffers": False}
    else:
        no_sync = {"broadcast_buffers": False}
    return wrapper(network, device_ids=ids, **no_sync)


def _refuse_unsynced_steps(trainer: Trainer) -> None:
    """A trainer subclass with steps of its own may forward the bare networks,
    whose gradients no wrapper averages; it says otherwise with
    ``steps_use_synced = True`` once its steps train through ``self.synced``."""
    from ._trainer import Trainer

    kind = type(trainer)
    own = [
        name
        for name in ("discriminator_step", "generator_step")
        if getattr(kind, name) is not getattr(Trainer, name)
    ]
    if own and not getattr(kind, "steps_use_synced", False):
        raise GanzooError(
            f"{kind.__name__} has its own {' and '.join(own)}, which do not "
            "average gradients over processes; train this recipe in one process "
            "(without torchrun or --nproc)"
        )


def _check_process_batch(trainer: Trainer) -> None:
    """Push one process's part of the batch through the discriminator, so that
    a part it cannot take (an odd part for PacGAN2) is a user error now."""
    batch, size = trainer.train_options["batch_size"], trainer.world.size
    part = batch // size
    index = torch.arange(part, device=trainer.device) % len(trainer.real)
    discriminator = trainer.nets.discriminator
    discriminator.eval()
    try:
        with torch.no_grad():
            trainer.probe_discriminator(index)
    except (GanzooError, RuntimeError) as error:
        problem = error.message if isinstance(error, GanzooError) else str(error)
        first = (problem.strip().splitlines() or [""])[0]
        raise GanzooError(
            f"each of the {size} processes trains on {part} samples of every "
            f"batch of {batch}, and the discriminator cannot take {part}: {first}",
            key="train.batch_size",
        ) from None
    finally:
        discriminator.train()


class ShardedSampler:
    """The global batches of a :class:`BatchSampler`, of which this process
    takes its own slice: rank r the r-th of ``world size`` equal parts.

    Every process holds the same sampler in the same state, so the checkpoint
    of rank 0 restores them all.
    """

    def __init__(self, sampler: BatchSampler, world: World) -> None:
        self.sampler = sampler
        self.world = world
        self.samples = sampler.samples
        self.batch_size = sampler.batch_size // world.size

    def next_index(self) -> torch.Tensor:
        index = self.sampler.next_index()
        start = self.world.rank * self.batch_size
        return index[start : start + self.batch_size]

    def next(self) -> torch.Tensor:
        return self.samples[self.next_index()]

    def state_dict(self) -> dict[str, Any]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state)


class SharedProgress(Progress):
    """Progress of a distributed run: each tick's statistics are averaged over
    the processes, and only rank 0 writes and logs them.

    Time, sec/kimg and memory are rank 0's; kimg counts the global batch.
    """

    def __init__(
        self,
        world: World,
        run_dir: Path,
        total_kimg: float,
        device: torch.device,
        trackers: Iterable[Tracker],
        show_bar: bool | None,
    ) -> None:
        main = world.main
        super().__init__(
            run_dir,
            total_kimg,
            device,
            trackers if main else (),
            show_bar=show_bar if main else False,
        )
        self.world = world
        if not main:
            self.stats_path = Path(os.devnull)
        self.constants["world_size"] = world.size

    def report(self, kimg: float, step: int) -> dict[str, Any]:
        self.world.average(self.sums)
        return super().report(kimg, step)


# The launcher behind ``ganzoo train --nproc N``.


@dataclass(frozen=True)
class LaunchResult:
    """How the processes of a launched run ended; ``failures`` maps each failed
    rank to its exit status (negative: killed by that signal). ``signal`` is the
    signal that stopped the launcher itself (Ctrl-C), if one did."""

    nproc: int
    failures: dict[int, int]
    signal: int | None = None

    @property
    def exit_status(self) -> int:
        if self.signal is not None:
            return 128 + self.signal
        codes = set(self.failures.values())
        if not codes:
            return 0
        if codes <= {2}:
            return 2  # a user error, which the processes printed
        if codes <= {130, -2}:
            return 130
        return 1

    def describe(self) -> str:
        """``2 of 2 processes stopped with an error (rank 0: exit status 1, ...)``."""
        parts = []
        for rank, code in sorted(self.failures.items()):
            how = f"exit status {code}"
            if code < 0:
                with contextlib.suppress(ValueError):
                    how = f"killed by {signal.Signals(-code).name}"
            parts.append(f"rank {rank}: {how}")
        return (
            f"{len(self.failures)} of {self.nproc} processes stopped with an error "
            f"({', '.join(parts)}); their messages are above"
        )


def launch(arguments: list[str], nproc: int) -> LaunchResult:
    """Run ``python -m ganzoo ARGUMENTS`` in ``nproc`` processes on this machine,
    through torchrun's launcher with a standalone rendezvous (a free port)."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    # torchrun sets this itself when it is unset, with a banner; the same here,
    # quietly. A value the user set is kept.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    args = get_args_parser().parse_args(
        ["--standalone", f"--nproc_per_node={nproc}", "-m", "ganzoo", *arguments]
    )
    try:
        run(args)
    except ChildFailedError as error:
        return LaunchResult(
            nproc, {rank: f.exitcode for rank, f in error.failures.items()}
        )
    except SignalException as error:
        # Ctrl-C or a kill: torchrun has passed the signal on to the processes
        # (Ctrl-C: rank 0 writes a checkpoint at the next step) and stopped them.
        return LaunchResult(nproc, {}, signal=int(error.sigval))
    return LaunchResult(nproc, {})


def without_option(arguments: list[str], option: str) -> list[str]:
    """``arguments`` without ``option`` and its value (``--opt V``, ``--opt=V``,
    or an abbreviation argparse accepted)."""
    kept: list[str] = []
    skip_value = False
    for argument in arguments:
        if skip_value:
            skip_value = False
            continue
        name, equals, _ = argument.partition("=")
        if len(name) > 2 and option.startswith(name) and name.startswith("--"):
            skip_value = not equals
            continue
        kept.append(argument)
    return kept


def _environment_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise GanzooError(
            f"the environment variable {name} is {text!r}, not a whole number"
        ) from None
