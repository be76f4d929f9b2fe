#!/usr/bin/env python3
"""Validate a timm Hub folder (load, forward pass, card metadata) and upload it to the Hugging Face Hub.

    python hub/push.py dan-rafdb --repo-id timm-dan/dan_resnet18.rafdb --dry-run
    python hub/push.py dan-rafdb --repo-id timm-dan/dan_resnet18.rafdb --create-pr

The token comes from the usual places (`hf auth login`, HF_TOKEN).
"""
import argparse
import json
import sys
from pathlib import Path
from typing import Optional

from timm_dan.hub import call_or_exit, push_model_folder


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('folder', type=Path, help='a folder written by convert_official.py or save_model_folder')
    parser.add_argument('--repo-id', required=True, help='NAMESPACE/NAME on the Hub')
    parser.add_argument('--private', action='store_true', help='create the repo private')
    parser.add_argument('--create-pr', action='store_true', help='open a pull request instead of committing to main')
    parser.add_argument('--dry-run', action='store_true', help='validate and print what would be uploaded')
    args = parser.parse_args(argv)
    if args.repo_id.count('/') != 1:
        parser.error(f'--repo-id must be NAMESPACE/NAME, got {args.repo_id!r}')
    summary = call_or_exit(parser, push_model_folder, args.folder, args.repo_id, private=args.private,
                           create_pr=args.create_pr, dry_run=args.dry_run)
    verb = 'Would upload' if args.dry_run else 'Uploaded'
    print(f'{verb} to https://huggingface.co/{args.repo_id}'
          f'{" (private)" if args.private else ""}{" as a pull request" if args.create_pr else ""}:')
    for name, size in summary['files'].items():
        print(f'  {name}  {size:,} bytes')
    print(f'Model: {summary["num_classes"]} classes {summary["label_names"]}, output {summary["output_shape"]}')
    print('Card metadata:')
    print(json.dumps(summary['metadata'], indent=2, ensure_ascii=False))
    if 'url' in summary:
        print(summary['url'])
    return 0


if __name__ == '__main__':
    sys.exit(main())
