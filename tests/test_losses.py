"""Our AdaCos, focal loss, sampler and the triplet set-up, checked against slow reference loops."""

import math

import numpy as np
import pytest
import torch

from tapcheck.losses import ADACOS_MIN_SCALE, AdaCosLoss, FocalLoss
from tapcheck.models.triplet import TripletModel
from tapcheck.samplers import BalancedBatchSampler


def _reference_adacos(emb, W, labels, s_prev):
    """AdaCos, one sample at a time (the AdaCos source's equations)."""
    n, c = len(labels), W.shape[1]
    cos = [[float(np.dot(emb[i], W[:, j]) / np.linalg.norm(emb[i]) / np.linalg.norm(W[:, j]))
            for j in range(c)] for i in range(n)]
    b_avg = sum(sum(math.exp(s_prev * cos[i][j]) for j in range(c) if j != labels[i])
                for i in range(n)) / n
    thetas = sorted(math.acos(cos[i][labels[i]]) for i in range(n))
    theta_med = (thetas[(n - 1) // 2] if n % 2 else thetas[n // 2 - 1])  # torch.median: lower
    s = max(math.log(b_avg) / math.cos(min(math.pi / 4, theta_med)), ADACOS_MIN_SCALE)
    loss = 0.0
    for i in range(n):
        logits = [s * cos[i][j] for j in range(c)]
        top = max(logits)
        loss += -(logits[labels[i]] - top - math.log(sum(math.exp(v - top) for v in logits)))
    return s, loss / n


@pytest.mark.parametrize("n_classes", [2, 5, 12])
def test_adacos_matches_the_reference_loop(n_classes):
    torch.manual_seed(n_classes)
    head = AdaCosLoss(n_classes, 8)
    emb = torch.randn(20, 8)
    labels = torch.randint(0, n_classes, (20,))
    s_prev = float(head.scale)
    expected_s, expected_loss = _reference_adacos(emb.numpy(), head.W.detach().numpy(),
                                                  labels.tolist(), s_prev)
    loss = head(emb, labels)
    assert float(head.scale) == pytest.approx(expected_s, rel=1e-5)
    assert float(loss.detach()) == pytest.approx(expected_loss, rel=1e-5)


def test_adacos_scale_guard_for_two_classes():
    """√2·log(C−1) is 0 for two classes and the update would keep it at 0: the floor holds."""
    head = AdaCosLoss(2, 4)
    assert float(head.scale) == pytest.approx(ADACOS_MIN_SCALE)
    emb = torch.randn(16, 4)
    for _ in range(5):
        head(emb, torch.randint(0, 2, (16,)))
        assert float(head.scale) >= ADACOS_MIN_SCALE
    # the initial scale for many classes is AdaCos's fixed scale
    assert float(AdaCosLoss(100, 4).scale) == pytest.approx(math.sqrt(2) * math.log(99))


def test_adacos_scale_is_saved_with_the_weights():
    head = AdaCosLoss(6, 4)
    head(torch.randn(10, 4), torch.randint(0, 6, (10,)))
    again = AdaCosLoss(6, 4)
    again.load_state_dict(head.state_dict())
    assert float(again.scale) == float(head.scale)


def test_focal_loss_matches_the_formula_and_reduces_to_ce():
    logits = torch.randn(7, 3)
    labels = torch.randint(0, 3, (7,))
    p = torch.softmax(logits, 1)[torch.arange(7), labels]
    expected = (-(1 - p) ** 2 * torch.log(p)).mean()
    assert float(FocalLoss(2.0)(logits, labels)) == pytest.approx(float(expected), rel=1e-5)
    ce = torch.nn.functional.cross_entropy(logits, labels)
    assert float(FocalLoss(0.0)(logits, labels)) == pytest.approx(float(ce), rel=1e-5)


def test_balanced_sampler_against_its_definition():
    labels = np.repeat(np.arange(10), [30, 30, 30, 30, 30, 30, 30, 30, 3, 12])
    sampler = BalancedBatchSampler(labels, p=8, k=4, seed=1)
    batches = list(sampler.batches(epoch=0))
    assert len(batches) == len(labels) // 32
    seen = np.zeros(10, int)
    for b in batches:
        counts = np.bincount(labels[b], minlength=10)
        present = counts[counts > 0]
        assert len(present) == 8 and (present == 4).all()  # P distinct classes x K each
        seen += counts > 0
    assert seen.max() - seen.min() <= 1  # classes appear about equally often
    # no sample repeats within a class before its other samples are used (reference loop)
    for c in range(10):
        drawn = [i for b in batches for i in b if labels[i] == c]
        n = int((labels == c).sum())
        for start in range(0, len(drawn), n):
            chunk = drawn[start:start + n]
            assert len(set(chunk)) == len(chunk)
    # seeded and per epoch
    again = list(BalancedBatchSampler(labels, p=8, k=4, seed=1).batches(epoch=0))
    assert all((a == b).all() for a, b in zip(batches, again, strict=True))
    assert not all((a == b).all() for a, b in
                   zip(batches, sampler.batches(epoch=1), strict=False))


def _reference_batch_all(emb, labels, margin):
    """Mean over every valid triplet of max(0, d(a,p) − d(a,n) + margin), unit embeddings."""
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    total, count = 0.0, 0
    for a in range(len(e)):
        for p in range(len(e)):
            if p == a or labels[p] != labels[a]:
                continue
            for n in range(len(e)):
                if labels[n] == labels[a]:
                    continue
                d_ap, d_an = np.linalg.norm(e[a] - e[p]), np.linalg.norm(e[a] - e[n])
                total += max(0.0, d_ap - d_an + margin)
                count += 1
    return total / count


def _reference_batch_hard(emb, labels, margin):
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    d = np.linalg.norm(e[:, None] - e[None], axis=-1)
    losses = []
    for a in range(len(e)):
        pos = [d[a, p] for p in range(len(e)) if p != a and labels[p] == labels[a]]
        neg = [d[a, n] for n in range(len(e)) if labels[n] != labels[a]]
        losses.append(max(0.0, max(pos) - min(neg) + margin))
    return float(np.mean(losses))


@pytest.mark.parametrize("mining, reference", [("batch-all", _reference_batch_all),
                                               ("batch-hard", _reference_batch_hard)])
def test_triplet_objective_matches_the_reference_loop(mining, reference):
    model = TripletModel(backbone="shallow", embedding_dim=4, mining=mining)
    emb = torch.randn(12, 4, dtype=torch.float64).float()
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    criterion, miner = model.objective()
    triplets = miner(emb, labels) if miner is not None else None
    ours = float(criterion(emb, labels, triplets))
    assert ours == pytest.approx(reference(emb.numpy(), labels.numpy(), 0.2), rel=1e-4)


@pytest.mark.parametrize("mining", ["batch-all", "batch-hard"])
def test_triplet_objective_pushes_apart_a_collapsed_start(mining):
    """Nearly identical embeddings (how the shallow net starts) must still get a real gradient.

    With the source's squared distance this gradient is ~1e-3 of the one asserted here and
    triplet-shallow stayed collapsed on the demo dataset (constant scores, AUC 0.5).
    """
    model = TripletModel(backbone="shallow", embedding_dim=8, mining=mining)
    torch.manual_seed(0)
    emb = (torch.ones(12, 8) + 1e-3 * torch.randn(12, 8)).requires_grad_()
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    criterion, miner = model.objective()
    triplets = miner(emb, labels) if miner is not None else None
    loss = criterion(emb, labels, triplets)
    loss.backward()
    assert float(loss.detach()) == pytest.approx(0.2, abs=0.01)  # stuck at the margin ...
    assert float(emb.grad.norm()) > 0.05  # ... but with a gradient that leads out of it
