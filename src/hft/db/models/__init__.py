"""Every table, so `Base.metadata` is complete for migrations and tests."""

from __future__ import annotations

import importlib.util

from hft.db.base import Base
from hft.db.models.auth import Account, ApiKey, AuditEntry, User

# The trading tables belong to the trading layer and may not exist in every checkout.
if importlib.util.find_spec("hft.db.models.trading") is not None:
    importlib.import_module("hft.db.models.trading")

__all__ = ["Account", "ApiKey", "AuditEntry", "Base", "User"]
