"""Adapters: tiny random configurations of the real classes (open_clip, torchvision, BigGAN,
diffusers consistency models, plugins, TorchScript), loaded through the command-line specs."""
import json
import textwrap

import open_clip
import pytest
import torch
from safetensors.torch import save_file

from tron.components import component_fingerprint, load_encoder_spec, load_generator_spec, parse_adapter_spec
from tron.errors import CheckpointError, TronError
from tron.langevin import LangevinConfig, langevin_dynamics
from tron.pairs import generate_pairs

CLIP_NAME = "tron-test-adapter-clip"
CLIP_CONFIG = {
    "embed_dim": 8,
    "vision_cfg": {"image_size": 24, "patch_size": 8, "width": 16, "layers": 1, "head_width": 8, "mlp_ratio": 2.0},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 8, "heads": 1, "layers": 1, "mlp_ratio": 2.0},
}


def _grad_reaches(generator, encoder, c, n=3):
    """Gradient of the energy with respect to z: finite and non-zero for every row."""
    z = generator.sample_latents(n, torch.Generator().manual_seed(0)).requires_grad_(True)
    encoder.energy(generator.decode(z), c.expand(n, -1)).sum().backward()
    assert torch.isfinite(z.grad).all()
    assert (z.grad.abs().sum(1) > 0).all()
    return z


def _pairs_and_langevin(generator, encoder, c):
    z, cs = generate_pairs(generator, encoder, 5, seed=1, batch_size=3)
    assert z.shape == (5, generator.latent_dim) and cs.shape == (5, encoder.embed_dim)
    z2, _ = generate_pairs(generator, encoder, 5, seed=1, batch_size=3)
    assert (z == z2).all()  # deterministic for a seed
    z0 = torch.as_tensor(z[:2])
    zT = langevin_dynamics(z0, lambda w, rows, t: encoder.energy(generator.decode(w), c.expand(2, -1)),
                           LangevinConfig(steps=3, step_size=0.5, noise_std=0.0), torch.Generator().manual_seed(0))
    assert torch.isfinite(zT).all() and not torch.equal(zT, z0)


# -- encoders ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip_weights(tmp_path_factory):
    directory = tmp_path_factory.mktemp("openclip")
    path = directory / f"{CLIP_NAME}.json"
    path.write_text(json.dumps(CLIP_CONFIG))
    open_clip.add_model_config(path)
    torch.manual_seed(0)
    model = open_clip.create_model(CLIP_NAME)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, directory / "weights.safetensors")
    torch.save(model.state_dict(), directory / "weights.pt")
    return directory, model.eval()


def test_open_clip_local_file_with_its_preprocessing_inside_the_energy(clip_weights):
    directory, reference = clip_weights
    f = load_encoder_spec(f"open_clip:{CLIP_NAME}:{directory / 'weights.safetensors'}")
    assert f.kind == "clip" and f.embed_dim == 8 and f.image_size == 24
    x = torch.rand(2, 3, 40, 40)
    # the model's own preprocessing: resize to 24 px, normalise with its mean and std
    expected = torch.nn.functional.interpolate(x, size=(24, 24), mode="bilinear", align_corners=False, antialias=True)
    mean, std = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1), torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
    want = torch.nn.functional.normalize(reference.encode_image((expected - mean) / std), dim=-1)
    assert torch.allclose(f.encode(x), want, atol=1e-5)
    # a torch file (read with weights_only=True) gives the same model
    f2 = load_encoder_spec(f"open_clip:{CLIP_NAME}:{directory / 'weights.pt'}")
    assert torch.allclose(f2.encode(x), want, atol=1e-5)
    xg = x.clone().requires_grad_(True)
    f.energy(xg, f.condition_from_text(["a red circle", "a cat"])).sum().backward()
    assert xg.grad.abs().sum() > 0


def test_open_clip_errors_name_the_tag_or_file(clip_weights, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # as on this machine, but fast
    with pytest.raises(CheckpointError, match="ViT-B-32:laion2b_s34b_b79k are not available offline"):
        load_encoder_spec("open_clip:ViT-B-32:laion2b_s34b_b79k")
    with pytest.raises(CheckpointError, match="no pretrained tag 'nope' for ViT-B-32"):
        load_encoder_spec("open_clip:ViT-B-32:nope")
    with pytest.raises(CheckpointError, match="no architecture 'ViT-Nope'"):
        load_encoder_spec("open_clip:ViT-Nope:openai")
    with pytest.raises(CheckpointError, match="weights file not found: /no/such.bin"):
        load_encoder_spec("open_clip:ViT-B-32:/no/such.bin")
    wrong = tmp_path / "wrong.safetensors"
    save_file({"visual.proj": torch.zeros(2, 2)}, wrong)
    with pytest.raises(CheckpointError, match="do not fit open_clip"):
        load_encoder_spec(f"open_clip:{CLIP_NAME}:{wrong}")
    with pytest.raises(TronError, match="write open_clip:ARCH:TAG"):
        load_encoder_spec("open_clip:ViT-B-32")


@pytest.fixture(scope="module")
def resnet_file(tmp_path_factory):
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    path = tmp_path_factory.mktemp("tv") / "resnet18.pth"
    torch.save(model.state_dict(), path)
    return path, model


def test_torchvision_classifier_from_a_local_file(resnet_file):
    path, reference = resnet_file
    f = load_encoder_spec(f"torchvision:resnet18:{path}#image_size=32")
    assert f.kind == "classifier" and f.embed_dim == 10  # read from the weights' last layer
    x = torch.rand(2, 1, 16, 16)  # grey, small: repeated to RGB and resized inside
    manual = torch.nn.functional.interpolate(x.expand(-1, 3, -1, -1), size=(32, 32), mode="bilinear",
                                             align_corners=False, antialias=True)
    manual = (manual - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    assert torch.allclose(f.logits(x), reference(manual), atol=1e-5)
    c = f.condition_from_labels([3])
    xg = x.clone().requires_grad_(True)
    f.energy(xg, c.expand(2, -1)).sum().backward()
    assert xg.grad.abs().sum() > 0


class _Payload:  # a pickled object that weights_only refuses
    def __reduce__(self):
        return (print, ("unpickled!",))


def test_torch_files_are_never_unpickled_without_the_flag(resnet_file, tmp_path, capsys):
    path, _ = resnet_file
    state = torch.load(path, weights_only=True)
    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": state, "extra": _Payload()}, evil)
    with pytest.raises(CheckpointError, match="evil.pth holds pickled objects.*allow_pickle"):
        load_encoder_spec(f"torchvision:resnet18:{evil}#image_size=32")
    assert "unpickled!" not in capsys.readouterr().out
    f = load_encoder_spec(f"torchvision:resnet18:{evil}#image_size=32,allow_pickle=true")  # explicitly trusted
    assert f.embed_dim == 10 and "unpickled!" in capsys.readouterr().out
    with pytest.raises(CheckpointError, match="torchvision has no model 'resnet999'"):
        load_encoder_spec(f"torchvision:resnet999:{path}")
    with pytest.raises(TronError, match="unknown torchvision option"):
        load_encoder_spec(f"torchvision:resnet18:{path}#size=3")


@pytest.fixture(scope="module")
def classifier(resnet_file):
    return load_encoder_spec(f"torchvision:resnet18:{resnet_file[0]}#image_size=16")


# -- BigGAN --------------------------------------------------------------------------------------


def _biggan_dir(tmp_path, fmt="safetensors"):
    from pytorch_pretrained_biggan import BigGAN, BigGANConfig

    config = dict(output_dim=16, z_dim=8, class_embed_dim=8, channel_width=4, num_classes=5,
                  layers=[[True, 16, 8], [False, 8, 4], [True, 4, 2], [False, 2, 1]], attention_layer_position=1, eps=1e-4, n_stats=51)
    torch.manual_seed(0)
    model = BigGAN(BigGANConfig.from_dict(config))
    for m in model.modules():  # BigGAN leaves these uninitialised: it is meant to load weights
        if hasattr(m, "running_means"):
            if not m.conditional:
                torch.nn.init.ones_(m.weight)
                torch.nn.init.zeros_(m.bias)
    with torch.no_grad():  # power iterations, so spectral norm's stored (u, v) estimate sigma as trained weights would
        for _ in range(10):
            model.train()(torch.zeros(1, 8), torch.eye(5)[:1], 1.0)
    (tmp_path / "config.json").write_text(json.dumps(config))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if fmt == "safetensors":
        save_file(state, tmp_path / "model.safetensors")
    else:
        torch.save(state, tmp_path / "pytorch_model.bin")
    return model.eval()


def test_biggan_latent_is_z_and_class_embedding(tmp_path, classifier):
    reference = _biggan_dir(tmp_path)
    g = load_generator_spec(f"biggan:{tmp_path}#truncation=0.5,z_clamp=1.5")
    assert g.latent_dim == 16 and g.image_shape == (3, 16, 16)
    w = g.sample_latents(4, torch.Generator().manual_seed(0))
    z, e = w[:, :8], w[:, 8:]
    assert z.abs().max() <= 2 * 0.5  # truncated normal times the truncation
    onehots = torch.eye(5)
    # every e is the embedding of one class, as BigGAN's forward builds it
    assert all(torch.isclose(reference.embeddings(onehots), row).all(1).any() for row in e)
    with torch.no_grad():
        label = onehots[[1, 2, 3, 4]]
        latent = torch.cat([z, reference.embeddings(label)], 1)
        assert torch.allclose(g.decode(latent), (reference(z, label, 0.5) + 1) / 2, atol=1e-5)
        far = latent.clone()
        far[:, :8] = 10.0
        clamped = latent.clone()
        clamped[:, :8] = 1.5
        # z is projected after each Langevin step (not clamped inside decode): the class embedding stays
        assert torch.equal(g.project(far), clamped) and not torch.allclose(g.decode(far), g.decode(clamped))
    far.requires_grad_(True)
    classifier.energy(g.decode(far), classifier.condition_from_labels([2]).expand(4, -1)).sum().backward()
    assert (far.grad[:, :8].abs().sum(1) > 0).all()  # coordinates past the bound still get their gradient
    target = classifier.condition_from_labels([2])
    zT = langevin_dynamics(far.detach(), lambda w, rows, t: classifier.energy(g.decode(w), target.expand(len(w), -1)),
                           LangevinConfig(steps=2, step_size=0.5, noise_std=0.1), torch.Generator().manual_seed(0), project=g.project)
    assert zT[:, :8].abs().max() <= 1.5 and not torch.equal(zT[:, 8:], far.detach()[:, 8:])
    _grad_reaches(g, classifier, classifier.condition_from_labels([2]))
    _pairs_and_langevin(g, classifier, classifier.condition_from_labels([2]))


def test_biggan_errors(tmp_path):
    with pytest.raises(CheckpointError, match="is not a BigGAN directory"):
        load_generator_spec(f"biggan:{tmp_path}")
    _biggan_dir(tmp_path, fmt="bin")
    assert load_generator_spec(f"biggan:{tmp_path}").latent_dim == 16  # pytorch_model.bin, weights_only
    with pytest.raises(CheckpointError, match="truncation must be in"):
        load_generator_spec(f"biggan:{tmp_path}#truncation=2")
    with pytest.raises(TronError, match="unknown biggan option"):
        load_generator_spec(f"biggan:{tmp_path}#psi=0.4")
    with pytest.raises(TronError, match="names a generator, not an encoder"):
        load_encoder_spec(f"biggan:{tmp_path}")


# -- consistency model ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cm_dir(tmp_path_factory):
    from diffusers import CMStochasticIterativeScheduler, UNet2DModel

    directory = tmp_path_factory.mktemp("cm")
    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=8, in_channels=3, out_channels=3, block_out_channels=(8, 16), layers_per_block=1,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       norm_num_groups=4)
    unet.save_pretrained(directory / "unet")
    CMStochasticIterativeScheduler(num_train_timesteps=40, sigma_max=80.0).save_pretrained(directory / "scheduler")
    return directory


def test_consistency_model_is_the_one_step_pipeline_sample(cm_dir, classifier):
    from diffusers import CMStochasticIterativeScheduler, ConsistencyModelPipeline, UNet2DModel

    g = load_generator_spec(f"consistency:{cm_dir}")
    assert g.latent_dim == 192 and g.image_shape == (3, 8, 8)
    z = g.sample_latents(3, torch.Generator().manual_seed(0))
    pipe = ConsistencyModelPipeline(UNet2DModel.from_pretrained(cm_dir / "unet", low_cpu_mem_usage=False),
                                    CMStochasticIterativeScheduler.from_pretrained(cm_dir / "scheduler"))
    pipe.set_progress_bar_config(disable=True)
    with torch.no_grad():
        want = pipe(batch_size=3, num_inference_steps=1, latents=z.view(3, 3, 8, 8), output_type="pt").images
        got = g.decode(z)
    want = torch.as_tensor(want)
    assert torch.allclose(got, want, atol=1e-5)
    _grad_reaches(g, classifier, classifier.condition_from_labels([7]))
    _pairs_and_langevin(g, classifier, classifier.condition_from_labels([7]))


def test_consistency_checkpoint_round_trip_and_pickle_refusal(cm_dir, tmp_path):
    import shutil

    from tron.generators import load_generator, save_generator

    g = load_generator_spec(f"consistency:{cm_dir}")
    save_generator(g, tmp_path / "ckpt")
    g2 = load_generator_spec(str(tmp_path / "ckpt"))  # a tron checkpoint of kind diffusers-consistency
    z = torch.randn(2, 192)
    assert torch.equal(g.decode(z), g2.decode(z)) and torch.equal(load_generator(tmp_path / "ckpt").decode(z), g.decode(z))
    pickled = tmp_path / "pickled"
    shutil.copytree(cm_dir, pickled)
    (pickled / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    torch.save(g.unet.state_dict(), pickled / "unet" / "diffusion_pytorch_model.bin")
    with pytest.raises(CheckpointError, match="a .bin file is a pickle"):
        load_generator_spec(f"consistency:{pickled}")
    assert torch.allclose(load_generator_spec(f"consistency:{pickled}#allow_pickle=true").decode(z), g.decode(z))
    with pytest.raises(CheckpointError, match="not a diffusers consistency model directory"):
        load_generator_spec(f"consistency:{tmp_path}")


# -- plugins and TorchScript ---------------------------------------------------------------------


PLUGIN = textwrap.dedent('''
    import torch
    from torch import nn

    class Tanh(nn.Module):  # e.g. a StyleGAN2 generator the user wraps: z -> tanh image
        latent_dim = 6
        def __init__(self, side):
            super().__init__()
            self.fc = nn.Linear(6, 3 * side * side)
            self.side = side
        def forward(self, z):
            return torch.tanh(self.fc(z)).view(-1, 3, self.side, self.side)

    def make(side=4):
        torch.manual_seed(0)
        return Tanh(int(side))
''')


def test_plugin_factory_and_torchscript(tmp_path, monkeypatch, classifier):
    (tmp_path / "my_gan_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    g = load_generator_spec("plugin:my_gan_plugin:make#side=8,output_range=tanh")
    assert g.latent_dim == 6 and g.image_shape == (3, 8, 8)
    assert load_generator_spec("my_gan_plugin:make#side=4").image_shape == (3, 4, 4)  # the bare module:factory form
    z = torch.randn(2, 6)
    import my_gan_plugin

    ref = my_gan_plugin.make(8)
    assert torch.allclose(g.decode(z), (ref(z) + 1) / 2, atol=1e-6)
    _grad_reaches(g, classifier, classifier.condition_from_labels([1]))
    _pairs_and_langevin(g, classifier, classifier.condition_from_labels([1]))

    scripted = torch.jit.script(ref)
    scripted.save(str(tmp_path / "g.pt"))
    gs = load_generator_spec(f"torchscript:{tmp_path / 'g.pt'}#latent_dim=6,output_range=tanh")
    assert torch.allclose(gs.decode(z), g.decode(z), atol=1e-6)
    _grad_reaches(gs, classifier, classifier.condition_from_labels([1]))

    with pytest.raises(CheckpointError, match="cannot import plugin module 'no_such_module'"):
        load_generator_spec("no_such_module:make")
    with pytest.raises(CheckpointError, match="has no 'nothing'"):
        load_generator_spec("my_gan_plugin:nothing")
    with pytest.raises(CheckpointError, match="not a TorchScript file"):
        load_generator_spec(f"torchscript:{tmp_path / 'my_gan_plugin.py'}#latent_dim=6")
    with pytest.raises(CheckpointError, match="must return a tron.encoders.Encoder"):
        load_encoder_spec("my_gan_plugin:make")


def test_specs_and_fingerprints(tmp_path, resnet_file):
    spec = parse_adapter_spec("biggan:/m/big#truncation=0.4,z-clamp=2")
    assert (spec.scheme, spec.args, spec.options) == ("biggan", ["/m/big"], {"truncation": 0.4, "z_clamp": 2})
    assert parse_adapter_spec("zoo:digits") is None
    assert parse_adapter_spec("pkg.mod:factory").scheme == "plugin"
    with pytest.raises(TronError, match="bad option"):
        parse_adapter_spec("biggan:/x#truncation")
    _biggan_dir(tmp_path)
    fp = component_fingerprint(f"biggan:{tmp_path}", "generator")
    assert fp == component_fingerprint(f"biggan:{tmp_path}#allow_pickle=true", "generator")
    assert fp != component_fingerprint(f"biggan:{tmp_path}#truncation=0.5", "generator")
    import shutil

    a, b = tmp_path / "a.pth", tmp_path / "b.pth"
    shutil.copy(resnet_file[0], a)
    shutil.copy(resnet_file[0], b)
    # a weights file is identified by its content, not its path
    assert component_fingerprint(f"torchvision:resnet18:{a}", "encoder") == component_fingerprint(f"torchvision:resnet18:{b}", "encoder")
    state = torch.load(resnet_file[0], weights_only=True)
    state["fc.bias"] = state["fc.bias"] + 1
    torch.save(state, b)
    assert component_fingerprint(f"torchvision:resnet18:{a}", "encoder") != component_fingerprint(f"torchvision:resnet18:{b}", "encoder")
    assert component_fingerprint("zoo:digits", "generator") == component_fingerprint("zoo:digits", "generator")
