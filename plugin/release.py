"""Release records: how a DEL that could not reach ipamd still gives the address back.

The record is a DEL request line (:func:`vpccni.wire.protocol.encode_release_record`) in the spool
directory next to ipamd's socket (:func:`vpccni.wire.protocol.spool_dir_for`), one file per allocation key,
so a repeated DEL overwrites rather than duplicates. A repeated DEL may know less than the first one
(libcni drops its cached result after the first DEL, so the second arrives without prevResult):
what the earlier record knew is kept rather than overwritten with nothing. It is written atomically
and durably (temp file, fsync, rename, fsync of the directory): ipamd replays whatever it finds at
start, and a torn record would be a leak ipamd cannot even name.
"""

from __future__ import annotations

import os

from vpccni.fsutil import write_atomic
from vpccni.wire.protocol import (
    PodRef,
    Request,
    decode_request,
    encode_release_record,
    release_record_name,
    spool_dir_for,
)


def write_release_record(socket_path: str, request: Request) -> str:
    """Spool ``request`` (a DEL) for ipamd to replay; return the record's path. Raises OSError."""
    spool = spool_dir_for(socket_path)
    os.makedirs(spool, mode=0o700, exist_ok=True)
    path = os.path.join(spool, release_record_name(request.network, request.container_id, request.ifname))
    write_atomic(path, encode_release_record(_keep_what_was_known(path, request)))
    return path


def _keep_what_was_known(path: str, request: Request) -> Request:
    try:
        with open(path, "rb") as f:
            earlier = decode_request(f.read())
    except (OSError, ValueError):
        return request  # no record yet (or an unreadable one, which this one replaces)
    if earlier.key != request.key:
        return request
    return request._replace(
        prev_result=request.prev_result or earlier.prev_result,
        pod=request.pod if request.pod != PodRef() else earlier.pod,
    )
