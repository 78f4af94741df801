#!/usr/bin/env bash
# `make test-arm`, part 1: the box's checks on an emulated Raspberry Pi 4 (tools/arm/setup.sh
# builds and caches it under build/arm64), compared with this x86 machine's results.
#   1. x86: the reference (int8 features, every window's int8 outputs, classify --json) of
#      the demo exam, the shared real files that exist here and 120 simulated clips; the
#      shipped model re-signed as two versions for the store check
#   2. aarch64: nemg info; tools/arm/test_arm.py against that reference (bundle verify and
#      golden self-test, store install/confirm/rollback); the x86 suite's own tests of the
#      front end's golden vectors, the wire decoder under loss, and `nemg demo --fast`
# QEMU_CPU=cortex-a76 emulates a Pi 5. Extra arguments go to pytest (e.g. -x, -k json).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
project=$(cd "$here/../.." && pwd)
export NEMG_ARM_CACHE=${NEMG_ARM_CACHE:-$project/build/arm64}
host_python=${NEMG_ARM_HOST_PYTHON:-$project/.venv/bin/python}
export NEMG_ARM_REFERENCE=$NEMG_ARM_CACHE/x86-reference.json
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}

"$here/setup.sh"
t=$SECONDS
echo "arm: x86 reference ($host_python) ..."
# the tree these tools are in, not whatever the venv has installed; the readers' notes
# about the real files' rates and scales go to the log, not the CI output
(cd "$project" && PYTHONPATH=$project "$host_python" "$here/armref.py" "$NEMG_ARM_REFERENCE" \
  --sim "$NEMG_ARM_CACHE/sim" --store-bundles "$NEMG_ARM_CACHE/store-bundles" \
  2>"$NEMG_ARM_CACHE/logs/armref.log") \
  || { tail -n 20 "$NEMG_ARM_CACHE/logs/armref.log" >&2; exit 1; }
echo "arm: x86 reference done ($((SECONDS - t))s)"
t=$SECONDS
echo "arm: nemg info on the emulated ${QEMU_CPU:-cortex-a72}:"
(cd "$project" && "$here/python" -m edge.cli info)
cd "$project"
"$here/python" -m pytest -q -p no:cacheprovider "$here/test_arm.py" \
  tests/test_features.py::test_golden_vectors_bit_exact \
  tests/test_features.py::test_a_long_input_is_bit_identical_in_every_block_size \
  tests/test_recogniser.py::test_evidence_matches_its_golden_vector_bit_for_bit \
  tests/test_protocol.py \
  tests/test_link.py::test_corruption_and_drops_never_deliver_a_bad_sample_and_gaps_are_exact \
  tests/test_link.py::test_disconnect_and_reappear_resumes_with_an_exact_gap \
  tests/test_runtime.py::test_demo_runs_and_scores_the_script "$@"
echo "arm: aarch64 checks done ($((SECONDS - t))s)"
