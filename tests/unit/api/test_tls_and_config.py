"""The network listener's configuration: the address, the token file a real meter must have,
and HTTPS with the configured certificate."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import ipaddress
import ssl
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from meterd.api.server import ApiServer
from meterd.api.tokens import load_tokens
from meterd.app.config import ApiSection
from meterd.app.features import load_config
from meterd.app.routes import start_network_api
from meterd.client import ApiRefused, MeterClient
from meterd.core.errors import ConfigError
from tests.simmeter import sim_config_file


@pytest.mark.parametrize("listen", ["8080", "localhost:", ":8080", "127.0.0.1:70000", "127.0.0.1:http"])
def test_a_listen_address_that_is_not_host_port_is_a_config_error(tmp_path: Path, listen: str) -> None:
    with pytest.raises(ConfigError, match="expected host:port"):
        load_config(sim_config_file(tmp_path, listen=f'"{listen}"'))


def test_a_certificate_without_its_key_is_a_config_error(tmp_path: Path) -> None:
    config = sim_config_file(tmp_path)
    text = config.read_text().replace('# tls_cert = "api-cert.pem"', 'tls_cert = "api-cert.pem"')
    config.write_text(text)
    with pytest.raises(ConfigError, match="tls_cert and tls_key go together"):
        load_config(config)


def test_a_real_meter_does_not_make_up_tokens(tmp_path: Path) -> None:
    cfg = load_config(sim_config_file(tmp_path))
    cfg = dataclasses.replace(cfg, storage=dataclasses.replace(cfg.storage, state_dir=str(tmp_path / "state")))
    api = ApiServer()

    async def main() -> None:
        with pytest.raises(ConfigError, match="api-tokens.toml"):
            await start_network_api(api, cfg, simulated=False, info={})
        assert api.tcp_address is None
        info: dict[str, object] = {}
        await start_network_api(api, cfg, simulated=True, info=info)
        assert str(info["api_url"]).startswith("http://127.0.0.1:")
        await api.close()

    asyncio.run(main())
    assert (tmp_path / "state" / "api-tokens.toml").stat().st_mode & 0o777 == 0o600
    assert ApiSection(listen="[::1]:0").listen_address() == ("::1", 0)


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "api-cert.pem", directory / "api-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_https_with_the_configured_certificate(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    cert, _key = self_signed(state)
    cfg = load_config(sim_config_file(tmp_path))
    cfg = dataclasses.replace(cfg, storage=dataclasses.replace(cfg.storage, state_dir=str(state)),
                              api=dataclasses.replace(cfg.api, tls_cert="api-cert.pem", tls_key="api-key.pem"))
    api = ApiServer()
    info: dict[str, object] = {}
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start_network_api(api, cfg, simulated=True, info=info))
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        assert started.wait(30)
        url = str(info["api_url"])
        assert url.startswith("https://127.0.0.1:")
        trust = ssl.create_default_context(cafile=str(cert))
        tokens = load_tokens(state / "api-tokens.toml")
        assert "paths" in MeterClient(url, token=tokens.read[0], tls=trust).openapi()
        with pytest.raises(ssl.SSLError):
            MeterClient(url, token=tokens.read[0]).openapi()  # not trusted by the system's store
        with pytest.raises(ApiRefused) as err:
            MeterClient(url, tls=trust).openapi()
        assert err.value.status == 401
    finally:
        asyncio.run_coroutine_threadsafe(api.close(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
