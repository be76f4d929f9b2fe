#!/usr/bin/env python3
"""Validate a timm Hub folder and upload it to the Hugging Face Hub: `timm-dan hub push`.

    python hub/push.py dan-rafdb --dry-run
    python hub/push.py dan-rafdb --repo-id timm-dan/dan_resnet18.rafdb --create-pr
"""
import sys

from timm_dan.cli import main

if __name__ == '__main__':
    sys.exit(main(['hub', 'push', *sys.argv[1:]]))
