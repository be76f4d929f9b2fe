"""int8 against fp32 on a trained model (issue 12): top-1 agreement and mean |dp| of `FERPredictor(precision='int8')`
(onnxruntime static QDQ) against `precision='fp32'`, on the validation faces of the demo data set and on real
`lfw_subset()` crops, plus each one's accuracy on the validation faces.

Calibration uses face crops the evaluation does not. Three int8 models are measured: one calibrated on the first
`--calibration` faces of the train split only (synthetic drawings: the LFW photos lie outside its ranges), and two
calibrated on as many in all, half of them `lfw_subset()` crops, as a user calibrates on crops like the ones served:
one on crops 0-49 and 100-149 (faces and non-faces), one on the other half. Each LFW crop is scored by the model
that was not calibrated on it (two-fold cross-fitting), so all 200 crops are held out.

    python benchmarks/int8_agreement.py --model local-dir:runs/synthetic/best [--json OUT]
"""
import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml  # noqa: E402

from benchmarks.harness import DEMO_CONFIG  # noqa: E402
from timm_dan.data import load_fer_dataset  # noqa: E402
from timm_dan.inference import FERPredictor  # noqa: E402


def probabilities(predictor: FERPredictor, faces: list[np.ndarray]) -> np.ndarray:
    return np.array([list(r.faces[0].probs.values()) for r in predictor.predict(faces)])


def agreement(p32: np.ndarray, p8: np.ndarray) -> dict:
    """Top-1 agreement, mean and max |dp|, and for the faces whose class changed the fp32 gap between their two
    likeliest classes (near-ties flip first)."""
    top2 = np.sort(p32, 1)[:, -2:]
    changed = p32.argmax(1) != p8.argmax(1)
    return {'top1_agreement': float(1 - changed.mean()), 'mean_abs_dp': float(np.abs(p32 - p8).mean()),
            'max_abs_dp': float(np.abs(p32 - p8).max()),
            'changed_fp32_top2_gaps': sorted(round(float(g), 4) for g in (top2[:, 1] - top2[:, 0])[changed]),
            'faces_with_gap_under_0.02': int((top2[:, 1] - top2[:, 0] < 0.02).sum())}


def rgb(images: Iterable[Image.Image]) -> list[np.ndarray]:
    """PIL images as RGB uint8 arrays (the predictor's and the calibration's input)."""
    return [np.asarray(image.convert('RGB')) for image in images]


def demo_faces() -> tuple[dict[str, list[np.ndarray]], np.ndarray, Any]:
    """The faces int8 is scored on ({'validation': the demo's 1000 validation faces, 'lfw_subset': 200 LFW crops}),
    the validation labels, and the demo's train split (to calibrate on)."""
    from skimage.data import lfw_subset

    data = load_fer_dataset('synthetic', **yaml.safe_load(DEMO_CONFIG.read_text())['dataset_options'])  # the demo's
    validation = rgb(data['validation']['image'])
    lfw = [(np.repeat(face[..., None], 3, 2) * 255 + .5).astype(np.uint8) for face in lfw_subset()]
    return {'validation': validation, 'lfw_subset': lfw}, np.array(data['validation']['label']), data['train']


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', default='local-dir:runs/synthetic/best')
    parser.add_argument('--calibration', type=int, default=256, help='train faces to calibrate on')
    parser.add_argument('--json', default=None)
    args = parser.parse_args()
    evaluated, labels, train_split = demo_faces()
    to_rgb, lfw = evaluated['validation'], evaluated['lfw_subset']
    halves = (np.r_[0:50, 100:150], np.r_[50:100, 150:200])
    fp32 = FERPredictor(args.model, detector='none', precision='fp32')
    p32 = {name: probabilities(fp32, faces) for name, faces in evaluated.items()}
    results = {'model': args.model, 'calibration_faces': args.calibration}
    cross_fitted = np.zeros_like(p32['lfw_subset'])
    for calibration, lfw_part, held_out in (('synthetic', [], None), ('synthetic+lfw half 1', *halves),
                                            ('synthetic+lfw half 2', *halves[::-1])):
        extra = [lfw[i] for i in lfw_part]
        train = train_split.select(range(args.calibration - len(extra)))['image']
        int8 = FERPredictor(args.model, detector='none', precision='int8',
                            calibration=rgb(train) + extra)
        p8 = {name: probabilities(int8, faces) for name, faces in evaluated.items()}
        rows = results[f'calibrated on {calibration}'] = {'validation': {
            'faces': len(to_rgb), **agreement(p32['validation'], p8['validation']),
            'accuracy_fp32': float((p32['validation'].argmax(1) == labels).mean()),
            'accuracy_int8': float((p8['validation'].argmax(1) == labels).mean())}}
        if held_out is None:  # all of LFW is held out
            rows['lfw_subset'] = {'faces': len(lfw), **agreement(p32['lfw_subset'], p8['lfw_subset'])}
        else:
            rows['lfw_held_out'] = {'faces': len(held_out),
                                    **agreement(p32['lfw_subset'][held_out], p8['lfw_subset'][held_out])}
            cross_fitted[held_out] = p8['lfw_subset'][held_out]
    results['synthetic+lfw, cross-fitted'] = {'lfw_subset': {'faces': len(lfw),
                                                             **agreement(p32['lfw_subset'], cross_fitted)}}
    print(json.dumps(results, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == '__main__':
    main()
