"""The Kafka security settings become the same client options everywhere (no broker needed:
the secure broker itself is in tests/e2e/test_secure_kafka.py)."""

from __future__ import annotations

import ssl
from pathlib import Path

import faust
import pytest
from faust.types.auth import AuthProtocol, SASLMechanism

from adapters.kafka_clients import describe_kafka, kafka_client_options
from adapters.settings import InvalidSettings, Settings
from streams.credentials import broker_credentials


def test_plaintext_by_default() -> None:
    settings = Settings(kafka_bootstrap="k1:9092,k2:9092")
    assert kafka_client_options(settings) == {
        "bootstrap_servers": "k1:9092,k2:9092",
        "security_protocol": "PLAINTEXT",
    }
    assert broker_credentials(settings) is None


def test_sasl_plaintext_carries_the_mechanism_and_the_user() -> None:
    settings = Settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="svc",
        kafka_sasl_password="pw",
    )
    options = kafka_client_options(settings)
    assert options["security_protocol"] == "SASL_PLAINTEXT"
    assert options["sasl_mechanism"] == "SCRAM-SHA-256"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("svc", "pw")
    assert "ssl_context" not in options
    credentials = broker_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol == AuthProtocol.SASL_PLAINTEXT
    assert credentials.mechanism == SASLMechanism.SCRAM_SHA_256
    assert (credentials.username, credentials.password) == ("svc", "pw")


def test_sasl_ssl_verifies_the_broker_and_its_host_name() -> None:
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="svc",
        kafka_sasl_password="pw",
    )
    context = kafka_client_options(settings)["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    credentials = broker_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol == AuthProtocol.SASL_SSL
    assert credentials.mechanism == SASLMechanism.SCRAM_SHA_512
    assert isinstance(credentials.ssl_context, ssl.SSLContext)


def test_ssl_without_sasl_and_without_host_name_check() -> None:
    settings = Settings(kafka_security_protocol="SSL", kafka_ssl_check_hostname=False)
    options = kafka_client_options(settings)
    assert options["ssl_context"].check_hostname is False
    assert "sasl_mechanism" not in options
    credentials = broker_credentials(settings)
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials.protocol == AuthProtocol.SSL


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_username": "svc"}, "PASSWORD"),
        ({"kafka_security_protocol": "SASL_PLAINTEXT"}, "KAFKA_SASL_USERNAME"),
        ({"kafka_ssl_cafile": Path(__file__)}, "KAFKA_SSL_CAFILE"),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_keyfile": Path(__file__)},
            "KAFKA_SSL_CERTFILE",
        ),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_cafile": Path("/no/such/ca.pem")},
            "KAFKA_SSL_CAFILE",
        ),
        ({"kafka_security_protocol": "SSL", "kafka_ssl_cafile": Path(__file__)}, "PEM"),
    ],
)
def test_settings_that_cannot_connect_are_refused_by_name(
    values: dict[str, object], named: str
) -> None:
    settings = Settings(**values)  # type: ignore[arg-type]
    with pytest.raises(InvalidSettings, match=named):
        kafka_client_options(settings)
    with pytest.raises(InvalidSettings, match=named):
        broker_credentials(settings)


def test_an_empty_file_variable_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SSL_CAFILE", "")
    assert Settings().kafka_ssl_cafile is None


def test_the_description_never_shows_the_password() -> None:
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="svc",
        kafka_sasl_password="hunter2-secret",
    )
    text = describe_kafka(settings) + repr(settings)
    assert "svc" in text
    assert "hunter2-secret" not in text
