"""Precision, recall, density and coverage from one blockwise k-NN pass.

The four manifold metrics all compare distances between points with the
distance from a point to its k-th nearest neighbour in its own set (self
excluded, that is the (k+1)-th smallest distance counting the zero to itself):

* precision (Kynkäänniemi et al. 2019): the fraction of fake points inside the
  ``k_pr``-ball of at least one real point, membership ``<=``;
* recall: the fraction of real points inside the ``k_pr``-ball of at least one
  fake point, membership ``<=``;
* density (Naeem et al. 2020): ``1 / (k_dc * M)`` times the number of (real,
  fake) pairs with the fake point strictly inside the real point's
  ``k_dc``-ball;
* coverage: the fraction of real points whose ball strictly contains at least
  one fake point.

These are the definitions of torch-fidelity's ``calculate_precision_recall_*``
(input1 fake, input2 real) and of ``prdc.compute_prdc``. prdc also reports a
precision and a recall, with strict ``<`` and its single ``nearest_k``: they
differ from ours only where a distance equals a radius exactly (duplicated
points).

How it is computed. No N x N matrix is ever held: rows are taken in strips of
``block`` and columns in tiles. Each tile of squared distances comes from one
float32 matrix product, ``|a|^2 + |b|^2 - 2 a.b``, with the thresholds folded
into two extra columns so that no extra pass is needed. The product of a set
with itself is symmetric, so only the strips on and above the diagonal are
computed; each tile updates the candidate neighbours of its rows and of its
columns. Real x fake tiles are computed once and serve all four metrics.

Exactness. Every float32 value carries a rigorous error bound (the standard
bound for a dot product, plus the rounding of the inputs and of the additions),
so a float32 comparison is trusted only when it is decided by more than the
bound. The rest, the k-NN radii themselves and the rare pairs that lie within
the bound of a radius, are settled with distances computed directly in float64
(``torch.cdist`` without the matrix-product shortcut, whose result does not
depend on the batch shape and is symmetric). So the answers are those of exact
float64 distances, whatever the block size or the device; duplicated points
are at distance exactly 0. torch-fidelity and prdc compute their distances in
float32, so they can disagree with each other and with us on a pair that lies
within about 1e-7 of a radius; on continuous features that is rare.
Low-dimensional points (at most ``_DIRECT_MAX_DIM`` features) skip the float32
product, whose cancellation is too coarse for tight clusters, and use the
float64 distances throughout.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import torch

from .._errors import GanzooError

log = logging.getLogger(__name__)

# Candidates kept per point beyond the k + 1 nearest, so that the float32 filter
# rarely leaves a radius undecided.
_MARGIN = 4

# At or below this many features, distances are computed directly in float64.
_DIRECT_MAX_DIM = 16

# Relative error bound of a direct float64 distance, squared, with ample room.
_DIRECT_ERROR = 1e-12

# Added to every error bound for values that underflow float32.
_ABSOLUTE_SLACK = 2.0**-100

# Float64 entries gathered at once for exact distances (32 MiB).
_EXACT_ENTRIES = 1 << 22

_DEFAULT_BLOCK = {"cpu": 1024, "cuda": 4096}
_TILE_ENTRIES = {"cpu": 1 << 24, "cuda": 1 << 26}


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
        ``{k: radii}`` with float64 CPU tensors of length ``N``. "Self
        excluded" is meant as torch-fidelity and prdc mean it: the (k+1)-th
        smallest distance counting the point itself, so ``k`` or more copies of
        a point give it radius 0. Pass the dictionary as ``real_radii`` to
        :func:`precision_recall_density_coverage` to reuse it.
    """
    ks = sorted({_check_k(k, "ks") for k in ks})
    if not ks:
        raise GanzooError("ks must name at least one neighbour count")
    features = _check_features(features, "features", ks[-1])
    device = _resolve_device(device)
    block = _resolve_block(block, device)

    with _full_float32_matmul(), torch.no_grad():
        center, scale = _frame([features])
        points = _Points.build(features, center, scale, device)
        radii = _radii(points, ks, block, _tile_columns(block, device))
    return {k: (r / scale).cpu() for k, r in radii.items()}


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
            device. It does not change the result.
        device: where to compute; ``None`` means CUDA when available.
        real_radii: radii of ``real`` from :func:`knn_radii` with both ``k_pr``
            and ``k_dc``, to skip computing them again. They must come from
            these same real features; that is not checked.

    Returns:
        ``{"precision", "recall", "density", "coverage"}`` as floats. Density
        can exceed 1; the others are fractions.

    Raises:
        GanzooError: for inputs that are not 2-D, differ in feature dimension,
            hold NaN or infinite values, or have no more points than ``k``.
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
        # One frame for both sets, so that real x fake products are comparable.
        center, scale = _frame([real, fake])
        real_points = _Points.build(real, center, scale, device)
        fake_points = _Points.build(fake, center, scale, device)

        # Radii: k_pr and k_dc for the real set, k_pr for the fake set.
        if real_radii is None:
            radii = _radii(real_points, [k_pr, k_dc], block, columns)
        else:
            radii = {k: (r.to(device) * scale) for k, r in real_radii.items()}
        fake_radius = _radii(fake_points, [k_pr], block, columns)[k_pr]

        counts = _cross(
            real_points,
            fake_points,
            radii[k_pr],
            radii[k_dc],
            fake_radius,
            block,
            columns,
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
    bad = ~torch.isfinite(x).all(dim=1)
    if bad.any():
        rows = bad.nonzero().flatten()
        raise GanzooError(
            f"{name} contain NaN or infinite values in {rows.numel()} of {n} rows "
            f"(first at row {int(rows[0])})"
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


def _tile_columns(block: int, device: torch.device) -> int:
    return max(block, _TILE_ENTRIES.get(device.type, 1 << 24) // block)


@contextlib.contextmanager
def _full_float32_matmul() -> Iterator[None]:
    # The error bounds assume IEEE float32 products, not TF32 or bfloat16 ones.
    previous = torch.get_float32_matmul_precision()
    if previous != "highest":
        torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        if previous != "highest":
            torch.set_float32_matmul_precision(previous)


# Prepared point sets.


def _frame(sets: list[torch.Tensor]) -> tuple[torch.Tensor, float]:
    """A common centre and power-of-two scale for the float32 products.

    Distances do not depend on the centre, and scaling by a power of two is
    exact, so neither changes a result; centring shrinks the norms that the
    error bound grows with, and scaling keeps the squares within float32 range.
    """
    total = sum(x.sum(dim=0, dtype=torch.float64).cpu() for x in sets)
    center = total / sum(x.shape[0] for x in sets)
    spread = max(
        float((chunk.double() - center.to(x.device)).abs().max())
        for x in sets
        for chunk in x.split(_rows_per_chunk(x.shape[1]))
    )
    if spread == 0.0:
        return center, 1.0
    return center, math.ldexp(1.0, -math.frexp(spread)[1])


def _rows_per_chunk(d: int, per_row: int = 1) -> int:
    return max(1, _EXACT_ENTRIES // (d * per_row))


@dataclass
class _Points:
    """One feature set, ready for blockwise products and exact distances.

    ``data`` is float32 ``N x (D + 2)``: the centred, scaled points and two
    columns that each product fills in; in direct mode it is the float64 points.
    ``norms`` are the float64 squared norms of exactly those values.
    """

    raw: torch.Tensor
    data: torch.Tensor
    norms: torch.Tensor
    scale: float
    direct: bool

    @classmethod
    def build(
        cls, raw: torch.Tensor, center: torch.Tensor, scale: float, device: torch.device
    ) -> _Points:
        n, d = raw.shape
        direct = d <= _DIRECT_MAX_DIM
        dtype = torch.float64 if direct else torch.float32
        data = torch.empty(n, d if direct else d + 2, dtype=dtype, device=device)
        norms = torch.empty(n, dtype=torch.float64, device=device)
        center = center.to(device)
        step = _rows_per_chunk(d)
        for start in range(0, n, step):
            chunk = raw[start : start + step].to(device=device, dtype=torch.float64)
            chunk = ((chunk - center) * scale).to(dtype)
            data[start : start + step, :d] = chunk
            norms[start : start + step] = chunk.double().square().sum(dim=1)
        return cls(raw, data, norms, scale, direct)

    @property
    def n(self) -> int:
        return self.raw.shape[0]

    @property
    def d(self) -> int:
        return self.raw.shape[1]

    @property
    def device(self) -> torch.device:
        return self.data.device

    @property
    def error(self) -> float:
        """Bound on |computed - exact| of a tile entry, relative to the sum of
        |a|^2, |b|^2 and the absolute shifts."""
        if self.direct:
            return _DIRECT_ERROR
        # A float32 dot product of K = D + 2 terms errs by at most K u times the
        # sum of the absolute terms; doubled for the input rounding and the
        # additions, and doubled again for room.
        return 4.0 * (self.d + 8) * 2.0**-24

    def exact(self, rows: torch.Tensor) -> torch.Tensor:
        """Float64 copies of some points, scaled but not centred."""
        values = self.raw[rows.to(self.raw.device)]
        values = values.to(device=self.device, dtype=torch.float64)
        return values.mul_(self.scale) if self.scale != 1.0 else values


def _tile(
    a: _Points,
    rows: slice,
    row_shift: torch.Tensor,
    b: _Points,
    cols: slice,
    col_shift: torch.Tensor,
) -> torch.Tensor:
    """Squared distances ``|a_i - b_j|^2 + row_shift_i + col_shift_j`` of one tile."""
    if a.direct:
        tile = torch.cdist(
            a.data[rows], b.data[cols], compute_mode="donot_use_mm_for_euclid_dist"
        ).square_()
        return tile.add_(row_shift[:, None]).add_(col_shift[None, :])

    # [-2a, |a|^2 + row_shift, 1] . [b, 1, |b|^2 + col_shift]; scaling by -2 is exact.
    d = a.d
    left = a.data[rows].clone()
    left[:, :d] *= -2.0
    left[:, d] = (a.norms[rows] + row_shift).float()
    left[:, d + 1] = 1.0
    right = b.data[cols]
    right[:, d] = 1.0
    right[:, d + 1] = (b.norms[cols] + col_shift).float()
    return left @ right.T


def _exact_distances(
    a: _Points, rows: torch.Tensor, b: _Points, cols: torch.Tensor
) -> torch.Tensor:
    """Float64 distances from ``a[rows[p]]`` to each of ``b[cols[p, :]]``."""
    p, width = cols.shape
    out = torch.empty(p, width, dtype=torch.float64, device=a.device)
    step = _rows_per_chunk(a.d, width + 1)
    for start in range(0, p, step):
        stop = min(p, start + step)
        x = a.exact(rows[start:stop]).unsqueeze(1)
        y = b.exact(cols[start:stop].flatten()).view(stop - start, width, a.d)
        out[start:stop] = torch.cdist(
            x, y, compute_mode="donot_use_mm_for_euclid_dist"
        ).squeeze(1)
    return out


def _nearest_exact(points: _Points, rows: torch.Tensor, count: int) -> torch.Tensor:
    """The ``count`` smallest exact distances from each row to the whole set."""
    out = []
    step = max(1, _EXACT_ENTRIES // max(points.d, points.n))
    columns = _rows_per_chunk(points.d)
    for start in range(0, rows.numel(), step):
        x = points.exact(rows[start : start + step])
        best = torch.empty(x.shape[0], 0, dtype=torch.float64, device=points.device)
        for c0 in range(0, points.n, columns):
            index = torch.arange(c0, min(points.n, c0 + columns), device=points.device)
            y = points.exact(index)
            distances = torch.cdist(x, y, compute_mode="donot_use_mm_for_euclid_dist")
            best = torch.cat([best, distances], dim=1)
            best = best.topk(min(count, best.shape[1]), dim=1, largest=False).values
        out.append(best)
    return torch.cat(out)


# The self pass: k-NN radii.


def _radii(
    points: _Points, ks: list[int], block: int, columns: int
) -> dict[int, torch.Tensor]:
    """Exact k-NN radii (self excluded) in the scaled frame, on the device."""
    kmax = max(ks)
    width = min(points.n, kmax + 1 + _MARGIN)
    bound, index = _candidates(points, width, block, columns)

    # Exact distances to the candidates settle the radii.
    rows = torch.arange(points.n, device=points.device)
    exact = _exact_distances(points, rows, points, index).sort(dim=1).values

    # Any point left out has a squared distance of at least its lower bound, so
    # the candidates decide the radius unless that bound is below it.
    if width < points.n:
        radius = exact[:, kmax]
        settled = (bound[:, -1].double() >= radius.square() * (1 + 1e-9)) | (
            radius == 0
        )
        unsettled = (~settled).nonzero().flatten()
        if unsettled.numel():
            log.debug(
                "k-NN radii: %d of %d rows recomputed", unsettled.numel(), points.n
            )
            exact[unsettled, : kmax + 1] = _nearest_exact(points, unsettled, kmax + 1)
    return {k: exact[:, k].clone() for k in ks}


def _candidates(
    points: _Points, width: int, block: int, columns: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``width`` smallest lower bounds of squared distance per row, with indices.

    Only tiles on and above the diagonal are computed; a tile offers its entries
    to its rows and, off the diagonal block, to its columns. Once a row holds
    ``width`` candidates, only entries below its current worst are looked at.
    """
    n = points.n
    dtype = points.data.dtype
    best = torch.full((n, width), math.inf, dtype=dtype, device=points.device)
    index = torch.zeros((n, width), dtype=torch.long, device=points.device)
    shift = -points.error * points.norms  # turns estimates into lower bounds

    for r0 in range(0, n, block):
        r1 = min(n, r0 + block)
        for c0 in range(r0, n, columns):
            c1 = min(n, c0 + columns)
            tile = _tile(
                points, slice(r0, r1), shift[r0:r1], points, slice(c0, c1), shift[c0:c1]
            )
            inner = min(r1, c1) - c0  # columns inside the diagonal block
            worst_row = best[r0:r1, -1].clone()
            worst_col = best[c0:c1, -1].clone()
            worst_col[:inner] = -math.inf

            if torch.isinf(worst_row).any() or torch.isinf(worst_col[inner:]).any():
                # Early tiles: not every point has seen enough neighbours yet.
                kept = min(width, c1 - c0)
                values, j = tile.topk(kept, dim=1, largest=False)
                i = torch.arange(r0, r1, device=points.device).repeat_interleave(kept)
                _merge(best, index, i, c0 + j.flatten(), values.flatten())
                if inner < c1 - c0:
                    kept = min(width, r1 - r0)
                    values, i = tile[:, inner:].topk(kept, dim=0, largest=False)
                    j = torch.arange(c0 + inner, c1, device=points.device).repeat(kept)
                    _merge(best, index, j, r0 + i.flatten(), values.flatten())
                continue

            wanted = (tile < worst_row[:, None]) | (tile < worst_col[None, :])
            i, j = wanted.nonzero(as_tuple=True)
            values = tile[i, j]
            for_row = values < worst_row[i]
            for_col = values < worst_col[j]
            _merge(best, index, r0 + i[for_row], c0 + j[for_row], values[for_row])
            _merge(best, index, c0 + j[for_col], r0 + i[for_col], values[for_col])
    return best, index


def _merge(
    best: torch.Tensor,
    index: torch.Tensor,
    rows: torch.Tensor,
    cols: torch.Tensor,
    values: torch.Tensor,
) -> None:
    """Fold new (row, col, value) candidates into each row's ``width`` smallest."""
    if rows.numel() == 0:
        return
    width = best.shape[1]
    touched, slot = torch.unique(rows, return_inverse=True)
    group = torch.cat(
        [
            torch.arange(touched.numel(), device=rows.device).repeat_interleave(width),
            slot,
        ]
    )
    all_values = torch.cat([best[touched].flatten(), values])
    all_cols = torch.cat([index[touched].flatten(), cols])

    # Sort by value, then (stably) by row, and keep the first `width` of each row;
    # every row brings its `width` current entries, so each keeps exactly that many.
    order = torch.argsort(all_values, stable=True)
    order = order[torch.argsort(group[order], stable=True)]
    group = group[order]
    counts = torch.bincount(group, minlength=touched.numel())
    start = torch.cumsum(counts, 0) - counts
    keep = torch.arange(group.numel(), device=rows.device) - start[group] < width
    best[touched] = all_values[order][keep].view(-1, width)
    index[touched] = all_cols[order][keep].view(-1, width)


# The cross pass: all four metrics from each real x fake tile.


@dataclass
class _Counts:
    precision: int = 0
    recall: int = 0
    density: int = 0
    coverage: int = 0


def _cross(
    real: _Points,
    fake: _Points,
    radius_pr: torch.Tensor,
    radius_dc: torch.Tensor,
    fake_radius: torch.Tensor,
    block: int,
    columns: int,
) -> _Counts:
    device = real.device
    t_pr, t_dc, t_fake = radius_pr.square(), radius_dc.square(), fake_radius.square()
    precision = torch.zeros(fake.n, dtype=torch.bool, device=device)
    recall = torch.zeros(real.n, dtype=torch.bool, device=device)
    coverage = torch.zeros(real.n, dtype=torch.bool, device=device)
    density = 0
    unsure: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {
        "precision": [],
        "recall": [],
        "density": [],
    }

    for r0 in range(0, real.n, block):
        r1 = min(real.n, r0 + block)
        rows = slice(r0, r1)
        for c0 in range(0, fake.n, columns):
            c1 = min(fake.n, c0 + columns)
            cols = slice(c0, c1)
            # tile = S - t_pr_i - t_fake_j, with S the squared real x fake distances.
            tile = _tile(real, rows, -t_pr[rows], fake, cols, -t_fake[cols])
            band = (
                real.error
                * float(
                    real.norms[rows].max()
                    + fake.norms[cols].max()
                    + t_pr[rows].max()
                    + t_dc[rows].max()
                    + t_fake[cols].max()
                )
                + _ABSOLUTE_SLACK
            )

            # Recall: min over j of S - t_fake_j, per real row.
            gap = tile.amin(dim=1).double() + t_pr[rows]
            recall[rows] |= gap < -band
            if (u := _within(gap, band)).numel():
                near = tile[u].double() + t_pr[r0 + u][:, None] <= band
                i, j = near.nonzero(as_tuple=True)
                unsure["recall"].append((r0 + u[i], c0 + j))

            # Precision: min over i of S - t_pr_i, per fake column.
            gap = tile.amin(dim=0).double() + t_fake[cols]
            precision[cols] |= gap < -band
            if (u := _within(gap, band)).numel():
                near = tile[:, u].double() + t_fake[c0 + u][None, :] <= band
                i, j = near.nonzero(as_tuple=True)
                unsure["precision"].append((r0 + i, c0 + u[j]))

            # Density and coverage: turn the tile into S - t_dc_i.
            tile += (t_pr[rows] - t_dc[rows]).to(tile.dtype)[:, None]
            tile += t_fake[cols].to(tile.dtype)[None, :]
            coverage[rows] |= tile.amin(dim=1).double() < -band
            inside = int(torch.count_nonzero(tile < -band))
            density += inside
            if int(torch.count_nonzero(tile <= band)) > inside:
                i, j = ((tile >= -band) & (tile <= band)).nonzero(as_tuple=True)
                unsure["density"].append((r0 + i, c0 + j))

    # Pairs within the error bound of a radius, settled with exact distances.
    for name, pairs in unsure.items():
        if not pairs:
            continue
        i = torch.cat([p[0] for p in pairs])
        j = torch.cat([p[1] for p in pairs])
        log.debug("prdc: %d %s pairs checked exactly", i.numel(), name)
        distance = _exact_distances(real, i, fake, j[:, None]).flatten()
        if name == "recall":
            recall[i[distance <= fake_radius[j]]] = True
        elif name == "precision":
            precision[j[distance <= radius_pr[i]]] = True
        else:
            inside = distance < radius_dc[i]
            density += int(inside.sum())
            coverage[i[inside]] = True

    return _Counts(
        precision=int(precision.sum()),
        recall=int(recall.sum()),
        density=density,
        coverage=int(coverage.sum()),
    )


def _within(gap: torch.Tensor, band: float) -> torch.Tensor:
    """Positions where a float32 decision is closer to its threshold than the bound."""
    return ((gap >= -band) & (gap <= band)).nonzero().flatten()
