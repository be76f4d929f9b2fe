"""From a split to batches: prepare_dataset + fer_collate, and the class-balanced sampler (also under Accelerate)."""
import json

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Image, Value
from torch.utils.data import DataLoader

from timm_dan.data import ClassBalancedSampler, create_transform, fer_collate, load_fer_dataset, prepare_dataset

CFG = {'input_size': (3, 32, 32), 'mean': (0.5, 0.5, 0.5), 'std': (0.5, 0.5, 0.5), 'interpolation': 'bilinear'}


def test_prepare_and_collate(tmp_path):
    ds = load_fer_dataset('synthetic', num_samples=24, image_size=40, seed=1, cache_dir=str(tmp_path))
    prepared = prepare_dataset(ds, {'train': create_transform(CFG, 'rafdb', True),
                                    'validation': create_transform(CFG, None, False)})
    example = prepared['validation'][3]
    assert set(example) == {'pixel_values', 'label'}
    assert example['pixel_values'].shape == (3, 32, 32) and example['label'] == ds['validation'][3]['label']
    x, y = next(iter(DataLoader(prepared['train'], batch_size=5, collate_fn=fer_collate)))
    assert x.shape == (5, 3, 32, 32) and x.dtype == torch.float32
    assert y.dtype == torch.long and y.tolist() == ds['train']['label'][:5]
    # the source dataset is untouched
    assert ds['train'].features['image'] == Image()


@pytest.mark.slow
def test_prepared_dataset_works_in_spawned_workers(tmp_path):
    """Spawned DataLoader workers (macOS, Windows) pickle the dataset together with its transform."""
    ds = load_fer_dataset('synthetic', num_samples=8, image_size=40, seed=1, cache_dir=str(tmp_path))
    prepared = prepare_dataset(ds['validation'], create_transform(CFG))
    spawned = DataLoader(prepared, batch_size=2, collate_fn=fer_collate, num_workers=1,
                         multiprocessing_context='spawn')
    torch.testing.assert_close(next(iter(spawned))[0][1], prepared[1]['pixel_values'])


def test_prepare_reads_path_only_images_and_grayscale(tmp_path):
    import cv2
    path = tmp_path / 'gray.png'
    cv2.imwrite(str(path), np.full((20, 30), 128, np.uint8))
    ds = Dataset.from_dict({'image': [str(path)], 'label': [1]},
                           features=Features({'image': Image(), 'label': ClassLabel(names=['a', 'b'])}))
    identity = {**CFG, 'input_size': (3, 20, 30), 'mean': (0, 0, 0), 'std': (1, 1, 1)}
    x = prepare_dataset(ds, create_transform(identity))[0]['pixel_values']
    assert x.shape == (3, 20, 30)
    torch.testing.assert_close(x, torch.full((3, 20, 30), 128 / 255))


def test_balanced_sampler_balances_and_is_seeded():
    labels = [0] * 90 + [1] * 9 + [2] * 1
    sampler = ClassBalancedSampler(labels, num_samples=3000, seed=7)
    draw = list(sampler)
    counts = np.bincount(np.asarray(labels)[draw], minlength=3)
    assert len(draw) == 3000 and all(abs(c - 1000) < 120 for c in counts), counts
    sampler.set_epoch(0)
    assert list(sampler) == draw  # same seed and epoch: same draw
    assert list(sampler) != draw  # next epoch: a new draw
    assert len(ClassBalancedSampler(labels)) == 100


def _sharded_indices(out_dir):
    from accelerate import Accelerator
    accelerator = Accelerator(cpu=True)
    labels = [0] * 40 + [1] * 8
    dataset = Dataset.from_dict({'i': list(range(48)), 'label': labels},
                                features=Features({'i': Value('int64'), 'label': ClassLabel(num_classes=2)}))
    sampler = ClassBalancedSampler(labels, num_samples=40, seed=3)
    loader = accelerator.prepare(DataLoader(dataset.with_format('torch'), batch_size=4, sampler=sampler))
    epochs = []
    for epoch in range(2):
        loader.set_epoch(epoch)
        epochs.append([batch['i'].tolist() for batch in loader])
    with open(f'{out_dir}/rank{accelerator.process_index}.json', 'w') as f:
        json.dump(epochs, f)


@pytest.mark.slow
def test_balanced_sampler_shards_under_accelerate(tmp_path):
    from accelerate import debug_launcher
    debug_launcher(_sharded_indices, args=(str(tmp_path),), num_processes=2)
    ranks = [json.loads((tmp_path / f'rank{r}.json').read_text()) for r in range(2)]
    for epoch in range(2):
        sampler = ClassBalancedSampler([0] * 40 + [1] * 8, num_samples=40, seed=3)
        sampler.set_epoch(epoch)
        full = list(sampler)
        batches = [full[i:i + 4] for i in range(0, 40, 4)]
        # batches are dealt out in turn: rank r gets batches r, r + 2, ...; together they are the whole draw
        assert ranks[0][epoch] == batches[0::2] and ranks[1][epoch] == batches[1::2]
    assert ranks[0][0] != ranks[0][1]
