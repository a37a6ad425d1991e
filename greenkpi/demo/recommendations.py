"""The demo's recommendations and its one booked saving (docs/advice.md).

The detectors run over the demo's measurements like the hourly task would: as of the day before
the notebook pool shrank (``fleet.POOL_SHRUNK_AGO``), when the platform team's admin accepted the
idle-pool card, then as of now, when the shrunk pool's change is in the measurements and the
ledger books its realised saving against the counterfactual. Nothing here writes a figure: the
cards and the saving are the detectors' and the ledger's own.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser

from greenkpi.demo import fleet
from greenkpi.inventory.models import Organisation
from greenkpi.recommendations import services
from greenkpi.recommendations.models import Finding, State

ACCEPTED_REASON = "Culler after 30 idle minutes; pool cut to the two GPUs people use"


def recommendations_load(
    *, organisation: Organisation, admin: AbstractBaseUser, now: datetime
) -> list[Finding]:
    """Accept the pool's card a day before it shrank, then recompute up to ``now``."""
    decided = now - fleet.POOL_SHRUNK_AGO - timedelta(days=1)
    services.recompute(organisation=organisation, now=decided)
    pool = Finding.objects.filter(
        organisation=organisation, detector="idle-allocation", model_key="notebook-pool"
    ).first()
    if pool is not None:
        services.decide(
            finding=pool, state=State.ACCEPTED, reason=ACCEPTED_REASON, user=admin, now=decided
        )
    return services.recompute(organisation=organisation, now=now)
