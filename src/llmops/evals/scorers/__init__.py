"""Scorers: registered metrics that receive only the arguments they declare (see ``base``)."""
