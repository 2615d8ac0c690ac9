"""`tron serve` (pipelines.serve.cli.main): argument errors, and a real run that serves and stops cleanly."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from infra import free_port
from pipelines.common import run_main
from pipelines.serve.cli import main

REPO = Path(__file__).resolve().parent.parent


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


def test_serve_runs_answers_and_stops_on_sigterm(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.serve", "--port", str(port), "--ray-cpus", "2",
                             "--num-cpus", "0.5", "--max-batch-size", "4"],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 150
        while True:
            try:
                if requests.get(f"{url}/v1/ready", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert proc.poll() is None and time.time() < deadline, (tmp_path / "serve.log").read_text()[-3000:]
            time.sleep(1)
        r = requests.post(f"{url}/v1/generate", json={"label": 5, "num_samples": 2, "steps": 5}, timeout=60)
        assert r.status_code == 200 and len(r.json()["images"]) == 2
        assert "<title>tron</title>" in requests.get(f"{url}/", timeout=10).text
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(90)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = None
        log.close()
    assert code == 0, (tmp_path / "serve.log").read_text()[-3000:]
    assert "[serve] stopping" in (tmp_path / "serve.log").read_text()
    with pytest.raises(requests.ConnectionError):  # nothing left listening
        requests.get(f"{url}/v1/health", timeout=5)
