"""The shapes world: renderer against the spec, captions, judge, GAN class, and the recipe at a tiny budget."""
import json

import pytest
import torch

from tron.checkpoint import fingerprint
from tron.generators import GENERATORS
from tron.recipes import shapes as recipe
from tron.world import load_world
from tron.zoo import shapes as S
from tron.zoo.shapes.judge import AttributeCNN, load_attribute_cnn, save_attribute_cnn


def one(shape, color, side, cx, cy):
    rgb = torch.tensor([S.COLORS[color]])
    return S.draw(torch.tensor([S.SHAPES.index(shape)]), rgb, torch.tensor([float(side)]),
                  torch.tensor([float(cx)]), torch.tensor([float(cy)]))[0]


def bbox(image, threshold=0.5):
    ys, xs = (image.max(0).values > threshold).nonzero(as_tuple=True)
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


@pytest.mark.parametrize("shape", S.SHAPES)
def test_a_centred_shape_fills_its_bounding_box(shape):
    x = one(shape, "white", 8, 16, 16)  # box [12, 20) x [12, 20) in pixel edges
    assert bbox(x, 0) == (12, 12, 19, 19)  # anti-aliasing never spills past the box
    assert x.shape == (3, 32, 32) and float(x.min()) == 0 and float(x.max()) == 1


def test_colours_are_pure_and_background_black():
    for name, rgb in S.COLORS.items():
        x = one("square", name, 14, 16, 16)
        assert x[:, 16, 16].tolist() == list(rgb)
        assert x[:, 0, 0].tolist() == [0, 0, 0]


def test_triangle_is_upright_and_circle_is_round():
    tri = one("triangle", "red", 16, 16, 16)[0] > 0.5
    rows = tri.sum(1)
    assert rows[9] < rows[14] < rows[22]  # narrow apex at the top, wide base at the bottom
    circle = one("circle", "red", 16, 16, 16)[0]
    assert circle[8, 8] == 0 and circle[16, 16] == 1  # corners of the box stay empty
    assert abs(float(circle.sum()) - torch.pi * 64) < 2  # area pi r^2 (anti-aliased)


def test_rendered_sizes_and_positions_follow_the_spec():
    gen = torch.Generator().manual_seed(0)
    attrs = torch.tensor([[1, 0, size, pos] for size in range(2) for pos in range(5)] * 20)  # squares
    x = S.render(attrs, gen)
    for image, (_, _, size, pos) in zip(x, attrs.tolist()):
        mass = image[0]
        ys, xs = torch.meshgrid(torch.arange(32.0) + 0.5, torch.arange(32.0) + 0.5, indexing="ij")
        cx, cy = float((mass * xs).sum() / mass.sum()), float((mass * ys).sum() / mass.sum())
        want = list(S.POSITIONS.values())[pos]
        side = float(mass.sum()) ** 0.5
        lo, hi = S.SIZE_RANGES[S.SIZES[size]]
        clipped = 0 in bbox(image, 0) or 31 in bbox(image, 0)  # large boxes in a corner leave the canvas
        if not clipped:
            assert lo - 0.15 <= side <= hi + 0.15
            assert abs(cx - want[0]) <= 1.5 + 1e-3 and abs(cy - want[1]) <= 1.5 + 1e-3
        assert abs(cx - want[0]) <= 4.5 and abs(cy - want[1]) <= 4.5


def test_attributes_are_uniform_and_seeded():
    a = S.sample_attributes(21_000, torch.Generator().manual_seed(1))
    b = S.sample_attributes(21_000, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == (21_000, 4)
    counts = torch.bincount(S.combination_index(a), minlength=210)
    assert counts.min() > 50 and counts.max() < 160  # ~100 each
    assert torch.equal(S.combination_index(S.all_combinations()), torch.arange(210))


def test_captions():
    full = S.full_captions()
    assert len(set(full)) == 210 and "a small red circle in the top left" in full
    assert "a large cyan triangle in the center" in full
    assert S.describe(color="blue") == "a blue shape"
    assert S.describe(color="red", shape="circle") == "a red circle"
    assert S.describe(size="large", shape="square", position="bottom right") == "a large square in the bottom right"
    texts, keep = S.random_captions(S.sample_attributes(400, torch.Generator().manual_seed(0)), torch.Generator().manual_seed(0))
    assert 0.4 < float(keep.all(1).float().mean()) < 0.7  # about half are full captions
    assert len(set(texts)) > 150 and any(t.endswith("shape") for t in texts)
    assert S.parse_prompt("A large  square in the bottom right") == {"shape": "square", "size": "large", "position": "bottom right"}
    assert len(S.full_prompt_set()) == 210 and len(S.partial_prompt_set()) == 111


def test_degrade_keeps_range_and_shape():
    x, _ = S.sample_images(6, torch.Generator().manual_seed(0))
    y = recipe.degrade(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and 0 <= float(y.min()) and float(y.max()) <= 1


def test_gan_generator_is_registered_and_decodes():
    torch.manual_seed(0)
    g = GENERATORS.create("shapes-gan", latent_dim=8, width=4).eval()
    with torch.no_grad():
        x = g.decode(g.sample_latents(3, torch.Generator().manual_seed(0)))
    assert x.shape == (3, 3, 32, 32) and 0 <= float(x.min()) and float(x.max()) <= 1


def test_judge_roundtrip(tmp_path):
    torch.manual_seed(0)
    judge = AttributeCNN(width=4).eval()
    save_attribute_cnn(judge, tmp_path / "judge", {"held_out_clean_all": 0.5})
    again = load_attribute_cnn(tmp_path / "judge")
    x, _ = S.sample_images(4, torch.Generator().manual_seed(0))
    (p1, c1), (p2, c2) = judge.judge(x), again.judge(x)
    assert torch.equal(p1, p2) and torch.allclose(c1, c2) and p1.shape == (4, 4)
    assert again.metadata["held_out_clean_all"] == 0.5


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory):
    out = tmp_path_factory.mktemp("worlds") / "shapes"
    result = recipe.main(["--budget", "tiny", "--out", str(out)])
    assert 0 <= result["clip"]["caption_retrieval"]["accuracy"] <= 1
    return out


def test_recipe_writes_a_loadable_world(tiny_world):
    for part in ("generator", "encoder", "translator", "judge"):
        assert (tiny_world / part / "config.json").is_file()
    world = load_world(tiny_world)
    assert world.name == "shapes" and world.generator.image_shape == (3, 32, 32)
    assert world.translator.metadata["encoder_fingerprint"] == world.fingerprints["encoder"]
    c = world.encoder.condition_from_text(["a red circle"])
    res = world.sampler().sample(c, 2, world.langevin.__class__(steps=1), seed=0)
    assert res.images.shape == (2, 3, 32, 32)
    doc = json.loads((tiny_world / "world.json").read_text())
    assert doc["langevin"]["steps"] == world.langevin.steps


def test_recipe_stage_is_deterministic(tiny_world, tmp_path):
    out = tmp_path / "again"
    recipe.main(["--budget", "tiny", "--out", str(out), "--stage", "clip", "--stage", "judge", "--stage", "gan"])
    for part in ("encoder", "generator", "judge"):
        assert fingerprint(out / part) == fingerprint(tiny_world / part)


def test_evaluate_prompts_on_the_tiny_world(tiny_world):
    from tron.evaluation import clip_methods, markdown_table
    from tron.judges import load_judge
    from tron.zoo.shapes.judge import SHAPES_COLUMNS, ShapesJudge

    world = load_world(tiny_world)
    judge = load_judge(world)  # named in world.json
    assert isinstance(judge, ShapesJudge)
    prompts = [{"color": "red", "shape": "circle"}, S.full_prompt_set()[7]]
    rows = judge.rows(prompts, 2, 0, clip_methods(1), world.langevin.__class__(steps=1))
    assert [r["samples"] for r in rows] == [4] * 4
    assert rows[-1]["evaluations_per_sample"] == 2
    assert all(0 <= r["accuracy"] <= r["color_accuracy"] <= 1 for r in rows)
    assert "all named attributes" in markdown_table(rows, SHAPES_COLUMNS)
