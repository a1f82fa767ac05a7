"""ticketbridge: legacy monitoring events become verified tickets, exactly once."""

__version__ = "0.1.0"
