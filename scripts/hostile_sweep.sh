#!/usr/bin/env bash
# Reliability sweep (issue 23): every dataset of the broken and hostile corpora
# (`autoseg fixtures broken|hostile`) through every command that reads one: verify, fingerprint,
# plan, preprocess, plan-and-train and predict (with a tiny model trained on a clean dataset of
# the same layout), each under an 8 GB address-space cap (`prlimit --as`), as a user on a small
# machine would meet them.
#
# For every run it prints the exit code, the peak resident memory and the error line, and it
# fails (exit 1) when any run panics, aborts, is killed, exits with a code other than 0 or 1, or
# peaks above 2 GB, or when a dataset that holds an error gets through every command.
#
# Usage: scripts/hostile_sweep.sh [OUT_DIR]   (AUTOSEG_BIN overrides target/release/autoseg)
set -uo pipefail
cd "$(dirname "$0")/.."
bin="$(realpath "${AUTOSEG_BIN:-target/release/autoseg}")"
out="${1:-$(mktemp -d /tmp/autoseg-sweep.XXXXXX)}"
cap_bytes=8589934592
max_rss_kb=$((2 * 1024 * 1024))
mkdir -p "$out"
"$bin" fixtures broken "$out" >/dev/null
"$bin" fixtures hostile "$out" >/dev/null

# The model predict uses: a clean two-channel dataset of the corpus' layout, one tiny model
# trained on all its cases (3 cases are too few for five folds).
clean="$out/hostile/symlink_loop"
model_work="$out/model_work"
"$bin" plan-and-train "$clean" --work "$model_work" -c 3d_fullres --folds all --epochs 1 \
    --iters-per-epoch 1 >"$out/model.log" 2>&1 || { echo "cannot train the sweep's model (see $out/model.log)"; exit 1; }
model="$model_work/$(basename "$clean")"

# Datasets whose only fault is a warning: nnU-Net accepts them, so every command may succeed.
warning_only=" origin_mismatch symlink_loop "
# A valid dataset that only a resample in preprocessing can refuse.
valid_until_preprocess=" coarse_spacing "

failures=0
printf '%-26s %-15s %4s %8s  %s\n' dataset command exit peak_MB message
for ds in "$out"/broken/* "$out"/hostile/*; do
    name="$(basename "$ds")"
    refused=0
    for cmd in verify fingerprint plan preprocess plan-and-train predict; do
        work="$out/work_$name"
        case "$cmd" in
            verify) args=(verify "$ds") ;;
            predict) args=(predict -i "$ds/imagesTr" -o "$out/pred_$name" -m "$model" -c 3d_fullres --folds all) ;;
            plan-and-train)
                # Training a valid dataset proves nothing here and takes minutes.
                [[ "$warning_only" == *" $name "* ]] && continue
                args=(plan-and-train "$ds" --work "$work" -c 3d_fullres --folds 0 --epochs 1 --iters-per-epoch 1) ;;
            *) args=("$cmd" "$ds" --work "$work") ;;
        esac
        log="$out/$name.$cmd.log"
        prlimit --as=$cap_bytes /usr/bin/time -f "%M" -o "$log.rss" "$bin" "${args[@]}" >"$log" 2>&1
        rc=$?
        rss=$(tail -1 "$log.rss")
        message=$(grep -m1 -E '^(autoseg: |error: )' "$log" | cut -c1-160)
        printf '%-26s %-15s %4s %8s  %s\n' "$name" "$cmd" "$rc" "$((rss / 1024))" "$message"
        bad=""
        [[ "$rc" != 0 && "$rc" != 1 ]] && bad="exit code $rc"
        grep -qE 'panicked|memory allocation of|core dumped' "$log" && bad="panic or abort"
        ((rss > max_rss_kb)) && bad="peak memory ${rss} kB"
        if [[ -n "$bad" ]]; then
            echo "  FAIL: $name $cmd: $bad (log: $log)"
            failures=$((failures + 1))
        fi
        [[ "$rc" == 1 ]] && refused=1
    done
    if [[ "$warning_only" != *" $name "* && "$refused" == 0 ]]; then
        echo "  FAIL: $name: no command refused it"
        failures=$((failures + 1))
    fi
    if [[ "$valid_until_preprocess" == *" $name "* ]] && ! grep -q "per-volume ceiling" "$out/$name.preprocess.log"; then
        echo "  FAIL: $name: preprocess did not refuse the resample"
        failures=$((failures + 1))
    fi
done
echo "sweep: $failures failure(s); logs in $out"
[[ "$failures" == 0 ]]
