"""The CNI plugin executable: validate, send ONE request to ipamd, print the result.

The runtime execs this once per operation, so it is built to start fast: standard library plus
:mod:`vpccni.wire.protocol`/:mod:`vpccni.errors` only; pyroute2 is imported solely on the DEL fallback
path. Plumbing happens inside ipamd: `import pyroute2` alone costs ~120 ms and ~33 MB per exec, while this
standard-library plugin starts in ~10 ms; on a burst of 30 pods on 2 cores that is ~0.3 s against ~2 s.

Per verb:

The pod's namespace goes to ipamd open: the plugin opens CNI_NETNS (it sees the runtime's mounts, ipamd
may not) and passes the descriptor with its request (:mod:`vpccni.wire.client`).

* ADD -- request, then print the result for the config's cniVersion (:mod:`plugin.result`).
* DEL -- never fails for ipamd's sake: if ipamd cannot be reached, does not answer in time, answers
  garbage or fails the DEL, the plugin spools a release record (:mod:`plugin.release`) and removes
  the pod's host routing itself (:mod:`plugin.fallback`). Only if the record cannot be written does
  DEL fail (code 5), so the runtime retries instead of the address leaking. A namespace that cannot be
  opened is gone: ipamd tears down the host side. A namespace ipamd refuses (not a pod's) fails the
  DEL with code 4: nothing is torn down on its say-so.
* CHECK -- needs prevResult; ipamd verifies the pod and names what is missing.
* GC -- forwards ``cni.dev/valid-attachments`` (or the legacy key) to ipamd.
* STATUS -- 50 with the reason when ipamd is down or cannot serve an ADD.
* VERSION -- answered locally.

Errors are CNI error JSON on stdout with the code chosen in :mod:`plugin.cni`; logs go to stderr or
``pluginLogFile``.
"""

from __future__ import annotations

import os
import sys

from plugin.cni import (
    LATEST_VERSION,
    SUPPORTED_VERSIONS,
    CniError,
    Invocation,
    error_from_failure,
    error_from_ipamd,
    open_netns,
    parse_command,
    parse_invocation,
    version_reply,
)
from plugin.log import PluginLog
from plugin.netconf import NetConf, parse_netconf, require_prev_result_for_check
from plugin.release import write_release_record
from plugin.result import render_add_result
from vpccni.errors import ProtocolError
from vpccni.wire import client, wirejson
from vpccni.wire.cnicodes import IO_FAILURE
from vpccni.wire.protocol import (
    DEFAULT_SOCKET_PATH,
    CniAttachment,
    ErrorInfo,
    ErrorKind,
    Op,
    Request,
    Response,
    spool_dir_for,
)

# Annotations only: `import typing` at run time would cost ~1.5 ms on every plugin exec.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any, TextIO

# How long each verb waits for ipamd unless the conflist sets ipamdTimeoutMs. DEL and STATUS are
# short: DEL has a fallback, and STATUS is polled by the runtime every few seconds.
DEFAULT_TIMEOUT_MS = {"ADD": 10_000, "CHECK": 10_000, "DEL": 5_000, "GC": 30_000, "STATUS": 2_000}


def main() -> int:
    return run(os.environ, _read_stdin, sys.stdout, PluginLog())


def _read_stdin() -> bytes:
    if sys.stdin is None or sys.stdin.isatty():  # a person at a terminal, not a runtime
        return b""
    return sys.stdin.buffer.read()


def run(env: Mapping[str, str], read_stdin: Callable[[], bytes], out: TextIO, log: PluginLog) -> int:
    """One plugin invocation; returns the exit status."""
    error_version = LATEST_VERSION
    command = env.get("CNI_COMMAND", "")
    socket_path = DEFAULT_SOCKET_PATH
    try:
        command = parse_command(env)
        log.context = command
        if command == "VERSION":
            out.write(version_reply(read_stdin()) + "\n")
            return 0
        inv = parse_invocation(env)
        log.context = f"{command} {inv.container_id}/{inv.ifname}" if inv.container_id else command
        conf = parse_netconf(read_stdin(), command)
        error_version = conf.cni_version
        socket_path = conf.ipamd_socket
        log.configure(conf.log_file, conf.log_level)
        text = _HANDLERS[command](inv, conf, log)
        if text:
            out.write(text + "\n")
        return 0
    except Exception as exc:
        # Every failure becomes CNI error JSON: a traceback on stdout would break the runtime's parse.
        err = error_from_failure(command, exc, socket_path)
    if not env.get("CNI_COMMAND"):
        log.info(f"vpccni CNI plugin; CNI protocol versions supported: {', '.join(SUPPORTED_VERSIONS)}")
    log.error(f"code {err.code}: {err.msg}")
    out.write(err.to_json(error_version) + "\n")
    return 1


def _timeout_s(command: str, conf: NetConf) -> float:
    return (conf.timeout_ms or DEFAULT_TIMEOUT_MS[command]) / 1000


def _request(
    op: Op,
    inv: Invocation,
    conf: NetConf,
    prev_result: dict[str, Any] | None = None,
    valid_attachments: tuple[CniAttachment, ...] = (),
) -> Request:
    timeout_ms = conf.timeout_ms or DEFAULT_TIMEOUT_MS[op.value]
    # ipamd must answer before we give up, or its answer is lost: leave it a margin.
    deadline_ms = timeout_ms - max(50, timeout_ms // 10)
    return Request(
        op=op,
        network=conf.name,
        container_id=inv.container_id,
        ifname=inv.ifname,
        netns=inv.netns,
        pod=inv.pod,
        prev_result=prev_result,
        valid_attachments=valid_attachments,
        deadline_ms=deadline_ms,
    )


def _failed(response: Response) -> ErrorInfo:
    return response.error or ErrorInfo(ErrorKind.INTERNAL, "ipamd failed without saying why")


def _add(inv: Invocation, conf: NetConf, log: PluginLog) -> str:
    request = _request(Op.ADD, inv, conf, prev_result=conf.prev_result)
    netns_fd = open_netns(inv.netns)
    try:
        response = client.call(conf.ipamd_socket, request, _timeout_s("ADD", conf), netns_fd)
    finally:
        os.close(netns_fd)
    if not response.ok:
        raise error_from_ipamd("ADD", _failed(response))
    alloc = response.allocation
    if alloc is None:
        raise ProtocolError("ipamd answered ADD without an allocation")
    result = render_add_result(alloc, conf.cni_version, inv.ifname, inv.netns, conf.prev_result, conf.dns)
    log.info(f"added {alloc.ipv4}/{alloc.prefix_len} (ENI {alloc.eni_id}, host {alloc.host_ifname})")
    return wirejson.dumps(result)


def _del(inv: Invocation, conf: NetConf, log: PluginLog) -> str:
    request = _request(Op.DEL, inv, conf, prev_result=conf.prev_result)
    netns_fd = None
    if inv.netns:
        try:
            netns_fd = open_netns(inv.netns)
        except CniError as exc:
            log.info(f"{exc.msg}: as good as gone, ipamd tears down the host side only")
    try:
        response = client.call(conf.ipamd_socket, request, _timeout_s("DEL", conf), netns_fd)
        if response.ok:
            log.info("released by ipamd")
            return ""
        failure = _failed(response)
        if failure.kind is ErrorKind.INVALID_NETNS:  # not a pod's namespace: no teardown on its say-so
            raise error_from_ipamd("DEL", failure)
        why = f"ipamd failed the DEL ({failure.kind.value}: {failure.message})"
    except (client.IpamdUnreachable, client.IpamdTimeout, ProtocolError) as exc:
        why = str(exc)
    finally:
        if netns_fd is not None:
            os.close(netns_fd)
    log.warn(f"{why}; spooling a release record and tearing down host routing from prevResult")
    record_error: OSError | None = None
    try:
        path = write_release_record(conf.ipamd_socket, request)
        log.info(f"release record written: {path}")
    except OSError as exc:
        record_error = exc
    _teardown_locally(conf, inv, log)
    if record_error is not None:
        raise CniError(
            IO_FAILURE,
            f"{why}, and the release record could not be written under {spool_dir_for(conf.ipamd_socket)}: "
            f"{record_error.strerror or record_error}; fix the directory's permissions or start ipamd, "
            "then let the runtime retry DEL",
        )
    return ""


def _teardown_locally(conf: NetConf, inv: Invocation, log: PluginLog) -> None:
    from plugin.fallback import host_routing_from_prev_result, remove_host_routing

    targets = host_routing_from_prev_result(conf.prev_result, inv.ifname)
    if not targets:
        log.info(f"no prevResult address on {inv.ifname}: no host routing to remove here")
    for target in targets:
        try:
            for line in remove_host_routing(target):
                log.info(line)
        except Exception as exc:  # best effort: ipamd finishes the teardown when it replays the record
            log.error(f"could not remove host routing of {target.address}: {type(exc).__name__}: {exc}")


def _check(inv: Invocation, conf: NetConf, log: PluginLog) -> str:
    prev = require_prev_result_for_check(conf, inv)
    request = _request(Op.CHECK, inv, conf, prev_result=prev)
    netns_fd = open_netns(inv.netns)
    try:
        response = client.call(conf.ipamd_socket, request, _timeout_s("CHECK", conf), netns_fd)
    finally:
        os.close(netns_fd)
    if not response.ok:
        raise error_from_ipamd("CHECK", _failed(response))
    log.debug("check passed")
    return ""


def _gc(inv: Invocation, conf: NetConf, log: PluginLog) -> str:
    request = _request(Op.GC, inv, conf, valid_attachments=conf.valid_attachments or ())
    response = client.call(conf.ipamd_socket, request, _timeout_s("GC", conf))
    if not response.ok:
        raise error_from_ipamd("GC", _failed(response))
    log.info(f"GC kept {len(request.valid_attachments)} attachments, ipamd released {response.released}")
    return ""


def _status(inv: Invocation, conf: NetConf, log: PluginLog) -> str:
    response = client.call(conf.ipamd_socket, _request(Op.STATUS, inv, conf), _timeout_s("STATUS", conf))
    if not response.ok:
        raise error_from_ipamd("STATUS", _failed(response))
    log.debug("ipamd can serve ADD")
    return ""


_HANDLERS: dict[str, Callable[[Invocation, NetConf, PluginLog], str]] = {
    "ADD": _add,
    "DEL": _del,
    "CHECK": _check,
    "GC": _gc,
    "STATUS": _status,
}
