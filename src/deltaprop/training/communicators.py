"""Communicators: the few collective operations data-parallel training needs, over an
existing engine.

Data-parallel training (``train(..., distributed="mpi")``) runs one process per rank,
each with the same network and its own part of every batch. After each backward pass
one in-place sum of a flat buffer (the gradient, then the loss and a few flags) makes
every rank take the same step; rank 0 validates, logs and checkpoints, and its
decisions are broadcast. A communicator does only that, over MPI (``mpi4py``) or
``torch.distributed`` (gloo); nothing here is a cluster of its own.

Every method is collective unless it says otherwise: all ranks call it, in the same
order.
"""

from __future__ import annotations

import atexit
import os
import sys
import time

import numpy as np

from ..registry import lookup

Array = np.ndarray


class Communicator:
    """One process alone (rank 0 of 1): every collective is the identity.

    Subclasses implement the same methods over a real engine.

    Attributes
    ----------
    rank : int
        This process's rank, 0..size-1.
    size : int
        How many processes train together.
    local_size : int
        How many of them run on this machine (and share its cores).
    """

    name = "single"
    rank = 0
    size = 1
    local_size = 1  # ranks on this machine, which share its cores

    def allreduce(self, buffer: Array) -> None:
        """Sum ``buffer`` over the ranks, in place (every rank gets the sum)."""

    def broadcast(self, buffer: Array, root: int = 0) -> None:
        """Overwrite ``buffer`` with rank ``root``'s, in place."""

    def broadcast_object(self, obj, root: int = 0):
        """Rank ``root``'s small Python object (a decision, a record), on every rank."""
        return obj

    def allgather_object(self, obj) -> list:
        """Every rank's small Python object, in rank order, on every rank."""
        return [obj]

    def abort(self, message: str, code: int = 1):
        """End every rank now, after printing ``message`` (not collective: one rank calls it,
        when the others may be waiting in a collective that will never complete)."""
        raise SystemExit(message)


class MPICommunicator(Communicator):
    """Collectives over MPI (``mpi4py``): started with ``mpiexec -n P`` or ``srun``.

    Parameters
    ----------
    comm : mpi4py communicator, optional
        ``MPI.COMM_WORLD`` by default.
    """

    name = "mpi"

    def __init__(self, comm=None):
        try:
            from mpi4py import MPI
        except ImportError as e:
            raise ImportError("distributed='mpi' needs mpi4py and an MPI library: "
                              "pip install 'deltaprop[mpi]'") from e
        self._MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        local = self.comm.Split_type(MPI.COMM_TYPE_SHARED)
        self.local_size = local.Get_size()
        local.Free()

    def allreduce(self, buffer: Array) -> None:
        # the buffer-protocol call: no pickling, no second buffer
        self.comm.Allreduce(self._MPI.IN_PLACE, buffer, op=self._MPI.SUM)

    def broadcast(self, buffer: Array, root: int = 0) -> None:
        self.comm.Bcast(buffer, root=root)

    def broadcast_object(self, obj, root: int = 0):
        return self.comm.bcast(obj, root=root)

    def allgather_object(self, obj) -> list:
        return self.comm.allgather(obj)

    def abort(self, message: str, code: int = 1):
        _say(message)
        # the launcher forwards each rank's output through a pipe of its own, and MPI_Abort has
        # it kill every rank at once: a moment first, so that the message reaches the user (under
        # load, the full test suite saw it lost once)
        time.sleep(0.2)
        self.comm.Abort(code)


class TorchCommunicator(Communicator):
    """Collectives over ``torch.distributed`` with the gloo backend (CPU): started with
    ``torchrun --nproc-per-node P``, which sets the rank, world size and rendezvous
    address in the environment. The process group is created once, if the caller has
    not created one."""

    name = "torch"

    def __init__(self):
        try:
            import torch
            import torch.distributed as dist
        except ImportError as e:
            raise ImportError("distributed='torch' needs PyTorch (a CPU build is enough)") from e
        if not dist.is_initialized():
            missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
            if missing:
                raise RuntimeError(f"distributed='torch': {', '.join(missing)} not set; start the "
                                   "program with torchrun --nproc-per-node P")
            dist.init_process_group("gloo")
            # a group still alive when the interpreter ends can abort the process (std::terminate)
            atexit.register(dist.destroy_process_group)
        self._torch, self._dist = torch, dist
        self.rank, self.size = dist.get_rank(), dist.get_world_size()
        self.local_size = int(os.environ.get("LOCAL_WORLD_SIZE", 1))

    def allreduce(self, buffer: Array) -> None:
        self._dist.all_reduce(self._torch.from_numpy(buffer))  # shares memory: in place

    def broadcast(self, buffer: Array, root: int = 0) -> None:
        self._dist.broadcast(self._torch.from_numpy(buffer), src=root)

    def broadcast_object(self, obj, root: int = 0):
        box = [obj]
        self._dist.broadcast_object_list(box, src=root)
        return box[0]

    def allgather_object(self, obj) -> list:
        out = [None] * self.size
        self._dist.all_gather_object(out, obj)
        return out

    def abort(self, message: str, code: int = 1):
        # torchrun ends the other workers when one exits with an error
        _say(message)
        os._exit(code)


def _say(message: str) -> None:
    sys.stdout.flush()
    print(message, file=sys.stderr, flush=True)


COMMUNICATORS = {"mpi": MPICommunicator, "torch": TorchCommunicator}


def get_communicator(spec) -> Communicator:
    """A communicator from a name (``"mpi"``, ``"torch"``) or an object; None: one process."""
    if spec is None or spec is False:
        return Communicator()
    if isinstance(spec, Communicator):
        return spec
    return COMMUNICATORS[lookup("distributed", COMMUNICATORS, spec, {"gloo": "torch"})]()
