"""The text tower on token embeddings (the method interface's third kind): equal to the encoder's own features
when no row is replaced, and differentiable in the rows that are — for MiniLM and open_clip's text transformer."""
from __future__ import annotations

import pytest
import torch

from lorevit.knowledge import get_encoder, text_tower

TEXTS = ["a photo of a cat.", "a photo of a red square, a kind of shape."]


@pytest.mark.parametrize("spec", ["st:minilm", "clip:ViT-B-32"])  # clip without a tag: random weights, offline
def test_tower_on_token_embeddings_equals_the_encoder(spec):
    pytest.importorskip("open_clip" if spec.startswith("clip") else "sentence_transformers")
    tower = text_tower(spec)
    tokens = tower.tokenize(TEXTS)
    with torch.no_grad():
        features = tower(tower.token_embedding(tokens), tokens)
    assert features.shape == (len(TEXTS), tower.dim) == (len(TEXTS), get_encoder(spec).dim)
    torch.testing.assert_close(features, get_encoder(spec).encode(TEXTS), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("spec", ["st:minilm", "clip:ViT-B-32"])
def test_gradients_reach_a_learned_row_and_no_tower_weight(spec):
    pytest.importorskip("open_clip" if spec.startswith("clip") else "sentence_transformers")
    tower = text_tower(spec)
    tokens = tower.tokenize(TEXTS)
    with torch.no_grad():
        embeddings = tower.token_embedding(tokens)
    context = torch.nn.Parameter(embeddings[0, 1].clone())  # width
    rows = torch.cat([embeddings[:, :1], context.expand(len(TEXTS), 1, -1), embeddings[:, 2:]], dim=1)
    tower(rows, tokens).sum().backward()
    assert context.grad is not None and context.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in tower.parameters())
    tower.train()
    assert not tower.training  # frozen: never in training mode (no dropout)
