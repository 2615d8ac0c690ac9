"""Quiet by default: the pipelines print their own progress and every error, not Ray's chatter.

Set TRON_VERBOSE=1 (or pass --verbose to `make demo` / pipelines.demo) to bring everything back.

What is quietened, and where (Ray 2.60): the driver's Ray start-up INFO lines (`logging_level`),
Ray Data's progress bars and execution INFO, Ray Train's controller INFO and per-report lines, and
the PlacementGroupCleaner warning that Train's detached clean-up actor logs every second when it
cannot reach the State API (a cluster without a dashboard; the local clusters the pipelines start
have one). The last ones come from other processes, so a worker setup hook (`quiet_worker`, run in
every worker of the job) raises their loggers there. Ray Train's doubled print() lines, its internal
PreemptionWatcher message and MLflow's INFO lines and progress bars go too (QUIET_ENV), and so does
the token-authentication notice of every new local cluster; worker lines written to a file or a pipe
carry no colour codes. Warnings from elsewhere and all errors stay. `quiet_process` applies the
same to a process before it imports MLflow or Ray (retrain.py and the demo talk to MLflow first).
"""
from __future__ import annotations

import logging
import os
import sys

QUIET_LOGGERS = {
    "ray.train.v2._internal.execution.controller.placement_group_cleaner": logging.ERROR,
    "ray.data": logging.WARNING,
    "ray.data._internal.progress": logging.ERROR,
    "ray.train": logging.WARNING,
    "ray.serve": logging.WARNING,
    "mlflow": logging.WARNING,
    "alembic": logging.WARNING,
    # "Token authentication is enabled for this Ray cluster": Ray's default since 2.60, not a problem.
    "ray._private.authentication.authentication_token_setup": logging.ERROR,
}


# Read when Ray Data is imported (in the driver and in every worker): progress bars and INFO lines
# off; Python's deprecation warnings about Ray's own internals off. Ray Train V2 sends a worker's
# print() both to the worker's stdout and through its logger, so every progress line reached the
# driver twice: its print patch is turned off. MLflow's artifact progress bars and INFO lines off
# (MLflow sets its logger's level when it is imported, which may be after quiet_loggers ran). The driver's
# log deduplicator (read when ray is imported) drops Ray Train's internal core-worker "error" about
# its own PreemptionWatcher actor, printed once per training, which is not an error of the run; and the
# raylet's "WARNING: 8 PYTHON worker processes have been started", which counts live workers against
# 4 x the CPUs: a command's own cluster keeps its idle workers (pipelines.common.LOCAL_SYSTEM_CONFIG),
# so on 2 cores its build and training phases pass 8 by design.
QUIET_ENV = {"RAY_DATA_DISABLE_PROGRESS_BARS": "1", "RAY_DATA_LOG_LEVEL": "WARNING",
             "PYTHONWARNINGS": "ignore::DeprecationWarning,ignore::FutureWarning",
             "RAY_TRAIN_ENABLE_PRINT_PATCH": "0", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
             "MLFLOW_LOGGING_LEVEL": "WARNING",
             "RAY_DEDUP_LOGS_SKIP_REGEX": r"has constructor arguments in the object store and max_restarts > 0"
                                          r"|worker processes have been started on node"}


def verbose() -> bool:
    return os.environ.get("TRON_VERBOSE", "").lower() not in ("", "0", "false", "no")


def quiet_loggers() -> None:
    """Raise the chatty loggers of this process (driver or worker)."""
    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
    try:  # Train's per-report INFO line is logged under the path of its module
        import ray.train.v2._internal.execution.context as train_context

        logging.getLogger(train_context.__file__).setLevel(logging.WARNING)
    except ImportError:
        pass


def quiet_worker() -> None:
    """Ray's worker_process_setup_hook: runs in every worker process of a quiet job."""
    if not verbose():
        quiet_loggers()


def quiet_process() -> bool:
    """The environment defaults and logger levels of a quiet process; False (nothing done) when verbose."""
    if verbose():
        return False
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    if not sys.stdout.isatty():  # the driver colours worker prefixes even in a file or a pipe
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")
    quiet_loggers()
    return True


def ray_init_options() -> dict:
    """Extra ray.init options (and environment defaults) for a quiet driver; {} when verbose."""
    if not quiet_process():
        return {}
    return {"logging_level": logging.WARNING,
            "runtime_env": {"worker_process_setup_hook": "pipelines.logs.quiet_worker", "env_vars": dict(QUIET_ENV)}}


def train_logging_config():
    """RunConfig(logging_config=...) for Ray Train: warnings and errors only, unless verbose."""
    import ray.train

    return None if verbose() else ray.train.LoggingConfig(log_level="WARNING")
