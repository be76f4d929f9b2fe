"""Where bf16 is fast: shared by training (`resolve_precision`) and inference (`FERPredictor`)."""
import torch

__all__ = ['bf16_supported']


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 is fast here: a CUDA GPU with bf16, or a CPU with native bf16 (AVX-512 BF16 / AMX)."""
    if device.type == 'cuda':
        return torch.cuda.is_bf16_supported()
    if device.type == 'cpu':
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False
