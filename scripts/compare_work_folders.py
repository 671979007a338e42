"""Compares two autoseg work folders of the same run made by two builds (e.g. before and after
a refactor), file by file: every artifact must be byte-identical, except for what depends on
where and when the run happened, which is normalised first: the folder's path (summary.json,
best.toml), raw-file mtimes (fingerprint.toml; the 8-byte source key of each .case file),
epoch timestamps (checkpoint .toml) and zip member dates (.npz, compared member by member).
train.log, progress.png and report/ are skipped (timings).

Usage: python3 scripts/compare_work_folders.py BEFORE_DIR AFTER_DIR   (exit 1 on a difference)

Used for issue 16: the demo run by the old and the new binary (see the stop's closing note)."""
import sys, os, re, zipfile, hashlib
a, b = sys.argv[1], sys.argv[2]
skip = ('/train.log', '/progress.png')
res = {'identical': 0, 'same_after_normalising': 0, 'different': []}
def norm_text(t, root):
    t = t.replace(root, 'ROOT')
    t = re.sub(r'mtime_secs = \d+', 'mtime_secs = X', t)
    t = re.sub(r'epoch_(start|end)_timestamps = \[[^\]]*\]', 'epoch_timestamps = X', t, flags=re.S)
    t = re.sub(r'-m \S+Dataset901_Demo3d', '-m MODEL', t)
    return t
for dirpath, _, files in os.walk(a):
    for f in files:
        pa = os.path.join(dirpath, f); rel = os.path.relpath(pa, a); pb = os.path.join(b, rel)
        if rel.startswith('Dataset901_Demo3d/report/') or any(rel.endswith(s) for s in skip):
            continue
        if not os.path.exists(pb):
            res['different'].append(rel + ' (missing)'); continue
        da, db = open(pa, 'rb').read(), open(pb, 'rb').read()
        if da == db:
            res['identical'] += 1; continue
        same = False
        if f.endswith('.npz'):
            za, zb = zipfile.ZipFile(pa), zipfile.ZipFile(pb)
            same = za.namelist() == zb.namelist() and all(za.read(n) == zb.read(n) for n in za.namelist())
        elif f.endswith('.case'):
            diff = [i for i in range(min(len(da), len(db))) if da[i] != db[i]] if len(da) == len(db) else None
            same = diff is not None and all(48 <= i < 56 for i in diff)  # the source key (paths, mtimes)
        elif f.endswith(('.json', '.toml')):
            same = norm_text(da.decode(), a) == norm_text(db.decode(), b)
        if same:
            res['same_after_normalising'] += 1
        else:
            res['different'].append(rel)
print(res['identical'], 'identical;', res['same_after_normalising'], 'same after normalising;', len(res['different']), 'different')
for r in res['different']:
    print('  DIFFERENT', r)
sys.exit(1 if res['different'] else 0)
