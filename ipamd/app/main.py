"""``vpccni-ipamd`` (also ``python -m ipamd``): the node daemon's entry point.

Reads the settings from the environment first: a bad variable is one line per problem on stderr
(``VARIABLE='value': expected ...``) and exit status 2, before anything else happens. Then logging, then
:class:`ipamd.app.daemon.Daemon` runs until SIGTERM/SIGINT (exit 0) or until a root task dies or
startup fails for good (exit 1, the reason logged and on stderr).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time

from ipamd.app.daemon import Daemon
from ipamd.app.logs import configure_logging
from ipamd.state.crashpoints import CrashPoints
from vpccni.config.settings import Settings
from vpccni.errors import ConfigError, PermanentError

PROG = "vpccni-ipamd"
EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2

log = logging.getLogger("ipamd.app.main")


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    args = sys.argv[1:] if argv is None else argv
    if args:
        if args[0] in ("-h", "--help"):
            sys.stdout.write(f"usage: {PROG}\n\n{__doc__}\nConfiguration: environment variables "
                             "(`vpccni config --explain` lists them).\n")
            return EXIT_OK
        sys.stderr.write(f"{PROG}: error: takes no arguments (configuration is the environment), "
                         f"got {args[0]!r}\n")
        return EXIT_CONFIG
    try:
        settings = Settings.from_env()
        crash = CrashPoints.from_env()
    except ConfigError as bad:
        for problem in bad.problems:
            sys.stderr.write(f"{PROG}: {problem}\n")
        return EXIT_CONFIG
    try:
        configure_logging(settings)
    except OSError as exc:  # e.g. the log directory's hostPath not mounted into a read-only container
        sys.stderr.write(f"{PROG}: cannot start: cannot open the log file {settings.log_file} "
                         f"(AWS_VPC_K8S_CNI_LOG_FILE): {exc.strerror}: {exc.filename}\n")
        return EXIT_FAILED
    try:
        return asyncio.run(Daemon(settings, crash, started).run())
    except ConfigError as bad:  # found only once running (e.g. no Kubernetes credentials): still exit 2
        for problem in bad.problems:
            log.critical("%s", problem)
            sys.stderr.write(f"{PROG}: {problem}\n")
        return EXIT_CONFIG
    except PermanentError as exc:
        log.critical("cannot start: %s", exc)
        sys.stderr.write(f"{PROG}: cannot start: {exc}\n")
        return EXIT_FAILED
    except OSError as exc:  # a path it must write is missing or read-only (a hostPath not mounted)
        log.critical("cannot start: %s", exc, exc_info=True)
        sys.stderr.write(f"{PROG}: cannot start: {exc}\n")
        return EXIT_FAILED


if __name__ == "__main__":
    raise SystemExit(main())
