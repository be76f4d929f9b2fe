"""Evaluate a DAN on a FER data set: accuracy, mean class accuracy, macro F1, per-class recall, confusion matrix.

    python train_scripts/validate.py --model local-dir:runs/rafdb/best --dataset rafdb --data-dir DIR --split test
    python train_scripts/validate.py --model dan_resnet18.affectnet7 --dataset rafdb --data-dir DIR --tta
    accelerate launch train_scripts/validate.py ...      # several processes: every image counted once

`--model` takes `local-dir:` folders, `hf-hub:` ids and registered pretrained tags. Labels are canonical in
every data set, so models evaluate across data sets: a 7-class model on an 8-class set skips the contempt
images (and says how many); an 8-class model on a 7-class set keeps contempt as a possible (wrong) answer.
The evaluation is training's own (`timm_dan.training.validate`).
"""
import argparse
import sys
from pathlib import Path

import timm
import torch
import yaml
from accelerate import Accelerator, DataLoaderConfiguration

import timm_dan
from timm_dan.cpu import set_threads
from timm_dan.data import FER_DATASETS, decode_to_arrow, load_fer_dataset
from timm_dan.models.pretrained import load_pretrained
from timm_dan.precision import PRECISIONS, accelerate_mixed_precision
from timm_dan.training import resolve_channels_last, validate
from timm_dan.training.config import DEVICE_DATA
from timm_dan.training.data import create_eval_loader, wants_device_data
from timm_dan.training.reporting import write_confusion_matrix


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', required=True, help='local-dir:DIR, hf-hub:ID or a timm name with a tag')
    parser.add_argument('--dataset', required=True, choices=sorted(FER_DATASETS), help='the data set')
    parser.add_argument('--data-dir', default=None)
    parser.add_argument('--dataset-options', type=yaml.safe_load, default={},
                        help='extra load_fer_dataset options as YAML, e.g. "{num_classes: 7}"')
    parser.add_argument('--split', default=None, help='default: test, else validation')
    parser.add_argument('--tta', action='store_true', help='average with the horizontally flipped image')
    parser.add_argument('--image-size', type=int, default=None, help="default: the model's input size")
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--num-workers', type=int, default=2)
    parser.add_argument('--threads', type=int, default=None,
                        help="compute threads per process (default: the cores this process may use, shared among "
                             "the local processes, whatever accelerate launch put in OMP_NUM_THREADS)")
    parser.add_argument('--device-data', default='auto', choices=DEVICE_DATA,
                        help="the decoded images on the device, resized and normalised there in batches: auto (on a "
                             "CUDA device when they fit), on, off (DataLoader workers); as train.py's --device-data")
    parser.add_argument('--precision', default='auto', choices=PRECISIONS)
    parser.add_argument('--output-json', default=None, help='write the metrics here (and the PNG beside it)')
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    info = FER_DATASETS[args.dataset]
    if info.needs_data_dir and not (args.data_dir and Path(args.data_dir).is_dir()):
        raise SystemExit(f'error: --data-dir {args.data_dir} is not a folder; {args.dataset} needs its data')
    split = args.split or ('test' if 'test' in info.splits else 'validation')
    if split not in info.splits:
        raise SystemExit(f'error: {args.dataset} has the splits {list(info.splits)}, not {split!r}')
    accelerator = Accelerator(mixed_precision=accelerate_mixed_precision(args.precision),
                              dataloader_config=DataLoaderConfiguration(non_blocking=True))
    threads = set_threads(args.threads)
    channels_last = resolve_channels_last(None)
    try:
        model = load_pretrained(args.model).eval()
    except Exception as e:  # a missing folder, an unknown name, weights neither cached nor downloadable
        raise SystemExit(f'error: could not load --model {args.model}: {e}') from None
    num_classes = model.num_classes
    with accelerator.main_process_first():  # only the split evaluated is built (decoded and cached)
        try:
            dataset = load_fer_dataset(args.dataset, args.data_dir, splits=[split], **args.dataset_options)[split]
        except (OSError, ValueError, TypeError) as e:  # the layout, a bad label line, an unknown option
            raise SystemExit(f'error: {e}') from None
    data_labels = dataset.features['label'].names
    notes = []
    if len(data_labels) > num_classes:
        dropped = sum(1 for label in dataset['label'] if label >= num_classes)
        dataset = dataset.filter(lambda label: label < num_classes, input_columns='label')
        notes.append(f'the model has {num_classes} classes: skipped {dropped} images of '
                     f'{", ".join(data_labels[num_classes:])}')
    elif len(data_labels) < num_classes:
        notes.append(f'the data set has {len(data_labels)} classes; the model may still answer '
                     f'{", ".join(timm_dan.LABELS[len(data_labels):num_classes])} (always wrong here)')
    label_names = list(timm_dan.LABELS[:max(num_classes, len(data_labels))])

    data_config = timm.data.resolve_model_data_config(model)
    if args.image_size:
        data_config['input_size'] = (data_config['input_size'][0], args.image_size, args.image_size)
    if wants_device_data(args.device_data, accelerator.device):
        with accelerator.main_process_first():
            dataset = decode_to_arrow(dataset)
    loader, normalize, data_note = create_eval_loader(dataset, data_config, args.batch_size, args.device_data,
                                                      accelerator.device, num_workers=args.num_workers, name=split)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    model, loader = accelerator.prepare(model, loader)
    results = validate(accelerator, model, loader, normalize, len(label_names), channels_last=channels_last,
                       tta=args.tta)

    if accelerator.is_main_process:
        title = f'{args.model} on {args.dataset} {split}' + (' (TTA)' if args.tta else '')
        print(title)
        for note in [*notes, data_note, f'compute threads per process: {threads}']:
            print(f'note: {note}')
        print(format_table(results, label_names))
        if args.output_json:
            out = Path(args.output_json)
            out.parent.mkdir(parents=True, exist_ok=True)
            record = {'model': args.model, 'dataset': args.dataset, 'split': split, 'tta': args.tta, 'notes': notes}
            write_confusion_matrix(out.parent, {**record, **results}, label_names, title, stem=out.stem)
            print(f'wrote {out} and {out.with_suffix(".png")}')
    return 0


def format_table(results: dict, label_names: list) -> str:
    rows = [('images', str(results['num_samples']))]
    rows += [(name.replace('_', ' '), f'{100 * results[name]:.2f}%')
             for name in ('accuracy', 'mean_class_accuracy', 'macro_f1')]
    rows += [(f'recall {name}', '-' if recall is None else f'{100 * recall:.2f}%')
             for name, recall in zip(label_names, results['per_class_recall'], strict=True)]
    width = max(len(name) for name, _ in rows)
    return '\n'.join(f'{name:<{width}}  {value:>8}' for name, value in rows)


if __name__ == '__main__':
    sys.exit(main())
