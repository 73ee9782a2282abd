"""A discriminator on any timm backbone, with one logit as its classifier head.

The backbone starts from random weights; nothing is downloaded. A local
checkpoint can be loaded into it instead, for example ImageNet weights fetched
beforehand, to try pretrained discriminators (Projected GAN, Vision-aided GAN)
on machines without internet access. timm is imported only when this plugin is
used, so listing plugins stays fast.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganzoo import Architecture, DataShape, GanzooError, Option
from ganzoo._options import closest

log = logging.getLogger(__name__)


def require_timm_model(backbone: str, key: str | None = None) -> None:
    """Raise GanzooError (at ``key``), with the closest names, unless timm knows it."""
    import timm

    if timm.is_model(backbone):
        return
    near = closest(backbone, timm.list_models())
    hint = f"did you mean {', '.join(repr(n) for n in near)}? " if near else ""
    raise GanzooError(
        f"timm has no model {backbone!r}; {hint}list the names with "
        "python -c \"import timm; print(timm.list_models('res*'))\"",
        key=key,
    )


def _weights_path(weights: str) -> Path:
    """The checkpoint path, or GanzooError when there is no such file."""
    path = Path(weights).expanduser()
    if not path.is_file():
        raise GanzooError(
            f"weights file {str(path)!r} does not exist; give the path of a saved "
            "state_dict (relative to the working directory), or weights: null for "
            "random initialisation"
        )
    return path


def _key_prefixes(model: nn.Module, entry: str) -> list[str]:
    """Module names that the model's timm config lists under ``entry``."""
    value = getattr(model, "pretrained_cfg", {}).get(entry) or ()
    return [value] if isinstance(value, str) else list(value)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors by parameter name from a checkpoint file; GanzooError otherwise."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for unreadable files
        raise GanzooError(
            f"cannot read weights file {str(path)!r} as a PyTorch state_dict "
            f"({type(error).__name__}); save one with torch.save(model.state_dict())"
        ) from None

    # Training checkpoints often wrap the weights in a dictionary of their own.
    for wrapper in ("state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(wrapper), Mapping):
            state = state[wrapper]
    if not isinstance(state, Mapping) or not all(
        isinstance(value, torch.Tensor) for value in state.values()
    ):
        raise GanzooError(
            f"weights file {str(path)!r} holds no state_dict (a mapping of names to "
            "tensors); save one with torch.save(model.state_dict())"
        )
    return dict(state)


def _differs_in_channels_only(value: torch.Tensor, target: Any) -> bool:
    """Whether a stem kernel fits the model except for its input channels."""
    if target is None or value.ndim != 4:
        return False
    return value.shape[0] == target.shape[0] and value.shape[2:] == target.shape[2:]


def load_backbone_weights(model: nn.Module, path: Path, backbone: str) -> None:
    """Load a checkpoint into ``model``, skipping classifier-head entries that differ.

    A checkpoint saved for three-channel images is adapted to the model's input
    channels with timm's ``adapt_input_conv``. Any other mismatch is an error: the
    file was most likely saved from a different backbone.
    """
    from timm.models import adapt_input_conv

    state = _read_state_dict(path)
    own = model.state_dict()
    heads = _key_prefixes(model, "classifier")
    stems = {f"{name}.weight" for name in _key_prefixes(model, "first_conv")}

    def in_head(key: str) -> bool:
        return any(key == head or key.startswith(head + ".") for head in heads)

    # Sort the checkpoint's entries into usable, ignorable and conflicting ones.
    usable: dict[str, torch.Tensor] = {}
    conflicts: list[str] = []
    ignored = 0
    for key, value in state.items():
        target = own.get(key)
        if target is not None and target.shape == value.shape:
            usable[key] = value
        elif key in stems and _differs_in_channels_only(value, target):
            usable[key] = adapt_input_conv(target.shape[1], value)
        elif in_head(key):
            ignored += 1
        else:
            conflicts.append(key)

    # Batch-norm step counters are bookkeeping, not weights; older files lack them.
    missing = [
        key
        for key in own
        if key not in usable
        and not in_head(key)
        and not key.endswith("num_batches_tracked")
    ]
    if conflicts or missing:
        shown = ", ".join((conflicts + missing)[:4])
        raise GanzooError(
            f"weights file {str(path)!r} does not fit backbone {backbone!r}: "
            f"{len(conflicts)} entries differ and {len(missing)} are missing "
            f"(e.g. {shown}); was it saved from another backbone?"
        )

    model.load_state_dict(usable, strict=False)
    log.info(
        "loaded %d tensors from %s (%d head tensors ignored)",
        len(usable),
        path,
        ignored,
    )


def _try_forward(model: nn.Module, data: DataShape, backbone: str) -> None:
    """Run two dummy images through ``model`` so a size mismatch fails early."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(2, *data.shape))
    except (RuntimeError, ValueError, AssertionError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise GanzooError(
            f"timm backbone {backbone!r} cannot take {data.describe()} "
            f"({type(error).__name__}: {reason[:120]}); choose a convolutional "
            "backbone such as 'resnet18', or change the data set's 'resolution'"
        ) from None
    finally:
        model.train(was_training)


class TimmDiscriminator(Architecture):
    """Discriminator on any timm backbone with a one-logit head (random weights).

    ``backbone`` is any name from ``timm.list_models()``; its classifier is
    replaced by a single output. ``weights`` optionally names a local state_dict
    for the backbone; classifier entries that do not fit are ignored.
    """

    name = "timm"
    discriminator_options = (
        Option("backbone", str, "resnet18", "timm model name, e.g. 'resnet18'."),
        Option(
            "weights",
            str,
            None,
            "Local state_dict file to load into the backbone; null for random.",
            nullable=True,
        ),
    )

    def check(self, data: DataShape, role: str, options: Mapping[str, Any]) -> None:
        if data.kind != "image":
            raise GanzooError(
                f"architecture 'timm' needs images, but the data are "
                f"{data.describe()}; use 'mlp' for point data"
            )
        require_timm_model(options["backbone"])
        if options["weights"] is not None:
            _weights_path(options["weights"])

    def build_discriminator(self, data: DataShape, **options: Any) -> nn.Module:
        import timm

        backbone = options["backbone"]
        try:
            model = timm.create_model(
                backbone, pretrained=False, in_chans=data.channels, num_classes=1
            )
        except (RuntimeError, ValueError, TypeError, AssertionError) as error:
            raise GanzooError(
                f"timm cannot build backbone {backbone!r} for {data.describe()} "
                f"({type(error).__name__}: {error}); choose another backbone"
            ) from None

        if options["weights"] is not None:
            path = _weights_path(options["weights"])
            load_backbone_weights(model, path, backbone)

        _try_forward(model, data, backbone)
        return model
