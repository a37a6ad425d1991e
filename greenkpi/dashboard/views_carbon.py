"""Carbon and reports: CO2e (location and market), embodied, renewable share, cost, month over
month per team; the monthly ESG report (CSV and printable); grid intensity by hour and best hours."""

from __future__ import annotations

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
