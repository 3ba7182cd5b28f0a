"""Real MTAs on loopback for the test suite: a throwaway Postfix and Postfix's smtp-sink.

Install the Debian packages with ``scripts/install-test-deps.sh`` (as root).  The fixtures
skip when the packages are missing or the process is not root, unless ``CI=true`` or
``SMTPX_REQUIRE_REAL_SERVERS=1``, in which case they fail instead.

Fixtures (import them into ``tests/conftest.py``):

``postfix_server`` (session scope) -> :class:`PostfixServer`
    One Postfix instance for the whole session, with its own config and queue under a
    temporary directory, listening on 127.0.0.1 only: ``submission_port`` (plain, offers
    STARTTLS, AUTH PLAIN/LOGIN only after STARTTLS) and ``smtps_port`` (implicit TLS,
    AUTH at once).  Mail is discarded.  Special addresses give fixed replies (see
    :data:`RECIPIENT_REPLIES` / :data:`SENDER_REPLIES`): any domain works, only the local
    part matters.  Measured reply lines (Postfix 3.7, Debian 12)::

        RCPT TO:<soft450@example.test>  450 4.2.1 <soft450@example.test>: Recipient address
                                            rejected: Mailbox busy, try again later
        ... soft451  -> 451 4.3.0 ... Local error in processing
        ... soft452  -> 452 4.2.2 ... Mailbox full, try again later
        ... hard550  -> 550 5.1.1 ... No such user here
        ... hard551  -> 551 5.1.6 ... User not local
        ... hard552  -> 552 5.2.2 ... Mailbox full, permanently
        ... hard553  -> 553 5.1.3 ... Mailbox name not allowed
        ... close421 -> 421 4.3.2 ... Service shutting down   (then Postfix closes)
        MAIL FROM:<hard553sender@...>   553 5.1.8 <hard553sender@example.test>: Sender
                                            address rejected: Sender address not allowed
        ... soft451sender  -> 451 4.1.8 ... Sender domain does not resolve, try later
        ... hard550sender  -> 550 5.7.1 ... Sender blocked
        ... close421sender -> 421 4.3.2 ... Service shutting down   (then Postfix closes)
        MAIL FROM:<a@b> SIZE=20001      552 5.3.4 Message size exceeds fixed limit
        MAIL FROM:<a@b> SIZE=20000      250 2.1.0 Ok
        end of DATA, message > limit    552 5.3.4 Error: message file too big
        normal message                  250 2.0.0 Ok: queued as <QUEUEID>
        AUTH good                       235 2.7.0 Authentication successful
        AUTH bad                        535 5.7.8 Error: authentication failed:
                                            authentication failure
        AUTH before STARTTLS (587-ish)  503 5.5.1 Error: authentication not enabled

    Sender restrictions reply at MAIL FROM (``smtpd_delay_reject = no``); recipient ones
    at RCPT TO.

``smtp_sink`` (function scope) -> :class:`SmtpSinkFactory`
    ``smtp_sink("-r", "RCPT")`` starts ``/usr/sbin/smtp-sink`` with those flags on a free
    127.0.0.1 port and returns a :class:`SmtpSink` (``host``, ``port``); every sink is
    stopped (by PID) when the test ends.  See :class:`SmtpSink` for the flags.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

import pytest
from ports import NoFreePort, find_free_ports

__all__ = [
    "RECIPIENT_REPLIES",
    "SENDER_REPLIES",
    "PostfixServer",
    "RealServerError",
    "SmtpSink",
    "SmtpSinkFactory",
    "SpecialReply",
    "missing_requirements",
    "postfix_server",
    "real_servers_required",
    "reap_stale_servers",
    "require_real_servers",
    "running_postfix",
    "smtp_sink",
    "start_postfix",
    "start_smtp_sink",
]

HOST = "127.0.0.1"
POSTFIX = Path("/usr/sbin/postfix")
POSTCONF = Path("/usr/sbin/postconf")
SMTP_SINK = Path("/usr/sbin/smtp-sink")
SASLPASSWD2 = Path("/usr/sbin/saslpasswd2")
POSTFIX_USER = "postfix"
SINK_USER = "nobody"  # smtp-sink refuses to run as root without -u

INSTALL_HINT = "install them with scripts/install-test-deps.sh, and run the tests as root"
POSTFIX_DIR_PREFIX = "smtpx-postfix-"  # in the temp dir: one per instance
SINK_FILE_PREFIX = "smtpx-sink-"  # smtpx-sink-OWNERPID-PORT-xxxx.log / .pid
OWNER_FILE = "owner.pid"  # the test process that started the instance


class RealServerError(RuntimeError):
    """A real server could not be started or stopped."""


class _PortTaken(RealServerError):
    """Someone else listens on a port we picked: pick others and try again."""


# ---------------------------------------------------------------------------------------
# Requirements, skip-or-fail
# ---------------------------------------------------------------------------------------


def real_servers_required() -> bool:
    """True when the real-server tests must run (CI): missing prerequisites then fail."""
    return (
        os.environ.get("CI", "").strip().lower() == "true"
        or os.environ.get("SMTPX_REQUIRE_REAL_SERVERS", "").strip() == "1"
    )


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def missing_requirements(server: str) -> list[str]:
    """What is missing to run *server* (``"postfix"`` or ``"smtp-sink"``) here."""
    missing: list[str] = []
    if server == "smtp-sink":
        if not os.access(SMTP_SINK, os.X_OK):
            missing.append(f"{SMTP_SINK} (Debian package postfix)")
        if os.geteuid() == 0 and not _user_exists(SINK_USER):
            missing.append(f"user {SINK_USER!r}")
        return missing
    if server != "postfix":
        raise ValueError(f"unknown server {server!r}")
    if os.geteuid() != 0:
        missing.append("root privileges (a Postfix instance must start as root)")
    for path, package in ((POSTFIX, "postfix"), (POSTCONF, "postfix"), (SASLPASSWD2, "sasl2-bin")):
        if not os.access(path, os.X_OK):
            missing.append(f"{path} (Debian package {package})")
    if not _user_exists(POSTFIX_USER):
        missing.append(f"user {POSTFIX_USER!r} (Debian package postfix)")
    plugins = [
        *Path("/usr/lib").glob("*/sasl2/libplain.so*"),
        *Path("/usr/lib/sasl2").glob("libplain.so*"),
    ]
    if not plugins:
        missing.append("Cyrus SASL PLAIN plugin (Debian package libsasl2-modules)")
    try:
        import trustme  # noqa: F401
    except ImportError:
        missing.append("Python package trustme")
    return missing


def require_real_servers(server: str) -> None:
    """Skip the test (or fail, under CI) unless *server* can run here."""
    missing = missing_requirements(server)
    if not missing:
        return
    message = f"real {server} unavailable: missing {'; '.join(missing)} ({INSTALL_HINT})"
    if real_servers_required():
        pytest.fail(message + " [CI=true or SMTPX_REQUIRE_REAL_SERVERS=1: not skipping]")
    pytest.skip(message)


# ---------------------------------------------------------------------------------------
# Ports
# ---------------------------------------------------------------------------------------


def _listening_inodes(port: int) -> set[str]:
    """Socket inodes of the TCP sockets in LISTEN state on *port* (any address)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != "0A":
                continue
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def _socket_inodes_of(pid: int) -> set[str]:
    inodes: set[str] = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    with contextlib.suppress(OSError):
        for fd in fd_dir.iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[len("socket:[") : -1])
    return inodes


def _listener_state(port: int, pid: int) -> str:
    """``"none"``: nobody listens on *port*; ``"ours"``: only *pid* does; ``"shared"``:
    some other process listens too."""
    listening = _listening_inodes(port)
    if not listening:
        return "none"
    return "ours" if listening <= _socket_inodes_of(pid) else "shared"


def _pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # zombie: exited, not yet reaped


def _children_of(pid: int) -> list[int]:
    children: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(entry.name))
    return children


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return True
        time.sleep(0.02)
    return not _pid_alive(pid)


def _read_reply(sock: socket.socket) -> str:
    """Read one (possibly multi-line) SMTP reply; return its last line."""
    buffer = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"connection closed after {buffer!r}")
        buffer += chunk
        lines = buffer.split(b"\r\n")
        for line in lines[:-1]:
            if len(line) < 4 or line[3:4] == b" ":
                return line.decode("utf-8", "replace")


# ---------------------------------------------------------------------------------------
# Postfix
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpecialReply:
    """The reply a special address produces.  Postfix sends
    ``f"{code} {enhanced} <{address}>: Recipient address rejected: {text}"`` (or
    ``Sender address rejected``); with ``closes`` it then drops the connection."""

    code: int
    enhanced: str
    text: str
    closes: bool = False

    @property
    def action(self) -> str:
        """The access(5) table action that produces this reply."""
        return f"{self.code} {self.enhanced} {self.text}"


RECIPIENT_REPLIES: Mapping[str, SpecialReply] = MappingProxyType(
    {
        "soft450": SpecialReply(450, "4.2.1", "Mailbox busy, try again later"),
        "soft451": SpecialReply(451, "4.3.0", "Local error in processing"),
        "soft452": SpecialReply(452, "4.2.2", "Mailbox full, try again later"),
        "hard550": SpecialReply(550, "5.1.1", "No such user here"),
        "hard551": SpecialReply(551, "5.1.6", "User not local"),
        "hard552": SpecialReply(552, "5.2.2", "Mailbox full, permanently"),
        "hard553": SpecialReply(553, "5.1.3", "Mailbox name not allowed"),
        "close421": SpecialReply(421, "4.3.2", "Service shutting down", closes=True),
    }
)
"""Recipient local part -> reply at RCPT TO (any domain)."""

SENDER_REPLIES: Mapping[str, SpecialReply] = MappingProxyType(
    {
        "hard553sender": SpecialReply(553, "5.1.8", "Sender address not allowed"),
        "soft451sender": SpecialReply(451, "4.1.8", "Sender domain does not resolve, try later"),
        "hard550sender": SpecialReply(550, "5.7.1", "Sender blocked"),
        "close421sender": SpecialReply(421, "4.3.2", "Service shutting down", closes=True),
    }
)
"""Sender local part -> reply at MAIL FROM (any domain)."""

DOMAIN = "example.test"
SASL_REALM = "smtpx.test"
USERNAME = "smtpx"
PASSWORD = "smtpx-test-password"
SIZE_LIMIT = 20000
MYHOSTNAME = "mx.smtpx.test"
BANNER_TEXT = "smtpx-test-postfix"


@dataclass(frozen=True)
class PostfixServer:
    """A running throwaway Postfix instance (see the module docstring for its replies)."""

    host: str
    submission_port: int
    """Plain SMTP; advertises STARTTLS, and AUTH (PLAIN LOGIN) only after STARTTLS."""
    smtps_port: int
    """Implicit TLS (``smtpd_tls_wrappermode``); AUTH PLAIN LOGIN advertised at once."""
    ca_pem: Path
    """PEM of the test CA that signed the server certificate (``localhost``, ``127.0.0.1``)."""
    username: str
    password: str
    size_limit: int
    """``message_size_limit``: MAIL FROM with SIZE= above it, or a bigger message, is 552."""
    hostname: str
    """``myhostname``: the greeting is ``220 {hostname} ESMTP smtpx-test-postfix``."""
    domain: str
    sender: str
    """An ordinary sender: accepted."""
    recipient: str
    """An ordinary recipient: accepted (and discarded)."""
    soft450_rcpt: str
    soft451_rcpt: str
    soft452_rcpt: str
    hard550_rcpt: str
    hard551_rcpt: str
    hard552_rcpt: str
    hard553_rcpt: str
    close421_rcpt: str
    hard553_sender: str
    soft451_sender: str
    hard550_sender: str
    close421_sender: str
    replies: Mapping[str, SpecialReply]
    """Every special address above -> the reply it produces."""
    base_dir: Path
    config_dir: Path
    log_file: Path
    master_pid: int
    startup_seconds: float

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts the test CA only (and checks hostnames)."""
        return ssl.create_default_context(cafile=str(self.ca_pem))

    def log_tail(self, lines: int = 40) -> str:
        """The end of this instance's mail log (for failure messages)."""
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"(no log: {exc})"

    def stop(self, *, remove: bool = True) -> None:
        """Stop the instance (``postfix -c DIR stop``, then by PID) and delete its files."""
        _stop_postfix(self.config_dir, self.master_pid)
        if remove:
            shutil.rmtree(self.base_dir, ignore_errors=True)


def _main_cf(base: Path, submission_port: int, smtps_port: int) -> str:
    etc = base / "etc"
    return f"""\
# Throwaway Postfix instance for the smtpx test suite (generated; see tests/realservers.py).
compatibility_level = 3.6
config_directory = {etc}
queue_directory = {base / "spool"}
data_directory = {base / "data"}
maillog_file = {base / "log" / "postfix.log"}
maillog_file_prefixes = {base / "log"}
mail_owner = {POSTFIX_USER}
inet_interfaces = {HOST}
inet_protocols = ipv4
myhostname = {MYHOSTNAME}
mydomain = smtpx.test
myorigin = $myhostname
mydestination =
mynetworks = 127.0.0.0/8
relay_domains =
local_recipient_maps =
alias_maps =
alias_database =
biff = no
append_dot_mydomain = no
smtpd_banner = $myhostname ESMTP {BANNER_TEXT}
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
# Everything that is accepted is thrown away.
default_transport = discard:smtpx-test
relay_transport = discard:smtpx-test
local_transport = discard:smtpx-test
virtual_transport = discard:smtpx-test
# Replies: the restrictions answer at the command itself (sender ones at MAIL FROM).
smtpd_delay_reject = no
smtpd_helo_required = no
smtpd_client_restrictions =
smtpd_helo_restrictions =
smtpd_sender_restrictions = check_sender_access texthash:{etc / "sender_access"}
# (Postfix insists on a reject in the relay restrictions; loopback is mynetworks.)
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = check_recipient_access texthash:{etc / "recipient_access"}, permit
smtpd_data_restrictions =
message_size_limit = {SIZE_LIMIT}
# Tests make many errors in one session: no tarpitting, no dropping.
smtpd_error_sleep_time = 0
smtpd_soft_error_limit = 1000
smtpd_hard_error_limit = 1000
smtpd_junk_command_limit = 1000
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_timeout = 60s
# TLS (certificate from a trustme CA).
smtpd_tls_chain_files = {etc / "tls" / "server.pem"}
smtpd_tls_security_level = may
smtpd_tls_loglevel = 0
smtpd_tls_session_cache_database =
tls_random_source = dev:/dev/urandom
# SASL: Cyrus, sasldb, PLAIN and LOGIN.
smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
cyrus_sasl_config_path = {etc / "sasl"}
smtpd_sasl_local_domain = {SASL_REALM}
smtpd_sasl_security_options = noanonymous
smtpd_sasl_tls_security_options = noanonymous
smtpd_sasl_auth_enable = no
broken_sasl_auth_clients = no
"""


def _master_cf(submission_port: int, smtps_port: int) -> str:
    # Every service unchrooted (column 5 = n): the config, sasldb and certs live in a
    # temporary directory that a chroot under the queue directory would not see.
    return f"""\
# service type  private unpriv  chroot  wakeup  maxproc command + args
{HOST}:{submission_port} inet n - n - - smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=may
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_tls_auth_only=yes
{HOST}:{smtps_port} inet n - n - - smtpd
  -o syslog_name=postfix/smtps
  -o smtpd_tls_wrappermode=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_tls_auth_only=no
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def _write_access_map(path: Path, replies: Mapping[str, SpecialReply]) -> None:
    # "user@" keys match that local part in any domain (access(5)).
    path.write_text("".join(f"{local}@ {reply.action}\n" for local, reply in replies.items()))


def _write_tls(etc: Path) -> Path:
    import trustme

    tls = etc / "tls"
    tls.mkdir(mode=0o755)
    ca = trustme.CA(organization_name="smtpx test CA")
    leaf = ca.issue_cert("localhost", HOST)
    key_and_chain = tls / "server.pem"
    leaf.private_key_and_cert_chain_pem.write_to_path(str(key_and_chain))
    key_and_chain.chmod(0o600)  # smtpd reads it as root, before dropping privileges
    ca_pem = tls / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    ca_pem.chmod(0o644)
    return ca_pem


def _write_sasl(etc: Path) -> None:
    sasl = etc / "sasl"
    sasl.mkdir(mode=0o755)
    db = sasl / "sasldb2"
    (sasl / "smtpd.conf").write_text(
        "pwcheck_method: auxprop\n"
        "auxprop_plugin: sasldb\n"
        "mech_list: PLAIN LOGIN\n"
        f"sasldb_path: {db}\n"
    )
    result = subprocess.run(
        [str(SASLPASSWD2), "-c", "-p", "-f", str(db), "-u", SASL_REALM, USERNAME],
        input=PASSWORD.encode(),
        capture_output=True,
        timeout=30,
        check=False,
    )
    if result.returncode != 0 or not db.exists():
        raise RealServerError(f"saslpasswd2 failed: {result.stderr.decode(errors='replace')}")
    # smtpd reads the sasldb as the postfix user (after dropping root).
    os.chown(db, 0, grp.getgrnam(POSTFIX_USER).gr_gid)
    db.chmod(0o640)


def _postfix_cmd(
    config_dir: Path, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(POSTFIX), "-c", str(config_dir), *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
    )


def _master_pid(base: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int((base / "spool" / "pid" / "master.pid").read_text().split()[0])
    return None


def _stop_postfix(config_dir: Path, pid: int | None) -> None:
    base = config_dir.parent
    pid = pid or _master_pid(base)
    children = _children_of(pid) if pid else []
    with contextlib.suppress(subprocess.TimeoutExpired, OSError):
        _postfix_cmd(config_dir, "stop", timeout=15)
    if pid and not _wait_gone(pid, 5):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, 5)
    for child in children:  # daemons notice the master's exit; make sure anyway
        if _pid_alive(child):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
    if pid and _pid_alive(pid):
        raise RealServerError(f"Postfix master {pid} ({config_dir}) would not stop")


def _wait_for_greeting(
    port: int, deadline: float, context: ssl.SSLContext | None, log_file: Path
) -> str:
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if "bad command startup" in log_file.read_text(errors="replace"):
                raise RealServerError("smtpd fails to start (see the log below)")
        try:
            with socket.create_connection((HOST, port), timeout=2) as raw:
                if context is None:
                    greeting = _read_reply(raw)
                else:
                    with context.wrap_socket(raw, server_hostname="localhost") as tls:
                        greeting = _read_reply(tls)
                if greeting.startswith("220"):
                    return greeting
                last_error = RealServerError(f"unexpected greeting {greeting!r}")
        except (OSError, ConnectionError) as exc:
            last_error = exc
        time.sleep(0.05)
    raise RealServerError(f"no greeting on port {port}: {last_error!r}")


def _try_start_postfix(base: Path, ports: tuple[int, int], ca_pem: Path) -> PostfixServer:
    etc = base / "etc"
    submission_port, smtps_port = ports
    (etc / "main.cf").write_text(_main_cf(base, submission_port, smtps_port))
    (etc / "master.cf").write_text(_master_cf(submission_port, smtps_port))
    log_file = base / "log" / "postfix.log"
    started = time.monotonic()
    result = _postfix_cmd(etc, "start")
    pid = _master_pid(base)

    def failure(what: str) -> RealServerError:
        check = _postfix_cmd(etc, "check")
        try:
            log = "\n".join(log_file.read_text(errors="replace").splitlines()[-30:])
        except OSError:
            log = "(no log file)"
        message = (
            f"Postfix {what} (config {etc}):\nstart rc={result.returncode} "
            f"stdout={result.stdout!r} stderr={result.stderr!r}\n"
            f"postfix check: rc={check.returncode} {check.stdout}{check.stderr}\nlog:\n{log}"
        )
        if "Address already in use" in log or "address already in use" in message.lower():
            return _PortTaken(message)
        return RealServerError(message)

    if result.returncode != 0 or pid is None:
        _stop_postfix(etc, pid)
        raise failure("did not start")
    deadline = started + 30
    try:
        for port in ports:
            while _listener_state(port, pid) == "none":
                if time.monotonic() > deadline or not _pid_alive(pid):
                    raise failure(f"is not listening on {port}")
                time.sleep(0.02)
            if _listener_state(port, pid) != "ours":
                raise _PortTaken(f"another process also listens on {HOST}:{port}")
        _wait_for_greeting(submission_port, deadline, None, log_file)
        context = ssl.create_default_context(cafile=str(ca_pem))
        _wait_for_greeting(smtps_port, deadline, context, log_file)
    except _PortTaken:
        _stop_postfix(etc, pid)
        raise
    except RealServerError as exc:
        error = failure(f"does not greet: {exc}")
        _stop_postfix(etc, pid)
        raise error from exc
    except BaseException:
        _stop_postfix(etc, pid)
        raise
    startup = time.monotonic() - started

    def rcpt(local: str) -> str:
        return f"{local}@{DOMAIN}"

    replies = {rcpt(local): reply for local, reply in RECIPIENT_REPLIES.items()}
    replies.update({rcpt(local): reply for local, reply in SENDER_REPLIES.items()})
    return PostfixServer(
        host=HOST,
        submission_port=submission_port,
        smtps_port=smtps_port,
        ca_pem=ca_pem,
        username=USERNAME,
        password=PASSWORD,
        size_limit=SIZE_LIMIT,
        hostname=MYHOSTNAME,
        domain=DOMAIN,
        sender=rcpt("sender"),
        recipient=rcpt("recipient"),
        soft450_rcpt=rcpt("soft450"),
        soft451_rcpt=rcpt("soft451"),
        soft452_rcpt=rcpt("soft452"),
        hard550_rcpt=rcpt("hard550"),
        hard551_rcpt=rcpt("hard551"),
        hard552_rcpt=rcpt("hard552"),
        hard553_rcpt=rcpt("hard553"),
        close421_rcpt=rcpt("close421"),
        hard553_sender=rcpt("hard553sender"),
        soft451_sender=rcpt("soft451sender"),
        hard550_sender=rcpt("hard550sender"),
        close421_sender=rcpt("close421sender"),
        replies=MappingProxyType(replies),
        base_dir=base,
        config_dir=etc,
        log_file=log_file,
        master_pid=pid,
        startup_seconds=startup,
    )


def start_postfix(*, attempts: int = 3) -> PostfixServer:
    """Start a throwaway Postfix instance on free loopback ports (root only).

    Raises :class:`RealServerError` when it cannot.  Call :meth:`PostfixServer.stop`.
    """
    missing = missing_requirements("postfix")
    if missing:
        raise RealServerError(f"cannot run Postfix here: missing {'; '.join(missing)}")
    reap_stale_servers()
    base = Path(tempfile.mkdtemp(prefix=POSTFIX_DIR_PREFIX))
    try:
        (base / OWNER_FILE).write_text(f"{os.getpid()}\n")
        base.chmod(0o755)  # the postfix user must reach etc/ (sasldb) and data/
        etc = base / "etc"
        etc.mkdir(mode=0o755)
        (base / "spool").mkdir(mode=0o755)
        (base / "log").mkdir(mode=0o755)
        data = base / "data"
        data.mkdir(mode=0o700)
        postfix_pw = pwd.getpwnam(POSTFIX_USER)
        os.chown(data, postfix_pw.pw_uid, postfix_pw.pw_gid)
        ca_pem = _write_tls(etc)
        _write_sasl(etc)
        _write_access_map(etc / "recipient_access", RECIPIENT_REPLIES)
        _write_access_map(etc / "sender_access", SENDER_REPLIES)
        last: RealServerError | None = None
        for _ in range(attempts):
            submission_port, smtps_port = find_free_ports(2)
            try:
                return _try_start_postfix(base, (submission_port, smtps_port), ca_pem)
            except _PortTaken as exc:
                last = exc
        raise RealServerError(f"Postfix: ports kept being taken: {last}")
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise


def reap_stale_servers() -> None:
    """Stop the Postfix instances and smtp-sinks left behind by test processes that died
    without stopping them (killed pytest, CI timeout).  Live owners' servers are kept."""
    tmp = Path(tempfile.gettempdir())
    for base in tmp.glob(f"{POSTFIX_DIR_PREFIX}*"):
        try:
            owner = int((base / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # being set up right now, or not ours
        if _pid_alive(owner):
            continue
        with contextlib.suppress(RealServerError, OSError):
            _stop_postfix(base / "etc", _master_pid(base))
        shutil.rmtree(base, ignore_errors=True)
    for pid_file in tmp.glob(f"{SINK_FILE_PREFIX}*.pid"):
        try:
            owner = int(pid_file.name[len(SINK_FILE_PREFIX) :].split("-")[0])
            pid = int(pid_file.read_text())
        except (OSError, ValueError):
            continue
        if _pid_alive(owner):
            continue
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if argv[0] == bytes(SMTP_SINK) and _pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        for path in (pid_file, pid_file.with_suffix(".log")):
            with contextlib.suppress(OSError):
                path.unlink()


@contextlib.contextmanager
def running_postfix() -> Iterator[PostfixServer]:
    """``with running_postfix() as server: ...`` -- started, then stopped and removed."""
    server = start_postfix()
    try:
        yield server
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------
# smtp-sink
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpSink:
    """A running ``/usr/sbin/smtp-sink`` on ``host``:``port`` (Postfix 3.7's, Debian 12).

    Without flags it accepts everything and discards it: greeting ``220 smtp-sink
    ESMTP``; EHLO lists PIPELINING 8BITMIME ``AUTH PLAIN LOGIN`` XCLIENT XFORWARD
    ENHANCEDSTATUSCODES DSN, and its last line is an empty ``250 `` (sic); MAIL
    ``250 2.1.0 Ok``, RCPT ``250 2.1.5 Ok``, DATA ``354 End data with <CR><LF>.<CR><LF>``,
    end of data ``250 2.0.0 Ok``, RSET ``250 2.1.0 Ok``, NOOP/VRFY ``250 2.0.0 Ok``,
    QUIT ``221 Bye``.  AUTH (any credentials) gets ``250 2.0.0 Ok`` -- not 235.  No
    STARTTLS (``500 5.5.1 Error: unknown command``), no BDAT/CHUNKING, no SIZE.

    Flags (COMMANDs are CONNECT, HELO, EHLO, LHLO, MAIL, RCPT, VRFY, DATA, ``.`` (end
    of data), RSET, NOOP, QUIT; comma-separated, case-insensitive), as measured:

    ================  ====================================================================
    flag              effect (measured with a raw socket)
    ================  ====================================================================
    ``-r CMDS``       soft reject: ``450 4.3.0 Error: command failed``; session goes on.
                      Implies ``-p``.  ``-r CONNECT``: the *greeting* is that 450, yet
                      the server keeps talking.  ``-r .``: 450 after the data.
    ``-f CMDS``       hard reject: ``500 5.3.0 Error: command failed`` (note 500, not
                      550); implies ``-p``.  ``-f CONNECT``: greeting is that 500.
    ``-b REPLY``      replaces the ``-r`` reply text, verbatim (``-b "451 4.7.1 Later"``)
    ``-B REPLY``      replaces the ``-f`` reply text, verbatim
    ``-Q CMDS``       ``421 4.0.0 Server closing connection``, then close.
                      ``-Q CONNECT``: that 421 as the greeting.
    ``-q CMDS``       close without any reply (``-q CONNECT``: no greeting, just EOF)
    ``-A DELAY``      after the 354 to DATA, wait DELAY s, then send ``550 This violates
                      SMTP`` and close without reading the data (``-A 0``: at once)
    ``-w DELAY``      wait DELAY s before the 354 reply to DATA (not the greeting!)
    ``-W CMD:DELAY``  wait DELAY s before replying to CMD; ``-W connect:2`` delays the
                      greeting, ``-W rcpt:2`` each RCPT reply.  ``CMD:DELAY:ODDS`` random.
    ``-L``            LMTP: expects LHLO (EHLO still works); after the data, one
                      ``250 2.2.0 Ok`` per accepted recipient
    ``-e``            no ESMTP: greeting ``220 smtp-sink``; EHLO gets
                      ``500 5.5.1 Error: unknown command`` (HELO works)
    ``-E -a -8 -N``   drop ENHANCEDSTATUSCODES / AUTH / 8BITMIME / DSN from EHLO
    ``-p``            drop PIPELINING from EHLO (as ``-r``/``-f`` do)
    ``-h NAME``       NAME in greeting and EHLO (``220 NAME ESMTP``)
    ``-P``            Cisco PIX greeting ``220 ********`` (implies ``-e``)
    ``-c``            counters ``sess=N quit=N mesg=N`` (CR-terminated) to :attr:`log_file`,
                      updated at each "." and session end
    ``-v``            conversation log to stderr (goes to :attr:`log_file`)
    ``-n N``/``-M N`` exit after N sessions / N messages (man page; not measured)
    ``-t SECS``       command/reply timeout, default 100 (man page; not measured)
    ================  ====================================================================

    ``backlog`` is the listen(2) backlog (the last positional argument).
    """

    host: str
    port: int
    flags: tuple[str, ...]
    pid: int
    log_file: Path
    _process: subprocess.Popen[bytes] = field(repr=False, compare=False)

    def log(self) -> str:
        """What smtp-sink printed so far (counters with ``-c``, sessions with ``-v``)."""
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    def running(self) -> bool:
        return self._process.poll() is None

    def stop(self) -> None:
        """Stop it by PID (SIGTERM, then SIGKILL) and remove its log."""
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
        for path in (self.log_file, self.log_file.with_suffix(".pid")):
            with contextlib.suppress(OSError):
                path.unlink()


def start_smtp_sink(*flags: str, backlog: int = 64, attempts: int = 5) -> SmtpSink:
    """Start ``smtp-sink [-u nobody] FLAGS 127.0.0.1:PORT BACKLOG`` on a free port."""
    missing = missing_requirements("smtp-sink")
    if missing:
        raise RealServerError(f"cannot run smtp-sink here: missing {'; '.join(missing)}")
    reap_stale_servers()
    user_flags = ["-u", SINK_USER] if os.geteuid() == 0 else []
    for _ in range(attempts):
        (port,) = find_free_ports(1)
        fd, log_name = tempfile.mkstemp(
            prefix=f"{SINK_FILE_PREFIX}{os.getpid()}-{port}-", suffix=".log"
        )
        log_file = Path(log_name)
        with os.fdopen(fd, "wb") as log:
            process = subprocess.Popen(
                [str(SMTP_SINK), *user_flags, *flags, f"{HOST}:{port}", str(backlog)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        # For reap_stale_servers(), should this test process die without stopping it.
        log_file.with_suffix(".pid").write_text(f"{process.pid}\n")
        sink = SmtpSink(HOST, port, tuple(flags), process.pid, log_file, process)
        deadline = time.monotonic() + 10
        state = "none"
        while time.monotonic() < deadline and process.poll() is None:
            state = _listener_state(port, process.pid)
            if state != "none":
                break
            time.sleep(0.01)
        if state == "ours":
            return sink
        output = sink.log()
        sink.stop()
        if state == "shared" or "in use" in output:
            continue  # someone else got the port (smtp-sink binds with SO_REUSEPORT)
        raise RealServerError(
            f"smtp-sink {' '.join(flags)} did not start (exit {process.returncode}): {output}"
        )
    raise RealServerError("smtp-sink: could not get a free port")


# ---------------------------------------------------------------------------------------
# pytest fixtures
# ---------------------------------------------------------------------------------------


class SmtpSinkFactory(Protocol):
    """``smtp_sink("-r", "RCPT", backlog=16) -> SmtpSink``"""

    def __call__(self, *flags: str, backlog: int = ...) -> SmtpSink: ...


@pytest.fixture(scope="session")
def postfix_server() -> Iterator[PostfixServer]:
    """A throwaway Postfix on loopback for the whole session (see :class:`PostfixServer`)."""
    require_real_servers("postfix")
    try:
        server = start_postfix()
    except (RealServerError, NoFreePort) as exc:
        pytest.fail(f"could not start Postfix: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSinkFactory]:
    """Factory: ``smtp_sink("-Q", "DATA")`` -> a running :class:`SmtpSink`, stopped after
    the test."""
    require_real_servers("smtp-sink")
    sinks: list[SmtpSink] = []

    def factory(*flags: str, backlog: int = 64) -> SmtpSink:
        try:
            sink = start_smtp_sink(*flags, backlog=backlog)
        except (RealServerError, NoFreePort) as exc:
            pytest.fail(str(exc))
        sinks.append(sink)
        return sink

    yield factory
    for sink in sinks:
        sink.stop()
