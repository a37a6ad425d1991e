"""KPI engine: hourly rollups (the only writer), the KPI registry and its pure pandas formulas."""
