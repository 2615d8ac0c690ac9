import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tron.cli import main


def test_sample_writes_grid_and_npy(tmp_path, capsys):
    out, npy = tmp_path / "grid.png", tmp_path / "x.npy"
    rc = main(["sample", "zoo:digits", "--label", "7", "-n", "4", "--steps", "5", "--seed", "0",
               "--out", str(out), "--npy", str(npy)])
    assert rc == 0
    x = np.load(npy)
    assert x.shape == (4, 1, 16, 16) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert Image.open(out).size[0] > 64
    assert "wrote" in capsys.readouterr().out


def test_same_seed_same_npy(tmp_path):
    for name in ("a", "b"):
        main(["sample", "zoo:digits", "--label", "3", "-n", "2", "--steps", "3", "--npy", str(tmp_path / f"{name}.npy")])
    assert np.array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))


@pytest.mark.parametrize("argv,needle", [
    (["sample", "zoo:digits", "--label", "12"], "out of range"),
    (["sample", "zoo:digits", "--label", "x"], "not a class name"),
    (["sample", "zoo:digits", "--label", "1", "--steps", "nan"], "expected an integer"),
    (["sample", "zoo:digits", "--label", "1", "--step-size", "nan"], "finite number"),
    (["sample", "zoo:digits", "--label", "1", "--noise-std", "1e999"], "finite number"),
    (["sample", "zoo:digits", "--label", "1", "--langevin", "{\"momentum\": NaN}"], "momentum"),
    (["sample", "zoo:digits", "--label", "1", "--langevin", "nonsense"], "preset"),
    (["sample", "zoo:digits", "--label", "1", "--seed", "-1"], "seed"),
    (["sample", "zoo:digits", "--label", "1", "-n", "0"], "positive integer"),
    (["sample", "zoo:digits", "--label", "1", "--steps", "-3"], ">= 0"),
    (["sample", "zoo:nope", "--label", "1"], "unknown zoo world"),
    (["sample", "zoo:digits"], "give a condition"),
    (["sample", "zoo:digits", "--label", "1", "--translator", "/no/such/dir"], "not found"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_arguments_give_one_line_and_exit_2(argv, needle, capsys):
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse-level errors
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_console_script_help():
    proc = subprocess.run([sys.executable, "-m", "tron.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    for command in ("sample", "eval", "list", "demo"):
        assert command in proc.stdout


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "zoo:digits" in out and "digits-vae-decoder" in out and "digits-cnn" in out


@pytest.mark.parametrize("module,argv", [
    ("build_dataset", ["--out", "x", "--num-cpus", "nan"]),
    ("build_dataset", ["--out", "x", "--num-gpus", "inf"]),
    ("train_translator", ["--dataset", "x", "--lr", "1e999"]),
    ("train_translator", ["--dataset", "x", "--cond-noise-std", "nan"]),
    ("retrain", ["--generator", "zoo:digits", "--energy-margin=-inf"]),
])
def test_pipeline_numeric_arguments_refuse_non_finite_values(module, argv, capsys):
    import importlib

    parser = importlib.import_module(f"pipelines.{module}").build_parser()
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "finite number" in err and len(err.strip().splitlines()) == 1


def test_serve_numeric_arguments_refuse_non_finite_values(capsys):
    from pipelines.serve.cli import parse_args

    for argv in (["--timeout", "nan"], ["--num-cpus", "inf"], ["--reload-interval", "1e999"]):
        with pytest.raises(SystemExit):
            parse_args(argv)
        assert "finite number" in capsys.readouterr().err


def test_an_unverified_translator_exits_2_in_one_line_and_the_flag_says_so_on_every_use(tmp_path):
    """As a user sees it (a process of its own): the refusal, then the explicit acceptance's warning."""
    import json
    import shutil

    from tron.world_config import locate_world

    bare = tmp_path / "bare"
    shutil.copytree(locate_world("zoo:digits") / "translator", bare)
    doc = json.loads((bare / "config.json").read_text())
    doc["metadata"] = {}
    (bare / "config.json").write_text(json.dumps(doc))
    argv = [sys.executable, "-m", "tron.cli", "sample", "zoo:digits", "--label", "3", "-n", "1", "--steps", "1",
            "--translator", str(bare)]
    refused = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "records no generator and no encoder fingerprint" in refused.stderr
    assert "--accept-unverified-translator" in refused.stderr
    accepted = subprocess.run([*argv, "--accept-unverified-translator"], capture_output=True, text=True, timeout=120)
    assert accepted.returncode == 0, accepted.stderr
    warning = [line for line in accepted.stderr.splitlines() if line.strip()]
    assert len(warning) == 1 and warning[0].startswith("warning:") and "UNVERIFIED" in warning[0], accepted.stderr


def test_world_create_refuses_an_unverified_translator_unless_accepted(tmp_path, capsys, caplog):
    import json
    import shutil

    from tron.world_config import locate_world

    zoo = locate_world("zoo:digits")
    bare = tmp_path / "bare"
    shutil.copytree(zoo / "translator", bare)
    doc = json.loads((bare / "config.json").read_text())
    doc["metadata"] = {}
    (bare / "config.json").write_text(json.dumps(doc))
    argv = ["world", "create", str(tmp_path / "w"), "--generator", "zoo:digits", "--encoder", "zoo:digits",
            "--translator", str(bare)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "records no generator and no encoder fingerprint" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "w").exists()  # nothing written
    with caplog.at_level("WARNING", logger="tron.world"):
        assert main([*argv, "--accept-unverified-translator"]) == 0
        assert "UNVERIFIED" in caplog.text
        caplog.clear()
        # every later use of the world needs the flag again, and says so again
        assert main(["sample", str(tmp_path / "w"), "--label", "1", "-n", "1", "--steps", "1"]) == 2
        assert main(["sample", str(tmp_path / "w"), "--label", "1", "-n", "1", "--steps", "1",
                     "--accept-unverified-translator"]) == 0
        assert "UNVERIFIED" in caplog.text


def test_demo_names_the_mlflow_cli_that_runs_from_the_working_directory(tmp_path, monkeypatch):
    from pipelines.demo import mlflow_command

    cli = Path(sys.executable).parent / "mlflow"
    monkeypatch.chdir(tmp_path)  # outside the environment: the full path
    assert mlflow_command() == str(cli)
    assert subprocess.run([mlflow_command(), "--version"], capture_output=True).returncode == 0
    monkeypatch.chdir(cli.parent.parent)  # inside it: relative, as the README writes it
    assert mlflow_command() == "bin/mlflow"
