"""Starting a run's processes with Lightning Fabric, and stopping them cleanly.

``Fabric(strategy="ddp")`` starts the processes itself on one machine (it
runs the same command again once per extra device) and joins the ones a
cluster launcher started (``torchrun``, SLURM's ``srun``, LSF, MPI), each
process learning its rank from its environment. nulltta starts no process
of its own.

SIGTERM (what SLURM, Kubernetes and ``kill`` send) and SIGINT (Ctrl-C)
become :class:`~nulltta.run.errors.RunInterrupted` in the main thread, so a
process stops between two Python operations, runs its cleanup and exits
with ``128 + signum``. Whatever it had finished is on disk already (every
file is written atomically); what it was computing is redone by a rerun.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

from lightning import Fabric
from lightning.fabric.strategies import DDPStrategy

from .errors import RunInterrupted

__all__ = ["interrupts_as_exceptions", "make_run_fabric"]

# Ranks run different numbers of batches, and one batch of a large model can
# take longer than torch's 30-minute default for a collective: the final
# barrier waits up to this long for the slowest rank.
BARRIER_TIMEOUT = timedelta(hours=24)


def make_run_fabric(accelerator: str, devices: int, num_nodes: int) -> Fabric:
    """The run's Fabric: DDP over ``devices`` per node on ``num_nodes`` nodes (gloo on CPU)."""
    return Fabric(
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy=DDPStrategy(timeout=BARRIER_TIMEOUT),
    )


def _fabric_children(fabric: Fabric) -> list[Any]:
    """The processes Fabric started on this machine (none under torchrun or SLURM)."""
    launcher = getattr(fabric.strategy, "launcher", None)
    return list(getattr(launcher, "procs", []) or [])


@contextlib.contextmanager
def interrupts_as_exceptions(fabric: Fabric | None = None) -> Iterator[None]:
    """Turn SIGTERM and SIGINT into :class:`RunInterrupted` while the block runs.

    A SIGTERM is passed on to the processes Fabric started here, which
    would otherwise run on without their rank 0 (a Ctrl-C reaches them
    from the terminal already).
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def handler(signum: int, frame: Any) -> None:
        if signum == signal.SIGTERM and fabric is not None:
            for process in _fabric_children(fabric):
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
        raise RunInterrupted(signum)

    previous: dict[int, Callable | int | None] = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
