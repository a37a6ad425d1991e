"""A change of an organisation's time zone rebuilds its daily tables (kpis.daily).

Whatever saves the organisation (the admin, a shell, a service), the old zone is read before the
save and compared after it: on a change the daily rows are reset in the same transaction (reads
answer from the hourly rows at once) and the rebuild task is sent once it commits, to start when
every process has seen the new zone (kpis.daily.ZONE_TTL_S). Every save refreshes this
process's copy of the zone.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver
from django.utils import timezone

from greenkpi.inventory.models import Organisation
from greenkpi.kpis import daily
from greenkpi.kpis.read import freshness


@receiver(pre_save, sender=Organisation, dispatch_uid="kpis_zone_before")
def _zone_before(sender: type[Organisation], instance: Organisation, **kwargs: Any) -> None:
    if kwargs.get("raw") or instance.pk is None:
        instance._zone_before = None  # type: ignore[attr-defined]
        return
    old = Organisation.objects.filter(pk=instance.pk).values_list("time_zone", flat=True).first()
    instance._zone_before = old  # type: ignore[attr-defined]


@receiver(post_save, sender=Organisation, dispatch_uid="kpis_zone_after")
def _zone_after(
    sender: type[Organisation], instance: Organisation, created: bool, **kwargs: Any
) -> None:
    freshness.remember_zone(instance.pk, instance.time_zone)
    old = getattr(instance, "_zone_before", None)
    if created or kwargs.get("raw") or old is None or old == instance.time_zone:
        return
    organisation_id = instance.pk
    Organisation.objects.filter(pk=organisation_id).update(time_zone_changed_at=timezone.now())
    daily.daily_tables_reset(organisation_id=organisation_id)
    transaction.on_commit(
        lambda: daily.rebuild_organisation_days.apply_async(
            args=[organisation_id], countdown=daily.REBUILD_DELAY_S
        )
    )


@receiver(post_delete, sender=Organisation, dispatch_uid="kpis_zone_deleted")
def _zone_deleted(sender: type[Organisation], instance: Organisation, **kwargs: Any) -> None:
    freshness.forget_zone(instance.pk)
