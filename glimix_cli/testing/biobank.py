"""A biobank-sized cohort written straight to PLINK files, variant block by variant block
(never an n x m matrix): nuclear families, sib pairs and unrelated people from several
ancestry groups, with a polygenic background on variants that are not written, and traits
with planted variants.

Notes
-----
Samples, in .fam order: ``nuclear`` families of four (two genotyped parents, two children;
FID ``NUCxxxxx``), sib pairs (two children of parents who are not genotyped; ``SIBxxxxx``)
and unrelated people (``UNRxxxxxx``). Every founder (parent or unrelated person) belongs to
one of ``populations`` groups, a family to one group. Per variant, the ancestral frequency
is uniform on ``maf_range`` and each group's frequency is Balding-Nichols with ``fst``;
founder alleles are drawn independently per variant (no LD) and each child receives one
of each parent's two alleles at random. The expected GRM entry is 0.5 for parent-child
and full-sib pairs, 0 between families.

The genetic value ``g`` comes from ``background`` variants simulated the same way and not
written (so relatives share it, and no tested variant carries it), scaled to variance
``h2``. Planted variants (``planted`` of the written ones, at random) add
``b_j (x_j - 2 p_j) / sd_j`` with ``b_j^2 = q2`` (the variance explained), signs random.
Ancestry adds ``shift * group`` (the confounding that PCs remove). The liability
``L = g + planted + shift * group + e`` (``e`` Normal with variance ``1 - h2``) gives the
Normal trait ``quant``; the binary traits ``case10`` and ``case01`` are ``L`` plus fresh
noise thresholded at the 90% and 99% quantiles.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

__all__ = ["BiobankDesign", "simulate_biobank"]

_BED_MAGIC = bytes([0x6C, 0x1B, 0x01])
#: A1 dosage (0, 1, 2) -> .bed 2-bit code (hom A2 11, het 10, hom A1 00)
_CODE = np.array([0b11, 0b10, 0b00], dtype=np.uint8)


@dataclass(frozen=True)
class BiobankDesign:
    n: int = 100_000
    m: int = 200_000
    nuclear: float = 0.20
    sibs: float = 0.10
    populations: int = 3
    fst: float = 0.02
    maf_range: tuple[float, float] = (0.01, 0.5)
    background: int = 5_000
    h2: float = 0.4
    planted: int = 20
    q2: tuple[float, float] = (1e-4, 6e-4)
    shift: float = 0.3
    chromosomes: int = 22
    block: int = 500
    seed: int = 1


def _encode(D: NDArray[np.int8]) -> bytes:
    """.bed bytes of a (b variants, n samples) int8 dosage block (no missing calls)."""
    b, n = D.shape
    nbytes = (n + 3) // 4
    codes = np.zeros((b, nbytes * 4), dtype=np.uint8)
    codes[:, :n] = _CODE[D]
    q = codes.reshape(b, nbytes, 4)
    return (q[:, :, 0] | (q[:, :, 1] << 2) | (q[:, :, 2] << 4) | (q[:, :, 3] << 6)).tobytes()


class _Pedigree:
    """Founders, and which founders are each genotyped sample's parents."""

    def __init__(self, d: BiobankDesign, rng: np.random.Generator):
        n_nuc = int(d.nuclear * d.n) // 4
        n_sib = int(d.sibs * d.n) // 2
        n_unr = d.n - 4 * n_nuc - 2 * n_sib
        if n_unr < 0:
            raise ValueError("nuclear + sibs fractions exceed the cohort")
        # founders: nuclear parents (genotyped), sib parents (not), unrelated (genotyped)
        n_f = 2 * n_nuc + 2 * n_sib + n_unr
        fam_pop = rng.integers(0, d.populations, n_nuc + n_sib)
        self.founder_pop = np.concatenate([np.repeat(fam_pop, 2),
                                           rng.integers(0, d.populations, n_unr)])
        self.n_founders = n_f
        # genotyped samples: for each, ("founder", f) or ("child", father, mother)
        fid, iid, kind_child, pa, ma = [], [], [], [], []
        for k in range(n_nuc):
            f0 = 2 * k
            name = f"NUC{k + 1:05d}"
            for r, (child, a, b) in enumerate(((False, f0, f0), (False, f0 + 1, f0 + 1),
                                               (True, f0, f0 + 1), (True, f0, f0 + 1))):
                fid.append(name)
                iid.append(f"{name}_{r + 1}")
                kind_child.append(child)
                pa.append(a)
                ma.append(b)
        for k in range(n_sib):
            f0 = 2 * n_nuc + 2 * k
            name = f"SIB{k + 1:05d}"
            for r in range(2):
                fid.append(name)
                iid.append(f"{name}_{r + 1}")
                kind_child.append(True)
                pa.append(f0)
                ma.append(f0 + 1)
        for k in range(n_unr):
            f0 = 2 * n_nuc + 2 * n_sib + k
            name = f"UNR{k + 1:06d}"
            fid.append(name)
            iid.append(name)
            kind_child.append(False)
            pa.append(f0)
            ma.append(f0)
        self.fid, self.iid = fid, iid
        self.child = np.array(kind_child)
        self.pa = np.array(pa)
        self.ma = np.array(ma)
        self.pop = self.founder_pop[self.pa]

    def dosages(self, freq_pop: NDArray[np.float64], rng: np.random.Generator) -> NDArray[np.int8]:
        """(b, n) dosages of one block; ``freq_pop`` (populations, b)."""
        b = freq_pop.shape[1]
        p = freq_pop[:, None, :]  # (pop, 1, b)
        pf = p[self.founder_pop, 0, :]  # (n_f, b)
        h1 = (rng.random((self.n_founders, b)) < pf).astype(np.int8)
        h2 = (rng.random((self.n_founders, b)) < pf).astype(np.int8)
        n = self.pa.size
        D = np.empty((n, b), dtype=np.int8)
        f = ~self.child
        D[f] = h1[self.pa[f]] + h2[self.pa[f]]
        c = np.flatnonzero(self.child)
        pick_a = rng.random((c.size, b)) < 0.5
        pick_b = rng.random((c.size, b)) < 0.5
        fa, mo = self.pa[c], self.ma[c]
        D[c] = (np.where(pick_a, h1[fa], h2[fa]) + np.where(pick_b, h1[mo], h2[mo]))
        return D.T


def _frequencies(d: BiobankDesign, b: int, rng: np.random.Generator) -> NDArray[np.float64]:
    p = rng.uniform(*d.maf_range, size=b)
    p = np.where(rng.random(b) < 0.5, p, 1 - p)
    if d.populations > 1 and d.fst > 0:
        a = (1 - d.fst) / d.fst
        fp = rng.beta(p * a, (1 - p) * a, size=(d.populations, b))
        return np.clip(fp, 1e-4, 1 - 1e-4)
    return np.broadcast_to(p, (d.populations, b)).copy()


def simulate_biobank(prefix: str | Path, design: BiobankDesign = BiobankDesign(),
                     progress=None) -> dict:
    """Write ``prefix.bed/.bim/.fam``, ``prefix.pheno.tsv`` (FID IID quant case10 case01)
    and ``prefix.planted.tsv``; returns the design facts (module notes)."""
    d = design
    rng = np.random.default_rng(d.seed)
    ped = _Pedigree(d, rng)
    n = ped.pa.size
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    g = np.zeros(n)
    for lo in range(0, d.background, d.block):  # background: not written
        D = ped.dosages(_frequencies(d, min(d.block, d.background - lo), rng), rng)
        X = D.astype(np.float64)
        X -= X.mean(axis=1, keepdims=True)
        sd = X.std(axis=1, keepdims=True)
        sd[sd == 0] = 1
        g += (rng.normal(size=X.shape[0]) @ (X / sd))
    g *= np.sqrt(d.h2) / g.std()
    planted = np.sort(rng.choice(d.m, d.planted, replace=False))
    q2 = np.exp(rng.uniform(np.log(d.q2[0]), np.log(d.q2[1]), d.planted))
    effect = np.sqrt(q2) * rng.choice([-1.0, 1.0], d.planted)
    per_chrom = -(-d.m // d.chromosomes)
    signal = np.zeros(n)
    with open(f"{prefix}.bed", "wb") as bed, open(f"{prefix}.bim", "w") as bim:
        bed.write(_BED_MAGIC)
        for lo in range(0, d.m, d.block):
            b = min(d.block, d.m - lo)
            D = ped.dosages(_frequencies(d, b, rng), rng)
            bed.write(_encode(D))
            j = np.arange(lo, lo + b)
            chrom = j // per_chrom + 1
            pos = (j % per_chrom + 1) * 1000
            bim.writelines(f"{c}\tv{k + 1}\t0\t{p}\tA\tG\n"
                           for c, k, p in zip(chrom, j, pos, strict=True))
            hit = np.flatnonzero((planted >= lo) & (planted < lo + b))
            for h in hit:
                x = D[planted[h] - lo].astype(np.float64)
                signal += effect[h] * (x - x.mean()) / max(x.std(), 1e-12)
            if progress is not None:
                progress(lo + b, d.m)
    with open(f"{prefix}.fam", "w") as fam:
        fam.writelines(f"{f} {i} 0 0 0 -9\n" for f, i in zip(ped.fid, ped.iid, strict=True))
    L = g + signal + d.shift * ped.pop + rng.normal(scale=np.sqrt(1 - d.h2), size=n)
    traits = {"quant": L}
    for name, prev in (("case10", 0.10), ("case01", 0.01)):
        lb = L + rng.normal(size=n)
        traits[name] = (lb > np.quantile(lb, 1 - prev)).astype(int)
    with open(f"{prefix}.pheno.tsv", "w") as fh:
        fh.write("FID\tIID\t" + "\t".join(traits) + "\n")
        cols = [traits["quant"], traits["case10"], traits["case01"]]
        fh.writelines(f"{f}\t{i}\t{a:.6g}\t{b}\t{c}\n"
                      for f, i, a, b, c in zip(ped.fid, ped.iid, *cols, strict=True))
    with open(f"{prefix}.planted.tsv", "w") as fh:
        fh.write("variant_id\tq2\teffect\n")
        fh.writelines(f"v{k + 1}\t{q:.4g}\t{e:.6g}\n"
                      for k, q, e in zip(planted, q2, effect, strict=True))
    return {"n": n, "m": d.m, "founders": ped.n_founders, "planted": planted.tolist(),
            "populations": np.bincount(ped.pop).tolist()}
