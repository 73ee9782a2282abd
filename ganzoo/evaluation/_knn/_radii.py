"""The self pass: each point's k-NN radii, bounded everywhere and exact where needed."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from ._points import (
    _ABSOLUTE_SLACK,
    _DIAGONAL_STEP,
    _MARGIN,
    _SLOTS,
    _exact_distances,
    _lower_bound_factor,
    _Points,
    _tile,
)

log = logging.getLogger(__name__)

# The self pass: k-NN radii.


@dataclass
class _Radii:
    """The k-NN radii of one set: bounds for every point, exact values on demand.

    Each candidate's squared distance lies in [lower, upper], so the (k+1)-th
    smallest lies in [low, high], the (k+1)-th smallest lower and upper bounds
    (``high`` from the candidates, ``low`` because every other point lies
    beyond ``lower[:, -1]``). The exact radius needs exact distances only to
    the candidates whose interval meets that range; those wholly below it are
    counted. That suffices unless a point outside the candidates could lie
    within the range: such rows are scanned again at once, while the tiles of
    the set can still be formed; the others are settled when asked for.
    Bounds are squared and scaled, exact radii are distances in the units of
    the features.
    """

    points: _Points
    ks: list[int]
    lower: torch.Tensor
    upper: torch.Tensor
    index: torch.Tensor
    low: dict[int, torch.Tensor]
    high: dict[int, torch.Tensor]
    exact: dict[int, torch.Tensor]
    settled: torch.Tensor

    @classmethod
    def find(cls, points: _Points, ks: list[int], block: int, columns: int) -> _Radii:
        n = points.n
        width = min(n, max(ks) + 1 + _MARGIN)
        lower, index = _candidates(points, width, block, columns)

        # Bounds with room for the gap between float64 distances and the truth.
        lower = lower.double()
        upper = lower + 2 * _lower_bound_factor(points) * (
            points.norms[:, None] + points.norms[index]
        )
        upper = upper * (1 + 1e-9) + _ABSOLUTE_SLACK
        lower = lower - 1e-9 * lower.abs() - _ABSOLUTE_SLACK
        ordered_upper = upper.sort(dim=1).values
        radii = cls(
            points,
            ks,
            lower,
            upper,
            index,
            low={k: lower[:, k] for k in ks},
            high={k: ordered_upper[:, k] for k in ks},
            exact={k: torch.full_like(lower[:, 0], math.nan) for k in ks},
            settled=torch.zeros(n, dtype=torch.bool, device=points.device),
        )

        # Rows that points outside the candidates might undercut, settled now.
        if width < n:
            doubtful = (lower[:, -1] <= radii.high[max(ks)]).nonzero().flatten()
            radii.settle(doubtful, block, columns)
        return radii

    @classmethod
    def given(cls, points: _Points, radii: Mapping[int, torch.Tensor]) -> _Radii:
        """Radii known exactly, in the units of the features."""
        exact = dict(radii)
        bounds = {k: (r * points.scale).square() for k, r in exact.items()}
        empty = torch.empty(0, device=points.device)
        settled = torch.ones(points.n, dtype=torch.bool, device=points.device)
        return cls(
            points, list(exact), empty, empty, empty, bounds, bounds, exact, settled
        )

    def threshold(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Squared, scaled radius as (middle, half width); exact where settled."""
        exact = (self.exact[k] * self.points.scale).square()
        middle = torch.where(self.settled, exact, (self.low[k] + self.high[k]) / 2)
        half = torch.where(self.settled, 0.0, (self.high[k] - self.low[k]) / 2)
        return middle, half

    def settle(self, rows: torch.Tensor, block: int = 0, columns: int = 0) -> None:
        """Compute the exact radii of ``rows``; ``block`` > 0 allows scanning again."""
        rows = rows[~self.settled[rows]].unique()
        if rows.numel() == 0:
            return
        lower, upper = self.lower[rows], self.upper[rows]
        ranges = {
            k: (self.low[k][rows, None], self.high[k][rows, None]) for k in self.ks
        }
        relevant = {k: (upper >= lo) & (lower <= hi) for k, (lo, hi) in ranges.items()}
        needed = torch.stack(list(relevant.values())).any(dim=0)
        exact = _exact_candidates(self.points, rows, self.index[rows], needed)

        beyond = lower[:, -1]
        doubtful = torch.zeros(rows.numel(), dtype=torch.bool, device=rows.device)
        for k, (lo, hi) in ranges.items():
            below = (upper < lo).sum(dim=1, keepdim=True)
            ordered = torch.where(relevant[k], exact, math.inf).sort(dim=1).values
            self.exact[k][rows] = radius = ordered.gather(1, k - below).squeeze(1)
            if lower.shape[1] < self.points.n:
                doubtful |= (beyond <= hi.squeeze(1)) & (radius > 0)
        self.settled[rows] = True

        # A radius 0 cannot be undercut; the others are found among all points.
        again = rows[doubtful]
        if again.numel():
            assert block > 0, "only rows found doubtful at once are scanned again"
            log.debug(
                "k-NN radii: %d of %d rows scanned again", again.numel(), self.points.n
            )
            reach = self.high[max(self.ks)][again]
            found = _rescan(self.points, again, reach, self.ks, block, columns)
            for k, r in found.items():
                self.exact[k][again] = r


def _radii(
    points: _Points, ks: list[int], block: int, columns: int
) -> dict[int, torch.Tensor]:
    """Exact k-NN radii (self excluded) in the units of the features."""
    radii = _Radii.find(points, ks, block, columns)
    radii.settle(torch.arange(points.n, device=points.device))
    return radii.exact


def _rescan(
    points: _Points,
    rows: torch.Tensor,
    reach: torch.Tensor,
    ks: list[int],
    block: int,
    columns: int,
) -> dict[int, torch.Tensor]:
    """Exact radii of some rows from every point whose lower bound is within reach.

    ``reach`` bounds the largest radius wanted from above, so the points left
    out are farther than every radius. The lower bounds are those the
    candidate pass set up.
    """
    radii = {k: torch.empty(rows.numel(), dtype=torch.float64) for k in ks}
    radii = {k: r.to(points.device) for k, r in radii.items()}
    size = min(block, rows.numel()) * min(columns, points.n)
    buffer = torch.empty(size, dtype=points.dtype, device=points.device)
    for start in range(0, rows.numel(), block):
        some = rows[start : start + block]
        found = []
        for c0 in range(0, points.n, columns):
            cols = slice(c0, min(points.n, c0 + columns))
            tile = _tile(points, some, points, cols, buffer)
            i, j = (tile <= reach[start : start + block, None]).nonzero(as_tuple=True)
            found.append((i, j + c0))
        i = torch.cat([f[0] for f in found])
        j = torch.cat([f[1] for f in found])
        distance = _exact_distances(points, some[i], points, j[:, None]).flatten()

        # The k-th smallest per row: sort by distance, then stably by row.
        order = torch.argsort(distance, stable=True)
        order = order[torch.argsort(i[order], stable=True)]
        counts = torch.bincount(i, minlength=some.numel())
        first = torch.cumsum(counts, 0) - counts
        for k in ks:
            radii[k][start : start + some.numel()] = distance[order][first + k]
    return radii


def _exact_candidates(
    points: _Points, rows: torch.Tensor, index: torch.Tensor, needed: torch.Tensor
) -> torch.Tensor:
    """Exact distances from ``rows`` to their needed candidates, inf elsewhere.

    Rows are grouped by how many they need, so each point is gathered once.
    """
    exact = torch.full(index.shape, math.inf, dtype=torch.float64, device=index.device)
    counts = needed.sum(dim=1)
    for count in counts.unique().tolist():
        if count == 0:
            continue
        group = (counts == count).nonzero().flatten()
        where = needed[group].nonzero()[:, 1].view(-1, count)
        cols = index[group].gather(1, where)
        exact[group[:, None], where] = _exact_distances(
            points, rows[group], points, cols
        )
    return exact


def _candidates(
    points: _Points, width: int, block: int, columns: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the ``width`` smallest lower bounds of squared distance, and columns.

    Tiles on and above the diagonal only. A strip's diagonal block goes in a
    staircase of shorter strips, so that little of it is computed twice; each
    step offers its rows their best entries and the strip's later rows theirs.
    The tiles right of the diagonal block offer their rows their best entries,
    and their columns theirs, which are held per point, one slot per strip,
    until that point's own strip.
    """
    n, dtype, device = points.n, points.dtype, points.device
    shift = -_lower_bound_factor(points) * points.norms
    points.row_terms(shift)
    points.col_terms(shift)
    best = torch.empty(n, width, dtype=dtype, device=device)
    index = torch.empty(n, width, dtype=torch.long, device=device)
    slots = min(_SLOTS, -(-n // block))
    held = torch.full((n, slots, width), math.inf, dtype=dtype, device=device)
    held_index = torch.zeros((n, slots, width), dtype=torch.long, device=device)
    used = 0
    buffer = torch.empty(min(block, n) * min(columns, n), dtype=dtype, device=device)

    for r0 in range(0, n, block):
        r1 = min(n, r0 + block)
        values = [held[r0:r1, :used].reshape(r1 - r0, -1)]
        found = [held_index[r0:r1, :used].reshape(r1 - r0, -1)]
        _diagonal(points, r0, r1, width, buffer, values, found)
        for c0 in range(r1, n, columns):
            c1 = min(n, c0 + columns)
            tile = _tile(points, slice(r0, r1), points, slice(c0, c1), buffer)
            v, j = tile.topk(min(width, c1 - c0), dim=1, largest=False)
            values.append(v)
            found.append(j + c0)
            kept = min(width, r1 - r0)
            v, i = tile.topk(kept, dim=0, largest=False)
            held[c0:c1, used, :kept] = v.T
            held_index[c0:c1, used, :kept] = (i + r0).T
        v, j = torch.cat(values, 1).topk(width, dim=1, largest=False)
        best[r0:r1], index[r0:r1] = v, torch.cat(found, 1).gather(1, j)
        if r1 == n:
            break

        # Fold the held candidates of the points still to come into one slot.
        used += 1
        if used == slots:
            flat = held[r1:].reshape(n - r1, -1)
            v, j = flat.topk(width, dim=1, largest=False)
            j = held_index[r1:].reshape(n - r1, -1).gather(1, j)
            held[r1:] = math.inf
            held[r1:, 0], held_index[r1:, 0] = v, j
            used = 1
    return best, index


def _diagonal(
    points: _Points,
    r0: int,
    r1: int,
    width: int,
    buffer: torch.Tensor,
    values: list[torch.Tensor],
    found: list[torch.Tensor],
) -> None:
    """Candidates among the rows ``r0:r1`` themselves, appended per row.

    Step ``a:b`` of the staircase is the tile of rows ``a:b`` against columns
    ``a:r1``: its rows take their best entries, and its columns right of
    ``b`` take theirs, in a slot of their own.
    """
    rows = r1 - r0
    steps = range(r0, r1, _DIAGONAL_STEP)
    offered = torch.full(
        (rows, len(steps), width), math.inf, dtype=values[0].dtype, device=points.device
    )
    offered_index = torch.zeros(
        (rows, len(steps), width), dtype=torch.long, device=points.device
    )
    for slot, a in enumerate(steps):
        b = min(r1, a + _DIAGONAL_STEP)
        tile = _tile(points, slice(a, b), points, slice(a, r1), buffer)
        kept = min(width, r1 - a)
        v, j = tile.topk(kept, dim=1, largest=False)
        offered[a - r0 : b - r0, slot, :kept] = v
        offered_index[a - r0 : b - r0, slot, :kept] = j + a
        if b < r1:
            kept = min(width, b - a)
            v, i = tile[:, b - a :].topk(kept, dim=0, largest=False)
            offered[b - r0 :, slot, :kept] = v.T
            offered_index[b - r0 :, slot, :kept] = (i + a).T
    values.append(offered.view(rows, -1))
    found.append(offered_index.view(rows, -1))
