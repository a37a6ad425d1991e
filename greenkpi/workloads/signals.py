"""The hooks for apps above workloads. ``verdict_changed``, for alerts: sent after commit whenever a model's retraining verdict changes.

Receivers get ``model`` (MLModel), ``previous`` (verdict string, "" the first time), ``verdict``
and ``assessment`` (RetrainingAssessment). greenkpi/alerts can connect a receiver, or instead poll
``selectors.retraining_alert_candidates()`` each tick; both see the same rows.
"""

from __future__ import annotations

from django.dispatch import Signal

verdict_changed = Signal()

# Sent inside the transaction that closes a run (``services.run_close``), with ``run``: a receiver
# that writes rows writes them atomically with the close (integrations: the MLflow write-back).
run_closed = Signal()
