"""Node init: what the init container does before ipamd starts (aws-vpc-cni-init's job).

1. Install into HOST_CNI_BIN_PATH the plugin launcher (``vpccni``, the conflist's plugin ``type``) and the
   chained reference plugins (VPCCNI_CHAIN_PLUGINS, default ``portmap``) copied from a source directory
   (VPCCNI_CNI_PLUGIN_SOURCE, default ``/usr/lib/cni``).
2. Set the datapath sysctls: loose reverse-path filtering (``rp_filter=2``) on the primary interface —
   replies to pods on secondary ENIs leave by another interface than their requests came in, which strict
   mode (1) would drop — and ``net.ipv4.ip_forward=1`` (the node routes pod traffic). The primary interface
   is the link whose MAC is the one IMDS reports (``meta-data/mac``), as aws finds it.

Every step is idempotent: a file identical to what would be written (bytes and mode 0755) is left alone,
a sysctl already at its value is not written, and each step says which way it went — so a re-run reports
"nothing to change". Files are written to a temporary file in the same directory, fsync'd, and renamed
over the old one: a runtime exec'ing the plugin at that moment runs either the old or the new binary,
never a half-written one (and replacing a running binary is no ETXTBSY, which an in-place write would be).

Everything is checked before anything is changed (the directory exists, every chained plugin is found,
the launcher's host paths exist, the MAC names a link), so a bad input changes nothing.

The launcher runs on the host, not in the init container: it must name an interpreter and a package
directory as the *host* sees them. :class:`LauncherSpec` defaults to this interpreter and this package
(right when vpccni runs on the node itself, or when the image keeps its install at the path where it is
also mounted on the host); ``host_fs_root`` is where the host's ``/`` is visible to this process, to verify
those paths exist there (default ``/``: same filesystem). ``self_contained`` instead copies the plugin's
standard-library-only files next to the launcher and runs them with the host's own Python, so nothing of
vpccni needs to exist on the host (:mod:`vpccni.node.hostcopy`; what the Helm chart runs).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import stat
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO, Literal

from vpccni.cloud.aws.imds import DEFAULT_IMDS_ENDPOINT
from vpccni.errors import ImdsUnavailable, PermanentError, PlumbingError
from vpccni.fsutil import fsync_dir
from vpccni.node.conflist import PLUGIN_TYPE
from vpccni.node.launcher import library_paths, package_root, render_launcher

DEFAULT_PLUGIN_SOURCE = "/usr/lib/cni"
DEFAULT_CHAIN_PLUGINS = ("portmap",)
RP_FILTER_LOOSE = "2"
IP_FORWARD_KEY = "net.ipv4.ip_forward"
EXECUTABLE_MODE = 0o755
_PLUGIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_CHUNK = 1 << 20


class InitInputError(PermanentError):
    """A bad input (an option or variable that cannot be used): exit status 2. Nothing was changed."""


class InitFailed(PermanentError):
    """A step could not be done (a missing directory, no link with the MAC, IMDS down ...): exit 1."""


StepKind = Literal["installed", "unchanged", "set", "kept", "removed"]


@dataclass(frozen=True)
class Step:
    """One thing init did or found already done."""

    kind: StepKind
    target: str  # a file path, or a sysctl as ``key=value``
    detail: str = ""

    @property
    def changed(self) -> bool:
        return self.kind in ("installed", "set", "removed")

    def __str__(self) -> str:
        return f"{self.kind} {self.target}" + (f" ({self.detail})" if self.detail else "")


@dataclass(frozen=True)
class LauncherSpec:
    """Where the plugin launcher finds Python and the ``plugin``/``vpccni`` packages ON THE HOST."""

    python: str = sys.executable
    root: str = field(default_factory=package_root)
    libraries: tuple[str, ...] | None = None
    """Host site-packages, last on the plugin's sys.path (for lazy third-party imports; the plugin's
    own paths need none); None = this environment's when ``python`` is this interpreter, else none."""
    host_fs_root: str = "/"
    self_contained: bool = False
    """Copy the plugin's stdlib-only files for the host and run them with ``python`` (the host's);
    ``root`` is then unused (:mod:`vpccni.node.hostcopy`)."""

    def library_dirs(self) -> tuple[str, ...]:
        if self.libraries is not None:
            return self.libraries
        return library_paths() if self.python == sys.executable else ()


@dataclass(frozen=True)
class NodeInitOptions:
    bin_dir: str
    """HOST_CNI_BIN_PATH: where the runtime looks for CNI plugins (must exist: it is the host mount)."""
    launcher: LauncherSpec = field(default_factory=LauncherSpec)
    chain_plugins: tuple[str, ...] = DEFAULT_CHAIN_PLUGINS
    plugin_source: str = DEFAULT_PLUGIN_SOURCE
    sysctls: bool = True
    """Set the datapath sysctls (False: install files only)."""
    primary_mac: str | None = None
    """The primary interface's MAC; None = ask IMDS."""
    imds_endpoint: str = DEFAULT_IMDS_ENDPOINT
    imds_timeout_s: float = 10.0
    netns: str | None = None
    """Set the sysctls inside this network namespace (a name under /run/netns or a path); None = here."""


# --- files ---------------------------------------------------------------------------------------------


def _same_bytes(path: str, read_other: Callable[[], BinaryIO]) -> bool:
    try:
        mine = open(path, "rb")  # noqa: SIM115 - closed below, together with the other stream
    except FileNotFoundError:
        return False
    with mine, read_other() as other:
        while True:
            a, b = mine.read(_CHUNK), other.read(_CHUNK)
            if a != b:
                return False
            if not a:
                return True


def _up_to_date(dest: str, read_source: Callable[[], BinaryIO]) -> bool:
    try:
        st = os.stat(dest)
    except FileNotFoundError:
        return False
    return (
        stat.S_ISREG(st.st_mode)
        and stat.S_IMODE(st.st_mode) == EXECUTABLE_MODE
        and _same_bytes(dest, read_source)
    )


def _remove_leftovers(directory: str, name: str) -> None:
    """Temporary files of an install killed before its rename (their names are ours alone)."""
    pattern = re.compile(rf"^\.{re.escape(name)}\.[a-z0-9_]{{8}}$")  # tempfile.mkstemp's names
    for entry in os.listdir(directory):
        if pattern.match(entry):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, entry))


def install_atomically(dest: str, read_source: Callable[[], BinaryIO]) -> Step:
    """Make ``dest`` an executable copy of the stream ``read_source()`` opens; skip it if identical."""
    directory, name = os.path.split(dest)
    _remove_leftovers(directory, name)
    if _up_to_date(dest, read_source):
        return Step("unchanged", dest)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
    except OSError as exc:
        raise InitFailed(f"cannot write into {directory}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as out, read_source() as src:
            while chunk := src.read(_CHUNK):
                out.write(chunk)
            out.flush()
            os.fchmod(out.fileno(), EXECUTABLE_MODE)  # not umask-dependent
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    except BaseException as exc:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise InitFailed(f"cannot install {dest}: {exc.strerror or exc}") from exc
        raise
    fsync_dir(directory)  # the rename itself survives a crash of the node
    return Step("installed", dest)


def _check_bin_dir(bin_dir: str) -> None:
    if not bin_dir.startswith("/"):
        raise InitInputError(f"HOST_CNI_BIN_PATH {bin_dir!r} must be an absolute path")
    if not os.path.isdir(bin_dir):
        raise InitFailed(
            f"HOST_CNI_BIN_PATH {bin_dir} is not a directory (is the host's CNI bin dir mounted there?)"
        )
    if not os.access(bin_dir, os.W_OK | os.X_OK):
        raise InitFailed(f"HOST_CNI_BIN_PATH {bin_dir} is not writable by this process")


def _chained_sources(options: NodeInitOptions) -> list[tuple[str, str]]:
    """(name, source path) of each chained plugin, every one checked to exist and be executable."""
    found = []
    for name in dict.fromkeys(options.chain_plugins):
        if not _PLUGIN_NAME.match(name) or name == PLUGIN_TYPE:
            raise InitInputError(
                f"chained plugin name {name!r} is not a plain file name other than {PLUGIN_TYPE!r}"
            )
        source = os.path.join(options.plugin_source, name)
        if not os.path.isfile(source) or not os.access(source, os.X_OK):
            raise InitFailed(
                f"chained plugin {name!r} not found as an executable file in {options.plugin_source} "
                "(VPCCNI_CNI_PLUGIN_SOURCE)"
            )
        found.append((name, source))
    return found


def _launcher_text(spec: LauncherSpec) -> bytes:
    """The launcher's bytes, after checking its host paths exist where the host's / is visible."""
    try:
        text = render_launcher(spec.python, spec.root, spec.library_dirs())
    except ValueError as exc:
        raise InitInputError(f"plugin launcher: {exc}") from None

    def on_host(path: str) -> str:
        return os.path.join(spec.host_fs_root, path.lstrip("/"))

    if not os.access(on_host(spec.python), os.X_OK) or os.path.isdir(on_host(spec.python)):
        raise InitFailed(
            f"host Python {spec.python} is not an executable file (looked at {on_host(spec.python)})"
        )
    main = os.path.join(spec.root, "plugin", "main.py")
    if not os.path.isfile(on_host(main)):
        raise InitFailed(f"host package root {spec.root} holds no plugin/main.py (looked at {on_host(main)})")
    return text.encode("utf-8")


def _bytes_stream(data: bytes) -> Callable[[], BinaryIO]:
    return lambda: io.BytesIO(data)


def _file_stream(path: str) -> Callable[[], BinaryIO]:
    return lambda: open(path, "rb")


# --- the primary interface and sysctls -----------------------------------------------------------------


def normalize_mac(raw: str) -> str:
    """``02:AB:...`` or ``02-ab-...`` as ``02:ab:...``; InitInputError if it is not a MAC."""
    mac = raw.strip().lower().replace("-", ":")
    if not _MAC.match(mac):
        raise InitInputError(f"{raw!r} is not a MAC address (six hex bytes, e.g. 02:ab:cd:ef:01:23)")
    return mac


def primary_mac_from_imds(endpoint: str, timeout_s: float) -> str:
    from vpccni.cloud.aws.imds import ImdsClient, ImdsSettings

    try:
        client = ImdsClient(ImdsSettings(endpoint=endpoint, timeout_s=timeout_s))
    except ValueError as exc:
        raise InitInputError(f"IMDS endpoint {endpoint}: {exc}") from None
    try:
        raw = client.mac()
    except ImdsUnavailable as exc:
        raise InitFailed(f"cannot read the primary MAC from IMDS at {endpoint}: {exc}") from exc
    try:
        return normalize_mac(raw)
    except InitInputError:
        raise InitFailed(f"IMDS at {endpoint} answered meta-data/mac with {raw!r}, not a MAC") from None


def link_with_mac(mac: str, netns: str | None) -> str:
    """The name of the link whose MAC is ``mac`` (the lowest ifindex if several share it)."""
    from vpccni.net.nsutil import NetnsMissing, iproute

    where = f"network namespace {netns}" if netns else "this network namespace"
    try:
        with iproute(netns) as ipr:
            links = [
                (link["index"], str(link.get_attr("IFLA_IFNAME")))
                for link in ipr.get_links()
                if str(link.get_attr("IFLA_ADDRESS") or "").lower() == mac
            ]
    except NetnsMissing as exc:
        raise InitFailed(f"{where} does not exist: {exc.reason}") from exc
    except PlumbingError as exc:
        raise InitFailed(f"cannot list the links of {where}: {exc}") from exc
    if not links:
        raise InitFailed(
            f"no link in {where} has MAC {mac} (the primary interface's, from IMDS or --primary-mac)"
        )
    return min(links)[1]


def _ensure_sysctl(netns: str | None, path: str, key: str, value: str, why: str) -> Step:
    from vpccni.net.nsutil import read_sysctl_path, write_sysctl_path

    try:
        before = read_sysctl_path(netns, path)
        if before == value:
            return Step("kept", f"{key}={value}")
        write_sysctl_path(netns, path, value)
        after = read_sysctl_path(netns, path)
    except PlumbingError as exc:
        raise InitFailed(f"cannot set {key}={value}: {exc}") from exc
    if after != value:
        raise InitFailed(f"{key} reads {after!r} after writing {value!r}")
    return Step("set", f"{key}={value}", f"was {before}; {why}")


def datapath_sysctls(ifname: str, netns: str | None) -> list[Step]:
    from vpccni.net.nsutil import sysctl_path

    return [
        _ensure_sysctl(
            netns,
            sysctl_path("net", "ipv4", "conf", ifname, "rp_filter"),
            f"net.ipv4.conf.{ifname}.rp_filter",
            RP_FILTER_LOOSE,
            f"loose on the primary interface {ifname}",
        ),
        _ensure_sysctl(netns, "/proc/sys/net/ipv4/ip_forward", IP_FORWARD_KEY, "1", "the node routes pods"),
    ]


# --- the whole job -------------------------------------------------------------------------------------


def run_node_init(options: NodeInitOptions, report: Callable[[Step], None] = lambda _: None) -> list[Step]:
    """Do (or confirm) every step; ``report`` hears each as it completes. Raises InitInputError or
    InitFailed naming what failed; nothing is changed unless every check passed first."""
    if options.netns is not None:
        from vpccni.net.nsutil import netns_path

        try:
            netns_path(options.netns)
        except PlumbingError as exc:
            raise InitInputError(f"--netns: {exc.reason}") from None
    _check_bin_dir(options.bin_dir)
    copy = None
    if options.launcher.self_contained:
        from vpccni.node.hostcopy import plan_host_copy

        spec = options.launcher
        copy = plan_host_copy(spec.python, spec.libraries, spec.host_fs_root, package_root())
    launcher = copy.launcher.encode("utf-8") if copy else _launcher_text(options.launcher)
    chained = _chained_sources(options)
    ifname = None
    if options.sysctls:
        if options.primary_mac is not None:
            try:
                mac = normalize_mac(options.primary_mac)
            except InitInputError as exc:
                raise InitInputError(f"--primary-mac: {exc}") from None
        else:
            mac = primary_mac_from_imds(options.imds_endpoint, options.imds_timeout_s)
        ifname = link_with_mac(mac, options.netns)

    steps: list[Step] = []

    def done(step: Step) -> None:
        steps.append(step)
        report(step)

    launcher_path = os.path.join(options.bin_dir, PLUGIN_TYPE)
    if copy is not None:  # the tree before the launcher that names it; the previous tree stays
        from vpccni.node.hostcopy import install_tree, launcher_digest, prune_trees

        previous = launcher_digest(launcher_path)
        done(install_tree(copy.tree, options.bin_dir, compile_pyc=copy.compile_pyc))
    done(install_atomically(launcher_path, _bytes_stream(launcher)))
    if copy is not None:
        for step in prune_trees(options.bin_dir, keep=(copy.tree.digest, previous)):
            done(step)
    for name, source in chained:
        dest = os.path.join(options.bin_dir, name)
        if os.path.lexists(dest) and os.path.samefile(source, dest):
            done(Step("unchanged", dest, "it is the source"))
            continue
        done(install_atomically(dest, _file_stream(source)))
    if ifname is not None:
        for step in datapath_sysctls(ifname, options.netns):
            done(step)
    return steps


def summary(steps: Sequence[Step]) -> str:
    changed = sum(step.changed for step in steps)
    if not changed:
        return "nothing to change: the node was already initialized"
    return f"{changed} change{'s' if changed != 1 else ''}, {len(steps) - changed} already in place"
