"""The diversity measures (tron.diversity) on hand-made sets whose answers are known."""
from __future__ import annotations

import math

import pytest
import torch

from tron.diversity import conditional_prdc, entropy, expected_entropy, open_attribute_spread, prdc


def by_definition(real: torch.Tensor, fake: torch.Tensor, k: int) -> dict[str, float]:
    """Naeem et al. 2020, eqs. (1)-(4), written out with loops: a ball around each point of a set
    reaches its k-th nearest neighbour in the same set."""
    def radii(x):
        d = torch.cdist(x, x)
        return d.sort(dim=1).values[:, k]  # column 0 is the point itself
    r_real, r_fake = radii(real), radii(fake)
    d = torch.cdist(fake, real)  # (n, m)
    precision = sum(any(d[i, j] < r_real[j] for j in range(len(real))) for i in range(len(fake))) / len(fake)
    recall = sum(any(d[i, j] < r_fake[i] for i in range(len(fake))) for j in range(len(real))) / len(real)
    density = sum(int((d[i] < r_real).sum()) for i in range(len(fake))) / (k * len(fake))
    coverage = sum(bool(d[:, j].min() < r_real[j]) for j in range(len(real))) / len(real)
    return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}


def test_prdc_on_a_hand_made_line():
    # reals at 0..3 (each ball reaches 1 with k = 1); fakes at 0.5 (its ball reaches 10: radius 9.5) and two far away
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    fake = torch.tensor([[0.5], [10.0], [10.2]])
    got = prdc(real, fake, k=1)
    assert got == pytest.approx({"precision": 1 / 3, "recall": 1.0, "density": 2 / 3, "coverage": 0.5})


def test_prdc_matches_the_definitions_on_random_sets():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(40, 3, generator=g)
    fake = torch.randn(25, 3, generator=g) * 0.7 + 0.4
    assert prdc(real, fake, k=3) == pytest.approx(by_definition(real, fake, 3))


def test_identical_samples_have_no_recall_and_no_spread():
    g = torch.Generator().manual_seed(1)
    real = torch.randn(200, 4, generator=g)
    same = real[:1].repeat(16, 1)
    assert prdc(real, same, k=5)["recall"] == 0.0
    assert prdc(real, same, k=5)["coverage"] < 0.1
    values = torch.randint(0, 5, (500, 2), generator=g)
    assert open_attribute_spread(values[:1].repeat(16, 1), values, [0, 1], [5, 5])["spread_vs_g"] == 0.0


def test_g_s_own_samples_score_about_one():
    g = torch.Generator().manual_seed(2)
    # three conditions, each a Gaussian blob; the reference is G's own samples of each, in random order
    centres = torch.tensor([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    ref_cond = torch.randint(0, 3, (3000,), generator=g)
    reference = centres[ref_cond] + torch.randn(3000, 2, generator=g)
    sets = [torch.nonzero(ref_cond == j).squeeze(1) for j in range(3)]
    index = torch.arange(3).repeat_interleave(64)
    own = centres[index] + torch.randn(len(index), 2, generator=g)  # samples as varied as G's
    narrow = centres[index] + 0.1 * torch.randn(len(index), 2, generator=g)  # the mode only
    fair, collapsed = conditional_prdc(own, index, reference, sets), conditional_prdc(narrow, index, reference, sets)
    assert fair["prdc_conditions"] == 3
    assert fair["recall_vs_g"] == pytest.approx(1.0, abs=0.15)
    assert fair["coverage_vs_g"] == pytest.approx(1.0, abs=0.15)
    assert collapsed["recall_vs_g"] < 0.5 and collapsed["coverage_vs_g"] < 0.5
    assert collapsed["precision"] > 0.9  # right, but not varied: the price shows in recall, not precision

    values = torch.randint(0, 7, (5000, 1), generator=g)
    ratios = [open_attribute_spread(torch.randint(0, 7, (16, 1), generator=g), values, [0], [7])["spread_vs_g"]
              for _ in range(200)]
    assert sum(ratios) / len(ratios) == pytest.approx(1.0, abs=0.03)  # the same n on both sides: no small-sample bias


def test_entropy_and_its_expectation():
    assert entropy(torch.tensor([0, 1, 2, 3]), 4) == pytest.approx(math.log(4))
    assert entropy(torch.tensor([2, 2, 2]), 4) == 0.0
    # 2 draws from a fair coin: half the time both agree (entropy 0), else log 2
    assert expected_entropy(torch.tensor([0, 1]), 2, 2, draws=4000) == pytest.approx(0.5 * math.log(2), abs=0.03)


def test_attributes_g_does_not_vary_are_not_counted():
    reference = torch.stack([torch.arange(100) % 3, torch.zeros(100, dtype=torch.long)], 1)  # column 1 fixed in G's set
    samples = torch.stack([torch.tensor([0, 1, 2, 0]), torch.zeros(4, dtype=torch.long)], 1)
    out = open_attribute_spread(samples, reference, [0, 1], [3, 2])
    assert "spread_vs_g/1" not in out and out["spread_vs_g"] == out["spread_vs_g/0"] > 0.9


def test_prdc_refuses_sets_too_small_for_k():
    with pytest.raises(ValueError, match="more than 5 rows"):
        prdc(torch.randn(10, 2), torch.randn(4, 2), k=5)


def test_a_partial_prompt_s_samples_vary_in_what_it_leaves_open():
    """The shipped shapes world at T = 0 (the translator's ranked draws only): 16 samples of "a red
    circle" are mostly red circles, at more than one size and place; the previous setting (f's
    favourite of 16 draws, candidate_temperature 0, from the mixture narrowed to 0.15 of its std)
    lands them on fewer size-and-place combinations."""
    from tron.conditions import from_text
    from tron.judges import load_judge
    from tron.world import load_world

    world = load_world("zoo:shapes")
    judge = load_judge(world)
    cond = from_text(world.encoder, ["a red circle"])

    def judged(**overrides):
        res = world.sampler(cond.kind).sample(cond.c, 16, world.langevin.with_overrides(steps=0, **overrides), seed=0)
        return judge.cnn.judge(res.images)[0]  # (16, 4): shape, color, size, position

    pred = judged()
    assert ((pred[:, 0] == 0) & (pred[:, 1] == 0)).sum() >= 14  # circle, red
    assert len(set(pred[:, 2].tolist())) == 2 and len(set(pred[:, 3].tolist())) >= 3
    combos = lambda p: len(set(map(tuple, p[:, 2:].tolist())))  # noqa: E731
    world.translator_std_scale = 0.15
    assert combos(pred) > combos(judged(candidate_temperature=0.0))
