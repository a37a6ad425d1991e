"""The Celery app with a shortened beat schedule, for tests that run real `celery beat` processes.

`celery -A testsupport.beat_app beat` (PYTHONPATH=tests): the production app and scheduler class,
with three entries every second, sent to the test's own queue (TEST_BEAT_QUEUE) so only the
test's worker runs them.
"""

from __future__ import annotations

import os

from greenkpi.celery import app

_QUEUE = {"queue": os.environ["TEST_BEAT_QUEUE"], "expires": 5}
app.conf.beat_schedule = {
    "kpis-recompute-dirty-windows": {
        "task": "greenkpi.kpis.tasks.recompute_dirty_windows",
        "schedule": 1.0,
        "options": _QUEUE,
    },
    "alerts-evaluate-rules": {
        "task": "greenkpi.alerts.tasks.evaluate_rules",
        "schedule": 1.0,
        "options": _QUEUE,
    },
    "alerts-sweep-outbox": {
        "task": "greenkpi.alerts.tasks.sweep_outbox",
        "schedule": 1.0,
        "options": _QUEUE,
    },
}
