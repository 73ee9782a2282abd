"""Prepared point sets, float32 tiles with their error bounds, exact distances."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

# Candidate neighbours kept per point beyond the k + 1 nearest, so that the
# float32 filter rarely leaves a radius undecided.
_MARGIN = 4

# Rows per step of the staircase that covers a strip's diagonal block.
_DIAGONAL_STEP = 256

# Earlier strips whose candidates are held per point before they are merged.
_SLOTS = 16

# At or below this many features, distances are computed directly in float64.
_DIRECT_MAX_DIM = 16

# Relative error bound of a squared float64 distance, with ample room.
_DIRECT_ERROR = 1e-12

# Float32 unit roundoff, the factor applied to every derived bound, and an
# absolute term for values that underflow.
_UNIT = 2.0**-24
_SAFETY = 1.25
_ABSOLUTE_SLACK = 2.0**-100

# Float64 entries gathered at once for exact distances (8 MiB, so that they
# stay in cache).
_EXACT_ENTRIES = 1 << 20

_DEFAULT_BLOCK = {"cpu": 1024, "cuda": 4096}
_TILE_ENTRIES = {"cpu": 1 << 25, "cuda": 1 << 26}


def _tile_columns(block: int, device: torch.device) -> int:
    return max(block, _TILE_ENTRIES.get(device.type, 1 << 24) // block)


@contextlib.contextmanager
def _full_float32_matmul() -> Iterator[None]:
    # The error bounds hold for IEEE float32 products, not TF32 or bfloat16 ones.
    previous = torch.get_float32_matmul_precision()
    if previous != "highest":
        torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        if previous != "highest":
            torch.set_float32_matmul_precision(previous)


# Prepared point sets.


def _frame(x: torch.Tensor) -> tuple[torch.Tensor, float]:
    """A centre for the float32 products of one set, and the spread around it.

    Distances do not depend on the centre, so any will do, and a mean in the
    features' own precision is enough; centring shrinks the norms that the
    error bounds grow with.
    """
    center = x.sum(dim=0).double().cpu() / x.shape[0]
    high = x.amax(dim=0).double().cpu() - center
    low = center - x.amin(dim=0).double().cpu()
    return center, max(float(high.max()), float(low.max()), 0.0)


def _scale(spread: float) -> float:
    """A power of two (so scaling is exact) that brings coordinates below 1."""
    return 1.0 if spread == 0.0 else math.ldexp(1.0, -math.frexp(spread)[1])


@dataclass
class _Points:
    """One feature set, ready for blockwise products and exact distances.

    For the float32 products a tile is ``left[rows] @ right[cols].T`` with
    ``left = [-2x, row term, 1]`` and ``right = [x, 1, column term]``, ``x``
    the centred, scaled points; the terms are the squared norms plus shifts.
    In direct mode ``points`` holds them in float64 instead. ``norms`` are the
    float64 squared norms of exactly the values the tiles use. In the cross
    pass the real points are moved by ``offset`` (the difference of the two
    centres), which only changes the terms: ``moved`` is ``|x + offset|^2``
    for a moved set, ``toward`` is ``x . offset`` for the set it meets.
    """

    raw: torch.Tensor
    scale: float
    norms: torch.Tensor
    left: torch.Tensor | None = None
    right: torch.Tensor | None = None
    points: torch.Tensor | None = None
    row_shift: torch.Tensor | None = None
    col_shift: torch.Tensor | None = None
    offset: torch.Tensor | None = None
    moved: torch.Tensor | None = None
    toward: torch.Tensor | None = None

    @classmethod
    def build(
        cls,
        raw: torch.Tensor,
        center: torch.Tensor,
        scale: float,
        device: torch.device,
        *,
        left: bool = True,
        right: bool = True,
    ) -> _Points:
        """Prepare ``raw`` in the frame (``center``, ``scale``) for either side."""
        n, d = raw.shape
        if d <= _DIRECT_MAX_DIM:
            points = raw.to(device=device, dtype=torch.float64) - center.to(device)
            points *= scale
            return cls(raw, scale, points.square().sum(dim=1), points=points)

        # Centre in float32 unless the features carry more precision than that.
        both = torch.empty(n, d + 2, dtype=torch.float32, device=device)
        x = both[:, :d]
        if raw.dtype == torch.float64:
            step = max(1, _EXACT_ENTRIES // d)
            for start in range(0, n, step):
                chunk = raw[start : start + step].to(device)
                x[start : start + step] = (chunk - center.to(device)) * scale
        else:
            # (raw - c) s rounds exactly like raw s - c s, s a power of two.
            shift = (center * -scale).to(device=device, dtype=torch.float32)
            torch.add(shift, raw.to(device), alpha=scale, out=x)
        # Float32 norms err by at most gamma_D of themselves (``norm_error``).
        points = cls(raw, scale, torch.einsum("ij,ij->i", x, x).double())
        if right:
            points.right = both
            both[:, d] = 1.0
        if left:
            points.left = torch.empty_like(both) if right else both
            torch.mul(x, -2.0, out=points.left[:, :d])
            points.left[:, d + 1] = 1.0
        return points

    @property
    def n(self) -> int:
        return self.raw.shape[0]

    @property
    def d(self) -> int:
        return self.raw.shape[1]

    @property
    def direct(self) -> bool:
        return self.points is not None

    @property
    def device(self) -> torch.device:
        return self.norms.device

    @property
    def dtype(self) -> torch.dtype:
        return torch.float64 if self.direct else torch.float32

    @property
    def norm_error(self) -> float:
        """Relative error bound of ``norms``."""
        return 0.0 if self.direct else _gamma(self.d)

    def move(self, offset: torch.Tensor) -> None:
        """Use these points, as rows, moved by ``offset``."""
        self.offset = offset
        if self.direct:
            self.moved = (self.points + offset).square().sum(dim=1)
        else:
            dot = self.left[:, : self.d] @ offset.float() * -0.5
            self.moved = self.norms + 2 * dot.double() + offset.square().sum()

    def meet(self, offset: torch.Tensor) -> None:
        """Use these points, as columns, against rows moved by ``offset``."""
        if not self.direct:
            self.toward = (self.right[:, : self.d] @ offset.float()).double()

    def row_terms(self, shift: torch.Tensor) -> torch.Tensor:
        """Set row shifts; returns the row terms of the product, in float64."""
        self.row_shift = shift
        terms = (self.norms if self.moved is None else self.moved) + shift
        if not self.direct:
            self.left[:, self.d] = terms.float()
        return terms

    def col_terms(self, shift: torch.Tensor) -> torch.Tensor:
        """Set column shifts; returns the column terms of the product, in float64."""
        self.col_shift = shift
        terms = self.norms + shift
        if self.toward is not None:
            terms = terms - 2 * self.toward
        if not self.direct:
            self.right[:, self.d + 1] = terms.float()
        return terms

    def exact(self, rows: torch.Tensor) -> torch.Tensor:
        """Float64 copies of some points, as given (not centred or scaled)."""
        values = self.raw[rows.to(self.raw.device)]
        return values.to(device=self.device, dtype=torch.float64)


def _tile(
    a: _Points,
    rows: slice | torch.Tensor,
    b: _Points,
    cols: slice,
    buffer: torch.Tensor,
) -> torch.Tensor:
    """One tile of shifted squared distances, written into ``buffer`` when it can."""
    if a.direct:
        x = a.points[rows] if a.offset is None else a.points[rows] + a.offset
        tile = torch.cdist(
            x, b.points[cols], compute_mode="donot_use_mm_for_euclid_dist"
        ).square_()
        return tile.add_(a.row_shift[rows, None]).add_(b.col_shift[None, cols])
    left, right = a.left[rows], b.right[cols]
    out = buffer[: left.shape[0] * right.shape[0]].view(left.shape[0], right.shape[0])
    return torch.mm(left, right.T, out=out)


def _gamma(k: int) -> float:
    """Worst-case relative error of a float32 sum of ``k`` products."""
    return k * _UNIT / (1 - k * _UNIT)


def _product_gamma(d: int) -> float:
    """``_gamma`` of a tile entry: D products and the two extra columns."""
    return _gamma(d + 2)


def _lower_bound_factor(points: _Points) -> float:
    """``c`` such that a tile shifted by ``-c (|a|^2 + |b|^2)`` is below the truth.

    The product errs by at most gamma (2 |a||b| + |a|^2 + |b|^2), the norms in
    the extra columns by their own error and rounding, and the float32 points
    differ from the given ones by a rounding that moves a squared distance by
    at most 4u (|a|^2 + |b|^2).
    """
    if points.direct:
        return _DIRECT_ERROR
    norm = points.norm_error
    error = 2 * _product_gamma(points.d) + norm + 6 * _UNIT
    return _SAFETY * error * (1 + 2 * norm) + 1e-9


def _band(
    a: _Points,
    rows: slice,
    row_terms: torch.Tensor,
    b: _Points,
    cols: slice,
    col_terms: torch.Tensor,
) -> float:
    """Error bound of every entry of one real x fake tile.

    Summed: the product (gamma times its absolute terms), the rounding and the
    norm errors of the two extra columns, the float32 dot products with the
    offset behind the terms, and the float32 points against the given ones,
    which moves a squared distance by at most 2u |a + offset - b| (|a| + |b|).
    """
    # Norms are estimates: bound them from above first.
    grow = 1 + 2 * a.norm_error
    na, nb = float(a.norms[rows].max()) * grow, float(b.norms[cols].max()) * grow
    moved = float(a.moved[rows].max()) * grow if a.moved is not None else na
    rt = float(row_terms[rows].abs().max())
    ct = float(col_terms[cols].abs().max())
    size = moved + nb + rt + ct
    if a.direct:
        return _DIRECT_ERROR * (size + na) + _ABSOLUTE_SLACK
    offset = float(a.offset.norm()) if a.offset is not None else 0.0
    ra, rb, rm = math.sqrt(na), math.sqrt(nb), math.sqrt(moved)
    product = _product_gamma(a.d) * (2 * ra * rb + rt + ct)
    rounding = _UNIT * (rt + ct) + a.norm_error * (na + nb)
    dots = 2 * (_product_gamma(a.d) + _UNIT) * offset * (ra + rb)
    inputs = 2.01 * _UNIT * (rm + rb) * (ra + rb)
    # The last term covers the difference between float64 distances and the truth.
    bound = _SAFETY * (product + rounding + dots + inputs)
    return bound + 1e-9 * size + _ABSOLUTE_SLACK


# Exact distances.


def _exact_distances(
    a: _Points, rows: torch.Tensor, b: _Points, cols: torch.Tensor
) -> torch.Tensor:
    """Float64 distances from ``a[rows[p]]`` to each of ``b[cols[p, :]]``."""
    p, width = cols.shape
    out = torch.empty(p, width, dtype=torch.float64, device=a.device)
    step = max(1, _EXACT_ENTRIES // ((width + 1) * a.d))
    for start in range(0, p, step):
        stop = min(p, start + step)
        x = a.exact(rows[start:stop]).unsqueeze(1)
        y = b.exact(cols[start:stop].flatten()).view(stop - start, width, a.d)
        out[start:stop] = torch.cdist(
            x, y, compute_mode="donot_use_mm_for_euclid_dist"
        ).squeeze(1)
    return out
