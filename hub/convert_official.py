#!/usr/bin/env python3
"""Convert one of the authors' DAN checkpoints into a timm Hub folder (config.json, model.safetensors, README.md).

    python hub/convert_official.py rafdb_epoch21_acc0.897_bacc0.8275.pth --dataset rafdb --output-dir dan-rafdb
    python -c 'import timm, timm_dan; timm.create_model("local-dir:dan-rafdb", pretrained=True)'
"""
import argparse
import sys
from pathlib import Path
from typing import Optional

from timm_dan.hub import DEFAULT_MANIFEST, call_or_exit, convert_official_file, load_manifest, print_folder
from timm_dan.models.dan import OFFICIAL_LABEL_MAPS


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('checkpoint', type=Path, help="the authors' .pth file")
    parser.add_argument('--dataset', required=True, choices=sorted(OFFICIAL_LABEL_MAPS),
                        help='the data set the file was trained on (decides the class order)')
    parser.add_argument('--output-dir', required=True, type=Path)
    parser.add_argument('--overwrite', action='store_true', help='replace an existing output folder')
    parser.add_argument('--manifest', type=Path, default=DEFAULT_MANIFEST)
    args = parser.parse_args(argv)
    folder = call_or_exit(parser, convert_official_file, args.checkpoint, args.dataset, args.output_dir,
                          manifest=load_manifest(args.manifest), overwrite=args.overwrite)
    print_folder(folder)
    return 0


if __name__ == '__main__':
    sys.exit(main())
