"""Carbon accounting: grid intensity (shipped annual averages, imported hourly series), market-based
factors, electricity tariffs and embodied carbon. Formulas in docs/kpis.md, data in docs/carbon-data.md."""
