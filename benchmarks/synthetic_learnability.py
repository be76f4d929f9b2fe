"""Is the synthetic FER set learnable but not trivial? DAN from scratch vs a linear model on raw pixels.

    OMP_NUM_THREADS=2 PYTHONPATH=. python benchmarks/synthetic_learnability.py --epochs 10

Also prints the process CPU time: on a loaded machine, CPU seconds / 2 (with OMP_NUM_THREADS=1, / 1.8 or so
for two cores' real scaling) estimates the wall time of an unloaded 2-core run.

Trains `dan_resnet18` from scratch (no pretrained weights) with DANLoss and AdamW on CPU (channels_last,
bf16 autocast), then fits scikit-learn's LogisticRegression on the raw pixels of the same split, and prints
both validation accuracies and the wall times.
"""
import argparse
import time

import numpy as np
import timm
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from torch.utils.data import DataLoader

import timm_dan
from timm_dan.data import create_transform, fer_collate, load_fer_dataset, prepare_dataset

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument('--num-samples', type=int, default=4000)
parser.add_argument('--image-size', type=int, default=64)
parser.add_argument('--num-classes', type=int, default=8)
parser.add_argument('--epochs', type=int, default=10, help='0: only the linear baseline (10: the training demo)')
parser.add_argument('--batch-size', type=int, default=64)
parser.add_argument('--lr', type=float, default=2e-3)
parser.add_argument('--weight-decay', type=float, default=0.05)
parser.add_argument('--seed', type=int, default=0)
parser.add_argument('--no-bf16', action='store_true')
parser.add_argument('--skip-linear', action='store_true')


def evaluate(model, loader, bf16: bool, num_classes: int) -> tuple[float, np.ndarray]:
    """Validation accuracy and the per-class recall."""
    model.eval()
    correct, total = np.zeros(num_classes), np.zeros(num_classes)
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
        for x, y in loader:
            hit = model(x.contiguous(memory_format=torch.channels_last)).argmax(1) == y
            np.add.at(correct, y.numpy(), hit.numpy())
            np.add.at(total, y.numpy(), 1)
    return correct.sum() / total.sum(), correct / np.maximum(total, 1)


def linear_baseline(ds) -> float:
    def arrays(split):
        x = np.stack([np.asarray(im, np.float32).ravel() for im in ds[split]['image']])
        return x / 255, np.asarray(ds[split]['label'])
    (xt, yt), (xv, yv) = arrays('train'), arrays('validation')
    scaler = StandardScaler().fit(xt)
    clf = LogisticRegression(max_iter=200, C=0.01).fit(scaler.transform(xt), yt)
    return clf.score(scaler.transform(xv), yv)


def main():
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    bf16 = not args.no_bf16
    t0 = time.time()
    ds = load_fer_dataset('synthetic', num_samples=args.num_samples, image_size=args.image_size,
                          num_classes=args.num_classes, seed=args.seed)
    print(f'data: {ds["train"].num_rows} train / {ds["validation"].num_rows} validation at {args.image_size}px, '
          f'{time.time() - t0:.1f}s to generate or load', flush=True)

    if not args.skip_linear:
        t1 = time.time()
        print(f'linear (LogisticRegression on raw pixels): val acc {linear_baseline(ds):.4f} '
              f'({time.time() - t1:.1f}s)', flush=True)

    if args.epochs == 0:
        return
    model = timm.create_model('dan_resnet18', num_classes=args.num_classes).to(memory_format=torch.channels_last)
    assert isinstance(model, timm_dan.DAN)
    loss_fn = timm_dan.DANLoss(args.num_classes, feat_dim=model.num_features)
    data_config = {**timm.data.resolve_model_data_config(model), 'input_size': (3, args.image_size, args.image_size)}
    prepared = prepare_dataset(ds, {'train': create_transform(data_config, 'synthetic', is_training=True),
                                    'validation': create_transform(data_config, 'synthetic', is_training=False)})
    train_loader = DataLoader(prepared['train'], batch_size=args.batch_size, shuffle=True, drop_last=True,
                              collate_fn=fer_collate)
    val_loader = DataLoader(prepared['validation'], batch_size=256, collate_fn=fer_collate)
    params = list(model.parameters()) + list(loss_fn.parameters())
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, args.lr, total_steps=args.epochs * len(train_loader),
                                                    pct_start=0.15)
    t2, c2 = time.time(), time.process_time()
    for epoch in range(args.epochs):
        model.train()
        for x, y in train_loader:
            with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
                out = model.forward_train(x.contiguous(memory_format=torch.channels_last))
            loss = loss_fn(out._replace(logits=out.logits.float(), features=out.features.float(),
                                        heads=out.heads.float()), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        acc, recall = evaluate(model, val_loader, bf16, args.num_classes)
        print(f'epoch {epoch + 1}/{args.epochs}: loss {loss.item():.3f} DAN val acc {acc:.4f} '
              f'({time.time() - t2:.0f}s wall, {time.process_time() - c2:.0f}s CPU)', flush=True)
    print(f'DAN (dan_resnet18 from scratch): val acc {acc:.4f}, {time.time() - t2:.0f}s training wall '
          f'({time.process_time() - c2:.0f}s CPU), {time.time() - t0:.0f}s total', flush=True)
    print('per-class recall: ' + ', '.join(f'{name} {r:.3f}' for name, r in zip(timm_dan.LABELS, recall)), flush=True)


if __name__ == '__main__':
    main()
