"""Replay of release records: DELs the plugin could not deliver because ipamd was down.

The plugin tears the pod down from ``prevResult`` itself and leaves one record per attachment in the
spool directory next to the socket (``vpccni.wire.protocol.spool_dir_for``). At start, after recovery and
before serving, ipamd runs each record through the normal DEL path and deletes the record only once that
DEL answered ok, i.e. once the release is durable. A record that fails stays for the next start; one that
cannot be parsed is renamed ``*.bad`` (kept for a human, never retried, never silently deleted).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from ipamd.serve.handler import RequestHandler
from vpccni.wire.protocol import Op, decode_request, validate_identifiers

log = logging.getLogger(__name__)

RECORD_SUFFIX = ".json"
BAD_SUFFIX = ".bad"


@dataclass(frozen=True)
class ReplayReport:
    replayed: tuple[str, ...] = ()  # record names released and deleted
    failed: tuple[tuple[str, str], ...] = ()  # (record name, why) kept for the next start
    malformed: tuple[tuple[str, str], ...] = ()  # (record name, why) renamed *.bad


async def replay_release_records(spool_dir: str, handler: RequestHandler) -> ReplayReport:
    try:
        names = sorted(n for n in os.listdir(spool_dir) if n.endswith(RECORD_SUFFIX))
    except FileNotFoundError:
        return ReplayReport()
    replayed: list[str] = []
    failed: list[tuple[str, str]] = []
    malformed: list[tuple[str, str]] = []
    for name in names:
        path = os.path.join(spool_dir, name)
        try:
            with open(path, "rb") as f:
                req = decode_request(f.read())
            problem = validate_identifiers(req) if req.op is Op.DEL else f"op {req.op} is not DEL"
        except FileNotFoundError:
            continue  # removed meanwhile (e.g. a second replay); nothing to do
        except (OSError, ValueError, TypeError) as exc:
            problem = str(exc)
        if problem is not None:
            os.replace(path, path + BAD_SUFFIX)
            malformed.append((name, problem))
            log.error("release record %s is malformed (%s); kept as %s", path, problem, path + BAD_SUFFIX)
            continue
        response = await handler.replay_del(req)
        if response.ok:
            os.unlink(path)
            replayed.append(name)
        else:
            why = response.error.message if response.error else "unknown"
            failed.append((name, why))
            log.warning("release record %s not replayed yet: %s", path, why)
    if replayed:
        log.info("replayed %d release record(s) from %s", len(replayed), spool_dir)
    return ReplayReport(tuple(replayed), tuple(failed), tuple(malformed))
