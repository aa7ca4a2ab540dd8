"""Step 2: the kinship of the analysed samples (a precomputed matrix or sparse table, the
cache of ``glimix kinship``, the sparse GRM of ``--sparse-cutoff``, or the dense GRM
streamed from the genotypes), and the ``kinship`` command."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from glimix_cli.errors import InputError
from glimix_cli.io.atomic import check_output
from glimix_cli.io.plink import Bfile, open_bfile
from glimix_cli.kinship import (
    bfile_fingerprint,
    kinship_qs,
    load_kinship_cache,
    save_kinship_cache,
)
from glimix_cli.kinship.cache import (
    cache_kind,
    load_sparse_kinship_cache,
    read_sparse_part,
    save_sparse_kinship_cache,
)
from glimix_cli.kinship.sparse import project_psd, restrict, sparse_summary
from glimix_cli.kinship.sparse_grm import SparseGRMResult, sparse_grm
from glimix_cli.model.blocks import MAX_BLOCK
from glimix_cli.model.linalg import QSType, economic_qs
from glimix_cli.pipeline.config import InputConfig
from glimix_cli.pipeline.inputs import Inputs, file_fingerprint
from glimix_cli.pipeline.progress import Reporter
from glimix_cli.pipeline.qc import select_variants

F = NDArray[np.float64]
#: Peak memory of a dense-kinship run, in units of one n x n float64 matrix (measured:
#: ``fit -l bernoulli`` at n = 10,000 peaked at 7.3 GB, 9.1 of them).
DENSE_MATRICES = 9.5


@dataclass
class Kinship:
    """The kinship of the analysed samples, and its eigendecomposition once known.

    ``K`` is a dense (n, n) array, or a ``scipy.sparse`` CSR matrix for a sparse kinship
    (then ``summary`` holds its pairs, families and largest family).
    """

    K: Any  # analysed samples x analysed samples
    QS: QSType | None  # eigendecomposition of K, when already known
    source: str
    n_variants: int | None = None
    summary: dict[str, int] | None = None
    #: ``--loco``: the kinships leaving one chromosome out (a pipeline.loco.LocoKinship)
    loco: Any = None

    @property
    def sparse(self) -> bool:
        return self.summary is not None

    def qs(self) -> QSType:
        if self.sparse:
            raise ValueError("a sparse kinship has no global eigendecomposition")
        if self.QS is None:
            self.QS = economic_qs(self.K)
        return self.QS


def kinship_options(cfg: InputConfig) -> dict[str, Any]:
    """The options that change a GRM (part of the cache's and the null model's identity)."""
    extract = None
    if cfg.kinship_extract is not None:
        extract = file_fingerprint(cfg.kinship_extract)
    opts: dict[str, Any] = {"kinship_extract": extract, "maf_min": cfg.kinship_maf}
    if cfg.loco:
        opts["loco"] = True
    if cfg.sparse_cutoff is not None:
        opts["sparse_cutoff"] = cfg.sparse_cutoff
        opts["screen_markers"] = cfg.screen_markers
        opts["sparse_pcs"] = cfg.sparse_pcs
    return opts


def available_memory() -> int | None:
    """Bytes of memory available to this run (Linux ``MemAvailable``), None if unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_dense_memory(n: int) -> None:
    """Refuse, before any work, a dense kinship that this machine cannot hold."""
    need = DENSE_MATRICES * 8.0 * n * n
    avail = available_memory()
    if avail is not None and need > avail:
        raise InputError(
            f"{n:,} samples: a dense kinship run needs about {need / 2**30:.0f} GiB, this "
            f"machine has {avail / 2**30:.1f} GiB available - use a sparse kinship: "
            "--sparse-cutoff 0.05 (or --kinship FILE.grm.sp / FILE.kin0, or a cache from "
            "`glimix kinship --sparse-cutoff`)")


def _psd_within_cap(K: Any, source: str) -> tuple[Any, int, float, dict[str, int]]:
    """``K`` made PSD per family, after checking that no family exceeds the block cap (a
    family's block is factorised whole); with its summary."""
    summ = sparse_summary(K)
    if summ["largest"] > MAX_BLOCK:
        raise InputError(f"kinship: the sparse {source} joins {summ['largest']:,} samples into "
                         f"one family (relatives of relatives), above the cap {MAX_BLOCK:,} - "
                         "keep fewer distant pairs (a higher --sparse-cutoff, or a filtered "
                         "table)")
    K, n_adj, worst = project_psd(K)
    return K, n_adj, worst, (sparse_summary(K) if n_adj else summ)


def _sparse_kinship(K: Any, source: str, rep: Reporter, n_variants: int | None = None,
                    detail: str = "") -> Kinship:
    """A sparse kinship of the analysed samples, made positive semi-definite per family."""
    K, n_adj, worst, summ = _psd_within_cap(K, source)
    if n_adj:
        rep.warn(f"kinship: {n_adj:,} families' blocks were not positive semi-definite "
                 f"(smallest eigenvalue {worst:.3g}); their negative eigenvalues were set to 0")
    rep.info(f"kinship: sparse {source}{detail}: {summ['pairs']:,} pairs of relatives, "
             f"{summ['families']:,} families ({summ['in_families']:,} samples, the largest "
             f"{summ['largest']:,}), {K.shape[0] - summ['in_families']:,} unrelated")
    return Kinship(K, None, source, n_variants, summ)


def _sparse_detail(res: SparseGRMResult) -> str:
    how = ("every kinship marker screened" if res.exact_screen else
           f"pairs screened with {res.n_screen:,} random markers (threshold {res.threshold:.3g}; "
           f"a pair at the cutoff is found with probability {res.detect_at_cutoff:.2g})")
    beyond = f" beyond {res.pcs} PCs" if res.pcs else ""
    return (f"{beyond} of cutoff {res.cutoff:g} from {res.n_variants_used:,} variants, {how}, "
            f"{res.flagged:,} pairs computed exactly")


def _kinship_variants(extract: Path | None, bfile: Bfile) -> NDArray[np.intp] | None:
    if extract is None:
        return None
    sel = select_variants(bfile.variants, extract=extract)
    if sel.indices.size == 0:
        raise InputError(f"{extract}: none of its {sel.n_extract_ids} ids are in "
                         f"{bfile.bim} - check the variant ids")
    return sel.indices


def _dense(QS: QSType, rows: NDArray[np.intp] | None = None) -> F:
    """``Q0 S0 Q0^T`` (of the samples ``rows``), symmetrised."""
    (Q0, _), S0 = QS
    Q = Q0 if rows is None else Q0[rows]
    K = (Q * S0) @ Q.T
    return (K + K.T) / 2


def build_kinship(cfg: InputConfig, inputs: Inputs, rep: Reporter) -> Kinship:
    """The kinship of ``inputs``' analysed samples, from the first source ``cfg`` names."""
    bfile, match = inputs.bfile, inputs.match
    idx = match.geno_index
    if inputs.kinship_table is not None:
        K, named = restrict(inputs.kinship_table, match.fid, match.iid)
        return _sparse_kinship(K, f"kinship table {cfg.kinship}", rep,
                               detail=f" ({named:,} of the {match.n:,} samples listed)")
    if inputs.kinship_matrix is not None:
        assert match.kinship_index is not None
        k = match.kinship_index
        rep.info(f"kinship: precomputed matrix {cfg.kinship}")
        return Kinship(np.ascontiguousarray(inputs.kinship_matrix[np.ix_(k, k)]), None,
                       str(cfg.kinship))
    # the GRM's genotypes: --kinship-bfile, else the scanned ones
    bfile, idx = inputs.kin_source, inputs.kin_index
    if cfg.kinship_cache is not None and Path(cfg.kinship_cache).exists():
        if cache_kind(cfg.kinship_cache) == "sparse":
            return _cached_sparse(cfg, inputs, rep)
        if cfg.sparse_cutoff is not None:
            raise InputError(f"{cfg.kinship_cache}: holds a dense kinship, but --sparse-cutoff "
                             "asks for a sparse one - drop one of the two options")
        check_dense_memory(match.n)
        fp = bfile_fingerprint(bfile, kinship_options(cfg))
        s = bfile.samples
        QS = load_kinship_cache(cfg.kinship_cache, fp, s["fid"].to_numpy(),
                                s["iid"].to_numpy())
        rep.info(f"kinship: cache {cfg.kinship_cache} (rank {QS[1].size})")
        if np.array_equal(idx, np.arange(bfile.n_samples)):  # (not a --kinship-bfile order)
            return Kinship(_dense(QS), QS, str(cfg.kinship_cache))
        return Kinship(_dense(QS, idx), None, str(cfg.kinship_cache))
    variants = _kinship_variants(cfg.kinship_extract, bfile)
    m = bfile.n_variants if variants is None else variants.size
    if cfg.sparse_cutoff is not None:
        res = _build_sparse(bfile, idx, variants, cfg, rep)
        return _sparse_kinship(res.K, "GRM", rep, res.n_variants_used, _sparse_detail(res))
    check_dense_memory(match.n)
    rep.start("kinship", m)
    # eigendecomposition deferred (Kinship.qs): only the Normal fit needs it, the EP fit of
    # the other likelihoods works on K itself (saves an n^3 eigh: 25-60 s at n = 5,000)
    res = kinship_qs(bfile, idx, variants, cfg.kinship_maf,
                     progress=lambda done, total: rep.update("kinship", done), eigen=False)
    rep.finish("kinship")
    rep.info(f"kinship: GRM of {match.n:,} samples from {res.n_variants_used:,} variants "
             f"({res.n_skipped_monomorphic:,} monomorphic"
             + (f", {res.n_skipped_maf:,} under MAF {cfg.kinship_maf}" if res.n_skipped_maf else "")
             + ")")
    if res.n_variants_used == 0:
        raise InputError(f"{bfile.bed}: no polymorphic variant left for the kinship matrix - "
                         "check --kinship-extract / --kinship-maf")
    if res.K is not None:
        K = res.K
    else:
        assert res.QS is not None
        K = _dense(res.QS)
    return Kinship(K, res.QS, "GRM", res.n_variants_used)


def _build_sparse(bfile: Bfile, idx: NDArray[np.intp] | None, variants: NDArray[np.intp] | None,
                  cfg: InputConfig, rep: Reporter,
                  part: tuple[int, int] = (1, 1)) -> SparseGRMResult:
    assert cfg.sparse_cutoff is not None
    rep.start("kinship", 100)
    res = sparse_grm(bfile, idx, variants, cfg.kinship_maf, cfg.sparse_cutoff,
                     cfg.screen_markers, pcs=cfg.sparse_pcs, part=part,
                     progress=lambda done, total: rep.update("kinship", 100 * done // total))
    rep.finish("kinship")
    if res.detect_at_cutoff < 0.99:
        rep.warn(f"kinship: with {res.n_screen:,} screening markers a pair at the cutoff "
                 f"{res.cutoff:g} is found with probability {res.detect_at_cutoff:.2g} "
                 "(closer relatives: about 1) - raise --screen-markers for more")
    return res


def _cached_sparse(cfg: InputConfig, inputs: Inputs, rep: Reporter) -> Kinship:
    """A sparse cache of ``glimix kinship --sparse-cutoff``, for the analysed samples."""
    bfile, idx = inputs.kin_source, inputs.kin_index
    opts = kinship_options(cfg)
    for key in ("sparse_cutoff", "screen_markers", "sparse_pcs"):
        opts.pop(key, None)
    s = bfile.samples
    K, info = load_sparse_kinship_cache(cfg.kinship_cache, bfile_fingerprint(bfile, opts),
                                        s["fid"].to_numpy(), s["iid"].to_numpy())
    if "part" in info:
        i, k = info["part"]
        raise InputError(f"{cfg.kinship_cache}: holds part {i}/{k} of a sparse kinship - join "
                         "the parts with `glimix kinship --merge-parts --out FILE PARTS...`")
    if cfg.sparse_cutoff is not None and (cfg.sparse_cutoff, cfg.sparse_pcs) != (
            info.get("cutoff"), info.get("pcs")):
        raise InputError(f"{cfg.kinship_cache}: a sparse kinship of cutoff {info.get('cutoff')} "
                         f"beyond {info.get('pcs')} PCs, this run asks for --sparse-cutoff "
                         f"{cfg.sparse_cutoff:g} --sparse-pcs {cfg.sparse_pcs} - rebuild it or "
                         "drop --sparse-cutoff")
    if not np.array_equal(idx, np.arange(bfile.n_samples)):
        K = K[idx][:, idx].tocsr()
    return _sparse_kinship(K, f"cache {cfg.kinship_cache}", rep, info.get("n_variants_used"),
                           f" (cutoff {info.get('cutoff')}, beyond {info.get('pcs')} PCs)")


def run_kinship(bfile_path: Path, extract: Path | None, maf: float, out: Path,
                rep: Reporter, sparse_cutoff: float | None = None,
                screen_markers: int | None = None, sparse_pcs: int = 10,
                part: tuple[int, int] = (1, 1), loco: bool = False) -> dict[str, Any]:
    """``glimix kinship``: the GRM of every sample and its eigendecomposition, cached (or
    with ``sparse_cutoff``, the sparse GRM; with ``loco``, also the decompositions of the
    kinships leaving one chromosome out)."""
    check_output(out)
    bfile = open_bfile(bfile_path)
    cfg = InputConfig(bfile=bfile_path, pheno=Path("."), pheno_name="", kinship_extract=extract,
                      kinship_maf=maf, sparse_cutoff=sparse_cutoff, screen_markers=screen_markers,
                      sparse_pcs=sparse_pcs, loco=loco)
    variants = _kinship_variants(extract, bfile)
    if loco:
        check_dense_memory(bfile.n_samples)
        from glimix_cli.pipeline.loco import save_loco_cache

        return save_loco_cache(bfile, variants, cfg, out, rep)
    if sparse_cutoff is not None:
        return _run_sparse_kinship(bfile, variants, cfg, out, rep, part)
    if part != (1, 1):
        raise InputError("--part splits the sparse GRM's pairs: it needs --sparse-cutoff")
    check_dense_memory(bfile.n_samples)
    m = bfile.n_variants if variants is None else variants.size
    rep.start("kinship", m)
    res = kinship_qs(bfile, None, variants, maf,
                     progress=lambda done, total: rep.update("kinship", done))
    rep.finish("kinship")
    if res.n_variants_used == 0 or res.QS is None:
        raise InputError(f"{bfile.bed}: no polymorphic variant left for the kinship matrix - "
                         "check --kinship-extract / --maf")
    fp = bfile_fingerprint(bfile, kinship_options(cfg))
    s = bfile.samples
    save_kinship_cache(out, res.QS, s["fid"].to_numpy(), s["iid"].to_numpy(), fp)
    return {"n_samples": bfile.n_samples, "n_variants_used": res.n_variants_used,
            "rank": int(res.QS[1].size), "monomorphic": res.n_skipped_monomorphic,
            "skipped_maf": res.n_skipped_maf}


def _run_sparse_kinship(bfile: Bfile, variants: NDArray[np.intp] | None, cfg: InputConfig,
                        out: Path, rep: Reporter, part: tuple[int, int]) -> dict[str, Any]:
    res = _build_sparse(bfile, None, variants, cfg, rep, part)
    opts = kinship_options(cfg)
    for key in ("sparse_cutoff", "screen_markers", "sparse_pcs"):
        opts.pop(key, None)
    info = {"cutoff": res.cutoff, "pcs": res.pcs, "n_variants_used": res.n_variants_used,
            "screen_markers": res.n_screen, "threshold": res.threshold, "flagged": res.flagged,
            "exact_screen": res.exact_screen, "detect_at_cutoff": res.detect_at_cutoff}
    s = bfile.samples
    fid, iid = s["fid"].to_numpy(), s["iid"].to_numpy()
    if part != (1, 1):  # a share of the pairs: merged (and made PSD) by --merge-parts
        info["part"] = list(part)
        save_sparse_kinship_cache(out, res.K, fid, iid, bfile_fingerprint(bfile, opts), info)
        return {"n_samples": bfile.n_samples, "n_variants_used": res.n_variants_used,
                "part": list(part), "sparse": info}
    K, n_adj, worst, summ = _psd_within_cap(res.K, "GRM")
    info.update(psd_adjusted=n_adj, **summ)
    save_sparse_kinship_cache(out, K, fid, iid, bfile_fingerprint(bfile, opts), info)
    return {"n_samples": bfile.n_samples, "n_variants_used": res.n_variants_used,
            "monomorphic": res.n_skipped_monomorphic, "skipped_maf": res.n_skipped_maf,
            "sparse": info, "psd_min_eigenvalue": worst}


def merge_kinship_parts(out: Path, parts: list[Path]) -> dict[str, Any]:
    """``glimix kinship --merge-parts``: join the ``--part I/N`` outputs of one sparse-GRM
    run (every part once, the same inputs and options), made PSD per family."""
    check_output(out)
    if not parts:
        raise InputError("--merge-parts: name the part files (PART1.npz ... PARTN.npz)")
    read = [read_sparse_part(p) for p in parts]
    first = read[0]
    if "part" not in first["info"]:
        raise InputError(f"{parts[0]}: a whole sparse kinship, not a part of one")
    n_parts = first["info"]["part"][1]
    seen: dict[int, Path] = {}
    same = ("cutoff", "pcs", "n_variants_used", "screen_markers", "threshold", "exact_screen")
    for p, r in zip(parts, read, strict=True):
        info = r["info"]
        if "part" not in info or info["part"][1] != n_parts:
            raise InputError(f"{p}: not a part of the same --part I/{n_parts} run as {parts[0]}")
        if (r["fingerprint"], r["iid"], r["fid"]) != (first["fingerprint"], first["iid"],
                                                      first["fid"]) or any(
                info.get(k) != first["info"].get(k) for k in same):
            raise InputError(f"{p}: built from other genotypes, samples or options than "
                             f"{parts[0]} - rebuild the parts with one command line")
        i = info["part"][0]
        if i in seen:
            raise InputError(f"{p}: part {i}/{n_parts} again (also {seen[i]})")
        seen[i] = p
    missing = sorted(set(range(1, n_parts + 1)) - set(seen))
    if missing:
        raise InputError(f"--merge-parts: part(s) {', '.join(map(str, missing))} of {n_parts} "
                         "missing - every part of the run is needed")
    from scipy import sparse

    diag = first["K"].diagonal()
    K = sparse.diags(diag) + sum((r["K"] - sparse.diags(r["K"].diagonal()) for r in read),
                                 sparse.csr_matrix(first["K"].shape))
    K, n_adj, worst, summ = _psd_within_cap(K.tocsr(), "GRM")
    info = {k: first["info"][k] for k in (*same, "detect_at_cutoff")}
    info.update(flagged=sum(r["info"]["flagged"] for r in read), psd_adjusted=n_adj,
                merged_parts=n_parts, **summ)
    save_sparse_kinship_cache(out, K, first["fid"], first["iid"], first["fingerprint"], info)
    return {"n_samples": K.shape[0], "n_variants_used": info["n_variants_used"], "sparse": info,
            "psd_min_eigenvalue": worst, "parts": n_parts}
