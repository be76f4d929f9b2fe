#!/usr/bin/env python3
"""Convert the paper's MS-Celeb-1M ResNet-18 (resnet18_msceleb.pth) into a timm `resnet18` Hub folder.

    python hub/convert_backbone.py resnet18_msceleb.pth --output-dir resnet18-msceleb
    python -c 'import timm, timm_dan; timm.create_model("dan_resnet18",
               backbone_pretrained="resnet18-msceleb/model.safetensors")'
"""
import argparse
import sys
from pathlib import Path
from typing import Optional

from timm_dan.hub import DEFAULT_MANIFEST, call_or_exit, convert_backbone_file, load_manifest, print_folder


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('checkpoint', type=Path, help='resnet18_msceleb.pth ({"state_dict": torchvision keys})')
    parser.add_argument('--output-dir', required=True, type=Path)
    parser.add_argument('--overwrite', action='store_true', help='replace an existing output folder')
    parser.add_argument('--manifest', type=Path, default=DEFAULT_MANIFEST)
    args = parser.parse_args(argv)
    folder = call_or_exit(parser, convert_backbone_file, args.checkpoint, args.output_dir,
                          manifest=load_manifest(args.manifest), overwrite=args.overwrite)
    print_folder(folder)
    return 0


if __name__ == '__main__':
    sys.exit(main())
