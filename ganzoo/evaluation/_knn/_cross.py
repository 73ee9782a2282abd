"""The cross pass: all four metrics from each real x fake tile."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch

from ._points import (
    _ABSOLUTE_SLACK,
    _UNIT,
    _band,
    _exact_distances,
    _Points,
    _tile,
    _tile_columns,
)
from ._radii import _Radii

log = logging.getLogger(__name__)


@dataclass
class _Counts:
    precision: int = 0
    recall: int = 0
    density: int = 0
    coverage: int = 0


def _cross(
    real: _Points,
    fake: _Points,
    offset: torch.Tensor,
    radii: _Radii,
    fake_radii: _Radii,
    k_pr: int,
    k_dc: int,
    block: int,
) -> _Counts:
    """Count the four memberships over all real x fake pairs, one tile at a time.

    A radius not yet exact is used as the middle of its bounds, and half their
    width widens the error bound of the comparisons that use it.
    """
    device, dtype = real.device, real.dtype
    t_pr, w_pr = radii.threshold(k_pr)
    t_dc, w_dc = radii.threshold(k_dc)
    t_fake, w_fake = fake_radii.threshold(k_pr)

    # Sets too far apart for any ball to reach across score 0.
    grow = 1 + 2 * real.norm_error + 1e-6
    closest = (
        float(offset.norm())
        - math.sqrt(float(real.norms.max()) * grow)
        - math.sqrt(float(fake.norms.max()) * grow)
    )
    reach = max(
        (t + w).max() for t, w in ((t_pr, w_pr), (t_dc, w_dc), (t_fake, w_fake))
    )
    if closest * (1 - 1e-6) > math.sqrt(reach):
        return _Counts()

    # Tiles come out as S - t_pr_i - t_fake_j (S the squared distances) for
    # precision and recall; a rank-2 update turns them into S - t_dc_i.
    real.move(offset)
    fake.meet(offset)
    row_terms, col_terms = real.row_terms(-t_pr), fake.col_terms(-t_fake)
    to_dc_left = torch.stack([t_pr - t_dc, torch.ones_like(t_pr)], 1).to(dtype)
    to_dc_right = torch.stack([torch.ones_like(t_fake), t_fake]).to(dtype)
    to_dc_size = float((t_pr - t_dc).abs().max() + t_fake.max())

    precision = torch.zeros(fake.n, dtype=torch.bool, device=device)
    recall = torch.zeros(real.n, dtype=torch.bool, device=device)
    coverage = torch.zeros(real.n, dtype=torch.bool, device=device)
    density = 0
    unsure: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {
        "precision": [],
        "recall": [],
        "density": [],
    }
    # Real x fake tiles take strips twice as tall: larger products run faster.
    block = 2 * block
    columns = _tile_columns(block, device)
    buffer = torch.empty(
        min(block, real.n) * min(columns, fake.n), dtype=dtype, device=device
    )

    for r0 in range(0, real.n, block):
        rows = slice(r0, min(real.n, r0 + block))
        for c0 in range(0, fake.n, columns):
            cols = slice(c0, min(fake.n, c0 + columns))
            tile = _tile(real, rows, fake, cols, buffer)
            band = _band(real, rows, row_terms, fake, cols, col_terms)

            # Recall: real i is inside some fake ball if min_j S - t_fake_j <= 0.
            gap = tile.amin(dim=1).double() + t_pr[rows]
            margin = _widen(band + float(w_fake[cols].max()))
            recall[rows] |= gap < -margin
            if (u := _within(gap, margin)).numel():
                near = tile[u].double() + t_pr[r0 + u][:, None] <= margin
                i, j = near.nonzero(as_tuple=True)
                unsure["recall"].append((r0 + u[i], c0 + j))

            # Precision: fake j is inside some real ball if min_i S - t_pr_i <= 0.
            gap = tile.amin(dim=0).double() + t_fake[cols]
            margin = _widen(band + float(w_pr[rows].max()))
            precision[cols] |= gap < -margin
            if (u := _within(gap, margin)).numel():
                near = tile[:, u].double() + t_fake[c0 + u][None, :] <= margin
                i, j = near.nonzero(as_tuple=True)
                unsure["precision"].append((r0 + i, c0 + u[j]))

            # Density and coverage, on S - t_dc_i, with a margin per row.
            tile.addmm_(to_dc_left[rows], to_dc_right[:, cols])
            band = band * (1 + 4 * _UNIT) + 4 * _UNIT * to_dc_size
            margin = _widen(band + w_dc[rows]).to(dtype)[:, None]
            coverage[rows] |= (tile.amin(dim=1, keepdim=True) < -margin).squeeze(1)
            inside, maybe = tile < -margin, tile <= margin
            count = int(torch.count_nonzero(inside))
            density += count
            if int(torch.count_nonzero(maybe)) > count:
                i, j = (maybe ^ inside).nonzero(as_tuple=True)
                unsure["density"].append((r0 + i, c0 + j))

    # Pairs near a radius: settle the radii they need, then measure them exactly.
    pairs = {
        name: (torch.cat([p[0] for p in found]), torch.cat([p[1] for p in found]))
        for name, found in unsure.items()
        if found
    }
    for name, (i, j) in pairs.items():
        log.debug("prdc: %d pairs checked exactly for %s", i.numel(), name)
        if name == "recall":
            fake_radii.settle(j)
        else:
            radii.settle(i)
    for name, (i, j) in pairs.items():
        distance = _exact_distances(real, i, fake, j[:, None]).flatten()
        if name == "recall":
            recall[i[distance <= fake_radii.exact[k_pr][j]]] = True
        elif name == "precision":
            precision[j[distance <= radii.exact[k_pr][i]]] = True
        else:
            inside = distance < radii.exact[k_dc][i]
            density += int(inside.sum())
            coverage[i[inside]] = True

    return _Counts(
        precision=int(precision.sum()),
        recall=int(recall.sum()),
        density=density,
        coverage=int(coverage.sum()),
    )


def _within(gap: torch.Tensor, margin: float) -> torch.Tensor:
    """Positions where a float32 decision is closer to its threshold than the bound."""
    return ((gap >= -margin) & (gap <= margin)).nonzero().flatten()


def _widen(bound: float | torch.Tensor) -> float | torch.Tensor:
    """A bound grown past the rounding it meets when compared in float32."""
    return bound * (1 + 1e-6) + _ABSOLUTE_SLACK
