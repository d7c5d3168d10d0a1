#!/usr/bin/env bash
# Create or refresh the project's virtual environment at .venv/ with the full
# OpenMMLab stack (torch, torchvision, mmengine, mmcv with compiled ops, mmdet,
# mmseg, mmpretrain) and mmorepa installed in editable mode.
#
# Idempotent: a stamp file records the hash of everything that decides the
# environment; when nothing changed the script returns in about a second.
#
# Variables:
#   MMOREPA_TORCH   pip requirement(s) for torch/torchvision, default
#                   "torch==2.14.1 torchvision==0.29.1". Set e.g.
#                   "torch==2.5.1 torchvision==0.20.1 --index-url https://download.pytorch.org/whl/cu121"
#                   for another build (a GPU cluster).
#   MMOREPA_CACHE   where built mmcv wheels are kept, per torch version
#                   (default: ${XDG_CACHE_HOME:-~/.cache}/mmorepa).
#   PYTHON          interpreter that creates the venv (default: python3).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
TORCH_SPEC="${MMOREPA_TORCH:-torch==2.14.1 torchvision==0.29.1}"
CACHE="${MMOREPA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmorepa}"
MMCV_VERSION="2.1.0"
STAMP="$VENV/.mmorepa-stamp"

log() { printf '[setup %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

want_stamp="$(cat "$ROOT/setup.cfg" "$ROOT/tools/setup_env.sh" | sha256sum | cut -c1-16)-$(echo "$TORCH_SPEC" | sha256sum | cut -c1-8)"
if [[ -x "$PY" && -f "$STAMP" && "$(cat "$STAMP")" == "$want_stamp" ]]; then
    log "environment up to date ($VENV)"
    exit 0
fi

if [[ ! -x "$PY" ]]; then
    log "creating virtual environment $VENV"
    "${PYTHON:-python3}" -m venv "$VENV"
fi
pip_install() { "$PY" -m pip install --disable-pip-version-check --progress-bar off "$@"; }

log "installing torch: $TORCH_SPEC"
# shellcheck disable=SC2086  # the spec is a list of pip arguments
pip_install $TORCH_SPEC

torch_version="$("$PY" -c 'import torch; print(torch.__version__)')"
wheel_dir="$CACHE/wheels/torch-$torch_version"
mmcv_wheel="$(ls "$wheel_dir"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n1 || true)"
if [[ -z "$mmcv_wheel" ]]; then
    log "building mmcv $MMCV_VERSION with compiled ops against torch $torch_version (10-30 min on 2 cores, once per torch version)"
    # mmcv 2.1.0's setup.py imports pkg_resources, gone from setuptools >= 70;
    # torch itself wants a newer one, which the final install below restores.
    pip_install 'setuptools<70' wheel
    build="$(mktemp -d)"
    trap 'rm -rf "$build"' EXIT
    "$PY" -m pip download --disable-pip-version-check --no-deps --no-binary :all: \
        -d "$build" "mmcv==$MMCV_VERSION"
    tar -xzf "$build"/mmcv-"$MMCV_VERSION".tar.gz -C "$build"
    # torch >= 2.14 headers refuse anything older than C++20; mmcv 2.1.0 asks for C++17.
    sed -i 's/-std=c++17/-std=c++20/g' "$build/mmcv-$MMCV_VERSION/setup.py"
    mkdir -p "$wheel_dir"
    sources=$(ls "$build/mmcv-$MMCV_VERSION"/mmcv/ops/csrc/pytorch/{,cpu/}*.cpp | wc -l)
    # One progress line per compiled source file; the full log is kept for errors.
    (cd "$build/mmcv-$MMCV_VERSION" && MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
        "$PY" -m pip wheel --disable-pip-version-check --no-build-isolation --no-deps -v \
        -w "$build/dist" . 2>&1) | tee "$build/build.log" | awk -v total="$sources" '
        / -c [^ ]+\.cpp/ { n++; match($0, /[^ \/]+\.cpp/);
                           printf "[mmcv build] %d/%d %s\n", n, total, substr($0, RSTART, RLENGTH);
                           fflush() }' || true
    if ! ls "$build"/dist/mmcv-"$MMCV_VERSION"-*.whl >/dev/null 2>&1; then
        tail -n 40 "$build/build.log"
        log "mmcv build failed (log above)"
        exit 1
    fi
    built="$(ls "$build"/dist/mmcv-"$MMCV_VERSION"-*.whl)"
    # Copy then rename so an interrupted build never leaves a half wheel in the cache.
    cp "$built" "$wheel_dir/.partial.whl"
    mv "$wheel_dir/.partial.whl" "$wheel_dir/$(basename "$built")"
    mmcv_wheel="$wheel_dir/$(basename "$built")"
fi
log "installing mmcv from $mmcv_wheel"
pip_install --no-deps "$mmcv_wheel"

log "installing the OpenMMLab stack and mmorepa (editable)"
pip_install -e "$ROOT[dev]"

"$PY" - <<'PY'
import mmcv, mmdet, mmseg, mmpretrain, torch, torchvision
from mmcv.ops import nms  # noqa: F401  fails here if the ops were not compiled
print(f'torch {torch.__version__}, torchvision {torchvision.__version__}, mmcv {mmcv.__version__}, '
      f'mmdet {mmdet.__version__}, mmseg {mmseg.__version__}, mmpretrain {mmpretrain.__version__}')
PY
echo "$want_stamp" > "$STAMP"
log "environment ready ($VENV)"
