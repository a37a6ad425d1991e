"""Budgets and alerts: budget list with burn-down and forecast, create/edit (managers), alerts list,
acknowledge and silence."""

from __future__ import annotations

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
