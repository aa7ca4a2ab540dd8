"""``glimix plot`` and ``glimix report`` (registered by ``cli.app``).

Both need the optional matplotlib (``pip install 'glimix-cli[plot]'``); it is imported
inside the commands, so ``glimix --help`` stays instant and works without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from glimix_cli.cli.common import OnceCommand, QuietOpt, run

ResultsArg = Annotated[
    Path,
    typer.Argument(exists=True, dir_okay=False, readable=True,
                   help="Results TSV (.tsv or .tsv.gz) from glimix scan or glimix merge."),
]
TitleOpt = Annotated[
    str | None, typer.Option("--title", help="Title on the plots (default: the trait, from the "
                             "scan's .meta.json, else the file name).")
]


PLOT_EPILOG = ("Example: glimix plot results.tsv.gz --out results  (writes "
               "results.manhattan.png and results.qq.png)")
REPORT_EPILOG = ("Example: glimix fit ... --out run && glimix scan ... --out run.tsv.gz && "
                 "glimix report run.tsv.gz --null run.null.json --out run.html")


def register(app: typer.Typer) -> None:
    app.command("plot", cls=OnceCommand, epilog=PLOT_EPILOG)(plot)
    app.command("report", cls=OnceCommand, epilog=REPORT_EPILOG)(report)


def plot(
    results: ResultsArg,
    out: Annotated[Path, typer.Option(
        "--out", help="Output prefix: writes PREFIX.manhattan.png and PREFIX.qq.png.")],
    title: TitleOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Manhattan and QQ plots (with lambda_GC) of the variants with status ok."""
    from rich.markup import escape

    from glimix_cli.cli.console import console_err

    def go(rep):
        from glimix_cli.report.plots import run_plot

        return run_plot(results, out, title)

    info = run(go, quiet)
    if not quiet:
        c = console_err()
        c.print(f"lambda_GC = {info['lambda_gc']:.4f} over {info['n_ok']:,} variants with "
                f"status ok (of {info['n_rows']:,})")
        c.print(f"[green]wrote[/] {escape(str(info['manhattan']))} and "
                f"{escape(str(info['qq']))}")


def report(
    results: ResultsArg,
    out: Annotated[Path, typer.Option("--out", help="HTML page to write (self-contained).")],
    null: Annotated[Path | None, typer.Option(
        "--null", exists=True, dir_okay=False, readable=True,
        help="PREFIX.null.json from glimix fit: inputs, sample counts, null model.")] = None,
    top: Annotated[int, typer.Option("--top", min=1, max=1000,
                                     help="Rows in the top-variants table.")] = 20,
    title: TitleOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """One HTML page: inputs, samples, null model, QC, lambda_GC, both plots, top variants."""
    from rich.markup import escape

    from glimix_cli.cli.console import console_err

    def go(rep):
        from glimix_cli.report.html import run_report

        return run_report(results, out, null, top=top, title=title)

    info = run(go, quiet)
    if not quiet:
        c = console_err()
        for w in info["warnings"]:
            c.print(f"[yellow]warning:[/] {escape(w)}")
        c.print(f"lambda_GC = {info['lambda_gc']:.4f} over {info['n_ok']:,} variants with "
                f"status ok (of {info['n_rows']:,})")
        c.print(f"[green]wrote[/] {escape(str(info['out']))}")
