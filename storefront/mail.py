"""Sending email: through SMTP at ``MAIL_URL``, or into the log while it is unset.

``smtp://user:pass@host:587`` upgrades with STARTTLS (and refuses to send a password
over a server that offers none), ``smtps://…:465`` speaks TLS from the start,
``smtp://host:25`` sends as the relay allows. Unset, every message is written to the
log instead, as Django's console backend does: the shop runs without a mail server.
"""

import logging
import smtplib
import ssl
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from flask import Flask, current_app

log = logging.getLogger(__name__)

MAIL_TIMEOUT_SECONDS = 10


class MailError(Exception):
    """The mail server could not be reached or refused the message. Safe to retry."""


class SmtpMail:
    def __init__(self, url: str):
        parts = urlsplit(url)
        self.tls_from_start = parts.scheme == "smtps"
        self.host = parts.hostname
        self.port = parts.port or (465 if self.tls_from_start else 25)
        self.username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None

    def send(self, message: EmailMessage) -> None:
        context = ssl.create_default_context()
        try:
            if self.tls_from_start:
                smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=MAIL_TIMEOUT_SECONDS, context=context)
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=MAIL_TIMEOUT_SECONDS)
            with smtp:
                smtp.ehlo()
                if not self.tls_from_start:
                    if smtp.has_extn("starttls"):
                        smtp.starttls(context=context)
                        smtp.ehlo()
                    elif self.username:
                        raise MailError("the server offers no STARTTLS: the password is not sent in clear")
                if self.username:
                    smtp.login(self.username, self._password or "")
                smtp.send_message(message)
        except (smtplib.SMTPException, OSError) as error:
            # The class only: an SMTP reply can quote what we sent.
            raise MailError(f"{type(error).__name__} from {self.host}:{self.port}") from None


class LogMail:
    def send(self, message: EmailMessage) -> None:
        log.info("email not sent (MAIL_URL is unset); it would have been:\n%s", message.as_string())


def mailer():
    return current_app.extensions["storefront.mail"]


def init_app(app: Flask) -> None:
    settings = app.config["STOREFRONT"]
    app.extensions["storefront.mail"] = SmtpMail(settings.mail_url) if settings.mail_url else LogMail()
