"""E-mail over SMTP (the standard library's smtplib, in a thread): plain, STARTTLS or implicit TLS,
with an optional login whose password is read from an environment variable (never stored)."""

from __future__ import annotations

import asyncio
import os
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Annotated, ClassVar

from pydantic import Field, StringConstraints, model_validator

from llmops.alerts.channels.base import Channel, ChannelError, ChannelOptions, Notification

ADDRESS = Annotated[str, StringConstraints(max_length=320, pattern=r"^[^\s@<>\x00]+@[^\s@<>\x00]+$")]


class SmtpOptions(ChannelOptions):
    host: str = Field(min_length=1, max_length=255, pattern=r"^[^\s\x00]+$", description="SMTP server.")
    port: int | None = Field(
        default=None, ge=1, le=65535, description="Default: 465 with ssl, 587 with starttls, else 25."
    )
    sender: ADDRESS = Field(description="The From address.")
    to: tuple[ADDRESS, ...] = Field(min_length=1, max_length=100, description="Recipients.")
    starttls: bool = Field(default=False, description="Upgrade the connection with STARTTLS.")
    ssl: bool = Field(default=False, description="Connect with TLS from the start (SMTPS, port 465).")
    username: str | None = Field(default=None, max_length=320, description="Log in as this user.")
    password_env: str | None = Field(
        default=None,
        max_length=200,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Environment variable holding the login password.",
    )
    ca_file: str | None = Field(
        default=None, max_length=4096, description="CA certificates that verify the server (PEM)."
    )
    verify: bool = Field(default=True, description="Verify the server's certificate and name.")
    timeout_seconds: float = Field(default=15.0, gt=0, le=120, description="Time for one attempt.")

    @model_validator(mode="after")
    def _consistent(self) -> SmtpOptions:
        if self.ssl and self.starttls:
            raise ValueError("choose ssl or starttls, not both")
        if self.password_env and not self.username:
            raise ValueError("password_env needs a username")
        return self


def email_message(notification: Notification, sender: str, to: tuple[str, ...]) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = notification.title
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="llmops")
    lines = [notification.text, ""]
    lines += [
        f"rule:       {notification.rule}",
        f"status:     {notification.status}",
        f"severity:   {notification.severity}",
        f"value:      {notification.value_text}",
        f"condition:  {notification.statistic} {notification.comparison} {notification.threshold:g}"
        f" over {notification.window}",
    ]
    if notification.active_since:
        lines.append(f"since:      {notification.active_since.isoformat()}")
    for name, value in sorted({**notification.filters, **notification.labels}.items()):
        lines.append(f"{name + ':':<11} {value}")
    lines.append(f"at:         {notification.at.isoformat()}")
    message.set_content("\n".join(lines) + "\n")
    return message


class SmtpChannel(Channel):
    kind: ClassVar[str] = "smtp"
    Options: ClassVar[type[ChannelOptions]] = SmtpOptions

    async def send(self, notification: Notification) -> None:
        options = self.options
        assert isinstance(options, SmtpOptions)
        message = email_message(notification, options.sender, options.to)
        await asyncio.to_thread(_send, options, message)


def _tls(options: SmtpOptions) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=options.ca_file)
    if not options.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _send(options: SmtpOptions, message: EmailMessage) -> None:
    port = options.port or (465 if options.ssl else 587 if options.starttls else 25)
    where = f"{options.host}:{port}"
    password = None
    if options.password_env:
        password = os.environ.get(options.password_env)
        if password is None:
            raise ChannelError(f"the environment variable {options.password_env} (SMTP password) is not set")
    try:
        client: smtplib.SMTP
        if options.ssl:
            client = smtplib.SMTP_SSL(
                options.host, port, timeout=options.timeout_seconds, context=_tls(options)
            )
        else:
            client = smtplib.SMTP(options.host, port, timeout=options.timeout_seconds)
        with client:
            client.ehlo()
            if options.starttls:
                client.starttls(context=_tls(options))
                client.ehlo()
            if options.username:
                client.login(options.username, password or "")
            refused = client.send_message(message)
    except smtplib.SMTPException as exc:
        raise ChannelError(f"{where}: {type(exc).__name__}: {_one_line(exc)}") from None
    except (OSError, ssl.SSLError) as exc:
        raise ChannelError(f"{where}: {exc.strerror or exc}") from None
    if refused:
        raise ChannelError(f"{where} refused {', '.join(sorted(refused))}")


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())[:300]
