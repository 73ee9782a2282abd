"""Speed on one device: mixed precision, channels-last layout and torch.compile.

Three ``train`` options. With ``precision: fp32`` and ``compile: false``, the
defaults, and networks without convolutions, nothing here touches the networks
and a run is bit for bit what it was without them:

* ``precision: bf16`` or ``fp16`` runs the network forwards under
  :func:`torch.autocast` and hands their outputs back in float32, so losses,
  regularizer penalties and the divergence checks are computed in float32 as
  before. The weights, the optimizers and the checkpoints stay float32. With fp16
  each network has its own :class:`torch.amp.GradScaler`: a step whose scaled
  gradients overflow is skipped by its scaler, which lowers the scale; that is
  the scaler at work, not a diverging run.
* ``channels_last: true`` keeps 4-D weights and 4-D inputs in the
  channels-last layout, which most convolution kernels prefer. The default,
  ``null``, turns it on when either network has 4-D (convolution) weights:
  the results are those of contiguous weights up to float rounding, and a step
  of the lecture's DCGAN runs 1.2 to 1.6 times as fast on a CPU.
* ``compile: true`` runs each forward through :func:`torch.compile`. Where that
  is unavailable or fails, a warning says so and the network runs in eager mode.

The data set itself already lives on the training device and batches are drawn
there by index (:class:`~ganzoo.training._parts.BatchSampler`), so none of this
waits for a data loader.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Mapping
from typing import Any

import torch

from .._errors import GanzooError
from ._parts import Networks

log = logging.getLogger("ganzoo.train")

AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
"""What each ``train.precision`` runs the forwards in; None: no autocast."""

ROLES = ("generator", "discriminator")


class Speed:
    """The speed settings of one run, applied to its networks and optimizer steps.

    The trainer calls :meth:`prepare` once on its networks, and lets
    :meth:`backward` and :meth:`step` stand in for ``loss.backward()`` and
    ``optimizer.step()``: with fp16 they scale, unscale and skip as a
    :class:`torch.amp.GradScaler` does; otherwise they are exactly those calls.
    """

    def __init__(
        self,
        options: Mapping[str, Any],
        device: torch.device,
        *,
        input_gradients: bool = False,
    ) -> None:
        """``options`` is the resolved ``train`` section. ``input_gradients`` says
        that the discriminator's input gradients are trained through (gradient
        penalties, R1), which torch.compile cannot differentiate twice."""
        self.device = device
        self.precision = str(options.get("precision", "fp32"))
        self.dtype = AUTOCAST_DTYPES[self.precision]
        # None until prepare() looks at the networks: on for convolutions.
        self.channels_last: bool | None = options.get("channels_last")
        self.compile = bool(options.get("compile", False))
        self.input_gradients = input_gradients
        if self.dtype is not None:
            check_autocast(device, self.dtype, self.precision)
        self.scalers: dict[str, torch.amp.GradScaler] = {}
        self.roles: dict[int, str] = {}
        if self.dtype is torch.float16:
            self.scalers = {role: torch.amp.GradScaler(device.type) for role in ROLES}

    @property
    def changes_forwards(self) -> bool:
        return self.dtype is not None or self.channels_last or self.compile

    def describe(self) -> str:
        """The settings in a few words, for the log."""
        parts = [self.precision]
        if self.channels_last:
            parts.append("channels-last")
        if self.compile:
            parts.append("compiled")
        return ", ".join(parts)

    # The networks.

    def prepare(self, nets: Networks) -> None:
        """Apply the layout, autocast and compilation to the networks, in place.

        The EMA generator, when the run keeps one, only changes layout: it is
        what snapshots and evaluations sample from, so it keeps computing in
        float32, eagerly.
        """
        networks = {id(n): n for n in vars(nets).values()}.values()
        if self.channels_last is None:
            self.channels_last = any(
                p.dim() == 4 for n in networks for p in n.parameters()
            )
        if not self.changes_forwards:
            return
        if self.channels_last:
            for network in networks:
                network.to(memory_format=torch.channels_last)
        for role in ROLES:
            network = getattr(nets, role)
            compiled = self.compile
            if compiled and role == "discriminator" and self.input_gradients:
                # A penalty on input gradients differentiates the discriminator
                # twice, which torch.compile does not support.
                log.info(
                    "train.compile: the discriminator stays in eager mode, since "
                    "its regularizers differentiate it twice"
                )
                compiled = False
            network.forward = FastForward(
                network.forward,
                role,
                device_type=self.device.type,
                dtype=self.dtype,
                channels_last=self.channels_last,
                compile=compiled,
            )

    # Optimizer steps.

    def attach(self, **optimizers: torch.optim.Optimizer) -> None:
        """Name the optimizer of each network (``generator=``, ``discriminator=``),
        so that each gets its own scaler."""
        self.roles = {id(optimizer): role for role, optimizer in optimizers.items()}

    def scaler(self, optimizer: torch.optim.Optimizer) -> torch.amp.GradScaler | None:
        """The fp16 scaler of ``optimizer``; None without fp16."""
        if not self.scalers:
            return None
        return self.scalers[self.roles[id(optimizer)]]

    def backward(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """``loss.backward()``; with fp16, scaled, and the gradients unscaled after.

        The gradients are unscaled at once, so what reads them before the step
        (the generator's gradient norm) sees their true size.
        """
        scaler = self.scaler(optimizer)
        if scaler is None:
            loss.backward()
            return
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """``optimizer.step()``; with fp16, skipped when the gradients overflowed."""
        scaler = self.scaler(optimizer)
        if scaler is None:
            optimizer.step()
            return
        scaler.step(optimizer)
        scaler.update()

    def absorbs_overflow(self, loss: torch.Tensor) -> bool:
        """Whether non-finite gradients of a finite ``loss`` are the fp16 scaler's
        to handle: it skips the update and lowers its scale."""
        if not self.scalers:
            return False
        return bool(torch.isfinite(loss.detach().float().sum()))

    # Checkpoints.

    def state_dict(self) -> dict[str, Any]:
        """The scalers' state for a checkpoint; empty (nothing added) without fp16."""
        if not self.scalers:
            return {}
        return {"loss_scalers": {r: s.state_dict() for r, s in self.scalers.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        saved = state.get("loss_scalers") or {}
        for role, scaler in self.scalers.items():
            if role in saved:
                scaler.load_state_dict(saved[role])


class FastForward:
    """A module's forward with autocast, channels-last inputs and torch.compile.

    It replaces ``module.forward`` on the instance, so the module's parameters,
    state dict and hooks are untouched. Floating outputs come back in float32.
    When the compiled forward fails, the same call is made eagerly: if that
    works, compilation was at fault, a warning says so and the module stays in
    eager mode; if not, the module's own error is raised.
    """

    def __init__(
        self,
        forward: Any,
        role: str,
        *,
        device_type: str,
        dtype: torch.dtype | None,
        channels_last: bool,
        compile: bool,
    ) -> None:
        self.eager = forward
        self.role = role
        self.device_type = device_type
        self.dtype = dtype
        self.channels_last = channels_last
        self.compiled = compile_or_warn(self.run, role) if compile else None

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """The forward in eager mode, with the layout and the autocast."""
        if self.channels_last:
            args = tuple(_channels_last(value) for value in args)
        if self.dtype is None:
            return self.eager(*args, **kwargs)
        with torch.autocast(self.device_type, dtype=self.dtype):
            output = self.eager(*args, **kwargs)
        return _float32(output)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.compiled is None:
            return self.run(*args, **kwargs)
        try:
            return self.compiled(*args, **kwargs)
        except Exception as error:
            output = self.run(*args, **kwargs)
            first = (str(error).strip().splitlines() or [""])[0]
            log.warning(
                "train.compile: torch.compile failed for the %s (%s: %s); it runs "
                "in eager mode",
                self.role,
                type(error).__name__,
                first[:200],
            )
            self.compiled = None
            return output

    def __deepcopy__(self, memo: dict[int, Any]) -> FastForward:
        # Deep-copying the module deep-copies this too; the copy must call the
        # copied module (memo maps the original to it), and compiles afresh.
        return FastForward(
            copy.deepcopy(self.eager, memo),
            self.role,
            device_type=self.device_type,
            dtype=self.dtype,
            channels_last=self.channels_last,
            compile=self.compiled is not None,
        )


def compile_or_warn(function: Any, role: str) -> Any | None:
    """``torch.compile(function)``, or None with a warning where that fails."""
    try:
        return torch.compile(function)
    except Exception as error:
        log.warning(
            "train.compile: torch.compile is not available for the %s (%s: %s); "
            "it runs in eager mode",
            role,
            type(error).__name__,
            str(error).strip()[:200],
        )
        return None


def check_autocast(device: torch.device, dtype: torch.dtype, precision: str) -> None:
    """Raise GanzooError (key ``train.precision``) unless autocast to ``dtype``
    works on ``device`` with this torch."""
    works = autocast_works(device, dtype)
    if works:
        return
    hint = "use 'bf16' or 'fp32'" if dtype is torch.float16 else "use 'fp32'"
    if device.type == "cuda" and dtype is torch.bfloat16:
        hint = "this GPU has no bfloat16 support; use 'fp16' or 'fp32'"
    raise GanzooError(
        f"{precision!r} is not available on {device.type} with torch "
        f"{torch.__version__} (autocast does not compute in {dtype}); {hint}",
        key="train.precision",
    )


def autocast_works(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether a matrix product under autocast on ``device`` comes out in ``dtype``.

    Older versions of torch warn and compute in float32 where a dtype is not
    supported, so the result is checked rather than the call.
    """
    if not torch.amp.autocast_mode.is_autocast_available(device.type):
        return False
    bf16_on_gpu = device.type == "cuda" and dtype is torch.bfloat16
    if bf16_on_gpu and not torch.cuda.is_bf16_supported():
        return False
    ones = torch.ones(2, 2, device=device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.autocast(device.type, dtype=dtype):
            product = ones @ ones
    return product.dtype == dtype


def _channels_last(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.dim() == 4:
        return value.contiguous(memory_format=torch.channels_last)
    return value


def _float32(output: Any) -> Any:
    """Floating tensors of ``output`` (a tensor, or a tuple, list or dict of them)
    in float32."""
    if isinstance(output, torch.Tensor):
        if output.is_floating_point() and output.dtype != torch.float32:
            return output.float()
        return output
    if isinstance(output, tuple | list):
        return type(output)(_float32(value) for value in output)
    if isinstance(output, dict):
        return {key: _float32(value) for key, value in output.items()}
    return output


__all__ = ["AUTOCAST_DTYPES", "FastForward", "Speed", "autocast_works"]
