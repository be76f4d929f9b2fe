"""`timm-dan hub convert-official | convert-backbone | push | card | space`: the published weights as Hub folders,
and the web demo as a Space."""
import argparse
import json
from pathlib import Path

__all__ = ['add_parser', 'print_folder']

DESCRIPTION = ("Convert the authors' checkpoints into timm Hub folders, render model cards, upload to the Hub; "
               "write and upload the web demo as a Space.")
EXAMPLES = """examples:
  timm-dan hub convert-official rafdb_epoch21_acc0.897_bacc0.8275.pth --dataset rafdb --output-dir dan-rafdb
  timm-dan hub convert-backbone resnet18_msceleb.pth --output-dir resnet18-msceleb
  timm-dan hub push dan-rafdb --dry-run
  timm-dan hub push dan-rafdb --repo-id timm-dan/dan_resnet18.rafdb [--private] [--create-pr]
  timm-dan hub card --output MODEL_CARD.md [--check]
  timm-dan hub space --output-dir space --model local-dir:runs/synthetic/best [--repo-id me/timm-dan-demo]

Uploads take the token from the usual places: hf auth login, or the HF_TOKEN variable."""

OFFICIAL_DATASETS = ('affectnet7', 'affectnet8', 'rafdb')
"""= sorted(timm_dan.models.official.OFFICIAL_CLASS_ORDERS); `timm-dan hub --help` does not import torch."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser('hub', help="convert the authors' checkpoints, render model cards, upload",
                                   description=DESCRIPTION, epilog=EXAMPLES,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest='hub_command', metavar='{convert-official,convert-backbone,push,card,space}',
                                     required=True)

    official = commands.add_parser(
        'convert-official', help="one of the authors' DAN checkpoints -> a timm Hub folder",
        description="Convert one of the authors' DAN checkpoints into a timm Hub folder (config.json, "
                    "model.safetensors, README.md), classes in canonical order; the file is read with "
                    "torch.load(weights_only=True).")
    official.add_argument('checkpoint', type=Path, help="the authors' .pth file")
    official.add_argument('--dataset', required=True, choices=OFFICIAL_DATASETS,
                          help='the data set the file was trained on (decides the class order)')
    _add_output(official)
    official.set_defaults(func=run_convert_official)

    backbone = commands.add_parser(
        'convert-backbone', help='the paper\'s MS-Celeb-1M ResNet-18 -> a timm resnet18 Hub folder',
        description='Convert the paper\'s MS-Celeb-1M ResNet-18 (resnet18_msceleb.pth) into a timm resnet18 Hub '
                    'folder; train DAN from it with backbone_pretrained="DIR/model.safetensors".')
    backbone.add_argument('checkpoint', type=Path, help='resnet18_msceleb.pth ({"state_dict": torchvision keys})')
    _add_output(backbone)
    backbone.set_defaults(func=run_convert_backbone)

    push = commands.add_parser(
        'push', help='validate a Hub folder and upload it',
        description='Validate a timm Hub folder (load, forward pass, card metadata) and upload it to the Hugging Face '
                    'Hub.')
    push.add_argument('folder', type=Path, help='a folder written by convert-official, train.py (best/) or '
                                                'timm_dan.hub.save_model_folder')
    push.add_argument('--repo-id', help='NAMESPACE/NAME on the Hub (not needed with --dry-run)')
    push.add_argument('--private', action='store_true', help='create the repo private')
    push.add_argument('--create-pr', action='store_true', help='open a pull request instead of committing to main')
    push.add_argument('--dry-run', action='store_true', help='validate and print what would be uploaded')
    push.set_defaults(func=run_push, parser=push)

    card = commands.add_parser(
        'card', help='render the family model card (MODEL_CARD.md) from the table of published weights',
        description='Render the family model card of the published weights (timm_dan/models/pretrained.py).')
    card.add_argument('--output', type=Path, default=Path('MODEL_CARD.md'))
    card.add_argument('--check', action='store_true', help='only check that the file is current (exit 1 if not)')
    card.set_defaults(func=run_card)

    space = commands.add_parser(
        'space', help='write the web demo as a Hugging Face Space folder, and upload it',
        description='Write the web demo as a Hugging Face Space (Gradio SDK) folder: app.py, README.md with the '
                    "Space's settings, requirements.txt, a copy of timm_dan, and a local-dir: model's weights as "
                    'model/. With --repo-id, upload it as that Space and set the Space variable TIMM_DAN_DEMO_MODEL '
                    'for any other model.')
    space.add_argument('--model', default=None, metavar='NAME',
                       help='registered name/tag, hf-hub:NAMESPACE/NAME, local-dir:FOLDER or a Hub folder path '
                            '(copied into the Space); default: the demo\'s default model')
    space.add_argument('--gpu', action='store_true', help='CUDA builds of torch (default: CPU builds, for the free '
                                                          'CPU hardware)')
    _add_output(space)
    space.add_argument('--repo-id', help='upload as this Space (NAMESPACE/NAME)')
    space.add_argument('--private', action='store_true', help='create the Space private')
    space.add_argument('--dry-run', action='store_true', help='with --repo-id: print what would be uploaded')
    space.set_defaults(func=run_space, parser=space)


def _add_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--output-dir', required=True, type=Path)
    parser.add_argument('--overwrite', action='store_true', help='replace an existing output folder')


def print_folder(folder: Path) -> None:
    """A Hub folder's files and the SHA-256 its card records (what the conversions report)."""
    from huggingface_hub import ModelCard

    from ..hub import CARD_NAME
    print(f'Wrote {folder}:')
    for p in sorted(folder.iterdir()):
        print(f'  {p.name}  {p.stat().st_size:,} bytes')
    for line in ModelCard.load(folder / CARD_NAME).text.splitlines():
        if line.startswith('- **Converted from:**'):
            print(line.removeprefix('- **Converted from:** '))
    print(f'Load it with timm.create_model("local-dir:{folder}", pretrained=True) after `import timm_dan`, '
          f'or use --model local-dir:{folder} with timm-dan predict.')


def run_convert_official(args: argparse.Namespace) -> int:
    from ..hub import convert_official_file
    print_folder(convert_official_file(args.checkpoint, args.dataset, args.output_dir, overwrite=args.overwrite))
    return 0


def run_convert_backbone(args: argparse.Namespace) -> int:
    from ..hub import convert_backbone_file
    print_folder(convert_backbone_file(args.checkpoint, args.output_dir, overwrite=args.overwrite))
    return 0


def run_push(args: argparse.Namespace) -> int:
    if not args.dry_run and not args.repo_id:
        args.parser.error('--repo-id NAMESPACE/NAME is needed to upload (or pass --dry-run)')
    if args.repo_id is not None and args.repo_id.count('/') != 1:
        args.parser.error(f'--repo-id must be NAMESPACE/NAME, got {args.repo_id!r}')
    from ..hub import push_model_folder
    repo_id = args.repo_id or 'NAMESPACE/NAME'
    summary = push_model_folder(args.folder, repo_id, private=args.private, create_pr=args.create_pr,
                                dry_run=args.dry_run)
    verb = 'Would upload' if args.dry_run else 'Uploaded'
    print(f'{verb} to https://huggingface.co/{repo_id}'
          f'{" (private)" if args.private else ""}{" as a pull request" if args.create_pr else ""}:')
    for name, size in summary['files'].items():
        print(f'  {name}  {size:,} bytes')
    print(f'Model: {summary["num_classes"]} classes {summary["label_names"]}, output {summary["output_shape"]}')
    usage = next((line for line in summary['card'].splitlines() if 'timm.create_model(' in line), None)
    if usage:
        print(f'Card, How to use: {usage.strip()}')
    print('Card metadata:')
    print(json.dumps(summary['metadata'], indent=2, ensure_ascii=False))
    if 'url' in summary:
        print(summary['url'])
    return 0


def run_card(args: argparse.Namespace) -> int:
    from ..hub import family_card, render_model_card
    text = render_model_card(family_card())
    if args.check:
        current = args.output.is_file() and args.output.read_text(encoding='utf-8') == text
        print(f'{args.output} is {"current" if current else "out of date: run timm-dan hub card"}')
        return 0 if current else 1
    args.output.write_text(text, encoding='utf-8')
    print(f'Wrote {args.output}')
    return 0


def run_space(args: argparse.Namespace) -> int:
    if args.repo_id is not None and args.repo_id.count('/') != 1:
        args.parser.error(f'--repo-id must be NAMESPACE/NAME, got {args.repo_id!r}')
    from ..demo.model import MODEL_VARIABLE, resolve_model_name
    from ..demo.space import push_space, write_space_folder
    folder = write_space_folder(args.output_dir, args.model, gpu=args.gpu, overwrite=args.overwrite)
    model = resolve_model_name(args.model) if args.model else None
    variable = model if model and not model.startswith('local-dir:') else None
    print(f'Wrote the Space folder {folder}' + (f' (the model\'s weights in {folder}/model)' if model and not variable
                                                else ''))
    if args.repo_id is None:
        print(f'Upload it with: timm-dan hub space --output-dir {folder} --overwrite'
              f'{f" --model {args.model}" if args.model else ""} --repo-id NAMESPACE/NAME'
              + (f'  (or upload the folder yourself and set the Space variable {MODEL_VARIABLE}={variable})'
                 if variable else ''))
        return 0
    summary = push_space(folder, args.repo_id, model=variable, private=args.private, dry_run=args.dry_run)
    print(f'{"Would upload" if args.dry_run else "Uploaded"} {len(summary["files"])} files '
          f'({sum(summary["files"].values()):,} bytes) to {summary["url"]}{" (private)" if args.private else ""}')
    for key, value in summary['variables'].items():
        print(f'Space variable {key}={value}')
    if 'commit_url' in summary:
        print(summary['commit_url'])
    return 0
