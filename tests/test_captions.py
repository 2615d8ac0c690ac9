"""Captioned pairs: a captioner named by a spec writes each G(z)'s caption and its text embedding
under f next to the image embedding; the text translator trains on them (pipelines, real Ray)."""
import json
import shutil

import numpy as np
import pytest
import torch

from pipelines import build_dataset, train_translator
from pipelines.common import run_main
from tron.captioners import CAPTION_COLUMN, TEXT_COLUMN, read_bank
from tron.components import component_fingerprint, load_captioner_spec, load_encoder_spec
from tron.dataset import open_dataset, table_column
from tron.errors import CheckpointError
from tron.translator import load_translator
from tron.world import load_world
from tron.world_config import WorldConfig, locate_world
from tron.zoo import shapes as S

ARGS = ["--generator", "zoo:shapes", "--num-pairs", "1200", "--rows-per-shard", "600", "--batch-size", "300", "--no-mlflow"]


def build(out, *extra):
    return run_main(build_dataset.main, [*ARGS, "--out", str(out), *extra], "build_dataset.py")


def columns(out, *names):
    ds = open_dataset(str(out))
    tables = [ds.read_shard(i) for i in range(len(ds.shard_paths))]
    return {n: (np.concatenate([t.column(n).to_numpy(zero_copy_only=False) for t in tables]) if n == TEXT_COLUMN
                else np.concatenate([table_column(t, n) for t in tables])) for n in names}


@pytest.fixture(scope="module")
def builds(ray_cluster, tmp_path_factory):
    root = tmp_path_factory.mktemp("captions")
    assert build(root / "captioned", "--captioner", "zoo:shapes") == 0
    assert build(root / "plain") == 0
    return root


def test_a_captioned_build_writes_captions_and_their_text_embeddings(builds):
    ds = open_dataset(str(builds / "captioned"))
    assert ds.identity.captioner == "zoo:shapes"
    assert ds.identity.captioner_fingerprint == component_fingerprint("zoo:shapes", "captioner")
    assert ds.manifest["fingerprints"]["captioner"] == ds.identity.captioner_fingerprint
    assert CAPTION_COLUMN in ds.condition_columns
    got = columns(builds / "captioned", "z", "c", CAPTION_COLUMN, TEXT_COLUMN)
    plain = columns(builds / "plain", "z", "c")
    # the captioner's draws have their own stream: z and c are those of the same build without captions
    assert np.array_equal(got["z"], plain["z"]) and np.array_equal(got["c"], plain["c"])
    f = load_encoder_spec("zoo:shapes")
    with torch.no_grad():
        want = f.condition_from_text(list(got[TEXT_COLUMN][:50])).numpy()
    assert np.allclose(got[CAPTION_COLUMN][:50], want, atol=1e-5)
    named = [len(S.parse_prompt(t)) for t in got[TEXT_COLUMN]]
    assert set(named) == {1, 2, 3, 4}  # a granularity drawn per pair: partial and full captions
    assert abs(np.mean([k == 4 for k in named]) - 0.25) < 0.06


def test_the_caption_translator_trains_and_is_refused_once_its_captioner_changes(builds, tmp_path):
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    rc = run_main(train_translator.main, ["--dataset", str(builds / "captioned"), "--condition-column", CAPTION_COLUMN,
                                          "--epochs", "2", "--hidden-dim", "32", "--num-blocks", "1", "--eval-samples", "1",
                                          "--eval-steps", "2", "--eval-conditions", "2", "--export", str(tmp_path / "export"),
                                          "--storage-path", str(tmp_path / "ray"), "--tracking-uri", tracking],
                  "train_translator.py")
    assert rc == 0
    translator = load_translator(tmp_path / "export")
    assert translator.metadata["kind"] == "text" and translator.metadata["condition_space"] == "caption"
    assert translator.metadata["captioner_fingerprint"] == component_fingerprint("zoo:shapes", "captioner")
    import mlflow  # the registered version carries it too: what retrain.py compares with the captioner now

    name = train_translator.registered_model_name("zoo:shapes", "zoo:shapes", CAPTION_COLUMN)
    (version,) = mlflow.MlflowClient(tracking).search_model_versions(f"name='{name}'")
    assert version.tags["captioner_fingerprint"] == component_fingerprint("zoo:shapes", "captioner")

    world_dir = tmp_path / "shapes"
    shutil.copytree(locate_world("zoo:shapes"), world_dir)
    shutil.rmtree(world_dir / "translator-text", ignore_errors=True)
    shutil.copytree(tmp_path / "export", world_dir / "translator-text")
    config = WorldConfig.load(world_dir)
    config.translators["text"] = "translator-text"  # text prompts take the caption translator
    config.save(world_dir)
    world = load_world(world_dir)
    assert world.sampler("text").translator.metadata["kind"] == "text"

    # The world's captioner changes (its caption bank gains a caption): its captions may differ.
    assert config.captioner == "caption-bank:caption_bank.json"
    bank = json.loads((world_dir / "caption_bank.json").read_text())
    bank["groups"][0]["captions"].append("a shape")
    (world_dir / "caption_bank.json").write_text(json.dumps(bank))
    with pytest.raises(CheckpointError, match="different captioner"):
        load_world(world_dir)


def test_captioner_spec_errors_are_one_line(builds, tmp_path, capsys):
    assert build(tmp_path / "a", "--captioner", str(tmp_path / "no-such-captioner")) == 2
    assert "no-such-captioner" in capsys.readouterr().err.strip().splitlines()[-1]
    assert run_main(build_dataset.main, ["--generator", "zoo:digits", "--num-pairs", "10", "--out", str(tmp_path / "b"),
                                         "--no-mlflow", "--captioner", "zoo:shapes"], "build_dataset.py") == 2
    assert "takes no text" in capsys.readouterr().err.strip().splitlines()[-1]
    assert build(tmp_path / "c", "--captioner", "zoo:digits") == 2  # a world without a captioner
    assert "names no captioner" in capsys.readouterr().err.strip().splitlines()[-1]
    # A rerun with another captioner (a foreign fingerprint) is refused, as another G or f would be.
    bank = f"caption-bank:{locate_world('zoo:shapes') / 'caption_bank.json'}"
    assert build(builds / "captioned", "--captioner", bank) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "different dataset" in err and "captioner" in err


def test_the_bank_captioner_names_what_f_sees():
    """f ranks the bank: on clean renders its full captions are the renderer's own."""
    f = load_encoder_spec("zoo:shapes")
    bank = f"caption-bank:{locate_world('zoo:shapes') / 'caption_bank.json'}"
    captioner = load_captioner_spec(bank, f)
    assert sum(len(c) for _, c in read_bank(locate_world("zoo:shapes") / "caption_bank.json")) == 575
    x, attrs = S.sample_images(64, torch.Generator().manual_seed(0))
    captions = captioner.caption(x, torch.Generator().manual_seed(1))
    for text, row in zip(captions, attrs):
        named = S.parse_prompt(text)
        assert named and all(S.ATTRIBUTES[a][int(row[i])] == named[a] for i, a in enumerate(S.ATTRIBUTE_NAMES) if a in named)
