"""The recipe re-creates a world at a tiny budget; loading it checks fingerprints."""
import json
import shutil

import pytest
import torch

from tron.checkpoint import fingerprint
from tron.errors import CheckpointError, RegistryError
from tron.generators import save_generator
from tron.recipes import digits as digits_recipe
from tron.world import load_world
from tron.world_config import locate_world


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory):
    out = tmp_path_factory.mktemp("worlds") / "digits"
    result = digits_recipe.main(["--budget", "tiny", "--out", str(out)])
    assert 0 <= result["classifier_accuracy"] <= 1
    return out


def test_recipe_writes_a_loadable_world(tiny_world):
    for part in ("generator", "encoder", "translator"):
        assert (tiny_world / part / "config.json").is_file()
        assert (tiny_world / part / "model.safetensors").is_file()
    world = load_world(tiny_world)
    assert world.name == "digits" and world.generator.latent_dim == 16 and world.encoder.embed_dim == 10
    meta = world.translator.metadata
    assert meta["generator_fingerprint"] == world.fingerprints["generator"] == fingerprint(tiny_world / "generator")
    res = world.sampler().sample(world.encoder.condition_from_labels([4]), 2, world.langevin, seed=0)
    assert res.images.shape == (2, 1, 16, 16)


def test_recipe_is_deterministic(tiny_world, tmp_path):
    again = tmp_path / "digits"
    digits_recipe.main(["--budget", "tiny", "--out", str(again)])
    for part in ("generator", "encoder", "translator"):
        assert fingerprint(again / part) == fingerprint(tiny_world / part)


def test_translator_for_another_generator_is_refused(tiny_world, tmp_path):
    world_dir = tmp_path / "swapped"
    shutil.copytree(tiny_world, world_dir)
    world = load_world(world_dir)
    with torch.no_grad():
        world.generator.fc.weight.add_(0.01)  # a different G
    save_generator(world.generator, world_dir / "generator")
    with pytest.raises(CheckpointError, match="different generator"):
        load_world(world_dir)


def test_unknown_world():
    with pytest.raises(RegistryError, match="unknown zoo world 'nope'"):
        locate_world("zoo:nope")
    with pytest.raises(CheckpointError, match="not a world directory"):
        locate_world("/definitely/not/here")


def test_packaged_zoo_is_complete():
    world = load_world("zoo:digits")
    assert world.translator is not None
    assert world.translator.metadata["encoder_fingerprint"] == world.fingerprints["encoder"]
    doc = json.loads((locate_world("zoo:digits") / "world.json").read_text())
    assert doc["langevin"]["steps"] == world.langevin.steps


# -- a translator that records no fingerprints cannot be verified: refused unless accepted ----------

def unverified_copy(translator_dir, out, keep: tuple[str, ...] = ()):
    """A copy of a translator whose metadata keeps only the fingerprints named in `keep`."""
    shutil.copytree(translator_dir, out)
    doc = json.loads((out / "config.json").read_text())
    doc["metadata"] = {k: v for k, v in doc.get("metadata", {}).items() if k.split("_")[0] in keep}
    (out / "config.json").write_text(json.dumps(doc))
    return out


def test_every_shipped_translator_records_g_and_f_fingerprints():
    from tron.world_config import list_zoo

    for name in list_zoo():
        root = locate_world(f"zoo:{name}")
        for config in root.glob("translator*/config.json"):
            meta = json.loads(config.read_text()).get("metadata", {})
            assert meta.get("generator_fingerprint") and meta.get("encoder_fingerprint"), config
    load_world("zoo:shapes")  # its captioner's fingerprint is not required of translators trained without captions


def test_a_translator_without_fingerprints_is_refused_unless_accepted_with_a_warning(tmp_path, caplog):
    bundled = locate_world("zoo:digits") / "translator"
    bare = unverified_copy(bundled, tmp_path / "bare")
    with pytest.raises(CheckpointError, match="records no generator and no encoder fingerprint.*--accept-unverified-translator"):
        load_world("zoo:digits", translator=bare)
    half = unverified_copy(bundled, tmp_path / "half", keep=("generator",))
    with pytest.raises(CheckpointError, match="records no encoder fingerprint, so it cannot be checked"):
        load_world("zoo:digits", translator=half)
    with caplog.at_level("WARNING", logger="tron.world"):
        for _ in range(2):  # said on every use
            world = load_world("zoo:digits", translator=bare, accept_unverified=True)
    assert world.translator is not None
    warnings = [r.getMessage() for r in caplog.records if "UNVERIFIED" in r.getMessage()]
    assert len(warnings) == 2 and "no generator and no encoder fingerprint" in warnings[0], caplog.text
    # accepting the unverified does not accept the foreign: a recorded fingerprint that differs is still refused
    foreign = unverified_copy(locate_world("zoo:shapes") / "translator", tmp_path / "foreign", keep=("generator", "encoder"))
    with pytest.raises(CheckpointError, match="different generator"):
        load_world("zoo:digits", translator=foreign, accept_unverified=True)
