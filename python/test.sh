#!/usr/bin/env bash
# Builds the Python wheel, installs it in a fresh virtual environment with
# pyarrow, Dask and pytest, and runs the Python tests (python/tests): the
# bindings against `classify`, and the Dask example on a 2-worker
# LocalCluster over the nDPI and legacy captures.
#
#   bash python/test.sh            (from the repository's root)
#
# The environment lives in target/py-venv (VENV=... to choose another).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${VENV:-target/py-venv}"
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  apt-get update -q && apt-get install -y -q python3-venv
fi
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade maturin pytest pyarrow "dask[distributed]" pandas
rm -rf target/wheels
(cd python && "../$venv/bin/maturin" build --release --quiet -o ../target/wheels)
"$venv/bin/pip" install -q --force-reinstall --no-deps target/wheels/skype_dpi-*.whl
cargo build --release --quiet --example classify
SKYPE_DPI_CLASSIFY="$PWD/target/release/examples/classify" \
  "$venv/bin/python" -m pytest -q python/tests "$@"
