#!/usr/bin/env bash
# The full validation sweep; the report goes to experiments/results/validate_full/.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m minimax.validate validate=full hydra.run.dir=experiments/results/validate_full "$@"
