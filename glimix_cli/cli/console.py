"""Terminal output (stderr): progress bars, summaries and error lines, with rich."""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from glimix_cli.pipeline.progress import Reporter
from glimix_cli.registry import BINARY_LIKELIHOODS

_CONSOLE: Console | None = None


def console_err() -> Console:
    global _CONSOLE
    if _CONSOLE is None:
        width = int(os.environ.get("GLIMIX_WIDTH", "0")) or None
        _CONSOLE = Console(stderr=True, highlight=False, width=width)
    return _CONSOLE


def error(message: str) -> None:
    """One red line on stderr."""
    console_err().print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)


class _Rate(TextColumn):
    def __init__(self) -> None:
        super().__init__("")

    def render(self, task):  # type: ignore[override]
        from rich.text import Text

        speed = task.finished_speed or task.speed
        if not speed or task.total is None:
            return Text("")
        return Text(f"{speed:,.0f}/s", style="cyan")


LABELS = {"kinship": "kinship (GRM)", "null": "null model fit", "scan": "scanning variants",
          "pca": "principal components", "loco": "LOCO null models (chromosomes)",
          "eigen": "LOCO eigendecompositions (chromosomes)"}


#: Seconds between plain progress lines when stderr is not a terminal (a SLURM log);
#: ``GLIMIX_PROGRESS_INTERVAL`` overrides it.
PROGRESS_INTERVAL = 60.0


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class _PlainProgress:
    """Progress as one plain line per interval (percent, rate, ETA) for logs that are not
    a terminal, where a live bar would be either nothing or a wall of redraws."""

    def __init__(self, console: Any, interval: float):
        self.console = console
        self.interval = interval
        #: task -> [total, start, last line printed, lines printed]
        self.tasks: dict[str, list[Any]] = {}

    def start(self, task: str, total: int | None) -> None:
        now = time.monotonic()
        self.tasks[task] = [total, now, now, 0]

    def update(self, task: str, completed: int) -> None:
        if task not in self.tasks:
            return
        total, start, last, _ = self.tasks[task]
        now = time.monotonic()
        if now - last < self.interval or not total:
            return
        self.tasks[task][2] = now
        self.tasks[task][3] += 1
        rate = completed / max(now - start, 1e-9)
        eta = (total - completed) / rate if rate > 0 else float("nan")
        # a task counted in percent (total 100) shows no count or rate
        count = (f"{completed:,}/{total:,} ({100 * completed / total:.0f}%), {rate:,.0f} "
                 "variants/s" if total != 100 else f"{completed}%")
        self.console.print(
            f"{LABELS.get(task, task)}: {count}, elapsed {_duration(now - start)}, eta "
            f"{_duration(eta) if math.isfinite(eta) else '?'}", soft_wrap=True, highlight=False)

    def finish(self, task: str) -> None:
        if task in self.tasks:
            _, start, _, lines = self.tasks.pop(task)
            if lines:  # a task long enough to have reported: say when it ended
                self.console.print(f"{LABELS.get(task, task)}: done in "
                                   f"{_duration(time.monotonic() - start)}", highlight=False)


class RichReporter(Reporter):
    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.console = console_err()
        #: every message as plain text, quiet or not (for the run's log file)
        self.lines: list[str] = []
        self._progress: Progress | None = None
        self._plain: _PlainProgress | None = None
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> RichReporter:
        if not self.quiet and not sys.stderr.isatty():
            interval = float(os.environ.get("GLIMIX_PROGRESS_INTERVAL", PROGRESS_INTERVAL))
            self._plain = _PlainProgress(self.console, interval)
        elif not self.quiet:
            self._progress = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                MofNCompleteColumn(), _Rate(), TimeElapsedColumn(), TextColumn("eta"),
                TimeRemainingColumn(), console=self.console, transient=True,
                disable=not sys.stderr.isatty(),
            )
            self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()

    def info(self, message: str) -> None:
        self.lines.append(message)
        if not self.quiet:
            self.console.print(f"[dim]·[/] {escape(message)}", soft_wrap=True)

    def warn(self, message: str) -> None:
        self.lines.append(f"warning: {message}")
        if not self.quiet:
            self.console.print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True)

    def start(self, task: str, total: int | None) -> None:
        if self._plain is not None:
            self._plain.start(task, total)
        if self._progress is not None:
            self._tasks[task] = self._progress.add_task(LABELS.get(task, task), total=total)

    def update(self, task: str, completed: int) -> None:
        if self._plain is not None:
            self._plain.update(task, completed)
        if self._progress is not None and task in self._tasks:
            self._progress.update(self._tasks[task], completed=completed)

    def finish(self, task: str) -> None:
        if self._plain is not None:
            self._plain.finish(task)
        if self._progress is not None and task in self._tasks:
            self._progress.remove_task(self._tasks.pop(task))


def _g(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "NA"
    return f"{x:.{digits}g}"


def _samples_table(counts: dict[str, int]) -> Table:
    t = Table(title="samples", show_header=True, header_style="bold", box=None)
    t.add_column("step")
    t.add_column("kept", justify="right")
    t.add_column("dropped", justify="right")
    prev = None
    for step, k in counts.items():
        t.add_row(step, f"{k:,}", "" if prev is None else f"{prev - k:,}")
        prev = k
    return t


def _null_tables(null) -> list[Table]:
    eff = Table(title=f"null model: {null.likelihood}", header_style="bold", box=None)
    eff.add_column("covariate")
    eff.add_column("effect", justify="right")
    eff.add_column("SE", justify="right")
    for name, b, se in zip(null.covariates, null.beta, null.beta_se, strict=True):
        eff.add_row(name, _g(b), _g(se))
    par = Table(header_style="bold", box=None, show_header=False)
    par.add_column("")
    par.add_column("", justify="right")
    route = getattr(null, "route", "glmm")
    if route == "glm":
        par.add_row("v0 (kinship variance)", "0 (not identified)")
        par.add_row("v0 at the GLMM's maximum likelihood", _g(null.v0_ml))
    else:
        par.add_row("v0 (kinship variance)", _g(null.v0))
    if getattr(null, "v0_lrt", None) is not None:
        par.add_row("LRT of v0 = 0 (chi2, p)", f"{null.v0_lrt:.3g}, {_g(null.v0_p, 3)}")
    par.add_row("v1 (iid latent variance)", _g(null.v1))
    if null.likelihood not in BINARY_LIKELIHOODS:  # there v1 is fixed at 0
        par.add_row("h2 latent = v0/(v0+v1)", _g(null.h2_latent, 3))
    if null.h2_liability is not None:
        par.add_row("h2 liability (link variance added)", _g(null.h2_liability, 3))
    par.add_row("log likelihood (GLM)" if route == "glm" else "log marginal likelihood",
                f"{null.lml:.4f}")
    status = null.status if null.status == "converged" else f"[yellow]{null.status}[/]"
    if route == "glm":
        par.add_row("GLMM optimiser", f"{null.iterations} iterations, {null.evaluations} "
                    f"evaluations, {null.ep_sweeps} EP sweeps")
    elif null.evaluations:
        par.add_row("optimiser", f"{status}: {null.iterations} iterations, "
                    f"{null.evaluations} evaluations" + (f", {null.ep_sweeps} EP sweeps"
                                                          if null.ep_sweeps else ""))
    else:  # a closed-form / grid search that counts nothing (the Normal LMM)
        par.add_row("optimiser", f"{status}: {null.message}")
    par.add_row("fit time", f"{null.seconds:.1f} s")
    return [eff, par]


def _null_notes(null) -> list[str]:
    notes = []
    if getattr(null, "route", "glmm") == "glm":
        link = "logistic" if null.likelihood == "bernoulli" else "probit"
        notes.append(
            f"[yellow]note:[/] no kinship variance is identified ({null.route_reason}): the "
            f"null model is the {link} GLM on the covariates, the tests are its score test "
            "(saddlepoint p-values beyond |z| > 2) and beta/SE its maximum-likelihood "
            "estimates where p < 0.05, as plink2 --glm. See README 'What the null-model "
            "numbers mean'.")
    elif null.status == "at_bound" and null.v0 <= 1e-6:
        notes.append(
            "[yellow]note:[/] v0 is at its lower bound (about 0): these data show no "
            "kinship variance for this trait, so the null model is the plain "
            f"{'GLM' if null.likelihood != 'normal' else 'linear model'} on the covariates "
            "and the tests are that model's. See README 'What the null-model numbers mean'.")
    elif null.status == "at_bound":
        notes.append(f"[yellow]note:[/] the null fit stopped at a parameter bound ({null.message})")
    return notes


def _loco_lines(loco: dict | None) -> list[str]:
    """The ``--loco`` part of a summary: the per-chromosome models' v0/v1 ranges and times."""
    if not loco:
        return []
    if "note" in loco:
        return [f"LOCO: {loco['note']}"]
    if not loco["chromosomes"]:
        return ["LOCO: no chromosome tested"]
    lines = [f"LOCO null models ({loco['chromosomes']} chromosomes, each on the kinship "
             "without it):",
             f"  v0 {_g(loco['v0'][0])} - {_g(loco['v0'][1])}, "
             f"v1 {_g(loco['v1'][0])} - {_g(loco['v1'][1])}"]
    if loco.get("seconds"):
        lo, hi = loco["seconds"]
        lines.append(f"  {loco['refitted']} refits, {lo:.1f} - {hi:.1f} s each, "
                     f"{loco['seconds_total']:.1f} s in all")
    if loco.get("not_converged"):
        lines.append(f"  [yellow]not converged:[/] chromosome(s) "
                     f"{', '.join(loco['not_converged'])}")
    return lines


def print_trait_heading(trait: str, c: Console | None = None) -> None:
    """The line that opens one trait's summary in a run of several traits."""
    c = c or console_err()
    c.print(f"[bold]== trait {escape(trait)} ==[/]")


def print_fit_summary(outcome, seconds: float, c: Console | None = None) -> None:
    c = c or console_err()
    c.print(_samples_table(outcome.inputs.match.counts))
    for t in _null_tables(outcome.null):
        c.print(t)
    for note in _null_notes(outcome.null):
        c.print(note)
    for line in _loco_lines(getattr(outcome, "loco", None)):
        c.print(line)
    if outcome.null_path is not None:
        c.print(f"[green]wrote[/] {outcome.null_path}")
    c.print(f"done in {seconds:.1f} s")


def print_scan_summary(summary, c: Console | None = None) -> None:
    c = c or console_err()
    c.print(_samples_table(summary.inputs.match.counts))
    for t in _null_tables(summary.null):
        c.print(t)
    for note in _null_notes(summary.null):
        c.print(note)
    for line in _loco_lines(getattr(summary, "loco", None)):
        c.print(line)
    st = Table(title="variants", header_style="bold", box=None)
    st.add_column("status")
    st.add_column("count", justify="right")
    for k, v in sorted(summary.status_counts.items(), key=lambda kv: -kv[1]):
        st.add_row(k, f"{v:,}")
    c.print(st)
    if summary.n_imputed:
        c.print(f"missing genotype calls mean-imputed: {summary.n_imputed:,}")
    c.print(f"lambda_GC = {_g(summary.lambda_gc, 4)} (all tested), "
            f"{_g(summary.lambda_gc_common, 4)} (MAF >= 5%)")
    if summary.top:
        top = Table(title="top hits", header_style="bold", box=None)
        for col in ("variant_id", "chromosome", "position", "beta", "SE", "-log10 p"):
            top.add_column(col, justify="right" if col not in ("variant_id",) else "left")
        for h in summary.top:
            top.add_row(h["variant_id"], h["chromosome"], f"{h['base_pair_location']:,}",
                        _g(h["beta"]), _g(h["se"]), f"{h['neg_log10_p']:.2f}")
        c.print(top)
    rate = summary.n_variants / summary.seconds if summary.seconds > 0 else float("nan")
    c.print(f"[green]wrote[/] {summary.out}: {summary.n_variants:,} variants in "
            f"{summary.seconds:.1f} s ({rate:,.0f} variants/s)")


def log_path(out: str, kind: str) -> str:
    """Where a run's log goes: ``PREFIX.log`` for ``fit --out PREFIX``; for ``scan --out
    FILE`` the file name without ``.tsv``/``.tsv.gz``, plus ``.log`` (plink2's habit)."""
    if kind == "scan":
        for ext in (".tsv.gz", ".tsv", ".gz"):
            if out.endswith(ext):
                return out[: -len(ext)] + ".log"
    return out + ".log"


def write_log(path: str, args: list[str], messages: list[str], render: Any) -> None:
    """The run's log, as plink2 writes one: the command line, the versions, every message
    and the summary (as printed, without colour: it ends with the time taken).
    ``render(console)`` prints the summary. Written to a temporary file and renamed (never
    half a log)."""
    import io
    import platform
    import shlex
    import time

    from glimix_cli import __version__

    versions = [f"glimix {__version__}", f"python {platform.python_version()}"]
    for name in ("numpy", "scipy", "pandas"):
        mod = sys.modules.get(name)
        if mod is not None:
            versions.append(f"{name} {mod.__version__}")
    buf = io.StringIO()
    rec = Console(file=buf, width=100, highlight=False, color_system=None)
    rec.print(f"{', '.join(versions)}; {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; "
              f"{os.cpu_count()} CPUs", soft_wrap=True)
    rec.print("command: glimix " + " ".join(shlex.quote(a) for a in args), soft_wrap=True)
    rec.print("")
    for m in messages:
        rec.print(escape(m), soft_wrap=True)
    rec.print("")
    render(rec)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(buf.getvalue())
    os.replace(tmp, path)
