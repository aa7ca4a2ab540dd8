"""One `glimix scan` spread over SLURM jobs by a dask-jobqueue SLURMCluster.

Run it on the login node (or in a small long-running job) of a cluster whose compute
nodes see the same file system:

    pip install 'glimix-cli[dask]' dask-jobqueue
    python example_data/dask_slurm.py --jobs 8 --bfile data/cohort --pheno pheno.tsv \
        --pheno-name asthma -l bernoulli --covar covar.tsv --out results/asthma.tsv.gz

What happens: a Dask scheduler starts in this process and writes its address to a
scheduler file; ``--jobs`` SLURM jobs are submitted, each running ``--processes``
single-threaded Dask workers (Dask's nanny pins BLAS to one thread per worker process, so
one worker per core uses the job's cores). Then ``glimix scan ... --dask-scheduler-file
FILE`` runs here: it fits the null model once, ships it once to every worker and has the
workers read their own variant blocks from the shared PLINK files. Each worker process
holds one copy of the null model's whitening factor (8 n^2 bytes: 3 GB at n = 20,000),
so for large cohorts give a job fewer processes and more memory. If the scan is
interrupted, rerun the same command with ``--resume``.

Options not known to this script are passed to ``glimix scan``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    ap.add_argument("--jobs", type=int, default=4, help="SLURM jobs to start")
    ap.add_argument("--cores", type=int, default=4, help="CPUs per job")
    ap.add_argument("--processes", type=int, default=4,
                    help="worker processes per job (one thread each)")
    ap.add_argument("--memory", default="16GB", help="memory per job")
    ap.add_argument("--walltime", default="04:00:00")
    ap.add_argument("--queue", default=None, help="SLURM partition")
    ap.add_argument("--account", default=None)
    ap.add_argument("--scheduler-file", type=Path, default=Path("glimix-scheduler.json"))
    args, scan_args = ap.parse_known_args()

    import dask
    from dask_jobqueue import SLURMCluster
    from distributed import Client

    # the scheduler runs in this process: a block whose worker dies is retried once, a
    # block that kills two workers stops the scan with its variant range
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        cluster = SLURMCluster(
            cores=args.processes, processes=args.processes, job_cpu=args.cores,
            memory=args.memory, walltime=args.walltime, queue=args.queue,
            account=args.account, log_directory="logs",
        )
    with cluster, Client(cluster) as client:
        client.write_scheduler_file(str(args.scheduler_file))
        cluster.scale(jobs=args.jobs)
        print(f"scheduler {cluster.scheduler_address}; {args.jobs} jobs submitted; "
              f"scheduler file {args.scheduler_file}", file=sys.stderr)
        # glimix waits for the first worker, then keeps every worker busy as jobs start
        cmd = ["glimix", "scan", *scan_args, "--dask-scheduler-file",
               str(args.scheduler_file)]
        return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main())
