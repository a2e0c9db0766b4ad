"""Monitoring: aggregates of traces for dashboards (rollups and the stats service), resource metrics."""
