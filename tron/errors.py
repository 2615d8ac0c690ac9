"""Errors that tron raises on bad input: each names the problem in one line."""


class TronError(Exception):
    """Base class: a problem with the user's input, files or configuration."""


class ConditionError(TronError, ValueError):
    """A condition (label, embedding, prompt) is malformed or out of range."""


class CheckpointError(TronError):
    """A checkpoint directory is missing, corrupt, or does not match what was asked for."""


class RegistryError(TronError, KeyError):
    """An unknown generator, encoder or zoo name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
