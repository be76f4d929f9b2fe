#!/usr/bin/env python3
"""Convert the paper's MS-Celeb-1M ResNet-18 into a timm `resnet18` Hub folder: `timm-dan hub convert-backbone`.

    python hub/convert_backbone.py resnet18_msceleb.pth --output-dir resnet18-msceleb
"""
import sys

from timm_dan.cli import main

if __name__ == '__main__':
    sys.exit(main(['hub', 'convert-backbone', *sys.argv[1:]]))
