"""How every Kafka client of the project reaches the brokers: address, protocol, credentials.

Every aiokafka producer, consumer and admin client is built with ``**kafka_client_options
(settings)``, so a managed Kafka that wants TLS or SASL is configured once, in the
``KAFKA_*`` settings (docs/operations.md). The Faust worker gets the same from
``streams.credentials`` (Faust wants its own credential objects), built on ``ssl_context``.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from aiokafka.conn import create_conn
from aiokafka.errors import KafkaError, SaslAuthenticationFailed, UnsupportedSaslMechanismError
from aiokafka.helpers import create_ssl_context

from adapters.settings import InvalidSettings, Settings

_TLS = frozenset({"SSL", "SASL_SSL"})
_SASL = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})


def uses_tls(settings: Settings) -> bool:
    return settings.kafka_security_protocol in _TLS


def uses_sasl(settings: Settings) -> bool:
    return settings.kafka_security_protocol in _SASL


def check_kafka_security(settings: Settings) -> None:
    """Raise ``InvalidSettings``, naming the variables, for settings that cannot connect:
    SASL without a user or password, TLS files given to a protocol without TLS, a key
    without its certificate."""
    protocol = settings.kafka_security_protocol
    if uses_sasl(settings) and not (settings.kafka_sasl_username and settings.kafka_sasl_password):
        raise InvalidSettings(
            f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
        )
    files = {
        "KAFKA_SSL_CAFILE": settings.kafka_ssl_cafile,
        "KAFKA_SSL_CERTFILE": settings.kafka_ssl_certfile,
        "KAFKA_SSL_KEYFILE": settings.kafka_ssl_keyfile,
    }
    given = [name for name, path in files.items() if path is not None]
    if given and not uses_tls(settings):
        # Silently ignoring them would send credentials or data in clear text.
        raise InvalidSettings(
            f"{', '.join(given)} set, but KAFKA_SECURITY_PROTOCOL={protocol} does not use TLS: "
            "set it to SSL or SASL_SSL"
        )
    if settings.kafka_ssl_keyfile is not None and settings.kafka_ssl_certfile is None:
        raise InvalidSettings("KAFKA_SSL_KEYFILE needs KAFKA_SSL_CERTFILE (the client certificate)")
    for name, path in files.items():
        if path is not None and not path.is_file():
            raise InvalidSettings(f"{name}={path} is not a readable file")


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of the Kafka connections, or None when the protocol has no TLS.

    Brokers are verified against ``KAFKA_SSL_CAFILE`` (else the system's CAs), with their host
    name unless ``KAFKA_SSL_CHECK_HOSTNAME`` is off; a client certificate is sent if given.
    """
    check_kafka_security(settings)
    if not uses_tls(settings):
        return None
    try:
        context = create_ssl_context(
            cafile=settings.kafka_ssl_cafile,
            certfile=settings.kafka_ssl_certfile,
            keyfile=settings.kafka_ssl_keyfile,
            password=settings.kafka_ssl_key_password or None,
        )
    except (ssl.SSLError, OSError) as exc:
        raise InvalidSettings(
            "KAFKA_SSL_CAFILE, KAFKA_SSL_CERTFILE or KAFKA_SSL_KEYFILE is not a usable PEM file"
            f" (or KAFKA_SSL_KEY_PASSWORD is wrong): {exc}"
        ) from exc
    context.check_hostname = settings.kafka_ssl_check_hostname
    return context


def kafka_client_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments every aiokafka client (``AIOKafkaProducer``,
    ``AIOKafkaConsumer``, ``AIOKafkaAdminClient``) is built with: the bootstrap servers and
    the security settings. ``InvalidSettings`` if those cannot work together."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "security_protocol": settings.kafka_security_protocol,
    }
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if uses_sasl(settings):
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password
    return options


def describe_kafka(settings: Settings) -> str:
    """Where and how the clients connect, for error messages (never the password)."""
    how: str = settings.kafka_security_protocol
    if uses_sasl(settings):
        how += f", {settings.kafka_sasl_mechanism} as {settings.kafka_sasl_username!r}"
    return f"{settings.kafka_bootstrap} ({how})"


async def connection_problem(settings: Settings, timeout_s: float = 10.0) -> str:
    """Why the first bootstrap server cannot be used, in words, after a client failed to
    start: aiokafka's clients only say they could not bootstrap, which reads the same for a
    wrong password, an untrusted certificate and a broker that is down."""
    first = settings.kafka_bootstrap.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    options = kafka_client_options(settings)
    del options["bootstrap_servers"]
    try:
        async with asyncio.timeout(timeout_s):
            conn = await create_conn(host, int(port), **options)
    except SaslAuthenticationFailed as exc:
        return f"Kafka at {describe_kafka(settings)} refused the credentials: {exc}"
    except UnsupportedSaslMechanismError as exc:
        return f"Kafka at {describe_kafka(settings)} does not take that mechanism: {exc}"
    except ssl.SSLError as exc:
        return (
            f"TLS with Kafka at {describe_kafka(settings)} failed: {exc} (is KAFKA_SSL_CAFILE the "
            "CA that signed the broker's certificate, and the protocol the listener's?)"
        )
    except TimeoutError:
        return f"Kafka at {describe_kafka(settings)} did not answer within {timeout_s:g}s"
    except (KafkaError, OSError) as exc:
        return f"Kafka is not reachable at {describe_kafka(settings)}: {exc!r}"
    conn.close()
    return f"Kafka at {describe_kafka(settings)} answers, but a client could not start"
