"""The hubness prior (Liang et al. 2022) next to the normal and truncated-normal priors."""
import pytest
import torch

from tron.errors import TronError
from tron.pairs import generate_pairs
from tron.priors import PriorConfig, k_occurrence, parse_prior, sample_prior
from tron.sampler import Sampler
from tron.langevin import LangevinConfig


def test_k_occurrence_counts_neighbours_in_chunks():
    z = torch.tensor([[0.0], [1.0], [2.1], [10.0]])
    # nearest neighbours: 0->1, 1->0, 2.1->1, 10->2.1
    assert k_occurrence(z, 1).tolist() == [1, 2, 1, 0]
    ref = torch.randn(500, 8, generator=torch.Generator().manual_seed(0))
    whole, chunked = k_occurrence(ref, 5, chunk=500), k_occurrence(ref, 5, chunk=64)
    assert torch.equal(whole, chunked) and int(whole.sum()) == 500 * 5
    d = torch.cdist(ref, ref).fill_diagonal_(float("inf"))
    brute = torch.bincount(d.topk(5, largest=False).indices.flatten(), minlength=500)
    assert torch.equal(whole, brute)


def test_hubs_are_the_high_occurrence_latents_nearer_the_centre():
    prior = parse_prior("hubness:k=5,t=15,m=2000")
    assert prior == PriorConfig("hubness", k=5, threshold=15, num_reference=2000)
    z = sample_prior(prior, 300, 32, torch.Generator().manual_seed(0))
    assert z.shape == (300, 32)
    again = sample_prior(prior, 300, 32, torch.Generator().manual_seed(0))
    assert torch.equal(z, again)  # deterministic for a seed
    # every kept latent is a hub of the first round of reference draws it came from
    ref = torch.randn(2000, 32, generator=torch.Generator().manual_seed(0))
    counts = k_occurrence(ref, 5)
    first = ref[counts > 15]
    assert torch.equal(z[:len(first)], first[:300])
    # hubs cluster near the mode: smaller norms than plain normal draws (the paper's central clustering)
    assert z.norm(dim=1).mean() < 0.9 * ref.norm(dim=1).mean()


def test_hubness_errors_are_one_line():
    with pytest.raises(TronError, match=r"no latent .* k-occurrence above t=50 .* lower t"):
        sample_prior(parse_prior("hubness:m=500"), 10, 4, torch.Generator().manual_seed(0))
    with pytest.raises(TronError, match="bad hubness setting"):
        parse_prior("hubness:q=3")
    with pytest.raises(TronError, match="must be an integer"):
        parse_prior("hubness:k=two")
    with pytest.raises(TronError, match="hubness k must be"):
        PriorConfig("hubness", k=0)
    assert parse_prior("hubness") == PriorConfig("hubness", k=5, threshold=50, num_reference=10_000)  # the paper's


def test_hubness_prior_for_pairs_and_the_random_init_baseline(tiny_generator, tiny_classifier):
    prior = parse_prior("hubness:k=3,t=6,m=400")
    z, c = generate_pairs(tiny_generator, tiny_classifier, 50, seed=0, batch_size=20, prior=prior)
    ref = torch.randn(400, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.as_tensor(z[:3]), ref[k_occurrence(ref, 3) > 6][:3])  # pairs start from hubs
    res = Sampler(tiny_generator, tiny_classifier).sample(tiny_classifier.condition_from_labels([1]), 5,
                                                          LangevinConfig(steps=2), init="prior", prior=prior)
    assert res.images.shape == (5, 1, 16, 16)
