"""What can stop a prompt-set run, each with a message that names the fix."""

from __future__ import annotations

import signal

from ..errors import NullTTAError

__all__ = ["RunError", "RunInterrupted", "RunOutOfMemoryError"]


class RunError(NullTTAError):
    """A prompt-set run cannot start or cannot go on; the message says what to change."""


class RunOutOfMemoryError(RunError):
    """The device ran out of memory aligning a batch."""


class RunInterrupted(KeyboardInterrupt):
    """SIGTERM or SIGINT arrived; raised in the main thread so that cleanup runs.

    A ``KeyboardInterrupt`` so that code which already lets Ctrl-C through
    lets SIGTERM through too.

    Parameters
    ----------
    signum : int
        The signal that arrived.

    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The shell's code for a process ended by this signal: ``128 + signum``."""
        return 128 + self.signum
