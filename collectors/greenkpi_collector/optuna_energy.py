"""Optuna: each trial's energy as trial user attributes, and the study's energy summary.

    from greenkpi_collector.optuna_energy import EnergyCallback

    energy = EnergyCallback(team="vision", model="resnet50")
    study.optimize(energy.wrap(objective), n_trials=50, callbacks=[energy])
    print(energy.summary(study))

``wrap`` runs every trial inside the local agent's ``track()`` (run key
``optuna-<study>-<trial number>``, tags ``optuna_study``/``optuna_trial``), so the agent attributes
the trial's GPU energy to it and posts it as usual; when the trial ends, completed, pruned or
failed, the measured figures become user attributes of the trial:

- ``greenkpi_energy_kwh``: measured by the agent (its usage ledger, see usage.py), or absent when
  no agent counted the trial (never a made-up 0);
- ``greenkpi_gco2e``: that energy x grid intensity (GREENKPI_GRID_INTENSITY, else the world
  average): an estimate;
- ``greenkpi_run``: the run key the backend files the energy under.

The callback (Optuna calls it after each trial) writes ``summary()`` into the study's user
attributes (``greenkpi_energy``): energy per completed trial, energy spent on pruned and failed
trials, and the total, since the search strategy and the pruner change tuning energy severalfold.
Optuna is imported only for the trial states; the agent package itself does not need it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from greenkpi_collector.tracking import carbon_intensity, track

ENERGY_ATTR = "greenkpi_energy_kwh"
CO2E_ATTR = "greenkpi_gco2e"
RUN_ATTR = "greenkpi_run"
SUMMARY_ATTR = "greenkpi_energy"


class EnergyCallback:
    def __init__(
        self,
        *,
        team: str,
        model: str | None = None,
        tags: dict[str, str] | None = None,
        directory: str | os.PathLike[str] | None = None,
        intensity_g_per_kwh: float | None = None,
    ) -> None:
        self.team = team
        self.model = model
        self.tags = dict(tags or {})
        self.directory = directory
        self.intensity = intensity_g_per_kwh

    def run_key(self, study_name: str, number: int) -> str:
        return f"optuna-{study_name}-{number}"[:200]

    def wrap(self, objective: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """The objective, measured: each call runs inside track() and records the trial's energy,
        whether it returns, is pruned (TrialPruned) or fails."""

        @functools.wraps(objective)
        def measured(trial: Any) -> Any:
            run = self.run_key(trial.study.study_name, trial.number)
            tags = {
                **self.tags,
                "optuna_study": trial.study.study_name,
                "optuna_trial": str(trial.number),
            }
            tracked = None
            try:
                with track(
                    team=self.team, model=self.model, run=run, tags=tags, directory=self.directory
                ) as tracked:
                    return objective(trial)
            finally:
                trial.set_user_attr(RUN_ATTR, run)
                kwh = tracked.energy_kwh if tracked is not None else None
                if kwh is not None:
                    trial.set_user_attr(ENERGY_ATTR, kwh)
                    trial.set_user_attr(CO2E_ATTR, kwh * carbon_intensity(self.intensity))

        return measured

    def __call__(self, study: Any, trial: Any) -> None:
        """Optuna's callback: keep the study's energy summary current after every trial."""
        study.set_user_attr(SUMMARY_ATTR, self.summary(study))

    def summary(self, study: Any) -> dict[str, Any]:
        return study_energy_summary(study, self.intensity)


def study_energy_summary(study: Any, intensity_g_per_kwh: float | None = None) -> dict[str, Any]:
    """Energy of a study's trials by state. Trials no agent measured are counted apart
    (``unmeasured_trials``) and add nothing: a mean over measured trials only."""
    from optuna.trial import TrialState

    states = {
        TrialState.COMPLETE: "complete",
        TrialState.PRUNED: "pruned",
        TrialState.FAIL: "failed",
    }
    out: dict[str, Any] = {}
    unmeasured = 0
    for state, name in states.items():
        trials = study.get_trials(deepcopy=False, states=(state,))
        figures = [t.user_attrs[ENERGY_ATTR] for t in trials if ENERGY_ATTR in t.user_attrs]
        unmeasured += len(trials) - len(figures)
        out[f"{name}_trials"] = len(trials)
        out[f"{name}_kwh"] = sum(figures)
    measured_complete = [
        t.user_attrs[ENERGY_ATTR]
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if ENERGY_ATTR in t.user_attrs
    ]
    out["kwh_per_complete_trial"] = (
        sum(measured_complete) / len(measured_complete) if measured_complete else None
    )
    out["total_kwh"] = out["complete_kwh"] + out["pruned_kwh"] + out["failed_kwh"]
    out["pruned_share"] = out["pruned_kwh"] / out["total_kwh"] if out["total_kwh"] else None
    out["total_gco2e"] = out["total_kwh"] * carbon_intensity(intensity_g_per_kwh)
    out["unmeasured_trials"] = unmeasured
    return out
