"""Video propagation against a direct transcription of DINO's ``label_propagation`` (eval_video_segmentation.py),
on random features with *different* context frames, and ``--normalisation dino`` reaching the frames (issue 25 §5).

The transcription keeps DINO's own layout: target features (h·w, dim), sources (ncontext, dim, h·w), the
affinity (ncontext, h·w target, h·w source) masked by ``restrict_neighborhood`` [query, key], transposed to
(ncontext·h·w source, h·w target), one joint top-k over *all* context frames per target column, values below
the k-th zeroed, each column normalised, then ``segs (C, ncontext·h·w) @ aff``.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lorevit.cli import main
from lorevit.tasks.video.propagate import PropagationConfig, Propagator, neighbourhood, propagate_step

from ..conftest import TINY_KWARGS, TINY_VIT
from .video_fixtures import H, moving_squares, write_davis


def dino_restrict_neighborhood(h, w, size):
    mask = torch.zeros(h, w, h, w)
    for i in range(h):
        for j in range(w):
            for p in range(2 * size + 1):
                for q in range(2 * size + 1):
                    if i - size + p < 0 or i - size + p >= h:
                        continue
                    if j - size + q < 0 or j - size + q >= w:
                        continue
                    mask[i, j, i - size + p, j - size + q] = 1
    return mask.reshape(h * w, h * w)


def dino_label_propagation(feat_tar, list_frame_feats, list_segs, h, w, topk, size_mask_neighborhood):
    """DINO's label_propagation, line for line (feature extraction left out): feat_tar (h·w, dim),
    list_frame_feats [(dim, h·w)], list_segs [(1, C, h, w)]. Returns (1, C, h, w) and the target's (dim, h·w)."""
    return_feat_tar = feat_tar.T  # dim x h*w
    ncontext = len(list_frame_feats)
    feat_sources = torch.stack(list_frame_feats)  # nmb_context x dim x h*w
    feat_tar = F.normalize(feat_tar, dim=1, p=2)
    feat_sources = F.normalize(feat_sources, dim=1, p=2)
    feat_tar = feat_tar.unsqueeze(0).repeat(ncontext, 1, 1)
    aff = torch.exp(torch.bmm(feat_tar, feat_sources) / 0.1)  # nmb_context x h*w (tar: query) x h*w (source: keys)
    if size_mask_neighborhood > 0:
        mask_neighborhood = dino_restrict_neighborhood(h, w, size_mask_neighborhood)
        mask_neighborhood = mask_neighborhood.unsqueeze(0).repeat(ncontext, 1, 1)
        aff *= mask_neighborhood
    aff = aff.transpose(2, 1).reshape(-1, h * w)  # nmb_context*h*w (source: keys) x h*w (tar: queries)
    tk_val, _ = torch.topk(aff, dim=0, k=topk)
    tk_val_min, _ = torch.min(tk_val, dim=0)
    aff[aff < tk_val_min] = 0
    aff = aff / torch.sum(aff, keepdim=True, axis=0)
    segs = torch.cat(list_segs)
    nmb_context, C, h, w = segs.shape
    segs = segs.reshape(nmb_context, C, -1).transpose(2, 1).reshape(-1, C).T  # C x nmb_context*h*w
    seg_tar = torch.mm(segs, aff)
    return seg_tar.reshape(1, C, h, w), return_feat_tar


@pytest.mark.parametrize("size", [0, 1, 2])
def test_propagate_step_equals_dinos_label_propagation_on_different_context_frames(size):
    torch.manual_seed(0)
    h, w, d, C, K = 4, 5, 6, 3, 3
    raw_context = [torch.randn(h * w, d) for _ in range(K)]  # three *different* frames
    labels = [torch.softmax(torch.randn(C, h, w) * 3, dim=0) for _ in range(K)]  # soft labels, not one-hot
    raw_target = torch.randn(h * w, d) * 2.5  # not normalised: both normalise per token
    expected, _ = dino_label_propagation(raw_target.double(), [f.T.double() for f in raw_context],
                                         [s[None].double() for s in labels], h, w, topk=5, size_mask_neighborhood=size)
    context = torch.stack([F.normalize(f.double(), dim=1) for f in raw_context])  # K, N, d
    soft = propagate_step(F.normalize(raw_target.double(), dim=1), context,
                          torch.stack([s.reshape(C, -1).double() for s in labels]),
                          neighbourhood((h, w), size).double() if size else None, topk=5, temperature=0.1)
    torch.testing.assert_close(soft.reshape(1, C, h, w), expected, rtol=1e-9, atol=1e-12)
    # the test can tell: one context frame alone, or the frames' top-k taken one by one, give other labels
    alone, _ = dino_label_propagation(raw_target.double(), [raw_context[0].T.double()], [labels[0][None].double()],
                                      h, w, topk=5, size_mask_neighborhood=size)
    assert (alone - expected).abs().max() > 1e-3


def test_propagator_follows_dinos_queue_over_a_sequence():
    """The first frame plus the n_last_frames latest frames as context, the oldest dropped first (DINO's queue)."""
    torch.manual_seed(1)
    h, w, d, C = 3, 4, 5, 2
    cfg = PropagationConfig(n_last_frames=2, size_mask_neighborhood=1, topk=3)
    frames = [torch.randn(h, w, d) for _ in range(6)]
    first_seg = F.one_hot(torch.randint(0, C, (h, w)), C).permute(2, 0, 1).float()  # C, h, w
    propagator = Propagator(frames[0], first_seg, cfg)
    first_feat = frames[0].reshape(-1, d).T  # dim x h*w, as DINO keeps it
    queue: list = []
    for frame in frames[1:]:
        used_feats = [first_feat] + [f for f, _ in queue]
        used_segs = [first_seg[None]] + [s for _, s in queue]
        expected, feat_tar = dino_label_propagation(frame.reshape(-1, d), used_feats, used_segs, h, w,
                                                    cfg.topk, cfg.size_mask_neighborhood)
        if len(queue) == cfg.n_last_frames:
            queue.pop(0)
        queue.append((feat_tar, expected))
        torch.testing.assert_close(propagator.step(frame)[None], expected, rtol=1e-5, atol=1e-6)


def test_normalisation_dino_reaches_the_frames(tmp_path, monkeypatch):
    """``--normalisation dino``: every frame enters the ViT as (x − ImageNet mean) / (0.228, 0.224, 0.225);
    the default uses the backbone's own mean/std (the tiny timm ViT's 0.5/0.5)."""
    import lorevit.tasks.video.propagate as propagate

    davis = write_davis(tmp_path, {"squares-a": moving_squares(3, 0)})
    seen = []
    original = propagate.load_frame
    monkeypatch.setattr(propagate, "load_frame",
                        lambda path, size, mean, std: seen.append((tuple(mean), tuple(std))) or original(path, size, mean, std))
    args = ["video-seg", "run", "--davis-root", str(davis), "--backbone", TINY_VIT, "--weights", "random",
            "--backbone-kwargs", json.dumps(TINY_KWARGS), "--base-size", "32", "--short-side", str(H), "--device", "cpu"]
    assert main([*args, "--output", str(tmp_path / "dino"), "--normalisation", "dino"]) == 0
    assert seen and set(seen) == {(propagate.DINO_MEAN, (0.228, 0.224, 0.225))}
    run = json.loads((tmp_path / "dino" / "run.json").read_text())
    assert run["setup"]["protocol"]["normalisation"] == "dino"
    seen.clear()
    assert main([*args, "--output", str(tmp_path / "own")]) == 0
    assert set(seen) == {((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))}  # vit_tiny_patch16_224's own data config

    # and the tensor itself is the hand-normalised frame
    from PIL import Image

    frame = sorted((davis / "JPEGImages" / "480p" / "squares-a").glob("*.jpg"))[0]
    pixels = np.asarray(Image.open(frame).convert("RGB"), dtype=np.float64) / 255  # working size = frame size here
    x = propagate.load_frame(frame, Image.open(frame).size, propagate.DINO_MEAN, propagate.DINO_STD)
    hand = (pixels - np.array(propagate.DINO_MEAN)) / np.array([0.228, 0.224, 0.225])
    np.testing.assert_allclose(x.permute(1, 2, 0).numpy(), hand, atol=1e-5)
