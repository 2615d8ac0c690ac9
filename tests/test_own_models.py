"""A user's own G and f: a world made from specs (`tron world create`) that every command takes,
non-finite output refused before it reaches a dataset or a training, and a bounded quick evaluation."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from pipelines import build_dataset
from pipelines.common import run_main
from tron.cli import main as tron
from tron.dataset import DatasetIdentity, encode_shard, make_manifest, open_dataset, sha256, write_manifest, write_shard_files
from tron.errors import CheckpointError, TronError
from tron.storage import location
from tron.world import load_world
from tron.world_config import locate_world


class NanDecoder(torch.nn.Module):
    """A tiny G (z in R^4 -> 16x16 grey) whose images are NaN where z[0] > 1.5 (a broken G)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(4, 256)
        self.latent_dim = 4

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = torch.sigmoid(self.fc(z)).view(-1, 1, 16, 16)
        bad = (z[:, :1] > 1.5).float().view(-1, 1, 1, 1)
        return x + bad * torch.full_like(x, float("nan"))


@pytest.fixture(scope="module")
def nan_generator(tmp_path_factory):
    path = tmp_path_factory.mktemp("nan") / "g.pt"
    torch.jit.script(NanDecoder()).save(str(path))
    return f"torchscript:{path}#latent_dim=4"


def test_a_shard_whose_g_emits_nan_fails_in_one_line_and_writes_nothing(ray_cluster, nan_generator, tmp_path, capsys):
    out = tmp_path / "pairs"
    rc = run_main(build_dataset.main, ["--generator", nan_generator, "--encoder", "zoo:digits", "--num-pairs", "400",
                                       "--rows-per-shard", "200", "--out", str(out), "--no-mlflow"], "build_dataset.py")
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert "the generator produced non-finite images for" in err and "shard" in err and "of 200 rows" in err
    assert not list(out.glob("shard-*.parquet")) and not (out / "manifest.json").exists()


def _dataset_with_nan(root) -> str:
    """A dataset written by an older build that did not check: shard 1 holds NaN conditions."""
    identity = DatasetIdentity(generator="g", generator_fingerprint="0", encoder="f", encoder_fingerprint="0",
                               prior={"kind": "normal"}, seed=0, rows_per_shard=100, batch_size=100, latent_dim=4, cond_dim=10)
    loc = location(str(root))
    checks = []
    rng = np.random.default_rng(0)
    for i in range(2):
        z = rng.standard_normal((100, 4)).astype(np.float32)
        c = np.full((100, 10), 0.1, np.float32)
        if i == 1:
            c[:7] = np.nan
        data = encode_shard(identity, i, i * 100, z, c)
        write_shard_files(loc, i, data, sha256(data))
        from tron.dataset import ShardCheck

        checks.append(ShardCheck(i, "ok", rows=100, sha256=sha256(data)))
    write_manifest(loc, make_manifest(identity, 200, checks))
    return str(root)


def test_reading_and_training_check_for_non_finite_values_first(tmp_path, capsys):
    from pipelines import train_translator

    uri = _dataset_with_nan(tmp_path / "old")
    with pytest.raises(TronError, match=r"shard-00001.parquet holds non-finite c in 7 of 100 rows"):
        open_dataset(uri).check_finite()
    rc = run_main(train_translator.main, ["--dataset", uri, "--epochs", "1"], "train_translator.py")
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "non-finite c in 7 of 100 rows" in err and "rebuild it" in err and len(err.splitlines()) == 1


def test_fit_translator_refuses_non_finite_pairs():
    from tron.training import TrainConfig, fit_translator
    from tron.translator import Translator, TranslatorConfig

    z, c = np.zeros((20, 4), np.float32), np.full((20, 10), 0.1, np.float32)
    c[3, 2] = np.inf
    model = Translator(TranslatorConfig(cond_dim=10, latent_dim=4, hidden_dim=8))
    with pytest.raises(ValueError, match="1 of 20 pairs hold NaN or infinite values"):
        fit_translator(model, z, c, TrainConfig(epochs=1))


# -- tron world create ---------------------------------------------------------------------------

def test_world_create_from_specs_then_sample_eval_and_list(tmp_path, capsys):
    """G and f of zoo:digits as checkpoint directories (copied in), the shipped translator: the
    user's journey without Python."""
    zoo = locate_world("zoo:digits")
    world_dir = tmp_path / "mine"
    rc = tron(["world", "create", str(world_dir), "--generator", str(zoo / "generator"), "--encoder", str(zoo / "encoder"),
               "--translator", str(zoo / "translator"), "--langevin", '{"steps": 3, "momentum": 0.5, "grad_clip": 1.0}',
               "--judge", '{"kind": "digits-svm"}', "--name", "mine"])
    assert rc == 0, capsys.readouterr().err
    doc = json.loads((world_dir / "world.json").read_text())
    assert doc["name"] == "mine" and doc["generator"] == "generator" and doc["translators"] == {"default": "translator"}
    assert doc["langevin"]["steps"] == 3 and doc["langevin"]["momentum"] == 0.5 and set(doc["fingerprints"]) == {"generator", "encoder"}
    world = load_world(world_dir)
    assert world.fingerprints == load_world("zoo:digits").fingerprints
    npy = tmp_path / "x.npy"
    assert tron(["sample", str(world_dir), "--label", "3", "-n", "2", "--npy", str(npy)]) == 0
    assert np.load(npy).shape == (2, 1, 16, 16)
    assert tron(["list", str(world_dir)]) == 0
    assert "mine" in capsys.readouterr().out


def test_world_create_with_adapter_specs_records_the_spec_and_its_fingerprint(tmp_path, nan_generator):
    world_dir = tmp_path / "spec"
    assert tron(["world", "create", str(world_dir), "--generator", nan_generator, "--encoder", "zoo:digits",
                 "--langevin", "reference"]) == 0
    doc = json.loads((world_dir / "world.json").read_text())
    assert doc["generator"] == nan_generator and doc["encoder"] == "encoder" and (world_dir / "encoder" / "config.json").is_file()
    assert doc["langevin"]["steps"] == 100 and doc["langevin"]["momentum"] == 0.99 and doc["langevin"]["augment"]["num"] == 50
    world = load_world(world_dir)
    assert world.translator is None and world.generator.latent_dim == 4
    # the file behind the spec changes: the world refuses to load
    path = nan_generator.split(":", 1)[1].split("#")[0]
    torch.jit.script(torch.nn.Sequential(torch.nn.Linear(4, 256), torch.nn.Unflatten(1, (1, 16, 16)))).save(path)
    with pytest.raises(CheckpointError, match="has changed since the world was made"):
        load_world(world_dir)


def test_world_create_refuses_a_translator_of_other_parts_and_a_non_empty_dir(tmp_path, capsys):
    shapes = locate_world("zoo:shapes")
    digits = locate_world("zoo:digits")
    rc = tron(["world", "create", str(tmp_path / "w"), "--generator", "zoo:digits", "--encoder", "zoo:digits",
               "--translator", str(shapes / "translator")])
    err = capsys.readouterr().err
    assert rc == 2 and "was trained for a different generator" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "w").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert tron(["world", "create", str(tmp_path / "full"), "--generator", "zoo:digits", "--encoder", str(digits / "encoder")]) == 2
    assert "not empty" in capsys.readouterr().err


# -- the quick evaluation is bounded ---------------------------------------------------------------

def test_quick_evaluation_keeps_to_its_budget_and_says_what_it_covered():
    from pipelines.evaluation import EvalBudget, evaluate_translator

    digits = locate_world("zoo:digits")
    summary = evaluate_translator("zoo:digits", "zoo:digits", digits / "translator", n=2,
                                  budget=EvalBudget(conditions=6, max_steps=3, seconds=1e-3))
    assert summary["eval_steps"] == 3 and summary["eval_conditions_planned"] == 6
    assert summary["eval_conditions"] == 4 and summary["eval_truncated"] == 1.0  # the first chunk always runs
    assert math.isfinite(summary["energy_mean_final"]) and "judged_accuracy" not in summary
    full = evaluate_translator("zoo:digits", "zoo:digits", digits / "translator", n=2, budget=EvalBudget(conditions=10, max_steps=2))
    assert full["eval_conditions"] == 10 and full["eval_truncated"] == 0.0 and "judged_accuracy" in full


def test_fixed_conditions_spread_over_a_large_classifier():
    from pipelines.evaluation import fixed_conditions
    from tron.components import load_encoder_spec, load_generator_spec
    from tron.world import World

    f = load_encoder_spec("efficientnet:lite0#image_size=64")
    cond = fixed_conditions(World("x", load_generator_spec("gan-face-generate"), f, {}), count=16)
    labels = cond.c.argmax(1).tolist()
    assert len(labels) == 16 and labels[0] == 0 and labels[-1] > 900 and labels == sorted(set(labels))
