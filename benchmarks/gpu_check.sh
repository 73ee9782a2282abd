#!/usr/bin/env bash
# One GPU, under 8 minutes: images per second of dcgan-seed at batch 64 and 256 in
# fp32 and bf16 (contiguous and channels-last), peak device memory, and the time of
# a 10,000-sample evaluation. Exits 2 with a message when no CUDA device is present.
#
#   bash benchmarks/gpu_check.sh                        # on a machine with a GPU
#   bash benchmarks/gpu_check.sh --device cpu --quick   # checks the script on a CPU
#
# Other options go to benchmarks/gpu_check.py (--output FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
python=.venv/bin/python
[ -x "$python" ] || python=python3
# The limit is the promise: past 8 minutes the check fails (exit 124).
exec timeout 480 "$python" benchmarks/gpu_check.py "$@"
