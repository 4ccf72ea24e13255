#!/bin/bash
# Collect finished quick-preset runs into this folder and rebuild the seeds' summary.
#
#   bash experiments/results/validate_quick/collect.sh SEED0_RUN SEED1_RUN [SEED2_RUN ...]
#
# from the repository root; RUN arguments are run directories (hydra.run.dir) of seeds 0, 1,
# 2, ... in that order, each finished (summary.json and report.md written); "-" skips a seed.
# The first time, the earlier preset's runs and their notes move to earlier/. Seed 0's
# files go to this folder's top, seed K's to seedK/; then seeds.md / seeds.csv are rebuilt
# (python -m minimax.validate.report) and every run is refitted from its own files
# (python -m minimax.validate.refit RUN --diagnose), printed and kept in refit.md.
set -euo pipefail
R=experiments/results/validate_quick
E=$R/earlier
PY=${PYTHON:-python}
FILES="allocation.csv checks.csv conditions.csv convergence.png decision.png exploitability.png
       game_table.csv game_table.png predicted_vs_measured.png report.md summary.json trace.csv"
if [ ! -d "$E" ]; then
  mkdir -p "$E/seed0"
  for f in $FILES config; do [ -e "$R/$f" ] && git mv "$R/$f" "$E/seed0/$f"; done
  for f in seed1 seed2 seeds.csv seeds.md diagnosis.md split_probe.md extra_calibration \
           fresh_clone_threads2 NOTES.md; do
    [ -e "$R/$f" ] && git mv "$R/$f" "$E/$f"
  done
fi
k=0
dirs=()
for d in "$@"; do
  if [ "$d" != "-" ]; then
    [ -f "$d/summary.json" ] && [ -f "$d/report.md" ] || { echo "$d: not finished" >&2; exit 1; }
    if [ "$k" = 0 ]; then dst=$R; else dst=$R/seed$k; fi
    mkdir -p "$dst"
    for f in $FILES; do [ -f "$d/$f" ] && cp "$d/$f" "$dst/$f"; done
    if [ -d "$d/.hydra" ]; then
      mkdir -p "$dst/config"
      cp "$d/.hydra/config.yaml" "$d/.hydra/overrides.yaml" "$dst/config/"
    fi
    dirs+=("$dst")
  fi
  k=$((k + 1))
done
[ ${#dirs[@]} -gt 0 ] || exit 0
$PY -m minimax.validate.report "$R" "${dirs[@]}"
{
  echo "# Each run refitted from its own files"
  echo
  echo '`python -m minimax.validate.refit RUN --diagnose` (the terms and token cap of the'
  echo "run's saved model), per run:"
  echo
  for d in "${dirs[@]}"; do
    echo '```'
    $PY -m minimax.validate.refit "$d" | sed "s#^$R#.#"
    echo '```'
    echo
    $PY -m minimax.validate.refit "$d" --diagnose | sed -n '/^###/,$p' | sed "s#$R#.#"
    echo
  done
} > "$R/refit.md"
grep -v '^|' "$R/refit.md"
