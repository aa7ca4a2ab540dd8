#!/bin/bash
# glimix on a SLURM cluster, in three dependent jobs:
#   1. kinship cache + null model, once          (glimix kinship, glimix fit)
#   2. an array of N tasks, one chunk of variants each (glimix scan --chunk I/N --null ...)
#   3. merge, after every task succeeded         (glimix merge checks all N are present)
#
# Run it on the login node (it submits the jobs):   bash example_data/slurm_scan.sh
# The array tasks call this same script with SLURM_ARRAY_TASK_ID set.
# The merged file is byte-identical to a single-process `glimix scan`.
set -euo pipefail

N=${N:-10}                              # number of chunks (array tasks)
BFILE=${BFILE:-example_data/cohort}
PHENO=${PHENO:-example_data/cohort.pheno.tsv}
COVAR=${COVAR:-example_data/cohort.covar.tsv}
TRAIT=${TRAIT:-binary}
LIK=${LIK:-bernoulli}
OUT=${OUT:-results/${TRAIT}}
COMMON=(--bfile "$BFILE" --pheno "$PHENO" --pheno-name "$TRAIT" -l "$LIK" --covar "$COVAR"
        --kinship-cache "${OUT}.kin.npz")

if [[ -n "${SLURM_ARRAY_TASK_ID:-}" ]]; then
  # an array task: scan chunk I of N, reusing the kinship cache and the null model
  I=$SLURM_ARRAY_TASK_ID
  exec glimix scan "${COMMON[@]}" --null "${OUT}.null.json" --chunk "${I}/${N}" \
       --out "${OUT}.part${I}.tsv.gz" --quiet
fi

mkdir -p "$(dirname "$OUT")" logs
export N BFILE PHENO COVAR TRAIT LIK OUT
jid_null=$(sbatch --parsable --job-name=glimix-null --cpus-per-task=2 --mem=8G \
  --time=02:00:00 --output=logs/glimix-null_%j.log --wrap \
  "glimix kinship --bfile '$BFILE' --out '${OUT}.kin.npz' --quiet && \
   glimix fit ${COMMON[*]} --out '$OUT' --quiet")
jid_scan=$(sbatch --parsable --job-name=glimix-scan --array=1-"$N" --cpus-per-task=2 \
  --mem=8G --time=02:00:00 --output=logs/glimix-scan_%A_%a.log \
  --dependency=afterok:"$jid_null" --export=ALL "$0")
parts=$(for i in $(seq 1 "$N"); do printf '%s ' "${OUT}.part${i}.tsv.gz"; done)
sbatch --parsable --job-name=glimix-merge --time=00:30:00 --output=logs/glimix-merge_%j.log \
  --dependency=afterok:"$jid_scan" --wrap "glimix merge '${OUT}.tsv.gz' $parts"
echo "submitted: null $jid_null, scan array $jid_scan (1-$N), merge after both"
