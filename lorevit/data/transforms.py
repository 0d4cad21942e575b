"""The image transforms of training and inference: resize, crop and normalise as the backbone was pre-trained."""
from __future__ import annotations

from torchvision import transforms as T


TRANSFORM_PRESETS = ("default", "vtab", "vpt-fgvc")


def image_transforms(data_config: dict, img_size: int, train: bool, preset: str = "default") -> T.Compose:
    """Resize to the run's size and normalise as the backbone was pre-trained (CLIP or ImageNet).

    ``preset`` (config key ``transforms``; BASELINES_VISION §0, §B2), always with the backbone's normalisation:
    ``default``: train RandomResizedCrop(0.8–1) + flip, test Resize + CenterCrop; ``vtab``: NOAH's direct bicubic
    resize to img_size², no augmentation (train = test); ``vpt-fgvc``: VPT's Resize(256) → RandomCrop(224) → flip
    for training, Resize(256) → CenterCrop(224) for testing, scaled to img_size (256/224 of it)."""
    normalize = [T.ToTensor(), T.Normalize(data_config["mean"], data_config["std"])]
    if preset not in TRANSFORM_PRESETS:
        raise ValueError(f"transforms must be one of {TRANSFORM_PRESETS}, got {preset!r}")
    if preset == "vtab":
        return T.Compose([T.Resize((img_size, img_size), interpolation=T.InterpolationMode.BICUBIC), *normalize])
    if preset == "vpt-fgvc":
        resize = T.Resize(round(img_size * 256 / 224))
        crop = T.Compose([T.RandomCrop(img_size), T.RandomHorizontalFlip(0.5)]) if train else T.CenterCrop(img_size)
        return T.Compose([resize, crop, *normalize])
    if train:
        return T.Compose([T.RandomResizedCrop(img_size, scale=(0.8, 1.0), interpolation=T.InterpolationMode.BICUBIC),
                          T.RandomHorizontalFlip(), *normalize])
    return T.Compose([T.Resize(img_size, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(img_size),
                      *normalize])


def eval_transform_description(img_size: int, preset: str = "default") -> dict[str, str]:
    """What :func:`image_transforms` does to a test image, in words (an adapter's and an ONNX file's metadata):
    ``transforms`` (the preset), ``resize`` and ``crop``."""
    if preset not in TRANSFORM_PRESETS:
        raise ValueError(f"transforms must be one of {TRANSFORM_PRESETS}, got {preset!r}")
    if preset == "vtab":
        return {"transforms": preset, "resize": f"to {img_size}x{img_size} (bicubic, aspect ratio not kept)",
                "crop": "none"}
    if preset == "vpt-fgvc":
        return {"transforms": preset, "resize": f"shorter side to {round(img_size * 256 / 224)} (bilinear)",
                "crop": f"centre {img_size}x{img_size}"}
    return {"transforms": preset, "resize": f"shorter side to {img_size} (bicubic)", "crop": f"centre {img_size}x{img_size}"}
