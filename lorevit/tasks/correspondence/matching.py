"""Dense matching of keypoints by the cosine of upsampled patch tokens (TASKS_SPEC §2, "Recommended").

The protocol: a low-resolution token grid (h, w, d) is upsampled bilinearly (``align_corners=False``)
to the image's **original** (H, W), L2-normalised per pixel; the source vector is read at each source
keypoint's integer pixel [y, x]; the prediction is the target pixel of highest cosine.

Two exact implementations:

- :func:`match_explicit` (the reference): materialise the d × H × W target map, as DIFT does;
- :func:`match_trick` (the default): never build that map. With f₁..f₄ the four tokens around a
  target pixel, w their bilinear weights and s the source vector (TASKS_SPEC §2, "Exact, cheap
  alternative")::

      cos = Σᵢ wᵢ (s·fᵢ) / (‖s‖ · √(Σᵢⱼ wᵢ wⱼ fᵢ·fⱼ))

  The numerator is the bilinear upsampling of the N low-res maps s·f (N = keypoints, not channels);
  the denominator needs only the 10 dot products among each cell's 4 corner tokens (h·w·10 numbers),
  gathered per pixel with the separable weights. Memory is O((N + 10)·H·W) instead of O(d·H·W).

Both share :func:`bilinear_taps`, which reproduces ``torch.nn.functional.interpolate(mode="bilinear",
align_corners=False)`` exactly (source index ``(i + 0.5)·in/out − 0.5`` clamped at 0; the upper
neighbour clamped at the border), so the two agree to float rounding (tested ≤ 1e-5).

Coordinates: keypoints are (N, 2) arrays of **[x, y]** in original pixels (SPair's order); sizes are
(H, W) here (tensor order) — callers convert from SPair's [W, H, C].
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

EPS = 1e-12  # guards the norm of an all-zero feature (never happens with real tokens)


@dataclass
class Taps:
    """Bilinear taps along one axis: output i reads ``(1 − lam[i])·in[lo[i]] + lam[i]·in[hi[i]]``."""

    lo: torch.Tensor  # out, long
    hi: torch.Tensor  # out, long
    lam: torch.Tensor  # out, float


def bilinear_taps(n_in: int, n_out: int, dtype=torch.float32, device=None) -> Taps:
    """The taps of ``F.interpolate(..., size, mode="bilinear", align_corners=False)`` along one axis."""
    scale = n_in / n_out
    src = ((torch.arange(n_out, dtype=torch.float64, device=device) + 0.5) * scale - 0.5).clamp_min(0.0)
    lo = src.floor().long().clamp_max(n_in - 1)
    hi = (lo + 1).clamp_max(n_in - 1)
    lam = (src - lo.to(torch.float64)).to(dtype)
    return Taps(lo, hi, lam)


def pixel_index(kps: np.ndarray | torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[x, y] keypoints (N, 2) → integer pixel indices (N, 2) as [y, x], rounded and kept inside (H, W)."""
    kps = torch.as_tensor(np.ascontiguousarray(kps, dtype=np.float64))
    H, W = size
    x = (kps[:, 0] + 0.5).floor().long().clamp(0, W - 1)  # round half up
    y = (kps[:, 1] + 0.5).floor().long().clamp(0, H - 1)
    return torch.stack([y, x], dim=1)  # N, 2


def sample_upsampled(tokens: torch.Tensor, size: tuple[int, int], yx: torch.Tensor) -> torch.Tensor:
    """The bilinearly upsampled feature (h, w, d → H, W, d) at integer pixels ``yx`` (N, 2), without upsampling."""
    h, w, _ = tokens.shape
    ty = bilinear_taps(h, size[0], tokens.dtype, tokens.device)
    tx = bilinear_taps(w, size[1], tokens.dtype, tokens.device)
    y, x = yx[:, 0], yx[:, 1]
    y0, y1, ly = ty.lo[y], ty.hi[y], ty.lam[y][:, None]  # N; N; N, 1
    x0, x1, lx = tx.lo[x], tx.hi[x], tx.lam[x][:, None]
    top = (1 - lx) * tokens[y0, x0] + lx * tokens[y0, x1]  # N, d
    bottom = (1 - lx) * tokens[y1, x0] + lx * tokens[y1, x1]
    return (1 - ly) * top + ly * bottom  # N, d


def cell_grams(tokens: torch.Tensor) -> torch.Tensor:
    """The 10 dot products among the 4 corner tokens of every cell (y0, x0) → (10, h, w).

    Corners: a = f[y0, x0], b = f[y0, x1], c = f[y1, x0], e = f[y1, x1] with y1 = min(y0 + 1, h − 1),
    x1 = min(x0 + 1, w − 1) (border replicated, as the upsampling clamps). Order: aa, bb, cc, ee,
    ab, ac, ae, bc, be, ce.
    """
    padded = F.pad(tokens.permute(2, 0, 1)[None], (0, 1, 0, 1), mode="replicate")[0].permute(1, 2, 0)  # h+1, w+1, d
    h, w, _ = tokens.shape
    a, b = padded[:h, :w], padded[:h, 1:]
    c, e = padded[1:, :w], padded[1:, 1:]
    pairs = [(a, a), (b, b), (c, c), (e, e), (a, b), (a, c), (a, e), (b, c), (b, e), (c, e)]
    return torch.stack([(u * v).sum(-1) for u, v in pairs])  # 10, h, w


def upsampled_norm2(tokens: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """‖F(p)‖² of the bilinearly upsampled feature at every pixel p of (H, W), from :func:`cell_grams` → (H, W)."""
    h, w, _ = tokens.shape
    ty = bilinear_taps(h, size[0], tokens.dtype, tokens.device)
    tx = bilinear_taps(w, size[1], tokens.dtype, tokens.device)
    g = cell_grams(tokens)[:, ty.lo][:, :, tx.lo]  # 10, H, W (the cell of each pixel)
    ly, lx = ty.lam[:, None], tx.lam[None, :]  # H, 1; 1, W
    wa, wb = (1 - ly) * (1 - lx), (1 - ly) * lx  # H, W each
    wc, we = ly * (1 - lx), ly * lx
    squares = wa * wa * g[0] + wb * wb * g[1] + wc * wc * g[2] + we * we * g[3]
    cross = wa * wb * g[4] + wa * wc * g[5] + wa * we * g[6] + wb * wc * g[7] + wb * we * g[8] + wc * we * g[9]
    return squares + 2 * cross


def upsample_maps(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear (align_corners False) upsampling of (N, h, w) maps to (N, H, W)."""
    return F.interpolate(maps[None], size=size, mode="bilinear", align_corners=False)[0]


def cosine_maps_trick(src_tokens: torch.Tensor, src_size: tuple[int, int], src_kps, trg_tokens: torch.Tensor,
                      trg_size: tuple[int, int]) -> torch.Tensor:
    """Cosine between each source keypoint's upsampled vector and every upsampled target pixel → (N, H', W')."""
    s = sample_upsampled(src_tokens, src_size, pixel_index(src_kps, src_size))  # N, d
    s = s / s.norm(dim=1, keepdim=True).clamp_min(EPS)
    low = torch.einsum("nd,hwd->nhw", s, trg_tokens)  # N, h', w': s·f at every token
    numerator = upsample_maps(low, trg_size)  # N, H', W' = Σᵢ wᵢ (s·fᵢ)
    norm = upsampled_norm2(trg_tokens, trg_size).clamp_min(0).sqrt().clamp_min(EPS)  # H', W'
    return numerator.div_(norm)  # in place: one N × H × W buffer


def cosine_maps_explicit(src_tokens: torch.Tensor, src_size: tuple[int, int], src_kps, trg_tokens: torch.Tensor,
                         trg_size: tuple[int, int]) -> torch.Tensor:
    """The reference: upsample both d-channel maps to full size, L2-normalise per pixel, dot → (N, H', W')."""
    src = F.normalize(upsample_maps(src_tokens.permute(2, 0, 1), src_size), dim=0, eps=EPS)  # d, H, W
    yx = pixel_index(src_kps, src_size)
    s = src[:, yx[:, 0], yx[:, 1]].T  # N, d
    del src
    trg = F.normalize(upsample_maps(trg_tokens.permute(2, 0, 1), trg_size), dim=0, eps=EPS)  # d, H', W'
    return torch.einsum("nd,dhw->nhw", s, trg)


def argmax_xy(maps: torch.Tensor) -> np.ndarray:
    """(N, H, W) score maps → (N, 2) [x, y] integer pixels of each map's maximum (first one on ties)."""
    N, H, W = maps.shape
    flat = maps.reshape(N, H * W).argmax(dim=1)
    return torch.stack([flat % W, flat // W], dim=1).cpu().numpy().astype(np.int64)


METHODS = {"trick": cosine_maps_trick, "explicit": cosine_maps_explicit}


@torch.no_grad()
def match(src_tokens: torch.Tensor, src_size: tuple[int, int], src_kps, trg_tokens: torch.Tensor,
          trg_size: tuple[int, int], method: str = "trick") -> np.ndarray:
    """Predicted target [x, y] (N, 2) for source keypoints [x, y] (N, 2); tokens (h, w, d); sizes (H, W)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    if len(src_kps) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    return argmax_xy(METHODS[method](src_tokens, src_size, src_kps, trg_tokens, trg_size))


def match_trick(*args) -> np.ndarray:
    return match(*args, method="trick")


def match_explicit(*args) -> np.ndarray:
    return match(*args, method="explicit")


def identity_prediction(src_kps, src_size: tuple[int, int], trg_size: tuple[int, int]) -> np.ndarray:
    """The "same pixel" baseline: each source keypoint at the same relative position in the target.

    Sizes (H, W). Equal sizes: the very same pixel. Otherwise pixel centres are scaled per axis,
    ``x' = (x + 0.5)·W'/W − 0.5`` (the anisotropic resize the features use), then rounded (half up) and kept inside.
    """
    kps = np.asarray(src_kps, dtype=np.float64).reshape(-1, 2)
    scale = np.array([trg_size[1] / src_size[1], trg_size[0] / src_size[0]])
    pred = np.floor((kps + 0.5) * scale)  # (x + 0.5)·s − 0.5, rounded half up
    return np.clip(pred, 0, [trg_size[1] - 1, trg_size[0] - 1]).astype(np.int64)
