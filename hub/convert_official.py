#!/usr/bin/env python3
"""Convert one of the authors' DAN checkpoints into a timm Hub folder: `timm-dan hub convert-official`.

    python hub/convert_official.py rafdb_epoch21_acc0.897_bacc0.8275.pth --dataset rafdb --output-dir dan-rafdb
"""
import sys

from timm_dan.cli import main

if __name__ == '__main__':
    sys.exit(main(['hub', 'convert-official', *sys.argv[1:]]))
