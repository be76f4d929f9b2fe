"""Loading DAN weights by name: `load_pretrained`, with one clear error when the weights cannot be had."""
from typing import Any

import timm
import torch.nn as nn
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

__all__ = ['load_pretrained', 'HUB_ERRORS']

HUB_ERRORS = (LocalEntryNotFoundError, EntryNotFoundError, HfHubHTTPError)


def load_pretrained(model_name: str, **kwargs: Any) -> nn.Module:
    """`timm.create_model(model_name, pretrained=True, **kwargs)` for any name (a registered tag, `hf-hub:ID`,
    `local-dir:DIR`); Hub weights that are neither cached nor downloadable raise one RuntimeError that names the
    repo and the ways out."""
    try:
        return timm.create_model(model_name, pretrained=True, **kwargs)
    except HUB_ERRORS as e:
        if not model_name.startswith('hf-hub:'):
            raise
        from ..hub import missing_weights_message  # temporary: moves below the hub in the redesign
        repo_id = model_name[len('hf-hub:'):].split('@')[0]
        raise RuntimeError(missing_weights_message(repo_id)) from e
