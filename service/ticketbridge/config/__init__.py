"""Configuration: its shape (model) and how it is read (load)."""

from ticketbridge.config.load import (
    ConfigError,
    load_config,
    load_web_config,
    summarise,
)
from ticketbridge.config.model import Config

__all__ = ["Config", "ConfigError", "load_config", "load_web_config", "summarise"]
