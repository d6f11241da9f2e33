"""Access logs without query strings: `GET /api/search?q=…` carries what the customer typed (an e-mail address,
a card number), and an access line is kept wherever the operator ships logs, unredacted and for as long as
they like. The path, method, status and client address stay; everything after `?` goes.

`install()` puts the filter on uvicorn's `uvicorn.access` logger (server.py's create_app calls it), which also
serves uvicorn workers under gunicorn. A logging config applied later (`--log-config`) keeps logger filters.
"""

from __future__ import annotations

import logging

ACCESS_LOGGER = "uvicorn.access"


def path_only(value: str) -> str:
    """`/api/search?q=ann@example.com` → `/api/search`; anything that is not a path is left as it is."""
    return value.split("?", 1)[0] if value.startswith("/") else value


class DropQueryString(logging.Filter):
    """uvicorn logs `'%s - "%s %s HTTP/%s" %d'` with (client, method, path with query, version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(path_only(arg) if isinstance(arg, str) else arg for arg in record.args)
        return True


def install(logger_name: str = ACCESS_LOGGER) -> None:
    """Once per logger, however often an app is created in the process."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(existing, DropQueryString) for existing in logger.filters):
        logger.addFilter(DropQueryString())
