#!/usr/bin/env bash
# Per-point Hydra multirun of the app on a sample of the 100 x 100 budget grid, with the same
# solver options as conf/sweep/budgets_10k.yaml, to extrapolate its cost to 10,000 points.
# Runs 1 job, then 9 jobs (basic launcher: one process, jobs in sequence), then 8 jobs with
# the joblib launcher (2 worker processes); the marginal cost per job is (T9 - T1) / 8.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .venv/bin/activate ] && . .venv/bin/activate
OPTS="solver=gradient solver.starts=${STARTS:-4} solver.steps=${STEPS:-60} print_table=false"
# the same lower-bound resolution as the batched sweep (conf/sweep/budgets_10k.yaml)
OPTS="$OPTS +solver.bound={boxes:12,refine:3,rounds:6,nu_steps:12,bisect_s:5,search_grid:8}"
OUT=${OUT:-/tmp/minimax_per_point}
rm -rf "$OUT"
t() { local s=$(date +%s.%N); "$@" > /dev/null 2>&1; echo "$(date +%s.%N) - $s" | bc; }
T1=$(t python -m minimax -m $OPTS attacker_budget=1.0 defender_budget=0.5 hydra.sweep.dir=$OUT/one)
T9=$(t python -m minimax -m $OPTS attacker_budget=1.0,3.0,5.0 defender_budget=0.5,2.0,4.0 \
     hydra.sweep.dir=$OUT/nine)
TJ=$(t python -m minimax -m $OPTS attacker_budget=1.0,3.0,5.0,7.0 defender_budget=0.5,2.0 \
     hydra/launcher=joblib_local hydra.sweep.dir=$OUT/joblib)
echo "basic launcher: 1 job ${T1}s, 9 jobs ${T9}s -> marginal $(echo "($T9 - $T1) / 8" | bc -l | cut -c1-6) s/job"
echo "  extrapolated 10,000 points: $(echo "$T1 + 9999 * ($T9 - $T1) / 8" | bc -l | cut -c1-8) s"
echo "joblib launcher (n_jobs=2): 8 jobs ${TJ}s"
python -m minimax.sweep.aggregate "$OUT" --no-figure | tail -1
