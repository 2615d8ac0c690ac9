"""`tron sample zoo:shapes` with the shipped world: prompts, image variations, composition,
interpolation, and clear errors for bad conditions."""
import numpy as np
import pytest
import torch
from PIL import Image

from tron.cli import main
from tron.zoo import shapes

FAST = ["--steps", "2", "--seed", "0"]


def sample(tmp_path, *argv, n=2):
    npy = tmp_path / "x.npy"
    rc = main(["sample", "zoo:shapes", *argv, "-n", str(n), *FAST, "--npy", str(npy), "--out", str(tmp_path / "g.png")])
    assert rc == 0
    x = np.load(npy)
    assert x.dtype == np.float32 and x.shape[1:] == (3, 32, 32) and 0 <= x.min() and x.max() <= 1
    assert Image.open(tmp_path / "g.png").size[0] >= 32 * n
    return x


@pytest.fixture(scope="module")
def red_circle_png(tmp_path_factory):
    named = {"shape": "circle", "color": "red", "size": "large", "position": "center"}
    attrs = torch.tensor([[shapes.ATTRIBUTES[k].index(named[k]) for k in shapes.ATTRIBUTE_NAMES]])
    x = shapes.render(attrs, torch.Generator().manual_seed(0))[0]
    path = tmp_path_factory.mktemp("img") / "red.png"
    Image.fromarray((x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).resize((64, 64)).save(path)
    return path


def test_text_prompts_give_n_samples_each(tmp_path, capsys):
    x = sample(tmp_path, "--text", "a small red circle in the top left", "--text", "a blue square", n=3)
    assert len(x) == 6
    assert "a small red circle in the top left" in capsys.readouterr().out


def test_the_prompt_decides_the_colour(tmp_path):
    # Translator only (T = 0) so the test is fast; the zoo world gets colour right ~90 % of the time.
    red = sample(tmp_path, "--text", "a large red square in the center", "--steps", "0", n=8)
    blue = sample(tmp_path, "--text", "a large blue square in the center", "--steps", "0", n=8)
    for x, channel in ((red, 0), (blue, 2)):
        mean = x.mean(axis=(0, 2, 3))
        assert mean.argmax() == channel, mean


def test_same_seed_same_images(tmp_path):
    a = sample(tmp_path / "a", "--text", "a green triangle")
    b = sample(tmp_path / "b", "--text", "a green triangle")
    assert np.array_equal(a, b)


def test_prompts_outside_the_vocabulary_still_run(tmp_path):
    assert len(sample(tmp_path, "--text", "a photograph of a cat on the moon")) == 2


def test_image_variations(tmp_path, red_circle_png):
    assert len(sample(tmp_path, "--image", str(red_circle_png), n=3)) == 3


def test_weighted_composition_is_one_condition(tmp_path, red_circle_png, capsys):
    x = sample(tmp_path, "--text", "a circle", "--text", "a red shape", "--image", str(red_circle_png),
               "--weights", "1,-0.5,0.5", n=3)
    assert len(x) == 3
    assert "composition" in capsys.readouterr().out


def test_interpolation_between_two_prompts(tmp_path):
    assert len(sample(tmp_path, "--text", "a red circle", "--text", "a blue square", "--interpolate", "4", n=2)) == 8


@pytest.mark.parametrize("argv,needle", [
    (["--text", ""], "empty"),
    (["--text", "   "], "empty"),
    (["--image", "/no/such/image.png"], "image"),
    (["--label", "3"], "use --text or --image"),
    (["--text", "a", "--text", "b", "--weights", "1"], "one weight per"),
    (["--text", "a", "--interpolate", "3"], "exactly two"),
    (["--text", "a", "--text", "b", "--weights", "1,1", "--interpolate", "3"], "not both"),
    ([], "give a condition"),
])
def test_bad_conditions_give_one_line_and_exit_2(argv, needle, capsys):
    try:
        rc = main(["sample", "zoo:shapes", *argv, "-n", "1", "--steps", "0"])
    except SystemExit as exc:
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2, err
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_unreadable_image_file_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png at all")
    assert main(["sample", "zoo:shapes", "--image", str(bad), "-n", "1", "--steps", "0"]) == 2
    err = capsys.readouterr().err
    assert "broken.png" in err and "Traceback" not in err
