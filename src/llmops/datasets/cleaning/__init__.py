"""Cleaning steps: registered, configurable units run alone or from a YAML recipe (see ``base``)."""
