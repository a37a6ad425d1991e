"""Budgets with forecasts, alert rules, the alert lifecycle, and notifications by email and webhook."""
