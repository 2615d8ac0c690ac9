"""The open_clip-backed encoder: loading by name and path, determinism, energies, conditions, errors."""
import json

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from tron.augment import AugmentConfig
from tron.clip import OpenClipEncoder, create_open_clip, register_model_config, save_open_clip
from tron.conditions import compose, interpolate
from tron.encoders import load_encoder
from tron.errors import CheckpointError, ConditionError
from tron.langevin import LangevinConfig
from tron.sampler import Sampler
from tron.training import TrainConfig, fit_translator
from tron.translator import Translator, TranslatorConfig
from tron.zoo import shapes as S

TINY = {
    "embed_dim": 8,
    "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 16, "layers": 1, "head_width": 8, "mlp_ratio": 2.0},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 8, "heads": 1, "layers": 1, "mlp_ratio": 2.0},
}
NAME = "tron-test-clip"


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("clip")
    torch.manual_seed(0)
    encoder = create_open_clip(NAME, TINY, directory)
    save_open_clip(encoder, directory, metadata={"note": "random"})
    return directory


@pytest.fixture(scope="module")
def clip(clip_dir):
    return load_encoder(clip_dir)


@pytest.fixture(scope="module")
def images():
    x, _ = S.sample_images(4, torch.Generator().manual_seed(0))
    return x


def test_checkpoint_loads_through_open_clip_by_name_and_path(clip_dir, clip):
    assert sorted(p.name for p in clip_dir.iterdir()) == ["config.json", "model.safetensors", f"{NAME}.json"]
    assert register_model_config(clip_dir / f"{NAME}.json") == NAME
    assert NAME in open_clip.list_models()
    model, _, preprocess = open_clip.create_model_and_transforms(NAME, pretrained=str(clip_dir / "model.safetensors"))
    tokens = open_clip.get_tokenizer(NAME)(["a red circle"])
    assert tokens.shape == (1, 16) and int(tokens[0, 0]) == 49406  # open_clip's bundled BPE vocabulary, offline
    for key, value in model.state_dict().items():
        assert torch.equal(value, clip.model.state_dict()[key]), key
    with torch.no_grad():
        text = torch.nn.functional.normalize(model.encode_text(tokens), dim=-1)
    assert torch.allclose(text, clip.condition_from_text("a red circle"), atol=1e-6)
    assert isinstance(clip, OpenClipEncoder) and clip.embed_dim == 8 and clip.condition_kinds == ("text", "image")


def test_weights_are_stored_in_float16(clip_dir):
    from safetensors.torch import load_file

    assert all(v.dtype == torch.float16 for v in load_file(str(clip_dir / "model.safetensors")).values())


def test_embeddings_are_deterministic(clip_dir, clip, images):
    again = load_encoder(clip_dir)
    a = clip.condition_from_text(["a small red circle in the top left", "a zorblax"])
    assert torch.equal(a, again.condition_from_text(["a small red circle in the top left", "a zorblax"]))
    assert torch.allclose(a.norm(dim=-1), torch.ones(2))
    assert torch.equal(clip.encode(images), again.encode(images))
    assert torch.equal(clip.condition_from_text("  a red   circle "), clip.condition_from_text("a red circle"))


def test_tampered_checkpoints_are_refused(clip_dir, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(clip_dir, bad)
    cfg = json.loads((bad / f"{NAME}.json").read_text())
    cfg["embed_dim"] = 4
    (bad / f"{NAME}.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="differs from the model config"):
        load_encoder(bad)
    shutil.copy(clip_dir / f"{NAME}.json", bad / f"{NAME}.json")
    with open(bad / "model.safetensors", "r+b") as f:
        f.seek(-4, 2)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_encoder(bad)


def test_energy_is_negative_cosine_and_composition_is_linear(clip, images):
    c = clip.condition_from_text(["a red circle", "a blue square"])
    f = clip.encode(images)
    expected = -torch.nn.functional.cosine_similarity(f, c[:1].expand(4, -1), dim=-1)
    assert torch.allclose(clip.energy(images, c[:1].expand(4, -1)), expected, atol=1e-6)
    g = S.ShapesGenerator(latent_dim=8, width=4).eval()
    sampler = Sampler(g, clip)
    views = AugmentConfig(num=2, translation=1 / 32)
    composed = compose(c, [1.0, -0.5])
    for aug in (None, views):  # linear with and without augmented views (the same views for both sides)
        e = sampler.image_energy(images, composed.expand(4, -1), aug, step=3)
        parts = sampler.image_energy(images, c[:1].expand(4, -1), aug, 3) - 0.5 * sampler.image_energy(images, c[1:].expand(4, -1), aug, 3)
        assert torch.allclose(e, parts, atol=1e-5)
    assert torch.equal(sampler.image_energy(images, composed.expand(4, -1), views, 3),
                       sampler.image_energy(images, composed.expand(4, -1), views, 3))


def test_interpolation_and_composition_conditions(clip):
    a, b = clip.condition_from_text(["a red circle", "a blue square"])
    path = interpolate(a, b, 5)
    assert path.shape == (5, 8) and torch.allclose(path.norm(dim=-1), torch.ones(5), atol=1e-5)
    assert torch.allclose(path[0], a, atol=1e-5) and torch.allclose(path[-1], b, atol=1e-5)
    with pytest.raises(ConditionError, match="at least 2"):
        interpolate(a, b, 1)
    with pytest.raises(ConditionError, match="cancel out"):
        compose(torch.stack([a, a]), [1, -1])
    with pytest.raises(ConditionError, match="one weight per condition"):
        compose(torch.stack([a, b]), [1])
    with pytest.raises(ConditionError, match="zero vector"):
        clip.check_condition(torch.zeros(1, 8))


def test_bad_inputs_give_clear_errors(clip, tmp_path):
    for prompt in ["", "   ", None, "\x00\x07", "\u200b\u200d\ufeff", "\t\n"]:
        with pytest.raises(ConditionError, match="empty|must be text"):
            clip.condition_from_text([prompt])
    with pytest.raises(ConditionError, match="no prompt"):
        clip.condition_from_text([])
    with pytest.raises(ConditionError, match="cannot read image"):
        clip.condition_from_images([tmp_path / "missing.png"])
    (tmp_path / "junk.png").write_text("not an image")
    with pytest.raises(ConditionError, match="cannot read image"):
        clip.condition_from_images([tmp_path / "junk.png"])
    with pytest.raises(ConditionError, match="expects"):
        clip.check_condition(torch.ones(1, 5))


def test_image_files_of_any_size_become_conditions(clip, tmp_path, images):
    path = tmp_path / "in.png"
    Image.fromarray((images[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).resize((64, 64)).save(path)
    c = clip.condition_from_images([path, path])
    assert c.shape == (2, 8) and torch.allclose(c.norm(dim=-1), torch.ones(2))
    assert torch.allclose(clip.condition_from_images(images[:1]), clip.encode(images[:1]))


def test_translator_with_condition_noise_trains():
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(2000, 4, generator=gen)
    c = torch.nn.functional.normalize(z @ torch.randn(4, 8, generator=gen), dim=-1)  # c is a function of z
    torch.manual_seed(0)
    model = Translator(TranslatorConfig(cond_dim=8, latent_dim=4, hidden_dim=32, num_blocks=1, num_components=3,
                                        normalize_condition=True))
    history = fit_translator(model, z, c, TrainConfig(epochs=8, batch_size=128, lr=3e-3, cond_noise_std=0.2, seed=0))
    assert history[-1]["val_loss"] < history[0]["val_loss"] - 0.1


@pytest.fixture(scope="module")
def sampler(clip):
    torch.manual_seed(0)
    g = S.ShapesGenerator(latent_dim=8, width=4).eval()
    for p in g.parameters():
        p.requires_grad_(False)
    translator = Translator(TranslatorConfig(cond_dim=8, latent_dim=8, hidden_dim=16, num_blocks=1, num_components=2,
                                             normalize_condition=True)).eval()
    return Sampler(g, clip, translator)


@pytest.mark.parametrize("kind", ["text", "image", "interpolation", "composition"])
def test_each_condition_type_samples_images(kind, clip, sampler, images):
    text = clip.condition_from_text(["a red circle", "a blue square"])
    c = {
        "text": text,
        "image": clip.condition_from_images(images[:3]),
        "interpolation": interpolate(text[0], text[1], 4),
        "composition": compose(text, [1.0, -0.5]),
    }[kind]
    res = sampler.sample(c, 2, LangevinConfig(steps=2, step_size=0.1, noise_std=0.01), seed=0)
    assert res.images.shape == (2 * len(c), 3, 32, 32)
    assert torch.isfinite(res.energies).all()
    again = sampler.sample(c, 2, LangevinConfig(steps=2, step_size=0.1, noise_std=0.01), seed=0)
    assert torch.equal(res.images, again.images)
