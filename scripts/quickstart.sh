#!/usr/bin/env bash
# From a fresh clone: set everything up, then train and score the quickstart recipe.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/ganzoo eval recipes/quickstart.yaml "$@"
