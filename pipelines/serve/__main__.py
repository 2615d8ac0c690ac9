import sys

from pipelines.common import run_main
from pipelines.serve.cli import main

sys.exit(run_main(main, None, "tron serve"))
