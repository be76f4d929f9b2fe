"""A saved model evaluated in this process, without the training script's loaders: plain transforms and one batch."""
import timm
import torch

import timm_dan  # noqa: F401  (registers the dan_* models)
from timm_dan.data import create_transform, fer_collate, load_fer_dataset, prepare_dataset


def synthetic_validation_predictions(folder, num_samples: int, num_validation_samples: int
                                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """(predictions, labels) of the `local-dir:` model in `folder` on the 32 px synthetic validation split."""
    model = timm.create_model(f'local-dir:{folder}', pretrained=True).eval()
    data = load_fer_dataset('synthetic', num_samples=num_samples, num_validation_samples=num_validation_samples,
                            image_size=32, num_classes=8, seed=0)['validation']
    data_config = {**timm.data.resolve_model_data_config(model), 'input_size': (3, 32, 32)}
    prepared = prepare_dataset(data, create_transform(data_config, is_training=False))
    images, labels = fer_collate([prepared[i] for i in range(len(prepared))])
    with torch.no_grad():
        return model(images).argmax(1), labels
