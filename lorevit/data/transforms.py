"""The image transforms of training and inference: resize, crop and normalise as the backbone was pre-trained."""
from __future__ import annotations

from torchvision import transforms as T


def image_transforms(data_config: dict, img_size: int, train: bool) -> T.Compose:
    """Resize to the run's size and normalise as the backbone was pre-trained (CLIP or ImageNet)."""
    normalize = [T.ToTensor(), T.Normalize(data_config["mean"], data_config["std"])]
    if train:
        return T.Compose([T.RandomResizedCrop(img_size, scale=(0.8, 1.0), interpolation=T.InterpolationMode.BICUBIC),
                          T.RandomHorizontalFlip(), *normalize])
    return T.Compose([T.Resize(img_size, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(img_size),
                      *normalize])
