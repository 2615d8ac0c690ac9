import math

import numpy as np
import pytest
import torch

from tron.errors import ConditionError, TronError
from tron.langevin import LangevinConfig
from tron.pairs import generate_pairs
from tron.priors import PriorConfig, parse_prior, sample_prior
from tron.sampler import Chains, Sampler


def test_pairs_are_deterministic_for_a_seed(tiny_generator, tiny_classifier):
    z1, c1 = generate_pairs(tiny_generator, tiny_classifier, 50, seed=3, batch_size=16)
    z2, c2 = generate_pairs(tiny_generator, tiny_classifier, 50, seed=3, batch_size=16)
    z3, _ = generate_pairs(tiny_generator, tiny_classifier, 50, seed=4, batch_size=16)
    assert z1.shape == (50, 4) and c1.shape == (50, 10)
    assert z1.dtype == np.float32 and c1.dtype == np.float32
    assert np.array_equal(z1, z2) and np.array_equal(c1, c2) and not np.array_equal(z1, z3)
    assert np.allclose(c1.sum(1), 1, atol=1e-5)  # c is f's class distribution


def test_pairs_match_f_of_g(tiny_generator, tiny_classifier):
    z, c = generate_pairs(tiny_generator, tiny_classifier, 8, seed=0)
    with torch.no_grad():
        expected = tiny_classifier.encode(tiny_generator.decode(torch.from_numpy(z)))
    assert np.allclose(c, expected.numpy(), atol=1e-6)


def test_truncated_prior_is_bounded_and_seeded():
    p = PriorConfig("truncated-normal", 0.5)
    a = sample_prior(p, 1000, 8, torch.Generator().manual_seed(0))
    b = sample_prior(p, 1000, 8, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.abs().max() <= 0.5 and a.std() > 0.2
    n = sample_prior(PriorConfig(), 20000, 2, torch.Generator().manual_seed(0))
    assert abs(float(n.std()) - 1) < 0.03
    assert parse_prior("truncated-normal:1.5") == PriorConfig("truncated-normal", 1.5)
    with pytest.raises(TronError, match="unknown prior"):
        parse_prior("uniform")


def test_same_seed_gives_the_same_images(tiny_generator, tiny_classifier, tiny_translator):
    sampler = Sampler(tiny_generator, tiny_classifier, tiny_translator)
    c = tiny_classifier.condition_from_labels([1, 7])
    cfg = LangevinConfig(steps=3, step_size=0.1, noise_std=0.05)
    a = sampler.sample(c, 3, cfg, seed=11)
    b = sampler.sample(c, 3, cfg, seed=11)
    d = sampler.sample(c, 3, cfg, seed=12)
    assert a.images.shape == (6, 1, 16, 16) and a.energies.shape == (6,) and a.latents.shape == (6, 4)
    assert a.condition_index.tolist() == [0, 0, 0, 1, 1, 1]
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, d.images)
    assert 0 <= float(a.images.min()) and float(a.images.max()) <= 1


def test_zero_steps_equals_the_translators_sample(tiny_generator, tiny_classifier, tiny_translator):
    sampler = Sampler(tiny_generator, tiny_classifier, tiny_translator)
    c = tiny_classifier.condition_from_labels([0, 3, 9])
    res = sampler.sample(c, 2, LangevinConfig(steps=0), seed=5)
    z = tiny_translator.sample(c.repeat_interleave(2, 0), rng=torch.Generator().manual_seed(5))
    assert torch.equal(res.latents, z)
    assert torch.equal(res.images, tiny_generator.decode(z))


def test_langevin_lowers_the_classifier_energy(tiny_generator, tiny_classifier, tiny_translator):
    tiny_classifier.net[-1].weight.mul_(100)  # a random net is near-uniform; sharpen it so gradients are not ~0
    sampler = Sampler(tiny_generator, tiny_classifier, tiny_translator)
    c = tiny_classifier.condition_from_labels(list(range(10)))
    before = sampler.sample(c, 4, LangevinConfig(steps=0), seed=0).energies.mean()
    after = sampler.sample(c, 4, LangevinConfig(steps=30, step_size=1.0, noise_std=0.0), seed=0).energies.mean()
    assert after < before


def test_prior_init_ignores_the_translator(tiny_generator, tiny_classifier):
    sampler = Sampler(tiny_generator, tiny_classifier, translator=None)
    res = sampler.sample(tiny_classifier.condition_from_labels([2]), 4, LangevinConfig(steps=2), init="prior")
    assert res.images.shape == (4, 1, 16, 16)
    with pytest.raises(ConditionError, match="needs a translator"):
        sampler.sample(tiny_classifier.condition_from_labels([2]), 1, init="translator")


@pytest.mark.parametrize("labels,match", [([10], "out of range"), ([-1], "out of range"), ([], "no label"),
                                          (["sevne"], "not a class name"), ([True], "integer"), ([3.5], "integer")])
def test_bad_labels(tiny_classifier, labels, match):
    with pytest.raises(ConditionError, match=match):
        tiny_classifier.condition_from_labels(labels)


def test_bad_conditions(tiny_generator, tiny_classifier, tiny_translator):
    sampler = Sampler(tiny_generator, tiny_classifier, tiny_translator)
    nan = torch.full((1, 10), 0.1)
    nan[0, 3] = math.nan
    with pytest.raises(ConditionError, match="NaN"):
        sampler.sample(nan)
    with pytest.raises(ConditionError, match=r"expects \(N, 10\)"):
        sampler.sample(torch.ones(2, 7) / 7)
    with pytest.raises(ConditionError, match="probability"):
        sampler.sample(torch.ones(1, 10))
    with pytest.raises(ConditionError, match=">= 1"):
        sampler.sample(tiny_classifier.condition_from_labels([1]), num_per_condition=0)
    with pytest.raises(ConditionError, match="tensor"):
        sampler.sample([0.1] * 10)


def test_mismatched_translator_is_refused(tiny_generator, tiny_classifier):
    from tron.translator import Translator, TranslatorConfig

    with pytest.raises(ConditionError, match="latent_dim"):
        Sampler(tiny_generator, tiny_classifier, Translator(TranslatorConfig(cond_dim=10, latent_dim=5, hidden_dim=8)))


def test_a_path_of_conditions_keeps_each_samples_component_and_noise(tiny_generator, tiny_classifier, tiny_translator):
    from tron.conditions import interpolate

    sampler = Sampler(tiny_generator, tiny_classifier, tiny_translator)
    a, b = tiny_classifier.condition_from_labels([1, 6])
    path = torch.stack([a, a, b])  # two identical frames, then another class
    cfg = LangevinConfig(steps=3, step_size=0.1, noise_std=0.05)
    res = sampler.sample_path(path, 4, cfg, seed=2)
    assert res.images.shape == (12, 1, 16, 16) and res.condition_index.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert torch.equal(res.latents[:4], res.latents[4:8])  # the same condition gives the same frame
    assert not torch.equal(res.latents[:4], res.latents[8:])
    # the frames of sample j start from one component: the translator's mean for that component
    out0, out2 = tiny_translator(path[:1]), tiny_translator(path[2:])
    z0 = sampler.sample_path(path, 4, LangevinConfig(steps=0), seed=2).latents
    for j in range(4):  # z0 = mean_k(c) + std * eps with the same k and eps in the first and last frame
        offsets0 = z0[j] - out0["means"][0]  # (K, d): z0 - each component's mean
        offsets2 = z0[8 + j] - out2["means"][0]
        same = [k for k in range(len(offsets0)) if torch.allclose(offsets0[k], offsets2[k], atol=1e-5)]
        assert len(same) == 1
    smooth = interpolate(torch.ones(10) / 10, a, 3)
    assert smooth.shape == (3, 10)


def test_ranked_draws_start_each_chain_from_the_draw_f_likes_best(tiny_generator, tiny_classifier, tiny_translator):
    """LangevinConfig.candidates: z0 is, per chain, the lowest plain energy of that many draws from
    one stream (the first draw is the single draw of candidates=1)."""
    s = Sampler(tiny_generator, tiny_classifier, tiny_translator)
    c = torch.eye(10)[[3, 7]]
    one = s.sample(c, 4, LangevinConfig(steps=0), seed=5)
    best = s.sample(c, 4, LangevinConfig(steps=0, candidates=6), seed=5)
    assert (best.energies <= one.energies + 1e-6).all() and best.energies.mean() < one.energies.mean()
    rng = torch.Generator().manual_seed(5)
    rows = c.repeat_interleave(4, 0)
    draws = torch.stack([s.initial_latents(rows, "translator", rng, None) for _ in range(6)])  # (6, 8, d)
    with torch.no_grad():
        e = torch.stack([tiny_classifier.energy(tiny_generator.decode(z), rows) for z in draws])  # (6, 8)
    assert torch.equal(draws[0], one.latents)
    assert torch.allclose(best.latents, draws[e.argmin(0), torch.arange(len(rows))])
    with pytest.raises(ValueError, match="candidates must be an integer >= 1"):
        LangevinConfig(candidates=0)


def test_resampled_draws_follow_softmax_of_the_energy(tiny_generator, tiny_classifier, tiny_translator):
    """candidate_temperature > 0: z0 is one of the ranked draws of the stream, picked after them (the
    probabilities themselves: test_baselines): a small temperature keeps f's favourite, a large one
    picks draws other than the best, and the pick is seeded."""
    s = Sampler(tiny_generator, tiny_classifier, tiny_translator)
    c = torch.eye(10)[[3] * 64]
    rng = torch.Generator().manual_seed(5)
    draws = torch.stack([s.initial_latents(c, "translator", rng, None) for _ in range(6)])  # (6, 64, d)
    with torch.no_grad():
        e = torch.stack([tiny_classifier.energy(tiny_generator.decode(z), c) for z in draws])  # (6, 64)

    def z0(temperature, seed=5):
        config = LangevinConfig(steps=0, candidates=6, candidate_temperature=temperature)
        return s.sample(c, 1, config, seed=seed).latents

    def picked(z):  # which draw each row's z0 is (every pick is one of the draws)
        return torch.tensor([int(((draws[:, i] - z[i]).abs().sum(1) < 1e-5).nonzero()[0]) for i in range(len(c))])

    cold, warm = picked(z0(1e-4)), picked(z0(100.0))
    rows = torch.arange(len(c))
    assert (e[cold, rows] <= e.min(0).values + 1e-3).all()  # within a few temperatures of the lowest
    assert (warm != e.argmin(0)).sum() > 32  # near-uniform: mostly not the best
    assert torch.equal(z0(100.0), z0(100.0)) and not torch.equal(z0(100.0), z0(100.0, seed=6))
    with pytest.raises(ValueError, match="candidate_temperature must be a finite number >= 0"):
        LangevinConfig(candidate_temperature=-1.0)


@pytest.mark.parametrize("temperature", [0.0, 100.0])
def test_groups_ranked_together_start_where_each_would_alone(tiny_generator, tiny_classifier, tiny_translator, temperature):
    """Sampler.run ranks every group's candidate draws in one G+f pass per candidate; each group's z0
    is still the one it gets alone (its own stream, its own picks)."""
    s = Sampler(tiny_generator, tiny_classifier, tiny_translator)
    langevin = LangevinConfig(steps=0, candidates=5, candidate_temperature=temperature)

    def groups():
        return [Chains(torch.eye(10)[[3] * 3], torch.Generator().manual_seed(1), 0),
                Chains(torch.eye(10)[[7] * 5], torch.Generator().manual_seed(2), 0)]

    together = s.run(groups(), langevin)
    alone = [s.run([g], langevin)[0] for g in groups()]
    for a, b in zip(together, alone):
        assert torch.equal(a.latents, b.latents)
