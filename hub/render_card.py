#!/usr/bin/env python3
"""Render the family model card MODEL_CARD.md (at the repository root): `timm-dan hub card`.

    python hub/render_card.py          # rewrite MODEL_CARD.md
    python hub/render_card.py --check  # exit 1 if MODEL_CARD.md is out of date
"""
import sys
from pathlib import Path

from timm_dan.cli import main

MODEL_CARD = Path(__file__).resolve().parents[1] / 'MODEL_CARD.md'

if __name__ == '__main__':
    sys.exit(main(['hub', 'card', '--output', str(MODEL_CARD), *sys.argv[1:]]))
