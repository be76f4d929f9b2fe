"""Lay out files in a Hugging Face Hub cache exactly as `hf_hub_download` leaves them (blobs, refs, snapshots)."""
import hashlib
import os
from pathlib import Path


def populate_hf_cache(cache_dir: Path, repo_id: str, files: dict[str, bytes], commit: str = 'a' * 40) -> Path:
    """Write `files` as the `main` revision of model repo `repo_id`; returns the snapshot folder."""
    repo_dir = Path(cache_dir) / f'models--{repo_id.replace("/", "--")}'
    snapshot = repo_dir / 'snapshots' / commit
    (repo_dir / 'blobs').mkdir(parents=True, exist_ok=True)
    (repo_dir / 'refs').mkdir(exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo_dir / 'refs' / 'main').write_text(commit)
    for name, data in files.items():
        blob = repo_dir / 'blobs' / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return snapshot
