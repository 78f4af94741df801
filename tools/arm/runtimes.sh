#!/usr/bin/env bash
# `make test-arm`, part 2: the box's checks on x86 under each runtime README lists
# (tools/arm/test_runtimes.py): LiteRT and tensorflow.lite from the dev venv, and
# tflite-runtime 2.14 from a venv of its own, cached in build/tflite-runtime-venv:
# the `edge` extra as 32-bit Pi OS resolves it (markers evaluated for armv7l: numpy<2,
# tflite-runtime), x86 wheels. Redone when those requirements or the host Python change.
# Extra arguments go to pytest.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
project=$(cd "$here/../.." && pwd)
host_python=${NEMG_ARM_HOST_PYTHON:-$project/.venv/bin/python}
venv=${NEMG_TFLITE_RUNTIME_VENV:-$project/build/tflite-runtime-venv}
export NEMG_TFLITE_RUNTIME_VENV=$venv
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
die() { echo "runtimes: error: $*" >&2; exit 1; }

t=$SECONDS
# the extra as 32-bit Pi OS resolves it, with tflite-runtime 2.14 and numpy<2 named here as
# well: the extra may stop selecting tflite-runtime (it cannot run bundles >= 1.5) and this
# check still shows that the box refuses it
reqs=$("$host_python" "$here/requirements.py" --machine armv7l) \
  || die "cannot read the edge extra's requirements from $project/pyproject.toml"
reqs=$(grep -v '^ai-edge-litert' <<<"$reqs"; printf '%s\n' 'tflite-runtime==2.14.*' 'numpy<2')
key=$(printf '%s\n' "$reqs" "$("$host_python" -c 'import sys; print(sys.version)')" \
  | sha256sum | cut -c1-16)
if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.stamp" 2>/dev/null)" = "$key" ]; then
  echo "runtimes: tflite-runtime venv: cached ($venv)"
else
  echo "runtimes: tflite-runtime venv: installing $(tr '\n' ' ' <<<"$reqs")..."
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  log=$(dirname "$venv")/tflite-runtime-venv.log
  "$host_python" -m venv "$venv"
  # shellcheck disable=SC2086  # one requirement per word
  if ! "$venv/bin/python" -m pip --disable-pip-version-check install -q --only-binary=:all: \
      $reqs >"$log" 2>&1; then
    rm -rf "$venv"
    die "cannot install $(tr '\n' ' ' <<<"$reqs")for $("$host_python" -V) (tflite-runtime" \
      "2.14 has x86_64 wheels for CPython 3.8-3.11 only): $(grep '^ERROR: ' "$log" \
      | tail -n 1 | cut -c1-200) (log: $log)"
  fi
  printf '%s\n' "$key" > "$venv/.stamp"
  echo "runtimes: tflite-runtime venv: $("$venv/bin/python" -m pip --disable-pip-version-check \
    list 2>/dev/null | awk 'NR > 2 {printf "%s-%s ", $1, $2}')($((SECONDS - t))s)"
fi
cd "$project"
"$host_python" -m pytest -q -p no:cacheprovider "$here/test_runtimes.py" "$@"
echo "runtimes: done ($((SECONDS - t))s)"
