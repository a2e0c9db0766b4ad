"""The model registry: versioned models with their artefacts, aliases and lineage."""

from llmops.registry.artefacts import ArtefactStore, ArtefactStoreError, ChecksumMismatch
from llmops.registry.errors import InvalidModel, ModelConflict, ModelNotFound
from llmops.registry.repository import Artefact, ModelVersionInfo
from llmops.registry.service import InUse, RegistryService, parse_ref

__all__ = [
    "Artefact",
    "ArtefactStore",
    "ArtefactStoreError",
    "ChecksumMismatch",
    "InUse",
    "InvalidModel",
    "ModelConflict",
    "ModelNotFound",
    "ModelVersionInfo",
    "RegistryService",
    "parse_ref",
]
