"""The dashboard: server-rendered pages, one package per area (overview, fleet, teams, models,
carbon, reports, budgets, alerts, slurm), each with its views, selectors, figures and forms as
needed; ``common/`` holds what they share. docs/dashboard.md describes the layout."""
