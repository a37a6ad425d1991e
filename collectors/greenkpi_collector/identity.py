"""Who a GPU process works for, from every source the collector has, in documented precedence:

    explicit registration (wrap / track())  >  the process's environment  >  scheduler  >  host

Field by field: ``team``, ``model`` and ``run`` come from the registration if it sets them, else
from ``GREENKPI_TEAM`` / ``GREENKPI_MODEL`` / ``GREENKPI_RUN`` in the process's environment (so a
job script needs one ``export`` line and no wrap), else a Slurm job gives the run
``slurm:<cluster>:<job id>`` and leaves team and model to the backend's identity mappings.
``MLFLOW_RUN_ID`` becomes the tag ``mlflow_run_id``. The Slurm job itself is sent with every share
it applies to (``scheduler``), whatever set the team: it is a fact, not a claim. A process that
nobody and nothing identifies, and GPU time that no job holds, stay the host's (unattributed).
"""

from __future__ import annotations

from collections.abc import Callable

from greenkpi_collector.attribution import Claim, JobKey, Registry
from greenkpi_collector.sources.slurm import ProcessIdentities, SlurmJobs
from greenkpi_schema import K8sPod, SlurmJob

ENV_FIELDS = {"GREENKPI_TEAM": "team", "GREENKPI_MODEL": "model", "GREENKPI_RUN": "run"}
# The share tags' length limits (greenkpi_schema.v1): longer values are cut, not refused.
_TAG_MAX = 200


class Attributor:
    def __init__(
        self,
        registry: Registry | None,
        processes: ProcessIdentities | None = None,
        slurm: SlurmJobs | None = None,
        gpu_index: dict[str, int] | None = None,
    ) -> None:
        self.registry = registry
        self.processes = processes or ProcessIdentities(slurm=slurm is not None)
        self.slurm = slurm
        self.gpu_index = gpu_index or {}
        self._tick: dict[int, Claim | None] = {}
        self._job_env: dict[int, tuple[tuple[str, str], ...]] = {}

    def refresh(self) -> None:
        """Once per tick: registrations re-read if changed; per-PID answers start afresh."""
        if self.registry is not None:
            self.registry.refresh()
        self._tick.clear()

    def resolve(self, pid: int) -> Claim | None:
        if pid in self._tick:
            return self._tick[pid]
        claim = self._resolve(pid)
        self._tick[pid] = claim
        return claim

    def resolver(self, uuid: str) -> Callable[[int], Claim | None]:
        """``resolve`` for one device's processes (Kubernetes tags a MIG slice's shares)."""
        return self.resolve

    def _resolve(self, pid: int) -> Claim | None:
        explicit = self.registry.resolve(pid) if self.registry is not None else None
        ident = self.processes.of(pid)
        env = dict(ident.env) if ident is not None else {}
        job: JobKey | None = None
        if self.slurm is not None and ident is not None and ident.job is not None:
            job = (self.slurm.cluster, ident.job)
            if ident.slurm_env:
                self._job_env[ident.job] = ident.slurm_env
            if len(self._job_env) > 4096:
                self._job_env.pop(next(iter(self._job_env)))
        values = {
            name: (getattr(explicit, name) if explicit else None) or _usable(env.get(var))
            for var, name in ENV_FIELDS.items()
        }
        tags = {}
        if env.get("MLFLOW_RUN_ID"):
            tags["mlflow_run_id"] = env["MLFLOW_RUN_ID"][:_TAG_MAX]
        if explicit is not None:
            tags.update(explicit.tags)  # the registration's own tags win
        if explicit is None and job is None and not any(values.values()) and not tags:
            return None
        return Claim(
            pid=explicit.pid if explicit is not None else pid,
            team=values["team"],
            model=values["model"],
            run=values["run"],
            tags=tuple(sorted(tags.items())),
            job=job,
        )

    def allocated(self, uuid: str, t_wall: float) -> Claim | tuple[Claim, ...] | None:
        """The scheduler job that holds this GPU now, as a claim without a process (the pods
        sharing it, several claims: sources.kubernetes)."""
        if self.slurm is None:
            return None
        index = self.gpu_index.get(uuid)
        if index is None:
            return None
        facts = self.slurm.allocated_job(index, t_wall)
        if facts is None:
            return None
        return Claim(pid=None, team=None, model=None, run=None, job=(facts.cluster, facts.raw_id))

    def describe(self, job: JobKey) -> tuple[SlurmJob | K8sPod, str]:
        assert self.slurm is not None and isinstance(job[1], int)  # Slurm claims: int job ids
        facts = self.slurm.describe(job[1], self._job_env.get(job[1], ()))
        return facts.to_schema(), facts.run_key

    def errors(self) -> list[str]:
        return self.slurm.errors() if self.slurm is not None else []


def _usable(value: str | None) -> str | None:
    """An environment value the schema accepts as a key (1..200 characters), else unset: one
    process's odd variable must not make the server refuse the whole window."""
    value = (value or "").strip()
    return value if 0 < len(value) <= _TAG_MAX else None


def plain(registry: Registry | None) -> Attributor:
    """Registrations and GREENKPI_* environment only (no scheduler)."""
    return Attributor(registry)


Resolver = Callable[[int], Claim | None]
