"""llmops: run, observe, evaluate and improve applications built on large language models.

Importing this package does no I/O and imports no heavy library; everything is built
explicitly by :func:`llmops.services.build_services` from :class:`llmops.settings.Settings`.
"""

__version__ = "0.1.0"
