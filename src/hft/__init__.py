"""HFT trading platform: matching core, engine service, broker backend and tools."""

__version__ = "0.1.0"
