"""Precision, recall, density and coverage from one blockwise k-NN pass.

The four manifold metrics compare distances between points with radii: the
distance from a point to its k-th nearest neighbour in its own set, self
excluded, that is the (k+1)-th smallest distance counting the zero to itself.

* precision (Kynkäänniemi et al. 2019): the fraction of fake points inside the
  ``k_pr``-ball of at least one real point, membership ``<=``;
* recall: the fraction of real points inside the ``k_pr``-ball of at least one
  fake point, membership ``<=``;
* density (Naeem et al. 2020): ``1 / (k_dc * M)`` times the number of (real,
  fake) pairs with the fake point strictly inside the real point's
  ``k_dc``-ball;
* coverage: the fraction of real points whose ``k_dc``-ball strictly contains
  at least one fake point.

These are the definitions of torch-fidelity's ``calculate_precision_recall_*``
(its input1 is fake, input2 real) and of ``prdc.compute_prdc``. prdc also
reports a precision and a recall, with strict ``<`` and its one ``nearest_k``;
they differ from ours only where a distance equals a radius exactly, as with
duplicated points.

How it is computed. No N x N matrix is held: rows go in strips of ``block``,
columns in tiles. A tile of squared distances is one float32 matrix product,
``|a|^2 + |b|^2 - 2 a.b``, with the norms and thresholds folded into two extra
columns so that it needs no further pass. A set against itself is symmetric, so
only the strips on and above the diagonal are computed and each tile offers
candidate neighbours to its rows and to its columns. Each real x fake tile is
computed once and serves all four metrics.

Exactness. Every float32 value has a rigorous error bound (the worst-case bound
of a float32 dot product, the rounding of the inputs and of the additions), and
a float32 comparison is trusted only when it clears that bound. Everything
else, the few pairs that lie within the bound of a radius and the radii that
such pairs meet, is settled with distances computed directly in float64 from
the features as given (``torch.cdist`` without the matrix-product shortcut; its
value for a pair does not depend on the batch it is computed in). So the result
is that of float64 distances whatever the block size or device, and duplicated
points are exactly 0 apart. torch-fidelity and prdc work with float32
distances, so they can disagree with each other and with this module on a pair
within about 1e-7 of a radius, which on continuous features is rare.

Points with at most ``_DIRECT_MAX_DIM`` features skip the float32 product,
whose cancellation is too coarse for tight low-dimensional clusters, and use
float64 distances throughout.

The modules: ``_points`` prepares a set for the products and holds the error
bounds and the exact distances, ``_radii`` is the pass of a set against itself,
``_cross`` the real x fake pass; this one checks the inputs and joins them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

from ..._errors import GanzooError
from ._cross import _cross
from ._points import (
    _DEFAULT_BLOCK,
    _frame,
    _full_float32_matmul,
    _Points,
    _scale,
    _tile_columns,
)
from ._radii import _Radii, _radii

# Public API.


def knn_radii(
    features: torch.Tensor,
    ks: Iterable[int] = (3, 5),
    *,
    block: int | None = None,
    device: torch.device | str | None = None,
) -> dict[int, torch.Tensor]:
    """Distance from each point to its k-th nearest neighbour in the set, self excluded.

    Args:
        features: ``N x D`` tensor, one point per row.
        ks: the neighbour counts wanted; each needs ``N > k``.
        block: rows per strip of the blockwise pass; ``None`` picks one for the
            device (1024 on CPU, 4096 on CUDA). It does not change the result.
        device: where to compute; ``None`` means CUDA when available.

    Returns:
        ``{k: radii}``, float64 CPU tensors of length ``N``. "Self excluded"
        is meant as torch-fidelity and prdc mean it: the (k+1)-th smallest
        distance counting the point itself, so a point with ``k`` copies has
        radius 0. Pass the dictionary as ``real_radii`` to
        :func:`precision_recall_density_coverage` to reuse it.
    """
    ks = sorted({_check_k(k, "ks") for k in ks})
    if not ks:
        raise GanzooError("ks must name at least one neighbour count")
    features = _check_features(features, "features", ks[-1])
    device = _resolve_device(device)
    block = _resolve_block(block, device)

    with _full_float32_matmul(), torch.no_grad():
        center, spread = _frame(features)
        points = _Points.build(features, center, _scale(spread), device)
        radii = _radii(points, ks, block, _tile_columns(block, device))
    return {k: r.cpu() for k, r in radii.items()}


def precision_recall_density_coverage(
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    k_pr: int = 3,
    k_dc: int = 5,
    block: int | None = None,
    device: torch.device | str | None = None,
    real_radii: Mapping[int, torch.Tensor] | None = None,
) -> dict[str, float]:
    """Improved precision/recall and density/coverage of ``fake`` against ``real``.

    Args:
        real: ``N x D`` features of real samples.
        fake: ``M x D`` features of generated samples.
        k_pr: neighbours for the precision/recall balls (membership ``<=``).
        k_dc: neighbours for the density/coverage balls (membership ``<``).
        block: rows per strip of the blockwise pass; ``None`` picks one for the
            device (1024 on CPU, 4096 on CUDA). It does not change the result.
        device: where to compute; ``None`` means CUDA when available.
        real_radii: radii of ``real`` from :func:`knn_radii` for both ``k_pr``
            and ``k_dc``, to skip computing them again. They must come from
            these same real features, which is not checked.

    Returns:
        ``{"precision", "recall", "density", "coverage"}`` as floats. Density
        can exceed 1; the others are fractions.

    Raises:
        GanzooError: for inputs that are not 2-D tensors, differ in feature
            dimension, hold NaN or infinite values, or have no more points
            than ``k``.
    """
    k_pr = _check_k(k_pr, "k_pr")
    k_dc = _check_k(k_dc, "k_dc")
    real = _check_features(real, "real features", max(k_pr, k_dc))
    fake = _check_features(fake, "fake features", k_pr)
    if real.shape[1] != fake.shape[1]:
        raise GanzooError(
            f"real and fake features differ in dimension: {real.shape[1]} "
            f"against {fake.shape[1]}"
        )
    if real_radii is not None:
        real_radii = _check_radii(real_radii, (k_pr, k_dc), real.shape[0])
    device = _resolve_device(device)
    block = _resolve_block(block, device)
    columns = _tile_columns(block, device)

    with _full_float32_matmul(), torch.no_grad():
        # Each set is centred on its own mean, which keeps the norms that the
        # error bounds grow with small; both share one scale.
        real_center, real_spread = _frame(real)
        fake_center, fake_spread = _frame(fake)
        scale = _scale(max(real_spread, fake_spread))

        # Radii: k_pr and k_dc for the real set, k_pr for the fake set. Each
        # set then keeps only the side of the product the cross pass needs.
        # Radii are bounded for every point, and exact only where needed.
        real_points = _Points.build(
            real, real_center, scale, device, right=real_radii is None
        )
        if real_radii is None:
            radii = _Radii.find(real_points, [k_pr, k_dc], block, columns)
        else:
            given = {k: r.to(device) for k, r in real_radii.items()}
            radii = _Radii.given(real_points, given)
        real_points.right = None
        fake_points = _Points.build(fake, fake_center, scale, device)
        fake_radii = _Radii.find(fake_points, [k_pr], block, columns)
        fake_points.left = None

        # Real x fake: the real points move by the difference of the centres.
        offset = ((real_center - fake_center) * scale).to(device)
        counts = _cross(
            real_points, fake_points, offset, radii, fake_radii, k_pr, k_dc, block
        )

    n_real, n_fake = real.shape[0], fake.shape[0]
    return {
        "precision": counts.precision / n_fake,
        "recall": counts.recall / n_real,
        "density": counts.density / (k_dc * n_fake),
        "coverage": counts.coverage / n_real,
    }


# Checks at the border.


def _check_k(k: object, name: str) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise GanzooError(f"{name}: expected a positive integer, got {k!r}")
    return k


def _check_features(x: object, name: str, k: int) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise GanzooError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2:
        raise GanzooError(
            f"{name} must be 2-D (points x features), got shape {tuple(x.shape)}"
        )
    if x.is_complex() or x.dtype == torch.bool:
        raise GanzooError(f"{name} must hold real numbers, got {x.dtype}")
    n, d = x.shape
    if d == 0:
        raise GanzooError(f"{name} have no feature dimensions")
    if n <= k:
        raise GanzooError(
            f"{name} has {n} points; its k = {k} nearest neighbours need at "
            f"least {k + 1}"
        )
    x = x.detach()
    if not x.is_floating_point():
        x = x.double()

    # Column sums are finite unless a value is not (or the sum overflows).
    if not torch.isfinite(x.sum(dim=0)).all():
        rows = (~torch.isfinite(x).all(dim=1)).nonzero().flatten()
        if rows.numel():
            raise GanzooError(
                f"{name} contain NaN or infinite values in {rows.numel()} of {n} "
                f"rows (first at row {int(rows[0])})"
            )
    return x


def _check_radii(
    radii: Mapping[int, torch.Tensor], ks: tuple[int, ...], n: int
) -> dict[int, torch.Tensor]:
    checked = {}
    for k in ks:
        if k not in radii:
            raise GanzooError(
                f"real_radii lacks k = {k}; it has {sorted(radii)}. Compute it with "
                f"knn_radii(real, ks={sorted(set(ks))})"
            )
        r = radii[k]
        if not isinstance(r, torch.Tensor) or r.shape != (n,):
            shape = tuple(r.shape) if isinstance(r, torch.Tensor) else type(r).__name__
            raise GanzooError(
                f"real_radii[{k}] must be a tensor of {n} radii, got {shape}"
            )
        r = r.detach().double()
        if not (torch.isfinite(r).all() and (r >= 0).all()):
            raise GanzooError(f"real_radii[{k}] must be finite and non-negative")
        checked[k] = r
    return checked


def _resolve_device(device: torch.device | str | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise GanzooError(f"device: {error}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GanzooError("device: CUDA was asked for but is not available")
    return device


def _resolve_block(block: int | None, device: torch.device) -> int:
    if block is None:
        return _DEFAULT_BLOCK.get(device.type, 1024)
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise GanzooError(f"block: expected a positive integer, got {block!r}")
    return block
