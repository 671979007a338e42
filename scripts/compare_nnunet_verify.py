"""Side by side: nnU-Net 2.8.1's dataset integrity check against `autoseg verify`.

Usage (peer venv with nnunetv2==2.8.1):
    python scripts/compare_nnunet_verify.py AUTOSEG_BIN BROKEN_CORPUS_DIR VALID_DATASET
        BROKEN_CORPUS_DIR: written by `autoseg fixtures broken DIR`
        VALID_DATASET:     e.g. written by `autoseg fixtures demo3d_large DIR`

For every broken dataset it reports whether each tool refuses it (nnU-Net: raises or prints an
error; autoseg: exit code 1), and times both on the valid dataset.
"""
import contextlib, io, os, subprocess, sys, time

from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity


def nnunet_refuses(folder):
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            verify_dataset_integrity(folder, num_processes=2)
    except BaseException as e:  # asserts, RuntimeError, reader exceptions
        return True, f"{type(e).__name__}: {str(e).splitlines()[0][:80] if str(e) else ''}"
    text = out.getvalue()
    flagged = "error" in text.lower()
    return flagged, ("printed an error" if flagged else "accepted")


def autoseg_refuses(binary, folder):
    r = subprocess.run([binary, "verify", folder], capture_output=True, text=True)
    return r.returncode == 1, r.returncode


def main():
    binary, corpus, valid = sys.argv[1:4]
    caught = {"nnU-Net": 0, "autoseg": 0}
    names = sorted(os.listdir(corpus))
    print(f"{'dataset':<26} {'nnU-Net':<45} autoseg")
    for name in names:
        folder = os.path.join(corpus, name)
        n_ok, n_why = nnunet_refuses(folder)
        a_ok, a_rc = autoseg_refuses(binary, folder)
        expected_bad = name != "origin_mismatch"  # a warning only, in both tools
        caught["nnU-Net"] += n_ok == expected_bad
        caught["autoseg"] += a_ok == expected_bad
        print(f"{name:<26} {('refused' if n_ok else 'accepted') + ' (' + n_why + ')':<45} {'refused' if a_ok else 'accepted'} (exit {a_rc})")
    print(f"\ncorrect verdicts out of {len(names)}: nnU-Net {caught['nnU-Net']}, autoseg {caught['autoseg']}")
    t0 = time.perf_counter(); verify_dataset_integrity(valid, num_processes=2); t1 = time.perf_counter()
    subprocess.run([binary, "verify", valid], check=True, capture_output=True); t2 = time.perf_counter()
    print(f"valid dataset {valid}: nnU-Net {t1 - t0:.2f} s, autoseg {t2 - t1:.2f} s")


if __name__ == "__main__":
    main()
