"""Operations: what operators scrape about the backend itself (/metrics, docs/operations.md).

Above the apps it reads (ingest, kpis, alerts, inventory) and below the demo."""
