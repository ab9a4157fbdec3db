"""Why a Kafka client cannot connect: one probe that names the cause and the setting.

kafka-python reports a wrong password, a SASL mechanism the broker does not offer, a
plaintext client at a TLS listener or a TLS client at a plaintext one all the same way:
"socket disconnected", then ``Unable to bootstrap`` after a timeout. This probe walks the
same steps itself on one connection — TCP, the TLS handshake with the configured CA and
hostname check, ``ApiVersions``, the SASL handshake and the SASL exchange (PLAIN, SCRAM) —
and reads the broker's own answer at each, so that the first step that fails is the
cause. It never sends anything a client would not send, and no secret appears in what
it returns.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import socket
import ssl
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Diagnosis", "diagnose"]

_API_VERSIONS, _METADATA, _SASL_HANDSHAKE, _SASL_AUTHENTICATE = 18, 3, 17, 36
_UNSUPPORTED_SASL_MECHANISM, _SASL_AUTHENTICATION_FAILED = 33, 58


@dataclass(frozen=True)
class Diagnosis:
    """``cause``: unreachable | tls | protocol | sasl_mechanism | authentication."""

    cause: str
    setting: str
    message: str

    @property
    def is_config(self) -> bool:
        """A cause that retrying cannot fix (everything but an unreachable broker)."""
        return self.cause != "unreachable"

    def __str__(self) -> str:
        return f"{self.setting}: {self.message}"


class _Closed(Exception):
    """The broker closed the connection instead of answering."""


class _Conn:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.correlation = 0

    def request(self, api_key: int, version: int, body: bytes) -> bytes:
        self.correlation += 1
        client = b"driftline-diagnose"
        header = struct.pack(">hhih", api_key, version, self.correlation, len(client)) + client
        payload = header + body
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)
        (size,) = struct.unpack(">i", self._read(4))
        response = self._read(size)
        return response[4:]  # past the correlation id

    def _read(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            try:
                chunk = self.sock.recv(n - len(out))
            except (ConnectionError, ssl.SSLError) as exc:
                raise _Closed(str(exc)) from None
            if not chunk:
                raise _Closed("connection closed")
            out += chunk
        return out


def _string(value: str) -> bytes:
    raw = value.encode()
    return struct.pack(">h", len(raw)) + raw


def _first_server(bootstrap_servers: str) -> tuple[str, int]:
    first = bootstrap_servers.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    return host.strip("[]") or first, int(port or 9092)


def _tls_context(options: Mapping[str, Any], *, verify: bool = True) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=options.get("ssl_cafile"))
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context.check_hostname = bool(options.get("ssl_check_hostname", True))
    if options.get("ssl_certfile"):
        context.load_cert_chain(
            options["ssl_certfile"], options.get("ssl_keyfile"), options.get("ssl_password")
        )
    return context


def _scram(conn: _Conn, mechanism: str, user: str, password: str) -> int:
    digest = hashlib.sha256 if mechanism == "SCRAM-SHA-256" else hashlib.sha512
    nonce = base64.b64encode(os.urandom(18)).decode()
    name = user.replace("=", "=3D").replace(",", "=2C")
    first_bare = f"n={name},r={nonce}"
    error, server_first = _authenticate(conn, f"n,,{first_bare}".encode())
    if error:
        return error
    fields = dict(part.split("=", 1) for part in server_first.decode().split(","))
    salted = hashlib.pbkdf2_hmac(
        digest().name, password.encode(), base64.b64decode(fields["s"]), int(fields["i"])
    )
    client_key = hmac.new(salted, b"Client Key", digest).digest()
    without_proof = f"c=biws,r={fields['r']}"
    auth_message = f"{first_bare},{server_first.decode()},{without_proof}".encode()
    signature = hmac.new(digest(client_key).digest(), auth_message, digest).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    final = f"{without_proof},p={base64.b64encode(proof).decode()}".encode()
    return _authenticate(conn, final)[0]


def _authenticate(conn: _Conn, auth_bytes: bytes) -> tuple[int, bytes]:
    body = conn.request(_SASL_AUTHENTICATE, 1, struct.pack(">i", len(auth_bytes)) + auth_bytes)
    (error,) = struct.unpack(">h", body[:2])
    (msg_len,) = struct.unpack(">h", body[2:4])
    rest = body[4 + max(msg_len, 0) :]
    (size,) = struct.unpack(">i", rest[:4])
    return error, rest[4 : 4 + max(size, 0)]


def _speaks_tls(address: tuple[str, int], timeout_s: float) -> bool:
    try:
        with socket.create_connection(address, timeout=timeout_s) as raw:
            context = _tls_context({}, verify=False)
            with context.wrap_socket(raw, server_hostname=address[0]):
                return True
    except (OSError, ssl.SSLError):
        return False


def diagnose(
    bootstrap_servers: str, options: Mapping[str, Any], *, timeout_s: float = 5.0
) -> Diagnosis | None:
    """The first thing that stops a client with ``options`` (kafka-python keyword
    arguments) at the first bootstrap server; None when the probe gets through."""
    protocol = str(options.get("security_protocol", "PLAINTEXT"))
    tls, sasl = protocol.endswith("SSL"), protocol.startswith("SASL")
    address = _first_server(bootstrap_servers)
    where = f"{address[0]}:{address[1]}"
    try:
        raw = socket.create_connection(address, timeout=timeout_s)
    except OSError as exc:
        return Diagnosis(
            "unreachable",
            "kafka.bootstrap_servers",
            f"cannot connect to {where}: {exc.strerror or exc}",
        )
    sock: socket.socket = raw
    try:
        if tls:
            try:
                context = _tls_context(options)
            except (OSError, ssl.SSLError) as exc:
                return Diagnosis(
                    "tls", "kafka.security.ssl_*file", f"cannot load the TLS files: {exc}"
                )
            try:
                sock = context.wrap_socket(raw, server_hostname=address[0])
            except ssl.SSLCertVerificationError as exc:
                if (
                    "hostname" in str(exc.verify_message).lower()
                    or "ip address mismatch" in str(exc.verify_message).lower()
                ):
                    return Diagnosis(
                        "tls",
                        "kafka.bootstrap_servers",
                        f"the certificate of {where} is not for {address[0]!r} ({exc.verify_message}); "
                        "connect by a name it holds, or set kafka.security.ssl_check_hostname: false",
                    )
                return Diagnosis(
                    "tls",
                    "kafka.security.ssl_cafile",
                    f"the certificate of {where} does not verify against "
                    f"{options.get('ssl_cafile') or 'the system CAs'}: {exc.verify_message}",
                )
            except (ssl.SSLError, ConnectionError, TimeoutError) as exc:
                return Diagnosis(
                    "protocol",
                    "kafka.security.protocol",
                    f"{protocol}, but the listener at {where} does not speak TLS "
                    f"({type(exc).__name__}); use {'SASL_PLAINTEXT' if sasl else 'PLAINTEXT'}?",
                )
        conn = _Conn(sock)
        try:
            conn.request(_API_VERSIONS, 0, b"")
        except (_Closed, TimeoutError):
            if not tls and _speaks_tls(address, timeout_s):
                return Diagnosis(
                    "protocol",
                    "kafka.security.protocol",
                    f"{protocol}, but the listener at {where} speaks TLS: use "
                    f"{'SASL_SSL' if sasl else 'SSL or SASL_SSL'}",
                )
            return Diagnosis(
                "protocol",
                "kafka.security.protocol",
                f"{where} closed the connection at once: is it a Kafka listener for {protocol}?",
            )
        if not sasl:
            try:
                conn.request(_METADATA, 0, struct.pack(">i", 0))
            except (_Closed, TimeoutError):
                return Diagnosis(
                    "protocol",
                    "kafka.security.protocol",
                    f"{protocol}, but the listener at {where} requires SASL authentication: "
                    f"use {'SASL_SSL' if tls else 'SASL_PLAINTEXT or SASL_SSL'} with credentials",
                )
            return None
        mechanism = str(options.get("sasl_mechanism", "PLAIN"))
        try:
            body = conn.request(_SASL_HANDSHAKE, 1, _string(mechanism))
        except (_Closed, TimeoutError):
            return Diagnosis(
                "protocol",
                "kafka.security.protocol",
                f"{protocol}, but the listener at {where} does not take SASL: use {'SSL' if tls else 'PLAINTEXT'}?",
            )
        (error,) = struct.unpack(">h", body[:2])
        if error == _UNSUPPORTED_SASL_MECHANISM:
            (count,) = struct.unpack(">i", body[2:6])
            offered, at = [], 6
            for _ in range(max(count, 0)):
                (n,) = struct.unpack(">h", body[at : at + 2])
                offered.append(body[at + 2 : at + 2 + n].decode())
                at += 2 + n
            return Diagnosis(
                "sasl_mechanism",
                "kafka.security.sasl_mechanism",
                f"{mechanism} is not enabled at {where}; it offers {', '.join(offered) or 'none'}",
            )
        user = str(options.get("sasl_plain_username") or "")
        password = str(options.get("sasl_plain_password") or "")
        try:
            if mechanism.startswith("SCRAM"):
                error = _scram(conn, mechanism, user, password)
            elif mechanism == "PLAIN":
                error = _authenticate(conn, f"\0{user}\0{password}".encode())[0]
            else:
                return None  # OAUTHBEARER: the token comes from a provider this probe lacks
        except (_Closed, TimeoutError):
            error = _SASL_AUTHENTICATION_FAILED
        if error == _SASL_AUTHENTICATION_FAILED:
            return Diagnosis(
                "authentication",
                "kafka.security.sasl_username / sasl_password",
                f"{where} refused user {user!r} with {mechanism}: wrong password or unknown "
                "user (Kafka does not say which)",
            )
        return None
    except (OSError, struct.error, KeyError, ValueError) as exc:
        return Diagnosis(
            "protocol",
            "kafka.bootstrap_servers",
            f"unexpected answer from {where}: {type(exc).__name__}",
        )
    finally:
        sock.close()
