"""L_kp (Eq. 10) with a correct and a wrong prediction, and the total objective (Eq. 11)."""
import math

import torch

from lorevit.losses import kp_loss, total_loss


def test_kp_loss_correct_and_wrong_prediction():
    latent = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    proto_true = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    proto_pred = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    wrong = torch.tensor([False, True])
    # sample 1 (t = p): −cos = −1; sample 2 (t ≠ p): −1/√2 + 1
    expected = (-1.0 + (1 - 1 / math.sqrt(2))) / 2
    torch.testing.assert_close(kp_loss(latent, proto_true, proto_pred, wrong), torch.tensor(expected))


def test_kp_loss_ignores_predicted_prototype_when_right():
    latent, proto = torch.randn(4, 8), torch.randn(4, 8)
    right = torch.zeros(4, dtype=torch.bool)
    a = kp_loss(latent, proto, torch.randn(4, 8), right)
    b = kp_loss(latent, proto, torch.randn(4, 8), right)
    torch.testing.assert_close(a, b)


def test_total_loss_weights_kp():
    task, kp = torch.tensor(2.0), torch.tensor(-0.5)
    torch.testing.assert_close(total_loss(task, kp, 0.1), torch.tensor(1.95))
    torch.testing.assert_close(total_loss(task, None, 0.1), task)
