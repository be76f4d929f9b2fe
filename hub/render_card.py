#!/usr/bin/env python3
"""Render the family model card MODEL_CARD.md from timm_dan/hub/models.yaml (tests check that it is current).

    python hub/render_card.py          # rewrite MODEL_CARD.md
    python hub/render_card.py --check  # exit 1 if MODEL_CARD.md is out of date
"""
import argparse
import sys
from pathlib import Path
from typing import Optional

from timm_dan.hub import DEFAULT_MANIFEST, family_card, load_manifest, render_model_card

MODEL_CARD = Path(__file__).resolve().parents[1] / 'MODEL_CARD.md'


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--manifest', type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument('--output', type=Path, default=MODEL_CARD)
    parser.add_argument('--check', action='store_true', help='only check that the file is current')
    args = parser.parse_args(argv)
    text = render_model_card(family_card(load_manifest(args.manifest)))
    if args.check:
        current = args.output.is_file() and args.output.read_text(encoding='utf-8') == text
        print(f'{args.output} is {"current" if current else "out of date: run python hub/render_card.py"}')
        return 0 if current else 1
    args.output.write_text(text, encoding='utf-8')
    print(f'Wrote {args.output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
