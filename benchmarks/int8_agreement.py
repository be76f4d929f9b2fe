"""int8 against fp32 on a trained model (issue 12): top-1 agreement and mean |dp| of `FERPredictor(precision='int8')`
(onnxruntime static QDQ) against `precision='fp32'`, on the validation faces of the demo data set and on real
`lfw_subset()` crops, plus each one's accuracy on the validation faces.

Calibration uses face crops the evaluation does not: the first `--calibration` faces of the train split.

    python benchmarks/int8_agreement.py --model local-dir:runs/synthetic/best [--json OUT]
"""
import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timm_dan.data import load_fer_dataset  # noqa: E402
from timm_dan.inference import FERPredictor  # noqa: E402

DEMO_DATA = {'num_samples': 4000, 'num_validation_samples': 1000, 'image_size': 64, 'num_classes': 8, 'seed': 0}


def probabilities(predictor: FERPredictor, faces: list[np.ndarray]) -> np.ndarray:
    return np.array([list(r.faces[0].probs.values()) for r in predictor.predict(faces)])


def agreement(p32: np.ndarray, p8: np.ndarray) -> dict[str, float]:
    return {'top1_agreement': float((p32.argmax(1) == p8.argmax(1)).mean()),
            'mean_abs_dp': float(np.abs(p32 - p8).mean()), 'max_abs_dp': float(np.abs(p32 - p8).max())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', default='local-dir:runs/synthetic/best')
    parser.add_argument('--calibration', type=int, default=256, help='train faces to calibrate on')
    parser.add_argument('--json', default=None)
    args = parser.parse_args()
    from skimage.data import lfw_subset

    data = load_fer_dataset('synthetic', **DEMO_DATA)
    to_rgb = [np.asarray(image.convert('RGB')) for image in data['validation']['image']]
    labels = np.array(data['validation']['label'])
    lfw = [(np.repeat(face[..., None], 3, 2) * 255 + .5).astype(np.uint8) for face in lfw_subset()]
    with tempfile.TemporaryDirectory() as tmp:
        for i, image in enumerate(data['train'].select(range(args.calibration))['image']):
            image.convert('RGB').save(Path(tmp) / f'{i:04d}.png')
        int8 = FERPredictor(args.model, detector='none', precision='int8', calibration=tmp)
    fp32 = FERPredictor(args.model, detector='none', precision='fp32')
    results = {'model': args.model, 'calibration_faces': args.calibration}
    for name, faces in (('validation', to_rgb), ('lfw_subset', lfw)):
        p32, p8 = probabilities(fp32, faces), probabilities(int8, faces)
        results[name] = {'faces': len(faces), **agreement(p32, p8)}
        if name == 'validation':
            results[name].update(accuracy_fp32=float((p32.argmax(1) == labels).mean()),
                                 accuracy_int8=float((p8.argmax(1) == labels).mean()))
    print(json.dumps(results, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == '__main__':
    main()
