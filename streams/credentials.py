"""The worker's broker credentials, in the objects Faust wants, from the same ``KAFKA_*``
settings every other Kafka client of the project uses (adapters/kafka_clients.py).

Faust hands them to every client it makes (consumer, producer, the topic-creating admin).
"""

from __future__ import annotations

import faust
from faust.types.auth import CredentialsT

from adapters.kafka_clients import check_kafka_security, ssl_context, uses_sasl
from adapters.settings import Settings


def broker_credentials(settings: Settings) -> CredentialsT | None:
    """SASL credentials (over TLS for SASL_SSL), a TLS context for SSL, None for PLAINTEXT.
    ``InvalidSettings`` if the settings cannot work together."""
    check_kafka_security(settings)
    context = ssl_context(settings)
    if uses_sasl(settings):
        # With a context Faust speaks SASL_SSL, without one SASL_PLAINTEXT.
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password,
            ssl_context=context,
            mechanism=settings.kafka_sasl_mechanism,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None
