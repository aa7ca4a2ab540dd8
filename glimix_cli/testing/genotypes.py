"""Simulate related cohorts: nuclear families plus unrelated samples.

Founders (parents of families and unrelated samples) carry two haplotypes drawn from
per-variant allele frequencies; children receive one recombined haplotype from each parent
(Mendelian transmission). Adjacent variants can share haplotype structure through a simple
copying model, which gives short-range linkage disequilibrium.

Allele convention: every dosage counts the FIRST allele of the variant table (``a1``), the
allele :func:`glimix_cli.io.plink_write.write_plink1` writes first in the .bim file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

F = NDArray[np.float64]
Haplotypes = NDArray[np.int8]  # (2, m) of 0/1, 1 = carries a1
ChromBounds = list[tuple[int, int]]  # [start, stop) of each chromosome's variant columns

__all__ = ["SampleTable", "SimulatedGenotypes", "VariantTable", "simulate_genotypes"]

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


def as_dosage_matrix(dosage: ArrayLike) -> F:
    """``dosage`` as a float64 (samples x variants) array; ValueError unless 2-D."""
    G = np.asarray(dosage, dtype=np.float64)
    if G.ndim != 2:
        raise ValueError(f"dosage must be 2-D (samples x variants); got shape {G.shape}")
    return G


# --------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------
def _chromosome_labels(chromosomes: int | Sequence[str | int]) -> list[str]:
    if isinstance(chromosomes, int | np.integer):
        if chromosomes < 1:
            raise ValueError(f"chromosomes must be >= 1; got {chromosomes}")
        return [str(c) for c in range(1, int(chromosomes) + 1)]
    labels = [str(c) for c in chromosomes]
    if not labels or len(set(labels)) != len(labels):
        raise ValueError(f"chromosomes must be non-empty and unique; got {labels}")
    return labels


def _check_genotype_args(
    n_chromosomes: int, n_families: int, n_unrelated: int, n_variants: int,
    maf_range: tuple[float, float], n_populations: int, fst: float,
    rates: dict[str, float],
) -> tuple[float, float]:
    """Raise ValueError on a bad argument of :func:`simulate_genotypes`; return the MAF range.

    ``rates`` maps the names of the arguments that must lie in [0, 1) to their values.
    """
    if n_families < 0 or n_unrelated < 0 or n_families + n_unrelated == 0:
        raise ValueError(
            f"need at least one sample; got n_families={n_families}, n_unrelated={n_unrelated}"
        )
    if n_variants < n_chromosomes:
        raise ValueError(
            f"n_variants={n_variants} must be at least the number of chromosomes "
            f"({n_chromosomes})"
        )
    lo, hi = (float(v) for v in maf_range)
    if not 0 < lo <= hi <= 0.5:
        raise ValueError(f"maf_range must satisfy 0 < lo <= hi <= 0.5; got {maf_range}")
    if n_populations < 1 or not 0 <= fst < 1:
        raise ValueError(
            f"need n_populations >= 1 and 0 <= fst < 1; got {n_populations}, {fst}"
        )
    for name, value in rates.items():
        if not 0 <= value < 1:
            raise ValueError(f"{name} must be in [0, 1); got {value}")
    return lo, hi


def _family_sizes(
    family_size: int | tuple[int, int], n_families: int, rng: np.random.Generator
) -> NDArray[np.int64]:
    if isinstance(family_size, int | np.integer):
        lo = hi = int(family_size)
    else:
        lo, hi = (int(v) for v in family_size)
    if lo < 3 or hi < lo:
        raise ValueError(
            f"family_size must be an int >= 3 or a range (lo, hi) with 3 <= lo <= hi "
            f"(two parents and at least one child); got {family_size}"
        )
    return rng.integers(lo, hi + 1, size=n_families)


# --------------------------------------------------------------------------------------
# Variants
# --------------------------------------------------------------------------------------
def _variant_table(
    labels: list[str], m: int, maf_lo: float, maf_hi: float, mean_gap_bp: int,
    rng: np.random.Generator,
) -> tuple[VariantTable, NDArray[np.int64], ChromBounds]:
    """The variant table, each chromosome's first column and the chromosome bounds.

    The ``m`` variants are split as evenly as possible over the chromosomes (the first
    ``m % c`` get one more).
    """
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
    maf = rng.uniform(maf_lo, maf_hi, size=m)
    freq = np.where(rng.random(m) < 0.5, maf, 1.0 - maf)
    variants = VariantTable(chrom=chrom, variant_id=variant_id, pos=pos, a1=a1, a2=a2,
                            freq=freq)
    return variants, chrom_start, chrom_bounds


def _population_frequencies(
    freq: F, n_populations: int, fst: float, rng: np.random.Generator
) -> F:
    """Per-population ``a1`` frequencies (n_populations, m): Balding-Nichols when fst > 0."""
    if n_populations > 1 and fst > 0:
        a = (1.0 - fst) / fst
        return rng.beta(freq * a, (1.0 - freq) * a, size=(n_populations, freq.shape[0]))
    return np.broadcast_to(freq, (n_populations, freq.shape[0]))


# --------------------------------------------------------------------------------------
# Haplotypes and transmission
# --------------------------------------------------------------------------------------
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
    parent: Haplotypes, chrom_bounds: ChromBounds, crossovers: float,
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


@dataclass(frozen=True)
class _Meiosis:
    """Draws founders from population frequencies and children from two parents."""

    pop_freq: F
    chrom_start: NDArray[np.int64]
    chrom_bounds: ChromBounds
    ld_copy: float
    crossovers: float
    rng: np.random.Generator

    def founder(self, pop: int) -> Haplotypes:
        return _founder_haplotypes(self.pop_freq[pop], 2, self.chrom_start, self.ld_copy,
                                   self.rng)

    def child(self, dad: Haplotypes, mum: Haplotypes) -> Haplotypes:
        return np.stack([
            _gamete(dad, self.chrom_bounds, self.crossovers, self.rng),
            _gamete(mum, self.chrom_bounds, self.crossovers, self.rng),
        ])


# --------------------------------------------------------------------------------------
# Pedigree
# --------------------------------------------------------------------------------------
# (iid, father, mother, sex, haplotypes) of one genotyped sample
_Member = tuple[str, str, str, int, Haplotypes]


def _family_members(
    family: str, size: int, pop: int, half_sib_rate: float, meiosis: _Meiosis,
    rng: np.random.Generator,
) -> list[_Member]:
    """The ``size`` genotyped members of one nuclear family: father, mother, children.

    A child after the first has, with probability ``half_sib_rate``, the family's second
    (non-genotyped, ``<family>_x``) father instead of ``<family>_1``.
    """
    dad, mum = meiosis.founder(pop), meiosis.founder(pop)
    other_dad: Haplotypes | None = None
    members: list[_Member] = [(f"{family}_1", "0", "0", 1, dad),
                              (f"{family}_2", "0", "0", 2, mum)]
    for c in range(size - 2):
        idx = c + 3
        if c > 0 and rng.random() < half_sib_rate:
            if other_dad is None:
                other_dad = meiosis.founder(pop)
            haps = meiosis.child(other_dad, mum)
            dad_id = f"{family}_x"
        else:
            haps = meiosis.child(dad, mum)
            dad_id = f"{family}_1"
        members.append((f"{family}_{idx}", dad_id, f"{family}_2",
                        int(rng.integers(1, 3)), haps))
    return members


@dataclass
class _SampleRows:
    """Accumulates the sample table's columns and the dosage rows, one sample at a time."""

    fid: list[str] = field(default_factory=list)
    iid: list[str] = field(default_factory=list)
    father: list[str] = field(default_factory=list)
    mother: list[str] = field(default_factory=list)
    sex: list[int] = field(default_factory=list)
    population: list[int] = field(default_factory=list)
    dosage_rows: list[NDArray[np.int8]] = field(default_factory=list)

    def add(self, fid: str, population: int, member: _Member) -> None:
        iid, father, mother, sex, haps = member
        self.fid.append(fid)
        self.iid.append(iid)
        self.father.append(father)
        self.mother.append(mother)
        self.sex.append(sex)
        self.population.append(population)
        self.dosage_rows.append(haps.sum(axis=0, dtype=np.int8))

    def table(self) -> SampleTable:
        return SampleTable(
            fid=np.array(self.fid), iid=np.array(self.iid), father=np.array(self.father),
            mother=np.array(self.mother), sex=np.array(self.sex, dtype=np.int64),
            population=np.array(self.population, dtype=np.int64),
        )

    def true_dosage(self) -> NDArray[np.int8]:
        return np.vstack(self.dosage_rows).astype(np.int8)


# --------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------
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

    Raises
    ------
    ValueError
        On an argument out of its range (a programming error, not a user input error).

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
    maf_lo, maf_hi = _check_genotype_args(
        len(labels), n_families, n_unrelated, n_variants, maf_range, n_populations, fst,
        {"missing_rate": missing_rate, "half_sib_rate": half_sib_rate, "ld_copy": ld_copy},
    )
    variants, chrom_start, chrom_bounds = _variant_table(
        labels, int(n_variants), maf_lo, maf_hi, mean_gap_bp, rng
    )
    sizes = _family_sizes(family_size, n_families, rng) if n_families else np.empty(0, int)
    fam_pop = rng.integers(n_populations, size=n_families)
    unrel_pop = rng.integers(n_populations, size=n_unrelated)
    pop_freq = _population_frequencies(variants.freq, n_populations, fst, rng)
    meiosis = _Meiosis(pop_freq, chrom_start, chrom_bounds, ld_copy,
                       crossovers_per_chromosome, rng)

    rows = _SampleRows()
    for f in range(n_families):
        family = f"FAM{f + 1:04d}"
        pop = int(fam_pop[f])
        for member in _family_members(family, int(sizes[f]), pop, half_sib_rate, meiosis,
                                      rng):
            rows.add(family, pop, member)
    for u in range(n_unrelated):
        ind = f"IND{u + 1:04d}"
        pop = int(unrel_pop[u])
        sex = int(rng.integers(1, 3))
        rows.add(ind, pop, (ind, "0", "0", sex, meiosis.founder(pop)))

    true_dosage = rows.true_dosage()
    dosage = true_dosage.astype(np.float64)
    if missing_rate > 0:
        dosage[rng.random(dosage.shape) < missing_rate] = np.nan
    return SimulatedGenotypes(dosage=dosage, true_dosage=true_dosage, samples=rows.table(),
                              variants=variants)
