"""issue 25 §4: the users' own backbone files just work — a local weights file without a classifier head (every
DINO/DINOv2/MAE/CLIP-visual export), with a head of another size, or in a raw layout timm's checkpoint_filter_fn
converts (DINOv2's ``mask_token``) loads with a note; the ViT's features equal those of the weights saved."""
import pytest
import torch
from safetensors.torch import save_file

from lorevit.backbone import create_backbone
from lorevit.weights import WeightsError
from lorevit.weights.errors import WeightsNote

from ..conftest import TINY_KWARGS, TINY_SIZE, TINY_VIT


def _source():
    torch.manual_seed(3)  # weights unlike create_backbone's "random" (seed 0): a load that did nothing is seen
    vit = create_backbone(TINY_VIT, "random", TINY_SIZE, **TINY_KWARGS)
    for p in vit.parameters():
        p.data.normal_(0, 0.2)
    return vit


def _state(vit):
    return {k.removeprefix("vit."): v.clone().contiguous() for k, v in vit.state_dict().items()}


def _tokens(vit, x):
    with torch.no_grad():
        return vit.vit.forward_features(x)


CASES = {
    "no head": lambda sd: {k: v for k, v in sd.items() if not k.startswith("head.")},
    "another head size": lambda sd: {**{k: v for k, v in sd.items() if not k.startswith("head.")},
                                     "head.weight": torch.zeros(10, 32), "head.bias": torch.zeros(10)},
    "raw DINOv2 layout": lambda sd: {**{k: v for k, v in sd.items() if not k.startswith("head.")},
                                     "mask_token": torch.zeros(1, 32)},
}


@pytest.mark.parametrize("case", CASES)
def test_local_backbone_files_load_with_a_note(tmp_path, case):
    source = _source()
    sd = _state(source)
    assert "head.weight" in sd, "the tiny ViT must have a head for this test to mean anything"
    path = tmp_path / "backbone.safetensors"
    save_file(CASES[case](sd), str(path))
    with pytest.warns(WeightsNote) as notes:
        vit = create_backbone(TINY_VIT, str(path), TINY_SIZE, **TINY_KWARGS)
    text = " ".join(str(n.message) for n in notes)
    assert str(path) in text and ("head" in text or "checkpoint_filter_fn" in text)
    x = torch.randn(2, 3, TINY_SIZE, TINY_SIZE, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(_tokens(vit, x), _tokens(source, x), rtol=0, atol=0)


def test_a_file_of_another_architecture_is_still_refused(tmp_path):
    sd = {k: v for k, v in _state(_source()).items() if not k.startswith("blocks.1.")}  # a block missing
    path = tmp_path / "short.safetensors"
    save_file(sd, str(path))
    with pytest.raises(WeightsError, match=r"missing keys \(blocks\.1\."):
        create_backbone(TINY_VIT, str(path), TINY_SIZE, **TINY_KWARGS)
