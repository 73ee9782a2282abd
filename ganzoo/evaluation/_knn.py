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

# Candidate neighbours kept per point beyond the k + 1 nearest, so that the
# float32 filter rarely leaves a radius undecided.
_MARGIN = 4

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

# Float64 entries gathered at once for exact distances (128 MiB).
_EXACT_ENTRIES = 1 << 24

_DEFAULT_BLOCK = {"cpu": 1024, "cuda": 4096}
_TILE_ENTRIES = {"cpu": 1 << 25, "cuda": 1 << 26}


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

    Tiles on and above the diagonal only: a tile offers its rows their best
    entries, and offers the columns right of its diagonal block theirs, which
    are held per point, one slot per strip, until that point's own strip.
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
        values = held[r0:r1, :used].reshape(r1 - r0, -1)
        found = held_index[r0:r1, :used].reshape(r1 - r0, -1)
        for c0 in range(r0, n, columns):
            c1 = min(n, c0 + columns)
            tile = _tile(points, slice(r0, r1), points, slice(c0, c1), buffer)
            v, j = tile.topk(min(width, c1 - c0), dim=1, largest=False)
            values, found = torch.cat([values, v], 1), torch.cat([found, j + c0], 1)
            inner = max(0, min(r1, c1) - c0)  # columns in the diagonal block
            if inner < c1 - c0:
                kept = min(width, r1 - r0)
                v, i = tile[:, inner:].topk(kept, dim=0, largest=False)
                held[c0 + inner : c1, used, :kept] = v.T
                held_index[c0 + inner : c1, used, :kept] = (i + r0).T
        v, j = values.topk(width, dim=1, largest=False)
        best[r0:r1], index[r0:r1] = v, found.gather(1, j)
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
