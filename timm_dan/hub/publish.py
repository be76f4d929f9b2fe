"""Uploading to the Hugging Face Hub: one check of offline mode and token for every upload (models and data sets),
and the upload of a validated model folder."""
from pathlib import Path
from typing import Any, Optional, Union

from .card import card_for_repo
from .folder import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, validate_model_folder

__all__ = ['upload_token', 'push_model_folder']


def upload_token(repo_id: str, token: Optional[str] = None) -> str:
    """The token to upload to `repo_id` with: `token`, or the usual places (`HF_TOKEN`, `hf auth login`).

    Raises RuntimeError when huggingface_hub is in offline mode (`HF_HUB_OFFLINE`) or no token is found.
    """
    from huggingface_hub import constants, get_token

    if constants.HF_HUB_OFFLINE:
        raise RuntimeError('HF_HUB_OFFLINE is set: unset it to upload (or use --dry-run)')
    token = token or get_token()
    if not token:
        raise RuntimeError(
            'No Hugging Face token found: run `hf auth login`, or set HF_TOKEN to a token with write access '
            f'to {repo_id.split("/")[0]!r} (https://huggingface.co/settings/tokens)'
        )
    return token


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
    """Validate a Hub folder (load, forward pass, card metadata) and upload it with `huggingface_hub`, in one
    commit: config.json, model.safetensors, and README.md with its "How to use" loading `hf-hub:REPO_ID`
    (`card_for_repo`; the folder's own README.md is left as it is).

    With `dry_run` nothing is uploaded (and no token needed).

    Returns:
        `validate_model_folder`'s summary plus `repo_id`, `card` (the README text to upload) and, after an
        upload, `url` (the commit or PR).
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    folder = Path(folder)
    summary = validate_model_folder(folder)
    summary['repo_id'] = repo_id
    summary['card'] = card_for_repo((folder / CARD_NAME).read_text(encoding='utf-8'), repo_id)
    if dry_run:
        return summary
    api = HfApi(token=upload_token(repo_id, token))
    api.create_repo(repo_id, private=private, exist_ok=True)
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(folder / name))
                  for name in (CONFIG_NAME, WEIGHTS_NAME)]
    operations.append(CommitOperationAdd(path_in_repo=CARD_NAME, path_or_fileobj=summary['card'].encode('utf-8')))
    commit = api.create_commit(repo_id, operations=operations, commit_message=commit_message, create_pr=create_pr)
    summary['url'] = commit.pr_url if create_pr else commit.commit_url
    return summary
