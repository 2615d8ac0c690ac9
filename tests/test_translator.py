import json

import numpy as np
import pytest
import torch

from tron.checkpoint import CONFIG_NAME, WEIGHTS_NAME
from tron.errors import CheckpointError
from tron.training import TrainConfig, fit_translator, is_validation_row
from tron.translator import Translator, TranslatorConfig, load_translator, save_translator


def synthetic_pairs(n=2000, seed=0):
    """z depends on c through a fixed map: a mixture a translator can learn."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    c = np.eye(3, dtype=np.float32)[labels]
    centers = np.array([[2.0, 0.0], [-2.0, 1.0], [0.0, -2.0]], dtype=np.float32)
    z = centers[labels] + 0.3 * rng.standard_normal((n, 2)).astype(np.float32)
    return z, c


@pytest.mark.parametrize("head", ["gmm", "mse"])
def test_loss_falls_on_synthetic_pairs(head):
    z, c = synthetic_pairs()
    model = Translator(TranslatorConfig(cond_dim=3, latent_dim=2, hidden_dim=32, num_blocks=1, num_components=4, head=head))
    with torch.no_grad():
        untrained = float(model.loss(torch.as_tensor(z), torch.as_tensor(c)))
    history = fit_translator(model, z, c, TrainConfig(epochs=15, batch_size=128, lr=3e-3, seed=0))
    first, last = history[0]["val_loss"], history[-1]["val_loss"]
    assert last < first
    assert last < untrained - 0.5 if head == "gmm" else last < 0.7 * first
    # the learned conditional puts samples near the right centre
    zs = model.sample(torch.eye(3).repeat_interleave(200, 0), rng=torch.Generator().manual_seed(0))
    means = zs.view(3, 200, 2).mean(1)
    assert torch.allclose(means, torch.tensor([[2.0, 0.0], [-2.0, 1.0], [0.0, -2.0]]), atol=0.25)


def test_gmm_std_is_learned():
    z, c = synthetic_pairs(n=8000)
    model = Translator(TranslatorConfig(cond_dim=3, latent_dim=2, hidden_dim=32, num_blocks=1, num_components=4))
    fit_translator(model, z, c, TrainConfig(epochs=20, batch_size=128, lr=1e-2))
    assert torch.allclose(model.log_std.exp(), torch.tensor([0.3, 0.3]), atol=0.1)


def test_divergence_stops_training_in_one_line_naming_the_cause():
    """Checked after the backward pass (so data-parallel workers all stop at the same step): a learning
    rate that blows up names the fix. (Pairs that hold NaN are refused before training starts.)"""
    z, c = synthetic_pairs(n=512)
    model = Translator(TranslatorConfig(cond_dim=3, latent_dim=2, hidden_dim=16, num_blocks=1, num_components=2))
    with pytest.raises(FloatingPointError, match=r"training diverged: the loss is .*; lower the learning rate"):
        fit_translator(model, z, c, TrainConfig(epochs=3, batch_size=64, lr=1e30, grad_clip=0.0))


def test_split_is_by_row_index_deterministic_and_near_its_fraction():
    rows = np.arange(100_000)
    held = is_validation_row(rows, 0.2, seed=5)
    assert (held == is_validation_row(rows, 0.2, seed=5)).all()
    assert abs(held.mean() - 0.2) < 0.01
    assert (is_validation_row(rows[::-1], 0.2, seed=5) == held[::-1]).all()  # the row decides, not its position
    assert (held != is_validation_row(rows, 0.2, seed=6)).any()


def test_fit_rejects_mismatched_pairs(tiny_translator):
    with pytest.raises(ValueError, match="d=3"):
        fit_translator(tiny_translator, np.zeros((8, 3)), np.zeros((8, 10)), TrainConfig(epochs=1))


def test_save_load_round_trip_is_exact(tmp_path, tiny_translator):
    save_translator(tiny_translator, tmp_path / "t", metadata={"generator_fingerprint": "abc"})
    loaded = load_translator(tmp_path / "t")
    assert loaded.config == tiny_translator.config
    assert loaded.metadata == {"generator_fingerprint": "abc"}
    for (k, v), (k2, v2) in zip(tiny_translator.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    c = torch.eye(10)
    a = tiny_translator.sample(c, rng=torch.Generator().manual_seed(7))
    b = loaded.sample(c, rng=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_translator(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
        load_translator(tmp_path / "empty")


def test_missing_weights(tmp_path, tiny_translator):
    save_translator(tiny_translator, tmp_path / "t")
    (tmp_path / "t" / WEIGHTS_NAME).unlink()
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        load_translator(tmp_path / "t")


def test_corrupt_weights_are_refused(tmp_path, tiny_translator):
    save_translator(tiny_translator, tmp_path / "t")
    path = tmp_path / "t" / WEIGHTS_NAME
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # flip bits inside a tensor: still parses, but the hash no longer matches
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_translator(tmp_path / "t")


def test_truncated_weights_are_refused(tmp_path, tiny_translator):
    save_translator(tiny_translator, tmp_path / "t")
    path = tmp_path / "t" / WEIGHTS_NAME
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="safetensors"):
        load_translator(tmp_path / "t")


def test_non_safetensors_weights_file_is_refused(tmp_path, tiny_translator):
    save_translator(tiny_translator, tmp_path / "t")
    torch.save(tiny_translator.state_dict(), tmp_path / "t" / WEIGHTS_NAME)  # a pickle, not safetensors
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_translator(tmp_path / "t")


def test_config_that_does_not_fit_the_weights(tmp_path, tiny_translator):
    save_translator(tiny_translator, tmp_path / "t")
    cfg_path = tmp_path / "t" / CONFIG_NAME
    doc = json.loads(cfg_path.read_text())
    doc["config"]["hidden_dim"] = 32
    cfg_path.write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="shape"):
        load_translator(tmp_path / "t")
    doc["config"]["hidden_dim"] = 16
    doc["config"]["mystery"] = 1
    cfg_path.write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="unknown translator fields"):
        load_translator(tmp_path / "t")
    cfg_path.write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_translator(tmp_path / "t")


def test_standardised_latents_are_mapped_both_ways(tmp_path):
    """A translator with latent statistics models u = (z - mean) / std: its density of z is the
    unstandardised translator's density of u minus sum(log std), its samples are mean + std * u,
    and the statistics survive save/load."""
    from dataclasses import replace

    from tron.translator import latent_statistics

    mean, std = [1.0, -3.0], [0.01, 5.0]
    plain = Translator(TranslatorConfig(cond_dim=3, latent_dim=2, hidden_dim=16, num_blocks=1, num_components=3))
    scaled = Translator(replace(plain.config, latent_mean=mean, latent_std=std))
    scaled.load_state_dict(plain.state_dict())  # the statistics are not in the state dict
    c = torch.eye(3)
    u = torch.randn(3, 2, generator=torch.Generator().manual_seed(0))
    z = u * torch.tensor(std) + torch.tensor(mean)
    with torch.no_grad():
        expected = plain.log_prob(u, c=c) - float(np.log(std).sum())
        assert torch.allclose(scaled.log_prob(z, c=c), expected, atol=1e-4)
        a = plain.sample(c, torch.Generator().manual_seed(1))
        b = scaled.sample(c, torch.Generator().manual_seed(1))
    assert torch.allclose(b, a * torch.tensor(std) + torch.tensor(mean), atol=1e-5)
    save_translator(scaled, tmp_path / "t")
    loaded = load_translator(tmp_path / "t")
    assert loaded.config.latent_std == std and torch.equal(loaded.sample(c, torch.Generator().manual_seed(1)), b)
    m, s = latent_statistics(torch.tensor([[0.0, 1.0], [2.0, 1.0]]))
    assert m == [1.0, 1.0] and s[0] == pytest.approx(2 ** 0.5) and s[1] == 1e-6  # a constant coordinate is floored
    with pytest.raises(ValueError, match="go together"):
        TranslatorConfig(cond_dim=3, latent_dim=2, latent_mean=mean)
    with pytest.raises(ValueError, match="> 0"):
        TranslatorConfig(cond_dim=3, latent_dim=2, latent_mean=mean, latent_std=[1.0, 0.0])


def test_standardisation_lets_the_mixture_place_small_coordinates():
    """BigGAN-like latents: a class embedding 100x smaller than z. Fitted on standardised latents,
    the translator's samples carry the right class embedding; the plain one's do not."""
    from dataclasses import replace

    from tron.translator import latent_statistics

    g = torch.Generator().manual_seed(0)
    embed = 0.01 * torch.randn(4, 2, generator=g)
    y = torch.randint(0, 4, (4000,), generator=g)
    z = torch.cat([torch.randn(4000, 2, generator=g), embed[y]], 1)
    c = torch.nn.functional.one_hot(y, 4).float()
    base = TranslatorConfig(cond_dim=4, latent_dim=4, hidden_dim=64, num_blocks=1, num_components=4)
    right = {}
    for name, cfg in (("plain", base), ("standardised", replace(base, **dict(zip(("latent_mean", "latent_std"), latent_statistics(z)))))):
        torch.manual_seed(0)
        model = Translator(cfg)
        fit_translator(model, z, c, TrainConfig(epochs=25, batch_size=256, lr=3e-3, seed=0))
        s = model.sample(torch.eye(4).repeat(50, 1), torch.Generator().manual_seed(1))
        right[name] = float((torch.cdist(s[:, 2:], embed).argmin(1) == torch.arange(4).repeat(50)).float().mean())
    assert right["standardised"] > 0.85 and right["plain"] < 0.5, right  # chance: 0.25


def test_class_balance_gives_rare_labels_the_weight_of_common_ones():
    from tron.training import ClassBalance, top_k_labels

    balance = ClassBalance(3)
    c = torch.eye(3)[torch.tensor([0] * 90 + [1] * 9 + [2] * 1)]
    w = balance(c)
    total = torch.stack([w[:90].sum(), w[90:99].sum(), w[99:].sum()])
    assert total[0] / total[1] < 1.5 and total[1] / total[0] < 1.5  # 90 common rows weigh about what 9 rare ones do
    assert w[99] == 50.0 or total[2] > total[0] / 5  # the rarest is clipped at the limit
    p = torch.tensor([[0.5, 0.3, 0.2], [0.15, 0.05, 0.8]])
    assert torch.allclose(top_k_labels(p, 1), torch.tensor([[1.0, 0, 0], [0, 0, 1.0]]))
    assert torch.allclose(top_k_labels(p, 2), torch.tensor([[0.625, 0.375, 0], [0.15 / 0.95, 0, 0.8 / 0.95]]))
