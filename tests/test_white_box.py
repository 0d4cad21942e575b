"""Hand-checked numbers for LIN (Eq. 2–4), KLA (Eq. 5–7) and PG (Eq. 8–9)."""
import math

import pytest
import torch

from lorevit.white_box import (KnowledgeLocalityAttention, LocalityInteraction, PromptGenerator, knn_graph,
                               max_relative, top_n_filter)

# Four patches on two directions: a≈b along x, c≈d along y.
A, B_, C, D = [1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]
TOKENS = torch.tensor([[A, B_, C, D]])  # 1, 4, 2


def test_knn_graph_counts_self_and_nearest():
    neighbours = knn_graph(TOKENS, k=2)[0]
    assert [set(row.tolist()) for row in neighbours] == [{0, 1}, {1, 0}, {2, 3}, {3, 2}]


def test_max_relative_on_four_patch_graph_k2():
    rel = max_relative(TOKENS, knn_graph(TOKENS, k=2))[0]
    # a: max(a−a, b−a) = (0, .1); b: max(0, a−b) = (0, 0); c: max(0, d−c) = (.1, 0); d: (0, 0)
    expected = torch.tensor([[0.0, 0.1], [0.0, 0.0], [0.1, 0.0], [0.0, 0.0]])
    torch.testing.assert_close(rel, expected)


def test_max_relative_k3_reaches_the_other_direction():
    neighbours = knn_graph(TOKENS, k=3)[0]
    assert set(neighbours[0].tolist()) == {0, 1, 3}  # cos(a, d) ≈ .0995 > cos(a, c) = 0
    rel = max_relative(TOKENS, knn_graph(TOKENS, k=3))[0]
    # a: max((0,0), (0,.1), d−a = (−.9, 1)) = (0, 1)
    torch.testing.assert_close(rel[0], torch.tensor([0.0, 1.0]))


def test_lin_starts_near_identity_and_keeps_shape():
    torch.manual_seed(0)
    lin = LocalityInteraction(dim=64, k=3)
    tokens = torch.randn(2, 10, 64)
    out = lin(tokens)
    assert out.shape == tokens.shape
    assert (out - tokens).norm() < 0.1 * tokens.norm()  # small W2 at init: Ê ≈ E0


def test_lin_follows_eq_3_and_4():
    torch.manual_seed(0)
    lin = LocalityInteraction(dim=2, k=2)
    torch.nn.init.normal_(lin.w2.weight)
    rel = torch.tensor([[[0.0, 0.1], [0.0, 0.0], [0.1, 0.0], [0.0, 0.0]]])
    mixed = torch.cat([TOKENS, rel], -1) @ lin.mix.weight.T + lin.mix.bias
    expected = torch.relu(mixed @ lin.w1.weight.T + lin.w1.bias) @ lin.w2.weight.T + lin.w2.bias + TOKENS
    torch.testing.assert_close(lin(TOKENS), expected)


def test_top_n_sets_others_to_zero_not_minus_infinity():
    scores = torch.tensor([[3.0, 1.0, 2.0, 0.5]])
    kept = top_n_filter(scores, 2)
    torch.testing.assert_close(kept, torch.tensor([[3.0, 0.0, 2.0, 0.0]]))
    weights = kept.softmax(-1)[0]
    z = math.exp(3) + 1 + math.exp(2) + 1
    torch.testing.assert_close(weights, torch.tensor([math.exp(3) / z, 1 / z, math.exp(2) / z, 1 / z]))
    assert weights[1] > 0  # dropped patches keep weight exp(0)


def identity_kla(dim=2, top_n=2):
    kla = KnowledgeLocalityAttention(dim, dim, top_n=top_n)
    for layer in (kla.to_q, kla.to_k, kla.to_v):
        layer.weight.data.copy_(torch.eye(dim))
    return kla


def test_kla_two_class_attention_by_hand():
    kla = identity_kla(top_n=2)
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # 2 classes
    attended, weights = kla.attention(TOKENS, q)
    # class 0 scores = E·q0/√2 = [1, 1, 0, .1]/√2: top-2 keeps a and b, c and d → 0
    s = 1 / math.sqrt(2)
    z0 = 2 * math.exp(s) + 2
    torch.testing.assert_close(weights[0, 0], torch.tensor([math.exp(s) / z0, math.exp(s) / z0, 1 / z0, 1 / z0]))
    expected_a0 = weights[0, 0] @ TOKENS[0]
    torch.testing.assert_close(attended[0, 0], expected_a0)
    assert weights.shape == (1, 2, 4) and attended.shape == (1, 2, 2)


def test_kla_prototype_is_bn_of_mlp_plus_residual():
    torch.manual_seed(0)
    kla = identity_kla().eval()
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    attended, _ = kla.attention(TOKENS, q)
    prototypes, _ = kla(TOKENS, q)
    bn = kla.norm
    expected = (kla.mlp(attended) + attended - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
    torch.testing.assert_close(prototypes, expected)


def test_kla_per_image_queries_match_shared_queries():
    torch.manual_seed(0)
    kla = KnowledgeLocalityAttention(8, 5, top_n=3).eval()
    e_hat, q = torch.randn(3, 6, 8), torch.randn(4, 5)
    shared, _ = kla(e_hat, q)  # 3, 4, 8
    chosen = torch.tensor([[0, 2], [3, 3], [1, 0]])
    gathered, _ = kla(e_hat, q[chosen])  # 3, 2, 8
    torch.testing.assert_close(gathered, shared.gather(1, chosen[..., None].expand(-1, -1, 8)))


def test_lin_pooled_is_the_patch_mean_of_e_hat():
    """Averaging before W2 (inference path) gives avgpool(Ê), and PG reads both the same way."""
    torch.manual_seed(0)
    lin = LocalityInteraction(dim=16, k=3)
    torch.nn.init.normal_(lin.w2.weight)
    tokens = torch.randn(3, 7, 16)
    full, pooled = lin(tokens), lin(tokens, pooled=True)
    assert pooled.shape == (3, 16)
    torch.testing.assert_close(pooled, full.mean(dim=1))
    pg = PromptGenerator(dim=16, depth=2, n_local=2, rank=4)
    for a, b in zip(pg(full), pg(pooled)):
        torch.testing.assert_close(a, b)


def test_lin_eval_folds_mix_and_w1_and_refolds_after_weight_changes():
    """Eval runs W_mix·W1 as one linear map; an optimizer step or a state-dict load re-folds it."""
    torch.manual_seed(0)
    lin = LocalityInteraction(dim=16, k=3)
    torch.nn.init.normal_(lin.w2.weight)
    tokens = torch.randn(2, 7, 16)
    torch.testing.assert_close(lin.eval()(tokens), lin.train()(tokens), rtol=1e-5, atol=1e-5)
    lin.eval()(tokens)  # fold with the current weights
    optimizer = torch.optim.SGD(lin.parameters(), lr=1.0)
    lin.train()(tokens).square().sum().backward()
    optimizer.step()
    torch.testing.assert_close(lin.eval()(tokens), lin.train()(tokens), rtol=1e-5, atol=1e-5)
    lin.eval()(tokens)
    lin.load_state_dict({k: v * 2 for k, v in lin.state_dict().items()})
    torch.testing.assert_close(lin.eval()(tokens), lin.train()(tokens), rtol=1e-5, atol=1e-5)


def test_prompt_generator_shapes():
    pg = PromptGenerator(dim=16, depth=3, n_local=2, rank=4)
    latent, prompts = pg(torch.randn(5, 7, 16))
    assert latent.shape == (5, 16) and prompts.shape == (5, 3, 2, 16)


@pytest.mark.parametrize("k", [1, 9, 50])
def test_knn_clamps_k_to_token_count(k):
    assert knn_graph(torch.randn(2, 6, 4), k).shape == (2, 6, min(k, 6))
