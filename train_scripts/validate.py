"""Evaluate a DAN on a FER data set: accuracy, mean class accuracy, macro F1, per-class recall, confusion matrix,
ECE and NLL; valence/arousal CCC, PCC, RMSE and SAGR for a model with a V/A head; accuracy per group.

    python train_scripts/validate.py --model local-dir:runs/rafdb/best --dataset rafdb --data-dir DIR --split test
    python train_scripts/validate.py --model dan_resnet18.affectnet7 --dataset rafdb --data-dir DIR --tta
    python train_scripts/validate.py --model local-dir:runs/rafdb/best --dataset rafdb --data-dir DIR \\
        --group-by gender race age --calibrate --calibration-split train --calibration-fraction 0.1
    accelerate launch train_scripts/validate.py ...      # several processes: every image counted once

`--model` takes `local-dir:` folders, `hf-hub:` ids and registered pretrained tags. Labels are canonical in
every data set, so models evaluate across data sets: a 7-class model on an 8-class set skips the contempt
images (and says how many); an 8-class model on a 7-class set keeps contempt as a possible (wrong) answer.
The evaluation is training's own (`timm_dan.training.predict` and `compute_metrics`); only the splits it uses are
built, and `--device-data` picks the input pipeline as train.py's does.

`--calibrate` fits a softmax temperature (NLL, L-BFGS) on `--calibration-split` (optionally a stratified
`--calibration-fraction` of it), never on the evaluated split nor on a split named test, reports ECE and NLL
before and after on the evaluated split, and writes the temperature into the model folder's config.json: in
place for a `local-dir:` model, or into a copy with `--calibrated-output DIR` (required for other models); the
folder's card gets a Calibration section. `--group-by COLUMN ...` reports accuracy and mean class accuracy per
group of each column (RAF-DB: gender, race, age), the group sizes and the largest gap; `--update-card` writes
them into a `local-dir:` folder's card ("Bias, risks and limitations").
"""
import argparse
import shutil
from pathlib import Path

import timm
import torch
import yaml
from accelerate import Accelerator, DataLoaderConfiguration

import timm_dan
from timm_dan.cpu import exit_now, keep_freed_memory, set_threads
from timm_dan.data import FER_DATASETS, decode_to_arrow, load_fer_dataset
from timm_dan.hub import ModelCardInfo, save_model_folder
from timm_dan.hub.card import format_group_table, update_card_measurements
from timm_dan.models.pretrained import load_pretrained
from timm_dan.precision import PRECISIONS, accelerate_mixed_precision
from timm_dan.training import compute_metrics, predict, resolve_channels_last
from timm_dan.training.config import DEVICE_DATA
from timm_dan.training.data import VA_COLUMNS, create_eval_loader, wants_device_data
from timm_dan.training.reporting import (
    calibrate_outputs,
    calibration_summary,
    measure_groups,
    write_confusion_matrix,
    write_reliability_diagram,
    write_temperature,
)


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
    parser.add_argument('--output-json', default=None, help='write the metrics here (and the PNGs beside it)')
    parser.add_argument('--group-by', nargs='+', default=[], metavar='COLUMN',
                        help='accuracy per group of these columns (e.g. RAF-DB: gender race age)')
    parser.add_argument('--update-card', action='store_true',
                        help='write the --group-by figures into the local-dir: folder\'s README.md')
    calibration = parser.add_argument_group('calibration')
    calibration.add_argument('--calibrate', action='store_true',
                             help='fit a softmax temperature and write it into the model folder\'s config.json')
    calibration.add_argument('--calibration-split', default='validation',
                             help='the split the temperature is fitted on (never the evaluated one, never test)')
    calibration.add_argument('--calibration-fraction', type=float, default=None,
                             help='fit on a stratified hold-out of this fraction of --calibration-split (e.g. 0.1 '
                                  'of train), drawn with --seed')
    calibration.add_argument('--seed', type=int, default=42, help='of the --calibration-fraction hold-out')
    calibration.add_argument('--calibrated-output', default=None, metavar='DIR',
                             help='write the calibrated model to this new folder instead of into the local-dir: one')
    return parser


def _check_calibration_args(args, splits) -> None:
    if args.calibration_split not in splits:
        raise SystemExit(f'error: --calibration-split {args.calibration_split!r}: {args.dataset} has splits {splits}')
    if args.calibration_split == args.split or args.calibration_split == 'test':
        raise SystemExit(f'error: --calibration-split {args.calibration_split!r}: a temperature is never fitted on '
                         f'the evaluated split nor on a test split; use a validation split or a '
                         f'--calibration-fraction of train')
    if args.calibration_fraction is not None and not 0 < args.calibration_fraction < 1:
        raise SystemExit(f'error: --calibration-fraction must be in (0, 1), got {args.calibration_fraction}')
    if not args.model.startswith('local-dir:') and not args.calibrated_output:
        raise SystemExit(f'error: --calibrate with {args.model}: give --calibrated-output DIR (only a local-dir: '
                         f'folder can be updated in place)')


def _matching_classes(dataset, num_classes: int):
    """The split restricted to the model's classes, and a note of what was skipped."""
    data_labels = dataset.features['label'].names
    if len(data_labels) <= num_classes:
        return dataset, None
    dropped = sum(1 for label in dataset['label'] if label >= num_classes)
    note = (f'the model has {num_classes} classes: skipped {dropped} images of '
            f'{", ".join(data_labels[num_classes:])}')
    return dataset.filter(lambda label: label < num_classes, input_columns='label'), note


def _write_calibrated(args, model, temperature: float, calibration: dict, groups: dict, label_names) -> str:
    """Store the temperature (and the card's measurements); return what was written, for the user."""
    source = Path(args.model[len('local-dir:'):]) if args.model.startswith('local-dir:') else None
    if args.calibrated_output:
        target = Path(args.calibrated_output)
        if target.exists():
            raise SystemExit(f'error: --calibrated-output {target} exists; choose a new folder')
        if source is not None:
            shutil.copytree(source, target)
        else:
            card = ModelCardInfo(model_name=f'{args.model} (calibrated)', datasets=[args.dataset],
                                 label_names=tuple(label_names), load_name=f'local-dir:{target}',
                                 description=f'{args.model}, temperature-scaled with train_scripts/validate.py.')
            save_model_folder(model, target, card=card, model_config={'label_names': list(label_names)})
        where = f'{target}/config.json (a copy; {args.model} is unchanged)'
    else:
        target = source
        where = f'{target}/config.json (in place)'
    write_temperature(target, temperature)
    _update_card(target, calibration, groups)
    return where


def _update_card(folder: Path, calibration, groups) -> None:
    readme = folder / 'README.md'
    if readme.is_file():
        readme.write_text(update_card_measurements(readme.read_text(encoding='utf-8'), calibration, groups),
                          encoding='utf-8')


def format_table(results: dict, label_names: list) -> str:
    rows = [('images', str(results['num_samples']))]
    rows += [(name.replace('_', ' '), f'{100 * results[name]:.2f}%')
             for name in ('accuracy', 'mean_class_accuracy', 'macro_f1')]
    rows += [(f'recall {name}', '-' if recall is None else f'{100 * recall:.2f}%')
             for name, recall in zip(label_names, results['per_class_recall'], strict=True)]
    rows += [('ECE (15 bins)', f'{100 * results["ece"]:.2f}%'), ('NLL', f'{results["nll"]:.4f}')]
    if results.get('va_ccc') is not None:
        rows.append(('images with V/A', str(results['num_va_samples'])))
        rows += [(f'{dim} {m.upper()}', f'{results[f"{dim}_{m}"]:.4f}')
                 for dim in ('valence', 'arousal') for m in ('ccc', 'pcc', 'rmse', 'sagr')]
    width = max(len(name) for name, _ in rows)
    return '\n'.join(f'{name:<{width}}  {value:>8}' for name, value in rows)


def format_calibration(calibration: dict) -> str:
    lines = [f'temperature {calibration["temperature"]:.4f} (fitted on {calibration["fitted_on"]})']
    for entry in calibration['splits'].values():
        b, a = entry['before'], entry['after']
        lines.append(f'  {entry["split"]}: ECE {100 * b["ece"]:.2f}% -> {100 * a["ece"]:.2f}%, '
                     f'NLL {b["nll"]:.4f} -> {a["nll"]:.4f}')
    return '\n'.join(lines)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    info = FER_DATASETS[args.dataset]
    if info.needs_data_dir and not (args.data_dir and Path(args.data_dir).is_dir()):
        raise SystemExit(f'error: --data-dir {args.data_dir} is not a folder; {args.dataset} needs its data')
    if args.update_card and not args.model.startswith('local-dir:'):
        raise SystemExit('error: --update-card writes into a local-dir: folder\'s README.md')
    args.split = args.split or ('test' if 'test' in info.splits else 'validation')
    if args.split not in info.splits:
        raise SystemExit(f'error: {args.dataset} has the splits {list(info.splits)}, not {args.split!r}')
    if args.calibrate:
        _check_calibration_args(args, list(info.splits))
    accelerator = Accelerator(mixed_precision=accelerate_mixed_precision(args.precision),
                              dataloader_config=DataLoaderConfiguration(non_blocking=True))
    threads = set_threads(args.threads)
    if accelerator.device.type == 'cpu':
        keep_freed_memory()
    channels_last = resolve_channels_last(None)
    try:
        model = load_pretrained(args.model).eval()
    except Exception as e:  # a missing folder, an unknown name, weights neither cached nor downloadable
        raise SystemExit(f'error: could not load --model {args.model}: {e}') from None
    num_classes = model.num_classes
    wanted = [args.split] + ([args.calibration_split] if args.calibrate else [])
    with accelerator.main_process_first():  # only the splits used are built (decoded and cached)
        try:
            data = load_fer_dataset(args.dataset, args.data_dir, splits=wanted, **args.dataset_options)
        except (OSError, ValueError, TypeError) as e:  # the layout, a bad label line, an unknown option
            raise SystemExit(f'error: {e}') from None
    missing = [c for c in args.group_by if c not in data[args.split].column_names]
    if missing:
        raise SystemExit(f'error: --group-by {" ".join(missing)}: {args.dataset} {args.split} has columns '
                         f'{", ".join(data[args.split].column_names)}')
    dataset, note = _matching_classes(data[args.split], num_classes)
    notes = [note] if note else []
    data_labels = dataset.features['label'].names
    if len(data_labels) < num_classes:
        notes.append(f'the data set has {len(data_labels)} classes; the model may still answer '
                     f'{", ".join(timm_dan.LABELS[len(data_labels):num_classes])} (always wrong here)')
    label_names = list(timm_dan.LABELS[:max(num_classes, len(data_labels))])

    data_config = timm.data.resolve_model_data_config(model)
    if args.image_size:
        data_config['input_size'] = (data_config['input_size'][0], args.image_size, args.image_size)
    columns = VA_COLUMNS if getattr(model, 'has_va', False) and set(VA_COLUMNS) <= set(dataset.column_names) else ()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    model = accelerator.prepare(model)
    data_notes = []

    def outputs_of(split, name: str):
        if wants_device_data(args.device_data, accelerator.device):
            with accelerator.main_process_first():
                split = decode_to_arrow(split)
        loader, normalize, data_note = create_eval_loader(split, data_config, args.batch_size, args.device_data,
                                                          accelerator.device, num_workers=args.num_workers,
                                                          name=name, columns=columns)
        data_notes.append(data_note)
        return predict(accelerator, model, accelerator.prepare(loader), normalize, channels_last=channels_last,
                       tta=args.tta)

    outputs = {'evaluated': outputs_of(dataset, args.split)}
    results = compute_metrics(outputs['evaluated'], len(label_names))
    split_names = {'evaluated': args.split}
    calibration = None
    temperature = getattr(accelerator.unwrap_model(model), 'temperature', None)
    if args.calibrate:
        fit_on, _ = _matching_classes(data[args.calibration_split], num_classes)
        split_names['validation'] = args.calibration_split
        if args.calibration_fraction:
            fit_on = fit_on.train_test_split(test_size=args.calibration_fraction, stratify_by_column='label',
                                             seed=args.seed)['test']
            split_names['validation'] = (f'{args.calibration_split} ({args.calibration_fraction:.0%} stratified '
                                         f'hold-out, seed {args.seed})')
        outputs['validation'] = outputs_of(fit_on, args.calibration_split)
        calibration = calibrate_outputs(outputs, split_names)
    elif temperature is not None:  # already calibrated: report the temperature the folder stores
        calibration = calibrate_outputs({'evaluated': outputs['evaluated']}, split_names, temperature=temperature)
        calibration['fitted_on'] = "an earlier split, stored in the model's config.json"
    groups = measure_groups(outputs['evaluated'], dataset, len(label_names), args.group_by) if args.group_by else {}

    if accelerator.is_main_process:
        title = f'{args.model} on {args.dataset} {args.split}' + (' (TTA)' if args.tta else '')
        print(title)
        for text in [*notes, data_notes[0], f'compute threads per process: {threads}']:
            print(f'note: {text}')
        print(format_table(results, label_names))
        if calibration:
            print(format_calibration(calibration))
        if groups:
            print(format_group_table(f'{args.dataset} {args.split}', groups))
        written = None
        card_groups = {f'{args.dataset} {args.split}': groups} if groups else {}
        if args.calibrate:
            written = _write_calibrated(args, accelerator.unwrap_model(model), calibration['temperature'],
                                        calibration_summary(calibration), card_groups, label_names)
            print(f'wrote temperature {calibration["temperature"]:.4f} into {written}')
        elif args.update_card and groups:
            _update_card(Path(args.model[len('local-dir:'):]), None, card_groups)
            print(f'wrote the per-group figures into {args.model[len("local-dir:"):]}/README.md')
        if args.output_json:
            out = Path(args.output_json)
            out.parent.mkdir(parents=True, exist_ok=True)
            record = {'model': args.model, 'dataset': args.dataset, 'split': args.split, 'tta': args.tta,
                      'notes': notes}
            if calibration:
                record['calibration'] = {**calibration_summary(calibration), 'written_to': written}
                write_reliability_diagram(out.parent, calibration, 'evaluated', title,
                                          stem=f'{out.stem}_reliability')
            if groups:
                record['groups'] = groups
            write_confusion_matrix(out.parent, {**record, **results}, label_names, title, stem=out.stem)
            print(f'wrote {out} and {out.with_suffix(".png")}' + (
                f' and {out.stem}_reliability.png' if calibration else ''))
    return 0


if __name__ == '__main__':
    exit_now(main())
