#!/usr/bin/env bash
# The Python module end to end, as a user gets it: a fresh virtualenv, the README's install
# command (`pip install ./python`, which builds the extension through maturin), the README's
# Python example, the type stubs checked against the module, then python/tests under pytest.
#
#   scripts/python-test.sh            dev-profile build (what CI runs: minutes saved, same code)
#   STRATA_PY_PROFILE=release scripts/python-test.sh      the optimized build users get
#
# Needs python3 (3.9+) with venv, and the packages numpy, pytest, mypy and maturin from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
venv=$root/target/python-venv
profile=${STRATA_PY_PROFILE:-dev}

python3 -m venv --clear "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check numpy pytest mypy
# The README's command, word for word, with the build profile passed to maturin's backend.
install=$(awk '/<!-- python-install -->/ {found=1; next} found && /^```/ {inblock=1; next} inblock {print; exit}' README.md)
if [[ $install != "pip install ./python" ]]; then
  echo "README.md's Python install command is not 'pip install ./python': update this script" >&2
  exit 1
fi
echo "== $install (profile $profile)"
MATURIN_PEP517_ARGS="--profile $profile" "$venv/bin/python" -m pip install -q \
  --disable-pip-version-check ./python

# The README's example runs as written, in a scratch directory.
example=$(awk '/<!-- python-example -->/ {found=1; next} found && /^```/ {if (inblock) exit; inblock=1; next} inblock {print}' README.md)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
echo "== the README's Python example"
(cd "$scratch" && "$venv/bin/python" -c "$example")

# The type stubs match the module: every name, class and signature (mypy's stubtest).
echo "== stubtest strata"
(cd "$scratch" && "$venv/bin/python" -m mypy.stubtest strata)

echo "== pytest python/tests"
"$venv/bin/python" -m pytest -q -p no:cacheprovider python/tests
