#!/usr/bin/env bash
# Checks that a DICOM SEG loads, in the viewers' own SEG readers, as the label mask it encodes.
#
# Usage:
#   scripts/check_seg_viewers.sh SERIES_DIR SEG_FILE MASK [--labels 1,2,...]
#     SERIES_DIR  the source series the SEG references (one series, Part 10 files)
#     SEG_FILE    the DICOM Segmentation (e.g. from `autoseg predict --dicom-seg`)
#     MASK        the label map it should hold: .nii/.nii.gz with the series' geometry (as
#                 autoseg writes it) or .npy, z,y,x in the series' slice order (ascending
#                 along the slice normal, as SimpleITK's series reader sorts)
#     --labels    the mask label of segment number 1, 2, ... (default: segment n = label n,
#                 which is how autoseg numbers segments for nnU-Net's consecutive labels)
#
# Runs:
#  1. OHIF (Cornerstone3D): scripts/seg_viewers/ohif_load_seg.mjs, which calls
#     adaptersSEG.Cornerstone3D.Segmentation.createFromDicomSegImageId of
#     @cornerstonejs/adapters 5.6.8 with the options OHIF 3.13.2's
#     @ohif/extension-cornerstone-dicom-seg passes (SEG frames cut by
#     @cornerstonejs/dicom-image-loader 5.6.8's wadouri getPixelData), and also
#     createFromDICOMSegBuffer (Cornerstone3D's buffer entry point); node packages pinned by
#     scripts/seg_viewers/package.json + package-lock.json, installed with `npm ci` into
#     $SEG_VIEWERS_DIR/node_modules (default /tmp/autoseg-seg-viewers) when missing or stale.
#  2. 3D Slicer: scripts/seg_viewers/dcmqi_load_seg.py, which runs dcmqi's segimage2itkimage
#     --mergeSegments as Slicer's QuantitativeReporting DICOMSegmentationPlugin does (PyPI
#     wheel dcmqi 1.5.7, with SimpleITK 2.5.7 and numpy, pip-installed into
#     $SEG_VIEWERS_DIR/venv when missing). Skipped with a warning when that install fails,
#     unless SEG_VIEWERS_REQUIRE_DCMQI=1.
# Needs node >= 20 and npm, python3 with venv. Exits non-zero when either check finds a
# mismatch, a loader error, or cannot run.
set -euo pipefail

if [ $# -lt 3 ]; then
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pkg="$here/seg_viewers"
dir="${SEG_VIEWERS_DIR:-/tmp/autoseg-seg-viewers}"
mkdir -p "$dir"

# --- node packages (npm ci from the committed lock) -------------------------------------------
if ! cmp -s "$pkg/package-lock.json" "$dir/package-lock.json" || [ ! -d "$dir/node_modules/@cornerstonejs/adapters" ]; then
    echo "installing the pinned npm packages into $dir"
    cp "$pkg/package.json" "$pkg/package-lock.json" "$dir/"
    (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi

status=0
echo "=== OHIF / Cornerstone3D ==="
SEG_VIEWERS_MODULES="$dir/node_modules" node "$pkg/ohif_load_seg.mjs" "$@" || status=1

# --- dcmqi (3D Slicer) ------------------------------------------------------------------------
echo
echo "=== 3D Slicer / dcmqi ==="
py="$dir/venv/bin/python"
if [ ! -x "$dir/venv/bin/segimage2itkimage" ]; then
    echo "installing dcmqi into $dir/venv"
    if ! { python3 -m venv "$dir/venv" && "$py" -m pip install -q dcmqi==1.5.7 SimpleITK==2.5.7 numpy; }; then
        rm -rf "$dir/venv"
        if [ "${SEG_VIEWERS_REQUIRE_DCMQI:-0}" = 1 ]; then
            echo "error: dcmqi could not be installed"
            exit 1
        fi
        echo "warning: dcmqi could not be installed; the 3D Slicer check is skipped"
        exit $status
    fi
fi
"$py" "$pkg/dcmqi_load_seg.py" "$@" || status=1

echo
if [ $status = 0 ]; then echo "check_seg_viewers: OK"; else echo "check_seg_viewers: FAILED"; fi
exit $status
