"""Guards around the training loop: a stop at a step boundary, and divergence.

The first SIGINT (Ctrl-C) or SIGTERM (what schedulers send before they kill a
job) asks the loop to stop after the step it is in, write a checkpoint and
exit; a second one stops at once, without a checkpoint (the previous one is
still whole, since checkpoints are written atomically).

A step whose loss is NaN or infinite is caught before its optimizer step, so
it never reaches the weights: with ``train.skip_bad_steps`` it is skipped a
bounded number of times, otherwise the run stops. Weights are checked at every
tick and before every checkpoint, so a checkpoint never holds a diverged network.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import torch
from torch import nn

log = logging.getLogger("ganzoo.train")


class TrainingDiverged(RuntimeError):
    """A loss or the weights of a network became NaN or infinite.

    ``step`` is the 1-based iteration in which it was seen, ``network`` is
    ``generator`` or ``discriminator``.
    """

    def __init__(self, message: str, *, step: int, network: str, kimg: float) -> None:
        super().__init__(message)
        self.step = step
        self.network = network
        self.kimg = kimg


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped the run; the message says what was saved.

    ``signum`` is the signal that asked for the stop.
    """

    def __init__(self, message: str, *, signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.signum = int(signum)


class InterruptGuard:
    """While active, the first SIGINT or SIGTERM sets :attr:`requested` (and
    :attr:`signum`) instead of stopping the process.

    ``terminate=False`` leaves SIGTERM alone: torchrun sends it to the other
    processes of a run when one fails, and they must then stop at once.
    Installed only from the main thread (Python delivers signals there); in any
    other thread it does nothing and both signals keep their usual meaning.
    """

    def __init__(self, *, terminate: bool = True) -> None:
        self.requested = False
        self.signum = int(signal.SIGINT)
        self._signals = [signal.SIGINT] + ([signal.SIGTERM] if terminate else [])
        self._previous: dict[int, object] = {}

    def __enter__(self) -> InterruptGuard:
        if threading.current_thread() is threading.main_thread():
            for signum in self._signals:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)  # type: ignore[arg-type]
        self._previous = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise TrainingInterrupted(
                "interrupted twice: stopped at once, without a new checkpoint",
                signum=signum,
            )
        self.requested = True
        self.signum = signum
        what = "interrupt" if signum == signal.SIGINT else signal.Signals(signum).name
        log.warning(
            "%s: stopping after this step and writing a checkpoint "
            "(a second one stops at once)",
            what,
        )


def finite(*values: torch.Tensor) -> bool:
    """Whether every value is finite, with one host synchronisation for all.

    The values are summed first: a NaN or an infinity anywhere makes the sum
    non-finite (``inf - inf`` is NaN). Only finite values beyond 1e38 summing to
    infinity could be taken for bad ones, which no loss comes near.
    """
    total = values[0].detach().float().sum()
    for value in values[1:]:
        total = total + value.detach().float().sum()
    return bool(torch.isfinite(total))


def first_bad_parameter(network: nn.Module) -> str | None:
    """The name of the first parameter or buffer holding NaN or infinity, if any."""
    named = [
        (name, tensor)
        for name, tensor in [*network.named_parameters(), *network.named_buffers()]
        if tensor.is_floating_point()
    ]
    if not named:
        return None
    flags = torch.stack([torch.isfinite(t).all() for _, t in named])
    if bool(flags.all()):
        return None
    return named[int((~flags).nonzero()[0])][0]
