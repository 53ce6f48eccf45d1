"""ipamd's logging, configured from aws-node's variables.

AWS_VPC_K8S_CNI_LOGLEVEL (debug, info, warn, error, fatal), AWS_VPC_K8S_CNI_LOG_FILE (a path, ``stdout``
or ``stderr``; a path rotates at 100 MB keeping 5 files, as aws-node's lumberjack), VPCCNI_LOG_FORMAT
(``json``: one object a line with aws-node's zap keys ``level``, ``ts``, ``caller``, ``msg``; ``text``:
one readable line). Everything goes through the root logger of the process; the hot path (ADD/DEL) logs
at DEBUG only.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys
from datetime import UTC, datetime

from vpccni.config.settings import Settings

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR,
          "fatal": logging.CRITICAL}
ROTATE_BYTES = 100 * 1024 * 1024
ROTATE_KEEP = 5


class JsonFormatter(logging.Formatter):
    """zap's production encoder, key for key (aws-node's log format)."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "level": "warn" if record.levelno == logging.WARNING else record.levelname.lower(),
            "ts": datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "caller": f"{record.module}.py:{record.lineno}",
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            doc["stacktrace"] = self.formatException(record.exc_info)
        return json.dumps(doc)


def configure_logging(settings: Settings) -> None:
    """Replace the root logger's handlers with the one the settings ask for."""
    destination = settings.log_file
    handler: logging.Handler
    if destination == "stdout":
        handler = logging.StreamHandler(sys.stdout)
    elif destination == "stderr":
        handler = logging.StreamHandler(sys.stderr)
    else:
        os.makedirs(os.path.dirname(destination) or ".", mode=0o755, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(destination, maxBytes=ROTATE_BYTES,
                                                       backupCount=ROTATE_KEEP)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS[settings.log_level.lower()])
    # boto's own debug output is a firehose of wire bytes; our CallObserver already records every call.
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, root.level))
    # The Azure SDK logs every request and answer, headers included, at INFO: the same firehose (the
    # observer records the calls; azure-identity's token failures still come through as warnings).
    logging.getLogger("azure").setLevel(max(logging.WARNING, root.level))
