"""The hubness prior (Liang et al. 2022) next to the normal and truncated-normal priors."""
import pytest
import torch

from tron.errors import TronError
from tron.langevin import LangevinConfig
from tron.pairs import generate_pairs
from tron.priors import PriorConfig, k_occurrence, parse_prior, sample_prior
from tron.sampler import Sampler


def test_k_occurrence_by_hand_under_both_rules():
    z = torch.tensor([[0.0], [1.0], [2.1], [10.0]])
    # strict: a point's k = 1 nearest others: 0->1, 1->0, 2.1->1, 10->2.1
    assert k_occurrence(z, 1, include_self=False).tolist() == [1, 2, 1, 0]
    # the authors': a point's k = 2 list holds itself and its nearest other: 0:{0,1} 1:{1,0} 2.1:{2.1,1} 10:{10,2.1}
    assert k_occurrence(z, 2).tolist() == [2, 3, 2, 1]
    from tron.priors import is_hub

    counts = k_occurrence(z, 2)
    assert is_hub(counts, PriorConfig("hubness", k=2, threshold=2, num_reference=4)).tolist() == [True, True, True, False]
    strict = PriorConfig("hubness", k=2, threshold=2, num_reference=4, rule="strict")
    assert is_hub(counts, strict).tolist() == [False, True, False, False]  # > t


def test_k_occurrence_in_chunks_matches_brute_force():
    ref = torch.randn(500, 8, generator=torch.Generator().manual_seed(0))
    for include_self in (True, False):
        whole, chunked = k_occurrence(ref, 5, include_self, chunk=500), k_occurrence(ref, 5, include_self, chunk=64)
        assert torch.equal(whole, chunked) and int(whole.sum()) == 500 * 5
        d = torch.cdist(ref, ref).fill_diagonal_(-1.0 if include_self else float("inf"))
        brute = torch.bincount(d.topk(5, largest=False).indices.flatten(), minlength=500)
        assert torch.equal(whole, brute)


def test_hubs_are_the_high_occurrence_latents_nearer_the_centre():
    prior = parse_prior("hubness:k=5,t=15,m=2000")
    assert prior == PriorConfig("hubness", k=5, threshold=15, num_reference=2000, rule="authors")
    z = sample_prior(prior, 300, 32, torch.Generator().manual_seed(0))
    assert z.shape == (300, 32)
    again = sample_prior(prior, 300, 32, torch.Generator().manual_seed(0))
    assert torch.equal(z, again)  # deterministic for a seed
    # every kept latent is a hub of the first round of reference draws it came from
    ref = torch.randn(2000, 32, generator=torch.Generator().manual_seed(0))
    counts = k_occurrence(ref, 5)
    first = ref[counts >= 15]
    assert torch.equal(z[:len(first)], first[:300])
    # hubs cluster near the mode: smaller norms than plain normal draws (the paper's central clustering)
    assert z.norm(dim=1).mean() < 0.9 * ref.norm(dim=1).mean()


def test_hubness_errors_are_one_line():
    with pytest.raises(TronError, match=r"no latent .* is a hub at t=50 .* lower t"):
        sample_prior(parse_prior("hubness:m=500"), 10, 4, torch.Generator().manual_seed(0))
    with pytest.raises(TronError, match="bad hubness setting"):
        parse_prior("hubness:q=3")
    with pytest.raises(TronError, match="must be an integer"):
        parse_prior("hubness:k=two")
    with pytest.raises(TronError, match="hubness k must be"):
        PriorConfig("hubness", k=0)
    assert parse_prior("hubness") == PriorConfig("hubness", k=5, threshold=50, num_reference=10_000)  # the paper's
    assert parse_prior("hubness:rule=strict").rule == "strict"
    with pytest.raises(TronError, match="hubness rule"):
        parse_prior("hubness:rule=loose")


def test_hubness_prior_for_pairs_and_the_random_init_baseline(tiny_generator, tiny_classifier):
    prior = parse_prior("hubness:k=3,t=6,m=400")
    z, c = generate_pairs(tiny_generator, tiny_classifier, 50, seed=0, batch_size=20, prior=prior)
    ref = torch.randn(400, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.as_tensor(z[:3]), ref[k_occurrence(ref, 3) >= 6][:3])  # pairs start from hubs
    res = Sampler(tiny_generator, tiny_classifier).sample(tiny_classifier.condition_from_labels([1]), 5,
                                                          LangevinConfig(steps=2), init="prior", prior=prior)
    assert res.images.shape == (5, 1, 16, 16)
