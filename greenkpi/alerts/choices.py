"""The fixed vocabularies of budgets and rules (Django choices), apart from the models so that
models.py stays readable; every name is re-exported by ``greenkpi.alerts.models``."""

from __future__ import annotations

from django.db import models


class Metric(models.TextChoices):
    """What a budget caps, explicitly (issue 14 item 5). ``co2e_kg`` is the total incl. embodied:
    what every kgCO2e budget capped before the choice existed, so existing budgets keep it."""

    ENERGY_KWH = "energy_kwh", "Energy (kWh, IT)"
    CO2E_KG = "co2e_kg", "CO2e, total incl. embodied (SCI numerator), kgCO2e"
    SCOPE2_LOCATION = "s2_location", "CO2e, Scope 2 location-based, kgCO2e"
    SCOPE2_MARKET = "s2_market", "CO2e, Scope 2 market-based, kgCO2e"
    GPU_HOURS = "gpu_h", "GPU-hours allocated"
    COST = "cost", "Electricity cost"


class BudgetScope(models.TextChoices):
    ORGANISATION = "organisation", "Organisation"
    TEAM = "team", "Team"
    MODEL = "model", "Model"


class ForecastMethod(models.TextChoices):
    AUTO = "auto", "Automatic (weekday profile with 14 days of history, else recent rate)"
    RECENT_RATE = "recent_rate", "Recent rate (trailing 7 days, linear)"
    WEEKDAY_PROFILE = "weekday_profile", "Weekday profile (mean per weekday over 4 weeks)"


class RuleKind(models.TextChoices):
    BUDGET_THRESHOLD = "budget_threshold", "Budget threshold crossed"
    BUDGET_FORECAST = "budget_forecast", "Budget forecast to be exceeded"
    LOW_UTILIZATION = "low_utilization", "Team GPU utilization under a floor"
    IDLE_GPU = "idle_gpu", "GPU allocated but idle"
    COLLECTOR_SILENT = "collector_silent", "Collector silent"
    RETRAINING_NEED = "retraining_need", "Model retraining recommended or overdue"


class NoDataHandling(models.TextChoices):
    NODATA = "nodata", "NoData: a separate 'no data' alert (default)"
    ALERTING = "alerting", "Alerting: treat no data as the condition holding"
    OK = "ok", "OK: treat no data as the condition clear"


class RuleState(models.TextChoices):
    """The rule as a whole, for pages (Grafana's rule state): its worst open alert, or error."""

    NORMAL = "normal", "Normal"
    PENDING = "pending", "Pending"
    ALERTING = "alerting", "Alerting"
    NODATA = "nodata", "No data"
    ERROR = "error", "Error"
