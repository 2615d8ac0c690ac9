"""`tron serve` (pipelines.serve.cli.main): argument errors. A real run that serves, answers and stops
cleanly on SIGTERM is test_pipeline_output.py's first test (it serves while a build and a training run)."""
import pytest

from pipelines.common import run_main
from pipelines.serve.cli import main


@pytest.mark.parametrize("argv, message", [
    (["--world", "zoo:nope"], "unknown zoo world 'nope'"),
    (["--translator", "/nonexistent"], "is not a directory"),
    (["--max-batch-size", "0"], "max_batch_size must be a positive integer"),
    (["--port", "eighty"], "invalid int value"),
])
def test_bad_arguments_exit_2_with_one_line(argv, message, capsys):
    try:
        code = run_main(main, argv, "tron serve")
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
