"""The operator's commands: status, events, route. They read and repair the
ledger file directly, so they work whether the daemon runs or not."""
