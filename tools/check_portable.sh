#!/usr/bin/env bash
# Show that the built fastbp extension runs correctly on older CPUs: tools/portable_check.py
# runs natively, then under `qemu-x86_64 -cpu Haswell` (AVX2, no AVX-512) and `-cpu Nehalem`
# (x86-64-v2: the baseline clone of every dispatched kernel), and must give the same numbers.
# The default build must not use -march=native (an AVX-512 build dies here with "Illegal
# instruction"); CPU-specific speed comes from gcc's target_clones (src_c/template.h).
#
#   bash tools/check_portable.sh       checks the fastbp that `python` imports from outside the
#                                      source tree (in CI: the one .ci/run installed)
# Needs qemu-user (apt-get install qemu-user); exits 3 when it is missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v qemu-x86_64 >/dev/null; then
    echo "check_portable.sh: qemu-x86_64 not found (apt-get install qemu-user)" >&2
    exit 3
fi
py=$(python -c "import sys; print(sys.executable)")  # the binary itself, not a wrapper script
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"  # away from the source tree: import the installed (or PYTHONPATH's) fastbp

echo "== native run (the reference)"
"$py" "$here/portable_check.py" --write "$work/native.npz"
for cpu in Haswell Nehalem; do
    echo "== qemu-x86_64 -cpu $cpu"
    started=$SECONDS
    # OPENBLAS_CORETYPE (set on some machines) would force OpenBLAS's kernels for the host CPU
    # into the emulated one; unset for this command only. qemu's notes about CPU features its
    # emulator lacks (pcid, x2apic, ...) are dropped.
    env -u OPENBLAS_CORETYPE qemu-x86_64 -cpu "$cpu" "$py" "$here/portable_check.py" \
        --compare "$work/native.npz" --cpu "${cpu,,}" \
        2> >(grep -v "TCG doesn't support requested feature" >&2)
    echo "   $cpu: $((SECONDS - started)) s"
done
