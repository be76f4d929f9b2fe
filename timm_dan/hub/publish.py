"""Publishing Hub folders: the upload, and what the hub/ scripts print and how they fail."""
import argparse
from pathlib import Path
from typing import Any, Optional, Union

from huggingface_hub import ModelCard

from .folder import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, validate_model_folder

USER_ERRORS = (FileNotFoundError, FileExistsError, KeyError, ValueError, RuntimeError)
"""What the hub/ scripts report as a one-line error (bad input, missing files, no token), not a traceback."""


def push_model_folder(
        folder: Union[str, Path],
        repo_id: str,
        *,
        private: bool = False,
        create_pr: bool = False,
        dry_run: bool = False,
        token: Optional[str] = None,
        commit_message: str = 'Upload DAN weights (timm-dan)',
) -> dict[str, Any]:
    """Validate a Hub folder (load, forward pass, card metadata) and upload it with `huggingface_hub`.

    The token comes from `token` or the usual places (`HF_TOKEN`, `hf auth login`). With `dry_run` nothing
    is uploaded (and no token needed).

    Returns:
        `validate_model_folder`'s summary plus `repo_id` and, after an upload, `url` (the commit or PR).
    """
    from huggingface_hub import HfApi, constants, get_token

    summary = validate_model_folder(folder)
    summary['repo_id'] = repo_id
    if dry_run:
        return summary
    if constants.HF_HUB_OFFLINE:
        raise RuntimeError('HF_HUB_OFFLINE is set: unset it to upload (or use --dry-run)')
    token = token or get_token()
    if not token:
        raise RuntimeError(
            'No Hugging Face token found: run `hf auth login`, or set HF_TOKEN to a token with write access '
            f'to {repo_id.split("/")[0]!r} (https://huggingface.co/settings/tokens)'
        )
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    commit = api.upload_folder(
        folder_path=str(folder), repo_id=repo_id, create_pr=create_pr, commit_message=commit_message,
        allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, CARD_NAME],
    )
    summary['url'] = commit.pr_url if create_pr else commit.commit_url
    return summary


def print_folder(folder: Union[str, Path]) -> None:
    """Print a Hub folder's files and the SHA-256 its card records (what the conversion scripts report)."""
    folder = Path(folder)
    print(f'Wrote {folder}:')
    for p in sorted(folder.iterdir()):
        print(f'  {p.name}  {p.stat().st_size:,} bytes')
    card = ModelCard.load(folder / CARD_NAME)
    for line in card.text.splitlines():
        if line.startswith('- **Converted from:**'):
            print(line.removeprefix('- **Converted from:** '))
    print(f'Load it with timm.create_model("local-dir:{folder}", pretrained=True) after `import timm_dan`.')


def call_or_exit(parser: argparse.ArgumentParser, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run `fn` for a hub/ script; a USER_ERRORS exception ends the script with a one-line error, exit status 1."""
    try:
        return fn(*args, **kwargs)
    except USER_ERRORS as e:
        parser.exit(1, f'{parser.prog}: error: {e.args[0] if isinstance(e, KeyError) else e}\n')
