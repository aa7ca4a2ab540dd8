"""Simulate related cohorts and GLMM traits, for tests and the committed example data.

Pure numpy: no file I/O, no printing. Every function takes a ``numpy.random.Generator``,
so a seed makes a result reproducible to the bit on the same numpy version.

Genotypes
    Founders (parents of families and unrelated samples) carry two haplotypes drawn from
    per-variant allele frequencies; children receive one recombined haplotype from each
    parent (Mendelian transmission). Adjacent variants can share haplotype structure
    through a simple copying model, which gives short-range linkage disequilibrium.

Traits
    One latent liability ``z = X beta + g + e + sum_j b_j (G_j - mean(G_j))`` with
    ``g ~ N(0, v0 K)`` and ``e ~ N(0, v1 I)`` is mapped to a quantitative, a binary, a count
    and a binomial outcome, each through its own link and intercept shift.

Allele convention: every dosage counts the FIRST allele of the variant table (``a1``), the
allele :func:`glimix_cli.io.plink_write.write_plink1` writes first in the .bim file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from glimix_cli.errors import InputError
from glimix_cli.model.linalg import QSType, check_qs, economic_qs

F = NDArray[np.float64]

__all__ = [
    "NullBinaryTrait",
    "SampleTable",
    "SimulatedGenotypes",
    "SimulatedTraits",
    "VariantTable",
    "effect_for_variance",
    "simulate_genotypes",
    "simulate_null_binary",
    "simulate_traits",
    "standardised_grm",
]

# Non strand-ambiguous allele pairs (A/T and C/G are left out so a1/a2 cannot be confused
# with a strand flip).
_ALLELE_PAIRS = (("A", "C"), ("A", "G"), ("C", "T"), ("G", "T"))


# --------------------------------------------------------------------------------------
# Result containers
# --------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class SampleTable:
    """Per-sample columns, one entry per row of the dosage matrix.

    Attributes
    ----------
    fid, iid : ndarray of str, shape (n,)
        Family and individual IDs; (fid, iid) is unique.
    father, mother : ndarray of str, shape (n,)
        IID of each parent, ``"0"`` for founders. A half-sib's second father is a founder
        who is not genotyped, so his IID does not appear in ``iid``.
    sex : ndarray of int, shape (n,)
        1 = male, 2 = female (PLINK coding).
    population : ndarray of int, shape (n,)
        Index of the population the sample's founders were drawn from.
    """

    fid: NDArray[np.str_]
    iid: NDArray[np.str_]
    father: NDArray[np.str_]
    mother: NDArray[np.str_]
    sex: NDArray[np.int64]
    population: NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class VariantTable:
    """Per-variant columns, one entry per column of the dosage matrix.

    Attributes
    ----------
    chrom : ndarray of str, shape (m,)
        Chromosome label.
    variant_id : ndarray of str, shape (m,)
        Unique ``rs<number>`` IDs.
    pos : ndarray of int, shape (m,)
        Base-pair position, strictly increasing within a chromosome.
    a1, a2 : ndarray of str, shape (m,)
        Alleles (A/C/G/T, never a strand-ambiguous pair); the dosage counts ``a1``.
    freq : ndarray of float, shape (m,)
        Ancestral frequency of ``a1`` (before Balding-Nichols drift and sampling).
    """

    chrom: NDArray[np.str_]
    variant_id: NDArray[np.str_]
    pos: NDArray[np.int64]
    a1: NDArray[np.str_]
    a2: NDArray[np.str_]
    freq: F


@dataclass(frozen=True, eq=False)
class SimulatedGenotypes:
    """Output of :func:`simulate_genotypes`.

    Attributes
    ----------
    dosage : ndarray of float, shape (n, m)
        Count of allele ``a1`` (0, 1, 2), NaN for a missing call.
    true_dosage : ndarray of int8, shape (n, m)
        The same genotypes before calls were set missing.
    samples : SampleTable
    variants : VariantTable
    """

    dosage: F
    true_dosage: NDArray[np.int8]
    samples: SampleTable
    variants: VariantTable


@dataclass(frozen=True, eq=False)
class SimulatedTraits:
    """Output of :func:`simulate_traits`: four outcomes of one latent liability.

    Attributes
    ----------
    z : ndarray of float, shape (n,)
        Latent liability ``fixed + genetic + causal + residual``.
    fixed, genetic, causal, residual : ndarray of float, shape (n,)
        Its components ``X beta``, ``g``, the planted-variant sum and ``e``.
    quant : ndarray of float, shape (n,)
        Quantitative trait, equal to ``z`` (Normal likelihood, identity link).
    binary : ndarray of int64, shape (n,)
        0/1 trait.
    binary_offset : float
        Intercept added to ``z`` for the binary trait (logit), or minus the liability
        threshold (probit).
    count : ndarray of int64, shape (n,)
        Poisson counts with mean ``exp(z + count_offset)``.
    count_offset : float
    successes, trials : ndarray of int64, shape (n,)
        Binomial outcome: ``successes ~ Binomial(trials, expit(z + binomial_offset))``.
    binomial_offset : float
    """

    z: F
    fixed: F
    genetic: F
    causal: F
    residual: F
    quant: F
    binary: NDArray[np.int64]
    binary_offset: float
    count: NDArray[np.int64]
    count_offset: float
    successes: NDArray[np.int64]
    trials: NDArray[np.int64]
    binomial_offset: float


@dataclass(frozen=True, eq=False)
class NullBinaryTrait:
    """Output of :func:`simulate_null_binary`.

    Attributes
    ----------
    y : ndarray of int64, shape (n,)
        0/1 trait with exactly ``n_cases`` ones.
    z : ndarray of float, shape (n,)
        Latent ``X beta + g + e`` it was drawn from.
    n_cases : int
    """

    y: NDArray[np.int64]
    z: F
    n_cases: int


# --------------------------------------------------------------------------------------
# Genotypes
# --------------------------------------------------------------------------------------
def _chromosome_labels(chromosomes: int | Sequence[str | int]) -> list[str]:
    if isinstance(chromosomes, int | np.integer):
        if chromosomes < 1:
            raise InputError(f"chromosomes must be >= 1; got {chromosomes}")
        return [str(c) for c in range(1, int(chromosomes) + 1)]
    labels = [str(c) for c in chromosomes]
    if not labels or len(set(labels)) != len(labels):
        raise InputError(f"chromosomes must be non-empty and unique; got {labels}")
    return labels


def _family_sizes(
    family_size: int | tuple[int, int], n_families: int, rng: np.random.Generator
) -> NDArray[np.int64]:
    if isinstance(family_size, int | np.integer):
        lo = hi = int(family_size)
    else:
        lo, hi = (int(v) for v in family_size)
    if lo < 3 or hi < lo:
        raise InputError(
            f"family_size must be an int >= 3 or a range (lo, hi) with 3 <= lo <= hi "
            f"(two parents and at least one child); got {family_size}"
        )
    return rng.integers(lo, hi + 1, size=n_families)


def _founder_haplotypes(
    freq: F, n_haplotypes: int, chrom_start: NDArray[np.int64], ld_copy: float,
    rng: np.random.Generator,
) -> NDArray[np.int8]:
    """Haplotypes (n_haplotypes, m) of 0/1 (1 = carries a1) with exact marginals ``freq``.

    Copying model in uniform space: each haplotype holds a latent ``u ~ U(0, 1)`` that is
    redrawn at a variant with probability ``1 - ld_copy`` (always at a chromosome start)
    and copied from the previous variant otherwise; the allele is ``u < freq``. Marginally
    ``u`` is uniform at every variant, so ``P(a1) = freq`` exactly, while neighbouring
    variants that share ``u`` are correlated.
    """
    m = freq.shape[0]
    if ld_copy <= 0:
        u = rng.random((n_haplotypes, m))
    else:
        fresh = rng.random((n_haplotypes, m))
        new = rng.random((n_haplotypes, m)) >= ld_copy
        new[:, chrom_start] = True
        last = np.where(new, np.arange(m), 0)
        np.maximum.accumulate(last, axis=1, out=last)
        u = np.take_along_axis(fresh, last, axis=1)
    return (u < freq).astype(np.int8)


def _gamete(
    parent: NDArray[np.int8], chrom_bounds: list[tuple[int, int]], crossovers: float,
    rng: np.random.Generator,
) -> NDArray[np.int8]:
    """One recombined haplotype from a parent's two haplotypes ``parent`` (2, m).

    Per chromosome: a random starting haplotype and ``Poisson(crossovers)`` switch points
    uniform over the chromosome's variants.
    """
    m = parent.shape[1]
    which = np.empty(m, dtype=np.int64)
    for start, stop in chrom_bounds:
        length = stop - start
        toggles = np.zeros(length, dtype=np.int64)
        k = int(rng.poisson(crossovers))
        if k and length > 1:
            cuts = rng.integers(1, length, size=k)
            np.add.at(toggles, cuts, 1)
        which[start:stop] = (int(rng.integers(2)) + np.cumsum(toggles)) % 2
    return parent[which, np.arange(m)]


def simulate_genotypes(
    n_families: int,
    family_size: int | tuple[int, int],
    n_variants: int,
    chromosomes: int | Sequence[str | int],
    rng: np.random.Generator,
    n_unrelated: int = 0,
    maf_range: tuple[float, float] = (0.01, 0.5),
    n_populations: int = 1,
    fst: float = 0.0,
    missing_rate: float = 0.0,
    *,
    half_sib_rate: float = 0.0,
    ld_copy: float = 0.0,
    crossovers_per_chromosome: float = 1.5,
    mean_gap_bp: int = 5_000,
) -> SimulatedGenotypes:
    """Simulate a cohort of nuclear families plus unrelated samples.

    Parameters
    ----------
    n_families : int
        Number of families. Each has two genotyped founder parents and children.
    family_size : int or (int, int)
        Genotyped members per family (parents included), fixed or drawn uniformly from the
        inclusive range ``(lo, hi)``; at least 3.
    n_variants : int
        Number of variants ``m``, split as evenly as possible over the chromosomes.
    chromosomes : int or sequence of str or int
        Number of chromosomes (labelled 1..c) or their labels.
    rng : numpy.random.Generator
    n_unrelated : int
        Unrelated samples added after the families.
    maf_range : (float, float)
        Ancestral minor-allele frequencies are uniform on this range; the counted allele
        ``a1`` is the minor one for a random half of the variants.
    n_populations : int
        Number of populations. Each family (both parents) and each unrelated sample
        belongs to one, chosen uniformly.
    fst : float
        With ``n_populations > 1`` and ``fst > 0``, population frequencies are drawn from
        the Balding-Nichols model ``Beta(p (1 - F) / F, (1 - p) (1 - F) / F)``.
    missing_rate : float
        Each call is set missing (NaN) independently with this probability.
    half_sib_rate : float, keyword-only
        Probability that a child after the first has a different, non-genotyped father,
        making it a half-sib of its siblings (kinship 0.125 instead of 0.25).
    ld_copy : float, keyword-only
        Probability that a haplotype copies its latent state from the previous variant
        (0 = linkage equilibrium). See Notes.
    crossovers_per_chromosome : float, keyword-only
        Mean number of crossovers per chromosome per meiosis.
    mean_gap_bp : int, keyword-only
        Mean distance between adjacent variants, in base pairs.

    Returns
    -------
    SimulatedGenotypes
        ``dosage`` (n, m) with ``n = sum(family sizes) + n_unrelated``, the sample and
        variant tables.

    Notes
    -----
    Founder haplotype ``h`` carries ``a1`` at variant ``j`` when ``u_hj < f_j`` where
    ``u_h`` follows a copying chain: ``u_hj = u_h,j-1`` with probability ``ld_copy``,
    otherwise a fresh ``U(0, 1)`` draw. Children get one gamete from each parent; a gamete
    switches between the parent's haplotypes at ``Poisson(crossovers_per_chromosome)``
    uniform points per chromosome.

    Examples
    --------
    >>> import numpy as np
    >>> sim = simulate_genotypes(3, 4, 10, 2, np.random.default_rng(1), n_unrelated=2)
    >>> sim.dosage.shape, sim.samples.iid[:3].tolist(), sim.variants.chrom[[0, -1]].tolist()
    ((14, 10), ['FAM0001_1', 'FAM0001_2', 'FAM0001_3'], ['1', '2'])
    """
    labels = _chromosome_labels(chromosomes)
    if n_families < 0 or n_unrelated < 0 or n_families + n_unrelated == 0:
        raise InputError(
            f"need at least one sample; got n_families={n_families}, n_unrelated={n_unrelated}"
        )
    if n_variants < len(labels):
        raise InputError(
            f"n_variants={n_variants} must be at least the number of chromosomes ({len(labels)})"
        )
    lo, hi = (float(v) for v in maf_range)
    if not 0 < lo <= hi <= 0.5:
        raise InputError(f"maf_range must satisfy 0 < lo <= hi <= 0.5; got {maf_range}")
    if n_populations < 1 or not 0 <= fst < 1:
        raise InputError(
            f"need n_populations >= 1 and 0 <= fst < 1; got {n_populations}, {fst}"
        )
    for name, value in (("missing_rate", missing_rate), ("half_sib_rate", half_sib_rate),
                        ("ld_copy", ld_copy)):
        if not 0 <= value < 1:
            raise InputError(f"{name} must be in [0, 1); got {value}")

    # ---- variant table -----------------------------------------------------------------
    m = int(n_variants)
    per_chrom = np.full(len(labels), m // len(labels))
    per_chrom[: m % len(labels)] += 1
    chrom_start = np.concatenate([[0], np.cumsum(per_chrom)[:-1]])
    chrom_bounds = [(int(s), int(s + c)) for s, c in zip(chrom_start, per_chrom, strict=True)]
    chrom = np.repeat(np.array(labels), per_chrom)
    pos = np.empty(m, dtype=np.int64)
    for start, stop in chrom_bounds:
        gaps = rng.integers(1, 2 * mean_gap_bp, size=stop - start)
        pos[start:stop] = int(rng.integers(10_000, 1_000_000)) + np.cumsum(gaps)
    rs = np.sort(rng.choice(np.arange(1_000, 1_000 + 200 * m), size=m, replace=False))
    rs = rs[rng.permutation(m)]
    variant_id = np.array([f"rs{r}" for r in rs])
    pair = rng.integers(len(_ALLELE_PAIRS), size=m)
    swap = rng.random(m) < 0.5
    first = np.array([p[0] for p in _ALLELE_PAIRS])[pair]
    second = np.array([p[1] for p in _ALLELE_PAIRS])[pair]
    a1 = np.where(swap, second, first)
    a2 = np.where(swap, first, second)
    maf = rng.uniform(lo, hi, size=m)
    freq = np.where(rng.random(m) < 0.5, maf, 1.0 - maf)

    # ---- pedigree ----------------------------------------------------------------------
    sizes = _family_sizes(family_size, n_families, rng) if n_families else np.empty(0, int)
    fam_pop = rng.integers(n_populations, size=n_families)
    unrel_pop = rng.integers(n_populations, size=n_unrelated)
    if n_populations > 1 and fst > 0:
        a = (1.0 - fst) / fst
        pop_freq = rng.beta(freq * a, (1.0 - freq) * a, size=(n_populations, m))
    else:
        pop_freq = np.broadcast_to(freq, (n_populations, m))

    fid: list[str] = []
    iid: list[str] = []
    father: list[str] = []
    mother: list[str] = []
    sex: list[int] = []
    population: list[int] = []
    dosage_rows: list[NDArray[np.int8]] = []

    def founder(pop: int) -> NDArray[np.int8]:
        return _founder_haplotypes(pop_freq[pop], 2, chrom_start, ld_copy, rng)

    def child(dad: NDArray[np.int8], mum: NDArray[np.int8]) -> NDArray[np.int8]:
        return np.stack([
            _gamete(dad, chrom_bounds, crossovers_per_chromosome, rng),
            _gamete(mum, chrom_bounds, crossovers_per_chromosome, rng),
        ])

    for f in range(n_families):
        family = f"FAM{f + 1:04d}"
        pop = int(fam_pop[f])
        dad, mum = founder(pop), founder(pop)
        other_dad: NDArray[np.int8] | None = None
        members = [(f"{family}_1", "0", "0", 1, dad), (f"{family}_2", "0", "0", 2, mum)]
        for c in range(int(sizes[f]) - 2):
            idx = c + 3
            if c > 0 and rng.random() < half_sib_rate:
                if other_dad is None:
                    other_dad = founder(pop)
                haps = child(other_dad, mum)
                dad_id = f"{family}_x"
            else:
                haps = child(dad, mum)
                dad_id = f"{family}_1"
            members.append((f"{family}_{idx}", dad_id, f"{family}_2",
                            int(rng.integers(1, 3)), haps))
        for ind, fa, mo, sx, haps in members:
            fid.append(family)
            iid.append(ind)
            father.append(fa)
            mother.append(mo)
            sex.append(sx)
            population.append(pop)
            dosage_rows.append(haps.sum(axis=0, dtype=np.int8))
    for u in range(n_unrelated):
        ind = f"IND{u + 1:04d}"
        pop = int(unrel_pop[u])
        fid.append(ind)
        iid.append(ind)
        father.append("0")
        mother.append("0")
        sex.append(int(rng.integers(1, 3)))
        population.append(pop)
        dosage_rows.append(founder(pop).sum(axis=0, dtype=np.int8))

    true_dosage = np.vstack(dosage_rows).astype(np.int8)
    dosage = true_dosage.astype(np.float64)
    if missing_rate > 0:
        dosage[rng.random(dosage.shape) < missing_rate] = np.nan

    samples = SampleTable(
        fid=np.array(fid), iid=np.array(iid), father=np.array(father),
        mother=np.array(mother), sex=np.array(sex, dtype=np.int64),
        population=np.array(population, dtype=np.int64),
    )
    variants = VariantTable(chrom=chrom, variant_id=variant_id, pos=pos, a1=a1, a2=a2,
                            freq=freq)
    return SimulatedGenotypes(dosage=dosage, true_dosage=true_dosage, samples=samples,
                              variants=variants)


def standardised_grm(dosage: ArrayLike) -> F:
    """Dense standardised genetic relationship matrix (for simulation and tests).

    Parameters
    ----------
    dosage : array_like of float, shape (n, m)
        Allele counts, NaN for missing calls.

    Returns
    -------
    K : ndarray of float, shape (n, n)
        ``K = Z Z^T / m'`` over the ``m'`` variants with allele frequency in (0, 1).

    Notes
    -----
    ``Z_ij = (G_ij - 2 p_j) / sqrt(2 p_j (1 - p_j))`` with ``p_j`` the frequency among
    non-missing calls; missing calls get ``Z_ij = 0`` (mean imputation). Off-diagonal
    entries estimate twice the kinship coefficient (0.5 for full sibs and parent-offspring,
    0.25 for half sibs, 0 for unrelated pairs).

    Examples
    --------
    >>> G = np.array([[0.0, 2.0], [2.0, 0.0], [1.0, 1.0]])
    >>> np.round(standardised_grm(G), 3).tolist()
    [[2.0, -2.0, 0.0], [-2.0, 2.0, 0.0], [0.0, 0.0, 0.0]]
    """
    G = np.asarray(dosage, dtype=np.float64)
    if G.ndim != 2:
        raise InputError(f"dosage must be 2-D (samples x variants); got shape {G.shape}")
    ok = np.isfinite(G)
    n_ok = ok.sum(axis=0)
    total = np.where(ok, G, 0.0).sum(axis=0)
    p = np.divide(total, 2.0 * n_ok, out=np.zeros(G.shape[1]), where=n_ok > 0)
    keep = (n_ok > 0) & (p > 0) & (p < 1)
    if not keep.any():
        raise InputError("dosage has no polymorphic variant; cannot build a GRM")
    p = p[keep]
    Z = np.where(ok[:, keep], G[:, keep] - 2 * p, 0.0) / np.sqrt(2 * p * (1 - p))
    K = Z @ Z.T / keep.sum()
    return (K + K.T) / 2


# --------------------------------------------------------------------------------------
# Traits
# --------------------------------------------------------------------------------------
def _expit(x: F) -> F:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _solve_shift(z: F, target: float) -> float:
    """The ``c`` with ``mean(expit(z + c)) = target`` (bisection; the mean is increasing)."""
    if not 0 < target < 1:
        raise InputError(f"target fraction must be in (0, 1); got {target}")
    lo, hi = -1.0, 1.0
    while np.mean(_expit(z + lo)) > target:
        lo *= 2.0
    while np.mean(_expit(z + hi)) < target:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if np.mean(_expit(z + mid)) < target:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return 0.5 * (lo + hi)


def _as_qs(K_or_QS: ArrayLike | QSType | None, n: int) -> QSType | None:
    if K_or_QS is None:
        return None
    if isinstance(K_or_QS, tuple):
        return check_qs(K_or_QS, n)
    K = np.asarray(K_or_QS, dtype=np.float64)
    if K.shape != (n, n):
        raise InputError(f"K has shape {K.shape}; expected ({n}, {n}) to match the samples")
    return economic_qs(K)


def _latent(
    QS: QSType | None, X: ArrayLike | None, beta: ArrayLike | None, v0: float, v1: float,
    n: int, rng: np.random.Generator,
) -> tuple[F, F, F]:
    """Return ``(X beta, g, e)``."""
    if v0 < 0 or v1 < 0:
        raise InputError(f"variances must be non-negative; got v0={v0}, v1={v1}")
    if X is None:
        Xm = np.empty((n, 0))
    else:
        Xm = np.asarray(X, dtype=np.float64)
        if Xm.ndim == 1:
            Xm = Xm[:, None]
    if Xm.shape[0] != n:
        raise InputError(f"X has {Xm.shape[0]} rows; expected {n} (one per sample)")
    b = np.zeros(Xm.shape[1]) if beta is None else np.asarray(beta, dtype=np.float64).ravel()
    if b.shape[0] != Xm.shape[1]:
        raise InputError(f"beta has {b.shape[0]} values; X has {Xm.shape[1]} columns")
    fixed = Xm @ b
    if QS is None or v0 == 0:
        g = np.zeros(n)
    else:
        (Q0, _), S0 = QS
        g = Q0 @ (np.sqrt(v0 * S0) * rng.standard_normal(S0.shape[0]))
    e = np.sqrt(v1) * rng.standard_normal(n)
    return fixed, g, e


def effect_for_variance(dosage_column: ArrayLike, fraction: float, total_variance: float) -> float:
    """Per-allele effect whose contribution has variance ``fraction * total_variance``.

    Parameters
    ----------
    dosage_column : array_like of float, shape (n,)
        One variant's allele counts (NaN ignored).
    fraction : float
        Share of the latent variance to explain.
    total_variance : float
        Latent variance the share refers to.

    Returns
    -------
    float
        ``sqrt(fraction * total_variance / var(G_j))`` (positive).
    """
    g = np.asarray(dosage_column, dtype=np.float64)
    var = float(np.var(g[np.isfinite(g)]))
    if var == 0:
        raise InputError("the variant is monomorphic; it cannot explain any variance")
    return float(np.sqrt(fraction * total_variance / var))


def simulate_traits(
    dosage: ArrayLike,
    K_or_QS: ArrayLike | QSType | None,
    X: ArrayLike | None,
    rng: np.random.Generator,
    *,
    beta: ArrayLike | None = None,
    v0: float = 0.4,
    v1: float = 0.6,
    causal: Sequence[tuple[int, float]] = (),
    case_fraction: float = 0.3,
    binary_link: str = "logit",
    count_mean: float = 2.0,
    max_trials: int = 10,
    success_fraction: float = 0.5,
) -> SimulatedTraits:
    """Draw one latent liability and four outcomes from it.

    Parameters
    ----------
    dosage : array_like of float, shape (n, m)
        Allele counts (NaN = missing, mean-imputed for the causal sum).
    K_or_QS : array_like of float, shape (n, n), or ((Q0, Q1), S0), or None
        Covariance of the polygenic effect (usually :func:`standardised_grm`) or its
        economic eigendecomposition; None means no polygenic effect.
    X : array_like of float, shape (n, p), or None
        Covariates (include a column of ones for an intercept).
    rng : numpy.random.Generator
    beta : array_like of float, shape (p,), optional
        Covariate effects (default zeros).
    v0, v1 : float
        Polygenic and residual variances on the latent scale.
    causal : sequence of (int, float)
        ``(variant column, effect per a1 allele)`` planted on the latent scale; may be empty
        (null trait).
    case_fraction : float
        Target fraction of cases of the binary trait.
    binary_link : {"logit", "probit"}
        ``"logit"``: ``y ~ Bernoulli(expit(z + c))`` with ``c`` solved so that the expected
        case fraction is ``case_fraction``. ``"probit"``: liability threshold, cases are
        the ``round(case_fraction * n)`` largest ``z + eps``, ``eps ~ N(0, 1)``, which is a
        probit model whose intercept is set in-sample (exact fraction).
    count_mean : float
        Target mean of the Poisson counts.
    max_trials : int
        Trials per sample are uniform on ``1 .. max_trials``.
    success_fraction : float
        Target mean success probability of the binomial trait.

    Returns
    -------
    SimulatedTraits

    Notes
    -----
    ``z = X beta + g + e + sum_j b_j (G_j - mean(G_j))``, ``g ~ N(0, v0 K)``,
    ``e ~ N(0, v1 I)``. Then ``quant = z``; ``binary`` as above; ``count ~
    Poisson(exp(z + c_p))`` with ``c_p = log(count_mean) - log(mean(exp(z)))``;
    ``successes ~ Binomial(trials, expit(z + c_b))`` with ``mean(expit(z + c_b)) =
    success_fraction``. All intercept shifts are solved on the realised ``z``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> G = rng.binomial(2, 0.3, size=(50, 20)).astype(float)
    >>> tr = simulate_traits(G, None, None, rng, causal=[(3, 0.5)])
    >>> tr.quant.shape, bool(np.all(tr.successes <= tr.trials))
    ((50,), True)
    """
    G = np.asarray(dosage, dtype=np.float64)
    if G.ndim != 2:
        raise InputError(f"dosage must be 2-D (samples x variants); got shape {G.shape}")
    n, m = G.shape
    if binary_link not in ("logit", "probit"):
        raise InputError(f"binary_link must be 'logit' or 'probit'; got {binary_link!r}")
    if not 0 < case_fraction < 1 or not 0 < success_fraction < 1:
        raise InputError(
            f"case_fraction and success_fraction must be in (0, 1); "
            f"got {case_fraction}, {success_fraction}"
        )
    if count_mean <= 0 or max_trials < 1:
        raise InputError(f"need count_mean > 0 and max_trials >= 1; got {count_mean}, "
                         f"{max_trials}")
    QS = _as_qs(K_or_QS, n)
    fixed, g, e = _latent(QS, X, beta, v0, v1, n, rng)

    planted = np.zeros(n)
    for j, b in causal:
        if not 0 <= int(j) < m:
            raise InputError(f"causal variant index {j} is out of range 0..{m - 1}")
        col = G[:, int(j)]
        ok = np.isfinite(col)
        if not ok.any():
            raise InputError(f"causal variant {j} has only missing calls")
        centred = np.where(ok, col - col[ok].mean(), 0.0)
        planted += float(b) * centred
    z = fixed + g + e + planted

    if binary_link == "logit":
        c_bin = _solve_shift(z, case_fraction)
        binary = (rng.random(n) < _expit(z + c_bin)).astype(np.int64)
    else:
        liability = z + rng.standard_normal(n)
        n_cases = int(round(case_fraction * n))
        order = np.argsort(-liability, kind="stable")
        binary = np.zeros(n, dtype=np.int64)
        binary[order[:n_cases]] = 1
        threshold = (liability[order[n_cases - 1]] + liability[order[n_cases]]) / 2
        c_bin = -float(threshold)

    zmax = float(z.max())
    c_count = float(np.log(count_mean) - (zmax + np.log(np.mean(np.exp(z - zmax)))))
    count = rng.poisson(np.exp(z + c_count)).astype(np.int64)

    c_binom = _solve_shift(z, success_fraction)
    trials = rng.integers(1, max_trials + 1, size=n).astype(np.int64)
    successes = rng.binomial(trials, _expit(z + c_binom)).astype(np.int64)

    return SimulatedTraits(
        z=z, fixed=fixed, genetic=g, causal=planted, residual=e, quant=z.copy(),
        binary=binary, binary_offset=float(c_bin), count=count, count_offset=c_count,
        successes=successes, trials=trials, binomial_offset=float(c_binom),
    )


def _conditional_bernoulli(log_odds: F, k: int, rng: np.random.Generator) -> NDArray[np.int64]:
    """Draw independent Bernoulli(expit(log_odds)) variables conditioned on summing to ``k``.

    Exact sequential sampler. ``W[i, r]`` is the total odds-product over subsets of size
    ``r`` of sites ``i..n-1``, so ``P(y_i = 1 | r still needed) = w_i W[i+1, r-1] / W[i, r]``.
    Kept on the log scale; costs O(n k) time and memory.
    """
    n = log_odds.shape[0]
    logW = np.full((n + 1, k + 1), -np.inf)
    logW[n, 0] = 0.0
    for i in range(n - 1, -1, -1):
        logW[i, 0] = 0.0
        logW[i, 1:] = np.logaddexp(logW[i + 1, 1:], log_odds[i] + logW[i + 1, :-1])
    y = np.zeros(n, dtype=np.int64)
    u = rng.random(n)
    r = k
    for i in range(n):
        if r == 0:
            break
        p1 = np.exp(log_odds[i] + logW[i + 1, r - 1] - logW[i, r])
        if u[i] < p1:
            y[i] = 1
            r -= 1
    return y


def simulate_null_binary(
    K_or_QS: ArrayLike | QSType | None,
    X: ArrayLike | None,
    rng: np.random.Generator,
    *,
    case_fraction: float = 0.1,
    v0: float = 0.5,
    v1: float = 0.0,
    beta: ArrayLike | None = None,
    n: int | None = None,
) -> NullBinaryTrait:
    """A null binary trait drawn from the logit GLMM, with an exact number of cases.

    Parameters
    ----------
    K_or_QS : array_like of float, shape (n, n), or ((Q0, Q1), S0), or None
        Polygenic covariance (or its eigendecomposition); None for none.
    X : array_like of float, shape (n, p), or None
        Covariates.
    rng : numpy.random.Generator
    case_fraction : float
        Cases are exactly ``round(case_fraction * n)``.
    v0, v1 : float
        Polygenic and extra residual variance on the logit scale.
    beta : array_like of float, shape (p,), optional
        Covariate effects.
    n : int, optional
        Number of samples; needed only when both ``K_or_QS`` and ``X`` are None.

    Returns
    -------
    NullBinaryTrait

    Notes
    -----
    ``z = X beta + g + e`` as in :func:`simulate_traits`, then ``y_i ~
    Bernoulli(expit(z_i + c))`` independently, conditioned on ``sum(y) = k``. The
    conditional law does not depend on the intercept ``c`` (it scales every size-``k``
    subset's probability by the same ``exp(k c)``), so no intercept needs solving; the
    draw is exact, by the sequential conditional-Bernoulli sampler (O(n k)).

    Examples
    --------
    >>> t = simulate_null_binary(None, None, np.random.default_rng(0), n=200)
    >>> t.n_cases, int(t.y.sum())
    (20, 20)
    """
    if n is None:
        if K_or_QS is not None:
            n = (np.asarray(K_or_QS).shape[0] if not isinstance(K_or_QS, tuple)
                 else np.asarray(K_or_QS[0][0]).shape[0])
        elif X is not None:
            n = np.asarray(X).shape[0]
        else:
            raise InputError("simulate_null_binary: pass n when K_or_QS and X are both None")
    if not 0 < case_fraction < 1:
        raise InputError(f"case_fraction must be in (0, 1); got {case_fraction}")
    QS = _as_qs(K_or_QS, n)
    fixed, g, e = _latent(QS, X, beta, v0, v1, n, rng)
    z = fixed + g + e
    k = int(round(case_fraction * n))
    if k > n // 2:  # sample the controls instead: smaller table
        y = 1 - _conditional_bernoulli(-z, n - k, rng)
    else:
        y = _conditional_bernoulli(z, k, rng)
    return NullBinaryTrait(y=y, z=z, n_cases=k)
