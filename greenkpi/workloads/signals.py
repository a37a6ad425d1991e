"""The hook for alerts: sent after commit whenever a model's retraining verdict changes.

Receivers get ``model`` (MLModel), ``previous`` (verdict string, "" the first time), ``verdict``
and ``assessment`` (RetrainingAssessment). greenkpi/alerts can connect a receiver, or instead poll
``selectors.retraining_alert_candidates()`` each tick; both see the same rows.
"""

from __future__ import annotations

from django.dispatch import Signal

verdict_changed = Signal()
