# shellcheck shell=bash
# Sourced by scripts/test and scripts/demo: makes sure libtorch (torch 2.11.0 from PyPI) is in a
# project-local venv and that cargo knows where it is. Idempotent: a second run does nothing.
#
# Settings (all optional):
#   AUTOSEG_VENV   where the venv lives (default: <repo>/.venv)
#   AUTOSEG_TORCH  "full" (default: the CUDA wheel, 4.7 GB, GPUs usable) or "slim" (CPU only,
#                  1.3 GB: torch --no-deps plus the CUDA runtime libraries it needs to load)
#   CARGO_TARGET_DIR  honoured by cargo as usual

set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${AUTOSEG_VENV:-$repo/.venv}"
flavour="${AUTOSEG_TORCH:-full}"
torch_version="2.11.0"
marker="$venv/.autoseg-torch-$torch_version-$flavour"

say() { printf '[autoseg setup] %s\n' "$*" >&2; }

pip_retry() {
    local n
    for n in 1 2 3; do
        "$venv/bin/pip" install --disable-pip-version-check -q "$@" && return 0
        say "pip install failed (attempt $n of 3); retrying"
        sleep 5
    done
    return 1
}

if [ ! -f "$marker" ]; then
    command -v python3 >/dev/null || { say "python3 is required to install libtorch from PyPI"; exit 1; }
    command -v cargo >/dev/null || { say "cargo (the Rust toolchain) is required"; exit 1; }
    say "installing torch==$torch_version ($flavour) into $venv (one time; ~1-2 minutes)"
    [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
    case "$flavour" in
        full) pip_retry "torch==$torch_version" ;;
        slim) pip_retry --no-deps "torch==$torch_version"
              pip_retry "cuda-toolkit[cudart,cupti]==13.0.2" ;;
        *) say "AUTOSEG_TORCH must be full or slim, not '$flavour'"; exit 1 ;;
    esac
    touch "$marker"
fi

site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
export LIBTORCH="$site/torch"
[ -f "$LIBTORCH/lib/libtorch_cpu.so" ] || { say "no libtorch in $LIBTORCH; delete $venv and rerun"; exit 1; }

# So that a plain `cargo build` / `cargo test` works too after this script ran once.
mkdir -p "$repo/.cargo"
config="$repo/.cargo/config.toml"
wanted="# Written by scripts/setup.sh; not committed.
[env]
LIBTORCH = \"$LIBTORCH\""
if [ ! -f "$config" ] || [ "$(cat "$config")" != "$wanted" ]; then
    printf '%s\n' "$wanted" > "$config"
fi
