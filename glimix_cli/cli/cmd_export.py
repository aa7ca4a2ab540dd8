"""``glimix export-ssf``: GWAS Catalog summary statistics (registered by ``cli.app``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from glimix_cli.cli.common import OnceCommand, QuietOpt, run

EPILOG = ("Example: glimix export-ssf results.tsv.gz --out gwas.tsv.gz --null binary.null.json "
          "--genome-assembly GRCh38 --ancestry European  (writes gwas.tsv.gz and "
          "gwas.tsv.gz-meta.yaml; check with `gwas-ssf validate gwas.tsv.gz`)")


def register(app: typer.Typer) -> None:
    app.command("export-ssf", cls=OnceCommand, epilog=EPILOG)(export_ssf)


def export_ssf(
    results: Annotated[Path, typer.Argument(
        exists=True, dir_okay=False, readable=True,
        help="Results TSV (.tsv or .tsv.gz) from glimix scan or glimix merge.")],
    out: Annotated[Path, typer.Option(
        "--out", help="GWAS-SSF file NAME.tsv.gz (or .tsv); metadata goes to "
        "NAME.tsv.gz-meta.yaml.")],
    null: Annotated[Path | None, typer.Option(
        "--null", exists=True, dir_okay=False, readable=True,
        help="PREFIX.null.json of the scan (glimix fit --out): trait, samples, cases, "
        "covariates and model notes for the metadata.")] = None,
    genome_assembly: Annotated[str, typer.Option(
        "--genome-assembly", help="Assembly of the .bim positions, e.g. GRCh38 or GRCh37 "
        "(NR = not reported).")] = "NR",
    trait: Annotated[str | None, typer.Option(
        "--trait", help="Trait description (default: the --pheno-name in --null).")] = None,
    ancestry: Annotated[list[str] | None, typer.Option(
        "--ancestry", help="Sample ancestry category, e.g. European (repeat).")] = None,
    genotyping_technology: Annotated[list[str] | None, typer.Option(
        "--genotyping-technology",
        help="Genotyping technology (repeat). Default: Genome-wide genotyping array.")] = None,
    allow_missing_autosomes: Annotated[bool, typer.Option(
        "--allow-missing-autosomes",
        help="Write a file lacking some of autosomes 1-22 (the Catalog rejects it).")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Write GWAS Catalog summary statistics (GWAS-SSF) and their -meta.yaml.

    Rows with a status other than ok are left out; chromosomes become 1-25 (X=23, Y=24,
    MT=25; PLINK's XY=25 goes to 23, MT=26 to 25); ids that GWAS-SSF cannot hold become
    CHR_POS_OTHER_EFFECT, and rs numbers are kept in rsid.
    """
    from rich.markup import escape

    from glimix_cli.cli.console import console_err

    def go(rep):
        from glimix_cli.pipeline.run import run_export_ssf

        return run_export_ssf(
            results, out, null=null, genome_assembly=genome_assembly, trait=trait,
            ancestry=tuple(ancestry or ()),
            genotyping_technology=tuple(genotyping_technology
                                        or ("Genome-wide genotyping array",)),
            allow_missing_autosomes=allow_missing_autosomes)

    info = run(go, quiet)
    if quiet:
        return
    c = console_err()
    left = sum(info.left_out.values())
    c.print(f"[green]wrote[/] {escape(str(info.out))}: {info.rows_written:,} of "
            f"{info.rows_read:,} variants, chromosomes "
            f"{', '.join(str(k) for k in info.chromosomes)}")
    if left:
        why = ", ".join(f"{k} {v:,}" for k, v in sorted(info.left_out.items(),
                                                         key=lambda kv: -kv[1]))
        c.print(f"left out {left:,} rows (status not ok): {escape(why)}")
    c.print(f"variant ids rewritten to CHR_POS_OTHER_EFFECT: {info.ids_rewritten:,}; "
            f"rs numbers kept in rsid: {info.rsids:,}")
    if info.renamed_chromosomes:
        ren = ", ".join(f"{k} ({v:,})" for k, v in info.renamed_chromosomes.items())
        c.print(f"chromosomes recoded: {escape(ren)}")
    c.print(f"[green]wrote[/] {escape(str(info.meta))}")
    for note in info.notes:
        c.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True)
