"""``glimix kinship``: the dense GRM's eigendecomposition or the sparse GRM, cached for fit
and scan; ``--part I/N`` and ``--merge-parts`` split the sparse GRM over an array job
(registered by ``cli.app``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from glimix_cli.cli.common import (
    KinExtractOpt,
    OnceCommand,
    QuietOpt,
    ScreenMarkersOpt,
    SparseCutoffOpt,
    SparsePcsOpt,
    ThreadsOpt,
    limit_threads,
    run,
    usage,
)

EPILOG = ("Example: glimix kinship --bfile example_data/cohort --out cohort.kin.npz; for a "
          "large cohort: glimix kinship --bfile P --sparse-cutoff 0.05 --out P.kin.npz (or "
          "--part 1/8 ... 8/8, then glimix kinship --merge-parts --out P.kin.npz P.part*.npz)")


def register(app: typer.Typer) -> None:
    app.command("kinship", cls=OnceCommand, epilog=EPILOG)(kinship)


def _parse_part(text: str | None) -> tuple[int, int]:
    if text is None:
        return 1, 1
    try:
        i, k = (int(x) for x in text.split("/"))
    except ValueError:
        usage(f"--part {text}: expected I/N, e.g. 3/8")
    if not 1 <= i <= k:
        usage(f"--part {text}: need 1 <= I <= N")
    return i, k


def kinship(
    out: Annotated[Path, typer.Option("--out", help="Cache file (.npz).")],
    parts: Annotated[list[Path] | None, typer.Argument(
        help="With --merge-parts: the --part I/N outputs to join.")] = None,
    bfile: Annotated[Path | None, typer.Option(
        "--bfile", help="PLINK 1 binary fileset: PREFIX (or PREFIX.bed/.bim/.fam).")] = None,
    kinship_extract: KinExtractOpt = None,
    maf: Annotated[float, typer.Option(
        "--kinship-maf", "--maf", min=0.0, max=0.5,
        help="MAF floor for GRM variants (the name fit and scan use; --maf is the same "
        "here, where no variant is tested).")] = 0.0,
    sparse_cutoff: SparseCutoffOpt = None,
    screen_markers: ScreenMarkersOpt = None,
    sparse_pcs: SparsePcsOpt = 10,
    part: Annotated[str | None, typer.Option(
        "--part", help="Sparse GRM: screen part I of N of the sample pairs (array jobs); join "
        "the parts with --merge-parts.")] = None,
    merge_parts: Annotated[bool, typer.Option(
        "--merge-parts", help="Join the sparse-GRM parts given as arguments into --out.")] = False,
    loco: Annotated[bool, typer.Option(
        "--loco", help="Also store the eigendecomposition of the kinship leaving out each "
        "chromosome, for fit/scan --loco (one n x n matrix per chromosome).")] = False,
    threads: ThreadsOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Build the GRM for fit and scan: dense (eigendecomposed) or sparse (--sparse-cutoff)."""
    limit_threads(threads)
    if out.suffix != ".npz":
        usage(f"--out {out}: the kinship cache must end in .npz")
    if merge_parts:
        if bfile is not None or sparse_cutoff is not None or part is not None:
            usage("--merge-parts joins finished parts: give only --out and the part files")
        from glimix_cli.pipeline.kinship import merge_kinship_parts

        _report(out, run(lambda rep: merge_kinship_parts(out, list(parts or [])), quiet), quiet)
        return
    if parts:
        usage(f"unexpected argument {parts[0]} (part files go with --merge-parts)")
    if bfile is None:
        usage("--bfile is required (unless --merge-parts)")
    if screen_markers is not None and sparse_cutoff is None:
        usage("--screen-markers needs --sparse-cutoff")
    if part is not None and sparse_cutoff is None:
        usage("--part splits the sparse GRM: it needs --sparse-cutoff")
    if loco and sparse_cutoff is not None:
        usage("--loco and --sparse-cutoff: a sparse family kinship needs no LOCO (it holds "
              "the close relatives' sharing, not a polygenic fit) - drop --loco")
    from glimix_cli.pipeline.kinship import run_kinship

    rng = _parse_part(part)
    _report(out, run(lambda rep: run_kinship(bfile, kinship_extract, maf, out, rep,
                                             sparse_cutoff, screen_markers, sparse_pcs, rng,
                                             loco), quiet), quiet)


def _report(out: Path, info: dict[str, Any], quiet: bool) -> None:
    if quiet:
        return
    from glimix_cli.cli.console import console_err

    if "sparse" not in info:
        loco = (f"; and the kinships leaving out each of {len(info['loco'])} chromosomes"
                if info.get("loco") else "")
        console_err().print(
            f"[green]wrote[/] {out}: {info['n_samples']:,} samples, "
            f"{info['n_variants_used']:,} variants, rank {info['rank']:,} "
            f"({info['monomorphic']:,} monomorphic skipped){loco}")
        return
    sp = info["sparse"]
    screen = ("every marker screened" if sp["exact_screen"] else
              f"pairs screened with {sp['screen_markers']:,} markers; a pair at the cutoff "
              f"is found with probability {sp['detect_at_cutoff']:.2g}")
    head = (f"[green]wrote[/] {out}: sparse GRM of {info['n_samples']:,} samples from "
            f"{info['n_variants_used']:,} variants beyond {sp['pcs']} PCs, cutoff "
            f"{sp['cutoff']:g}")
    if "part" in info:
        i, k = info["part"]
        console_err().print(f"{head}: part {i}/{k}, {sp['flagged']:,} pairs computed; "
                            f"{screen} (join the parts with --merge-parts)")
        return
    merged = f" (merged from {info['parts']} parts)" if "parts" in info else ""
    console_err().print(f"{head}{merged}: {sp['pairs']:,} pairs, {sp['families']:,} families "
                        f"(largest {sp['largest']:,}); {screen}")
