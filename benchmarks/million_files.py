"""A million files: the first scan and a cache hit of `load_fer_dataset` on a generated AffectNet tree (issue 15).

    python benchmarks/million_files.py [--files 1000000] [--folders 1000] [--tree DIR] [--json OUT]

The tree has AffectNet's full-release layout: `Manually_Annotated_Images/<folder>/<n>.jpg`, `--files` empty files in
`--folders` folders, and the two label files (`Manually_Annotated_file_lists/training.csv`, `validation.csv`)
listing every one with a face box, an expression code, valence and arousal (landmarks left empty: they cost the
scan's parsing, not the file system's). The files are empty, so the build's decoding check (`_checked_image`) is
replaced by one that keeps each image's path: what is timed is the file-system work and the cache, not decoding.

Timed, once each (file-system work: fine on a shared machine; the figures name the machine):
- scan_s: the source's scan (reads both label files), stats_s: one stat per image, fingerprint_s;
- first_load_s: `load_fer_dataset` from nothing (scan, stats, fingerprint, the build, the index);
- cache_hit_s (median of 3) and the paths it stats; no_checks_s; full_recheck_s (`verification_mode='all_checks'`).
"""
import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import machine  # noqa: E402
from timm_dan.data import builder, load_fer_dataset  # noqa: E402
from timm_dan.data.registry import SOURCES  # noqa: E402

IMAGES, LISTS = 'Manually_Annotated_Images', 'Manually_Annotated_file_lists'
HEADER = 'subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal\n'


def write_affectnet_tree(root: Path, num_files: int, num_folders: int = 1000, validation_every: int = 200) -> Path:
    """AffectNet's full-release layout with `num_files` empty images spread over `num_folders` folders, every one
    listed in training.csv (or, one in `validation_every`, in validation.csv) with expression codes 0..7."""
    lists = root / LISTS
    lists.mkdir(parents=True, exist_ok=True)
    with open(lists / 'training.csv', 'w') as train, open(lists / 'validation.csv', 'w') as val:
        train.write(HEADER)
        val.write(HEADER)
        per_folder = -(-num_files // num_folders)
        for start in range(0, num_files, per_folder):
            folder = f'{start // per_folder + 1}'
            (root / IMAGES / folder).mkdir(parents=True, exist_ok=True)
            lines = []
            for n in range(start, min(start + per_folder, num_files)):
                name = f'{folder}/{n:07d}.jpg'
                os.close(os.open(root / IMAGES / name, os.O_CREAT | os.O_WRONLY, 0o644))
                lines.append((n, f'{name},0,0,100,100,,{n % 8},0.1,-0.2\n'))
            train.writelines(line for n, line in lines if n % validation_every)
            val.writelines(line for n, line in lines if not n % validation_every)
    return root


def _path_only(record: dict) -> dict:
    """The build's image check for empty files: keep the path (nothing to decode)."""
    return {'bytes': None, 'path': record['path']}


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def _scan_figures(root: Path) -> dict:
    """The first scan's parts: the source's scan, one stat per image, the fingerprint."""
    figures = {}
    scan, figures['scan_s'] = _timed(lambda: SOURCES['affectnet'].scan(root, num_classes=8))
    figures['images'] = sum(map(len, scan.splits.values()))
    stats, figures['stats_s'] = _timed(lambda: builder._stat_records(scan))
    figures['fingerprint_s'] = _timed(lambda: builder._fingerprint('affectnet', {}, scan, b'', stats))[1]
    return figures


def measure(root: Path, cache_dir: str) -> dict:
    """The scan's and the cache's figures on the tree at `root` (see the module's text)."""
    builder._checked_image = _path_only
    results = _scan_figures(root)

    def load(**kwargs):
        return load_fer_dataset('affectnet', root, cache_dir=cache_dir, **kwargs)
    data, results['first_load_s'] = _timed(load)
    results['rows'] = {split: ds.num_rows for split, ds in data.items()}
    watched = []
    stat = builder._watch_stat

    def counted(path):
        watched.append(path)
        return stat(path)
    builder._watch_stat = counted
    results['cache_hit_s'] = statistics.median(_timed(load)[1] for _ in range(3))
    builder._watch_stat = stat
    results['cache_hit_paths_stated'] = len(watched) // 3
    results['no_checks_s'] = _timed(lambda: load(verification_mode='no_checks'))[1]
    results['full_recheck_s'] = _timed(lambda: load(verification_mode='all_checks'))[1]
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--files', type=int, default=1_000_000)
    parser.add_argument('--folders', type=int, default=1000)
    parser.add_argument('--tree', type=Path, help='write the tree here, or reuse the one there (kept); default: a '
                        'temporary folder, removed at the end with the cache')
    parser.add_argument('--json', type=Path, help='write the figures here')
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix='million-files-'))
    try:
        root = args.tree or work / 'AffectNet'
        generate_s = None
        if not (root / LISTS / 'training.csv').is_file():
            _, generate_s = _timed(lambda: write_affectnet_tree(root, args.files, args.folders))
        results = {'machine': machine(), 'files': args.files, 'folders': args.folders, 'generate_s': generate_s,
                   **measure(root, str(work / 'cache'))}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
