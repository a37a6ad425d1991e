"""Model pages: a team's models, one model's lifecycle (training vs inference energy, SCI per 1,000
inferences, evaluations and drift, retraining need and its components) and one run."""

from __future__ import annotations

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
