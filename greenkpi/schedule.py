"""The one beat schedule. Every entry has an expiry, so a backlog after downtime never piles up
runs of the same periodic job (reference/reliability-and-ecosystem.md, A4)."""

from __future__ import annotations

from celery.schedules import crontab

BEAT_SCHEDULE: dict[str, dict] = {
    "ingest-expire-idempotency-keys": {
        "task": "greenkpi.ingest.tasks.expire_idempotency_keys",
        "schedule": crontab(minute=17),
        "options": {"expires": 30 * 60},
    },
    # Late or fresh samples mark (organisation, hour) windows dirty; this recomputes them. Expires
    # before the next run is due, so a backlog after downtime runs once, not once per missed tick.
    "kpis-recompute-dirty-windows": {
        "task": "greenkpi.kpis.tasks.recompute_dirty_windows",
        "schedule": 5 * 60.0,
        "options": {"expires": 4 * 60},
    },
    # Raw storage (kpis/retention.py): day partitions created a week ahead, raw days past
    # RAW_RETENTION_DAYS dropped once rolled up. Hourly, so a failed creation is retried (and
    # alerted on) long before the days made ahead run out.
    "kpis-maintain-raw-storage": {
        "task": "greenkpi.kpis.tasks.maintain_raw_storage",
        "schedule": crontab(minute=7),
        "options": {"expires": 30 * 60},
    },
    # Daily rollups of the days whose hourly windows were recomputed since their last refresh
    # (kpis/daily.py); a cheap no-op when nothing changed.
    "kpis-refresh-daily-rollups": {
        "task": "greenkpi.kpis.daily.refresh_stale_days",
        "schedule": 5 * 60.0,
        "options": {"expires": 4 * 60},
    },
    # Retraining need and retrain efficiency of every model (workloads). Hourly is enough: the
    # evidence is evaluations and drift reports that arrive hours or days apart.
    "workloads-recompute-retraining": {
        "task": "greenkpi.workloads.tasks.recompute_retraining",
        "schedule": crontab(minute=41),
        "options": {"expires": 30 * 60},
    },
    # Slurm jobs become runs (workloads/scheduler_runs.py): a job waits until its windows are
    # recomputed, so this follows the dirty-window recompute at the same pace.
    "workloads-sync-scheduler-runs": {
        "task": "greenkpi.workloads.tasks.sync_scheduler_runs",
        "schedule": 5 * 60.0,
        "options": {"expires": 4 * 60},
    },
    # Recommendations (greenkpi/recommendations): the detectors read four weeks of rollups and the
    # registry; hourly is plenty (after the retraining recompute at :41, whose outcomes they read).
    "recommendations-recompute": {
        "task": "greenkpi.recommendations.tasks.recompute_recommendations",
        "schedule": crontab(minute=47),
        "options": {"expires": 30 * 60},
    },
    # Live grid intensity (Electricity Maps), a no-op without ELECTRICITYMAPS_API_KEY. Hourly:
    # the API publishes hourly and each run fetches the last 24 h, so a missed run heals itself.
    "carbon-fetch-live-intensity": {
        "task": "greenkpi.carbon.tasks.fetch_live_intensity",
        "schedule": crontab(minute=23),
        "options": {"expires": 30 * 60},
    },
    # Alert rules every minute (`for` durations are counted in these ticks); expires before the
    # next tick so a stalled beat never queues a pile of evaluations.
    "alerts-evaluate-rules": {
        "task": "greenkpi.alerts.tasks.evaluate_rules",
        "schedule": 60.0,
        "options": {"expires": 50},
    },
    # Outbox rows whose send message was lost (broker restart) are re-dispatched, still sent once.
    "alerts-sweep-outbox": {
        "task": "greenkpi.alerts.tasks.sweep_outbox",
        "schedule": 60.0,
        "options": {"expires": 50},
    },
    # MLflow write-back (integrations/mlflow_outbox.py): rows for runs that closed by themselves
    # (Slurm jobs) and rows a lost message left; each is still written to MLflow once.
    "integrations-sweep-mlflow-exports": {
        "task": "greenkpi.integrations.tasks.sweep_mlflow_exports",
        "schedule": 120.0,
        "options": {"expires": 100},
    },
    # One digest per recipient per day about yesterday, in the organisation's local morning:
    # every hour, each run writing the digests of the organisations whose local time is between
    # 06:00 and 12:00 (alerts/digest.py). A beat down all morning skips the day rather than mailing
    # yesterday's news in the evening; a second run the same day writes nothing (dedup per
    # organisation, day and address). Expires before the next run.
    "alerts-daily-digest": {
        "task": "greenkpi.alerts.tasks.send_daily_digests",
        "schedule": crontab(minute=5),
        "options": {"expires": 50 * 60},
    },
}
