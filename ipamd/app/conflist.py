"""The conflist, written into HOST_CNI_CONFDIR_PATH only once this node can serve an ADD.

kubelet (through containerd/CRI-O) reports the node's network as ready as soon as a conflist is present,
and the scheduler then sends pods. aws-node writes its conflist as soon as ipamd's gRPC answers, so a
node goes Ready with an empty pool and its first pods fail "failed to assign an IP address to container"
(aws #330 #1724 #1923). Here the ``conflist`` root task writes it only once ipamd is ready AND the pool
can serve an ADD -- the same condition that removes the startup taint (:mod:`ipamd.app.k8s`); the taint
itself waits for the conflist to be in place, so the scheduler never sees a node kubelet cannot network.

The file is a pure function of the settings (:func:`conflist_options`): our plugin with the socket path
and the plugin log file/level, ``portmap`` always (hostPort; aws chains it too), ``bandwidth`` with
ENABLE_BANDWIDTH_PLUGIN. Every pass compares the file with that text and rewrites it only if it differs,
so a restart with unchanged settings leaves it alone (same inode, same mtime), a restart with changed
settings rewrites it once the pool can serve, and a file deleted or edited by hand is put back. Writes
are atomic (a temporary file in the same directory, fsync'd, renamed over, then the directory fsync'd):
a runtime reading the directory at any moment sees the old file or the new one, never half of one. The
temporary name starts with a dot and does not end in ``.conflist``, so no runtime ever loads it.

Removal: never on a crash, a fault or a restart (the node keeps running its pods while ipamd comes
back). On a clean stop (SIGTERM/SIGINT) only with VPCCNI_REMOVE_CONFLIST_ON_SHUTDOWN=true, so the node
goes NotReady instead.

A confdir that cannot be written (missing mount, read-only) is logged, once per distinct problem, and
retried every pass; the node stays tainted meanwhile, which is the truth: kubelet has no network.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Literal

from vpccni import fsutil
from vpccni.config.settings import Settings
from vpccni.node.conflist import CONFLIST_FILENAME, ConflistOptions, render_conflist

log = logging.getLogger("ipamd.conflist")

CHECK_PERIOD_S = 1.0
FILE_MODE = 0o644

Outcome = Literal["waiting", "written", "unchanged", "failed"]


def conflist_options(settings: Settings) -> ConflistOptions:
    """The conflist's inputs, from the settings ipamd runs with."""
    return ConflistOptions(
        ipamd_socket=settings.socket_path,
        plugin_log_file=settings.plugin_log_file,
        plugin_log_level=settings.plugin_log_level,
        portmap=True,
        bandwidth=settings.enable_bandwidth_plugin,
    )


class ConflistWriter:
    """Keeps HOST_CNI_CONFDIR_PATH/10-vpccni.conflist in step with the settings, once ``can_serve()``.

    ``in_place`` is True while the file holds exactly our text (checked by the last pass).
    ``on_in_place``, if set, is awaited each time the file is found or put in place (ipamd uses it to
    remove the startup taint at once rather than at the next Kubernetes pass)."""

    def __init__(self, settings: Settings, can_serve: Callable[[], bool]) -> None:
        self.path = os.path.join(settings.host_cni_confdir_path, CONFLIST_FILENAME)
        self.text = render_conflist(conflist_options(settings))
        self.remove_on_shutdown = settings.remove_conflist_on_shutdown
        self.period_s = min(settings.pool_loop_period, CHECK_PERIOD_S)
        self.in_place = False
        self.on_in_place: Callable[[], Awaitable[object]] | None = None
        self._can_serve = can_serve
        self._last_problem = ""
        self._said_waiting = False

    # --- one pass --------------------------------------------------------------------------------

    def sync(self) -> Outcome:
        """Check the file and write it if the node can serve and the file differs."""
        current = self._read()
        self.in_place = current == self.text
        if self.in_place:
            return "unchanged"
        if not self._can_serve():
            if not self._said_waiting:  # once: the pool loop already reports why it cannot grow
                self._said_waiting = True
                state = "absent" if current is None else "not what the settings give"
                log.info("not writing %s yet (%s): ipamd cannot serve an ADD yet", self.path, state)
            return "waiting"
        try:
            self._write()
        except OSError as exc:
            self._problem(
                f"cannot write {self.path}: {exc.strerror or exc} "
                "(is the host's CNI config directory mounted at HOST_CNI_CONFDIR_PATH?)"
            )
            return "failed"
        self.in_place = True
        self._last_problem = ""
        log.info("%s %s: ipamd can serve an ADD", "rewrote" if current is not None else "wrote", self.path)
        return "written"

    def _read(self) -> str | None:
        try:
            with open(self.path, encoding="utf-8") as f:
                return f.read()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:  # unreadable or not text: ours to replace
            log.warning("cannot read %s (%s); it will be replaced", self.path, exc)
            return ""

    def _write(self) -> None:
        # A hidden temp name without a .conf/.conflist/.json suffix: no runtime ever loads it.
        temp = os.path.join(os.path.dirname(self.path), f".{CONFLIST_FILENAME}.tmp-{os.getpid()}")
        fsutil.write_atomic(self.path, self.text.encode(), mode=FILE_MODE, temp=temp)

    def _problem(self, message: str) -> None:
        if message != self._last_problem:
            self._last_problem = message
            log.error("%s; retrying every %.1fs", message, self.period_s)

    # --- the root task and the stop --------------------------------------------------------------

    async def run(self) -> None:
        """The ``conflist`` root task: a pass now, then every ``period_s``."""
        while True:
            was_in_place = self.in_place
            written = self.sync() == "written"
            if (written or (self.in_place and not was_in_place)) and self.on_in_place is not None:
                try:
                    await self.on_in_place()
                except Exception as exc:  # its own periodic pass will do the same later
                    log.warning("after writing the conflist: %s", exc)
            await asyncio.sleep(self.period_s)

    def clean_shutdown(self) -> bool:
        """On SIGTERM/SIGINT: remove the file if VPCCNI_REMOVE_CONFLIST_ON_SHUTDOWN; True if removed."""
        if not self.remove_on_shutdown:
            return False
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            return False
        except OSError as exc:
            log.error("cannot remove %s on shutdown: %s", self.path, exc.strerror or exc)
            return False
        self.in_place = False
        log.info("removed %s (VPCCNI_REMOVE_CONFLIST_ON_SHUTDOWN=true): the node goes NotReady", self.path)
        return True
