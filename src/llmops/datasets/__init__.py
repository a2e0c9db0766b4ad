"""Datasets: versioned, content-addressed rows with lineage, imported, cleaned and exported."""
