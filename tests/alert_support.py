"""Receivers for alert notifications, on 127.0.0.1, speaking the real protocols: an HTTP webhook
receiver (JSON bodies) and a small SMTP server (EHLO, STARTTLS, AUTH PLAIN/LOGIN, MAIL, RCPT, DATA).

Both run in a thread of their own, so synchronous and asynchronous tests (and the benchmark) use them
alike.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class Received:
    path: str
    body: Any
    headers: dict[str, str]
    at: float  # time.monotonic() on arrival


class WebhookReceiver:
    """POSTs are recorded in ``received``; the first ``fail_first`` answer ``fail_status``."""

    def __init__(self, fail_first: int = 0, fail_status: int = 500) -> None:
        self.received: list[Received] = []
        self.attempts = 0
        self.fail_first = fail_first
        self.fail_status = fail_status
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the standard library's name)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with receiver._lock:
                    receiver.attempts += 1
                    failing = receiver.attempts <= receiver.fail_first
                    if not failing:
                        receiver.received.append(
                            Received(self.path, json.loads(raw), dict(self.headers), time.monotonic())
                        )
                status = receiver.fail_status if failing else 200
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"nope" if failing else b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def bodies(self, status: str | None = None) -> list[Any]:
        with self._lock:
            found = [item.body for item in self.received]
        return [body for body in found if status is None or body.get("status") == status]

    def wait_for(self, count: int, status: str | None = None, timeout: float = 30.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.bodies(status)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(
            f"{count} {status or ''} notifications not received within {timeout}s: {self.bodies()}"
        )

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()


# ---- SMTP ----------------------------------------------------------------------------------------------


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    message: Message
    tls: bool
    login: str | None


@dataclass
class SmtpReceiver:
    """An SMTP server; ``certificate`` (cert, key) offers STARTTLS; ``users`` offers AUTH."""

    certificate: tuple[Path, Path] | None = None
    users: dict[str, str] = field(default_factory=dict)
    require_tls: bool = False
    mails: list[Mail] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._server: asyncio.Server | None = None

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._session, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    def __enter__(self) -> SmtpReceiver:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tls = False
        login: str | None = None
        sender = ""
        recipients: list[str] = []

        async def say(line: str) -> None:
            writer.write(line.encode() + b"\r\n")
            await writer.drain()

        await say("220 test SMTP ready")
        try:
            while True:
                raw = await reader.readline()
                if not raw:
                    return
                line = raw.decode().rstrip("\r\n")
                verb = line.split(" ", 1)[0].upper()
                if verb in ("EHLO", "HELO"):
                    extensions = ["250-test"]
                    if self.certificate and not tls:
                        extensions.append("250-STARTTLS")
                    if self.users:
                        extensions.append("250-AUTH PLAIN LOGIN")
                    extensions.append("250 SMTPUTF8")
                    for extension in extensions:
                        await say(extension)
                elif verb == "STARTTLS" and self.certificate:
                    await say("220 go ahead")
                    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                    context.load_cert_chain(*self.certificate)
                    await writer.start_tls(context)
                    tls = True
                elif verb == "AUTH":
                    login = await self._auth(line, reader, say)
                    if login is None:
                        await say("535 authentication failed")
                    else:
                        await say("235 ok")
                elif verb == "MAIL":
                    if self.require_tls and not tls:
                        await say("530 must issue STARTTLS first")
                        continue
                    if self.users and login is None:
                        await say("530 authentication required")
                        continue
                    sender = line.split(":", 1)[1].strip().strip("<>").split(">")[0]
                    recipients = []
                    await say("250 ok")
                elif verb == "RCPT":
                    recipients.append(line.split(":", 1)[1].strip().strip("<>"))
                    await say("250 ok")
                elif verb == "DATA":
                    await say("354 end with <CRLF>.<CRLF>")
                    data = b""
                    while True:
                        chunk = await reader.readline()
                        if chunk in (b".\r\n", b""):
                            break
                        data += chunk[1:] if chunk.startswith(b"..") else chunk
                    self.mails.append(Mail(sender, recipients, message_from_bytes(data), tls, login))
                    await say("250 queued")
                elif verb == "QUIT":
                    await say("221 bye")
                    return
                elif verb in ("RSET", "NOOP"):
                    await say("250 ok")
                else:
                    await say("502 not implemented")
        finally:
            writer.close()

    async def _auth(self, line: str, reader: asyncio.StreamReader, say: Any) -> str | None:
        parts = line.split()
        mechanism = parts[1].upper() if len(parts) > 1 else ""
        if mechanism == "PLAIN":
            if len(parts) > 2:
                token = parts[2]
            else:
                await say("334 ")
                token = (await reader.readline()).decode().strip()
            _, user, password = base64.b64decode(token).decode().split("\x00")
        elif mechanism == "LOGIN":
            if len(parts) > 2:
                user = base64.b64decode(parts[2]).decode()
            else:
                await say("334 " + base64.b64encode(b"Username:").decode())
                user = base64.b64decode((await reader.readline()).strip()).decode()
            await say("334 " + base64.b64encode(b"Password:").decode())
            password = base64.b64decode((await reader.readline()).strip()).decode()
        else:
            return None
        return user if self.users.get(user) == password else None


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (and localhost), signed by itself: (cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path
