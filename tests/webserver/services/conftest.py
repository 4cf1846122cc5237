import pytest

from webserver.services.container import build_services


@pytest.fixture
def services(make_settings, encoders):
    """Services on embedded stores (Lite + SQLite) with the default collection `images`."""
    services = build_services(make_settings(), encoders)
    services.metadata.create_schema()
    services.collections.ensure("images")
    yield services
    services.close()
