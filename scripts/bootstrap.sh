#!/usr/bin/env bash
# Creates .venv with ganzoo installed, and installs the system data and tools the
# project uses (Debian packages) when apt is available and we are root.
# Safe to run again: each step is skipped when it is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

want_extra="${1:-}"   # "test" also installs the test dependencies and Chromium

# System packages: Fashion-MNIST (and Chromium for the browser test).
packages=(dataset-fashion-mnist)
[ "$want_extra" = test ] && packages+=(chromium)
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "bootstrap: installing ${missing[*]}"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
  else
    echo "bootstrap: please install ${missing[*]} (Debian: sudo apt-get install ${missing[*]})."
    echo "bootstrap: Fashion-MNIST can also go into ~/.cache/ganzoo/data/fashion-mnist/"
    echo "           as the four IDX files train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,"
    echo "           t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz."
  fi
fi

# The virtual environment.
python=${PYTHON:-$(command -v python3.11 || command -v python3)}
if [ ! -x .venv/bin/python ]; then
  if ! "$python" -m venv .venv 2>/dev/null; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
      apt-get update -q >/dev/null && apt-get install -y -q python3-venv >/dev/null
      "$python" -m venv .venv
    else
      echo "bootstrap: cannot create a virtual environment; install python3-venv" >&2
      exit 1
    fi
  fi
fi

# Python packages; torch first, pinned to the versions the project is tested with.
stamp=".venv/.ganzoo-installed-$want_extra-$(sha1sum pyproject.toml | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1
  if [ "$want_extra" = test ]; then
    .venv/bin/python -m pip install -q -e ".[test]"
  else
    .venv/bin/python -m pip install -q -e ".[wandb]"
  fi
  touch "$stamp"
fi
