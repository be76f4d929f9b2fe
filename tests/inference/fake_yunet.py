"""A stand-in for OpenCV's YuNet face detector (we cannot download the real one here), written as ONNX."""
import math
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

LANDMARKS = (0.2, 0.3, 0.8, 0.3, 0.5, 0.55, 0.3, 0.8, 0.7, 0.8)
"""The 5 landmarks of every face, per cell, in stride units."""


class FakeYuNet(torch.nn.Module):
    """YuNet's inputs and outputs for 320 x 320 images: every red 32 x 32 cell is a face of 64 x 64 pixels centred
    on the cell, with `LANDMARKS` inside it; its score is the cell's mean red level (255 -> 1.0)."""

    def forward(self, x):
        outputs = {}
        for stride in (8, 16, 32):
            red = F.avg_pool2d(x[:, 2:3], stride).flatten(2).transpose(1, 2) / 255.  # BGR input: B x N x 1
            score = red if stride == 32 else red * 0.
            outputs[stride] = (score, score, score * 0. + torch.tensor([[.5, .5, math.log(2.), math.log(2.)]]),
                               score * 0. + torch.tensor([LANDMARKS]))
        return tuple(outputs[s][k] for k in range(4) for s in (8, 16, 32))


def write_fake_yunet(path: Path) -> Path:
    names = [f'{kind}_{s}' for kind in ('cls', 'obj', 'bbox', 'kps') for s in (8, 16, 32)]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # OpenCV's ONNX importer reads the classic exporter's graphs
        torch.onnx.export(FakeYuNet(), (torch.zeros(1, 3, 320, 320),), str(path), input_names=['input'],
                          output_names=names, opset_version=13, dynamo=False)
    return path
