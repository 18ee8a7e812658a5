"""What one render needs: the ModelDeployment, its pool, the chosen shape and replicas."""

from __future__ import annotations

from dataclasses import dataclass

from wattserve.api.types import ModelDeployment, ServingPool
from wattserve.planning.placement import Candidate
from wattserve.render.meta import Owner, child_labels
from wattserve.render.settings import RenderSettings


@dataclass(frozen=True)
class RenderInputs:
    md: ModelDeployment
    pool: ServingPool
    candidate: Candidate
    replicas: int
    settings: RenderSettings

    def __post_init__(self) -> None:
        if self.candidate.pool != self.pool.name:
            raise ValueError(f"candidate is for pool {self.candidate.pool!r}, "
                             f"not {self.pool.name!r}")
        if self.replicas < 0:
            raise ValueError(f"replicas must be >= 0, got {self.replicas}")

    @property
    def owner(self) -> Owner:
        return Owner(name=self.md.name, namespace=self.md.namespace, uid=self.md.uid)

    @property
    def gpu(self) -> bool:
        return self.pool.spec.accelerator is not None

    @property
    def labels(self) -> dict[str, str]:
        return child_labels(self.md.name, self.pool.name, self.candidate.engine)

    @property
    def image(self) -> str:
        return self.settings.image_for(self.gpu)

    @property
    def pull_policy(self) -> str:
        return self.settings.pull_policy_for(self.gpu)
