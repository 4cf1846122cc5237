"""deploy/compose.yaml is a valid Compose file with every part the README describes, and refuses to
render without its secrets. Needs Debian's docker-compose (no images are pulled; nothing is started)."""
import os
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import ROOT

COMPOSE = ROOT / "deploy" / "compose.yaml"


@pytest.fixture
def docker_compose() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        if os.environ.get("REQUIRE_DOCKER_COMPOSE") == "1":
            pytest.fail("REQUIRE_DOCKER_COMPOSE=1 but docker-compose is not installed (apt-get install docker-compose)")
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    return found


def render(docker_compose: str, env_file) -> subprocess.CompletedProcess:
    return subprocess.run([docker_compose, "-f", str(COMPOSE), "--env-file", str(env_file), "config"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_the_compose_file_renders_with_every_service(docker_compose):
    rendered = render(docker_compose, ROOT / "deploy" / ".env.example")
    assert rendered.returncode == 0, rendered.stderr
    services = yaml.safe_load(rendered.stdout)["services"]
    assert set(services) == {"etcd", "minio", "milvus", "mariadb", "migrate", "app", "proxy"}
    assert all(":" in service["image"] and not service["image"].endswith(":latest")
               for name, service in services.items() if name not in ("app", "migrate"))  # pinned
    app = services["app"]["environment"]
    assert app["MILVUS_HOST"] == "milvus" and app["MYSQL_HOST"] == "mariadb" and app["API_KEYS"]
    assert all("healthcheck" in services[name] for name in ("etcd", "minio", "milvus", "mariadb", "app", "proxy"))


def test_it_refuses_to_render_without_the_secrets(docker_compose, tmp_path):
    env = tmp_path / ".env"
    env.write_text("".join(line + "\n" for line in (ROOT / "deploy" / ".env.example").read_text().splitlines()
                           if not line.startswith("API_KEYS=")))
    rendered = render(docker_compose, env)
    assert rendered.returncode != 0 and "API_KEYS" in rendered.stderr
