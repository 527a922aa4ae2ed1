"""`lightning.pytorch.plugins.environments`: where a multi-process run learns its ranks and its main address.

The environments are fastlight.strategies' (detected automatically; pass one as
`DDPStrategy(cluster_environment=...)`): LightningEnvironment is fastlight's LocalEnvironment (a plain script, or a
launcher setting LOCAL_RANK), TorchElasticEnvironment its TorchrunEnvironment, SLURMEnvironment the same name.
Kubeflow, LSF, MPI and XLA environments are not implemented: creating one raises."""
from typing import Any

from fastlight.strategies.environments import ClusterEnvironment, LocalEnvironment, SLURMEnvironment, \
    TorchrunEnvironment
from fastlight.utilities.exceptions import MisconfigurationException

LightningEnvironment = LocalEnvironment
TorchElasticEnvironment = TorchrunEnvironment


def _unsupported(name: str) -> type:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        raise MisconfigurationException(
            f"{name}: fastlight does not implement this cluster environment; it detects torchrun and SLURM, and a"
            " plain script or any launcher that sets MASTER_ADDR, MASTER_PORT, LOCAL_RANK, NODE_RANK (and"
            " WORLD_SIZE, RANK) works through LightningEnvironment"
        )

    def detect() -> bool:
        return False

    doc = f"Lightning's {name}, importable so code naming it loads; creating one raises (not implemented)."
    return type(name, (ClusterEnvironment,), {"__init__": __init__, "detect": staticmethod(detect), "__doc__": doc,
                                               "__module__": __name__})


KubeflowEnvironment = _unsupported("KubeflowEnvironment")
LSFEnvironment = _unsupported("LSFEnvironment")
MPIEnvironment = _unsupported("MPIEnvironment")
XLAEnvironment = _unsupported("XLAEnvironment")

__all__ = [
    "ClusterEnvironment",
    "KubeflowEnvironment",
    "LSFEnvironment",
    "LightningEnvironment",
    "MPIEnvironment",
    "SLURMEnvironment",
    "TorchElasticEnvironment",
    "XLAEnvironment",
]
