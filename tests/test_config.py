from config import Settings


def test_defaults_are_embedded_stores_under_data_dir(tmp_path):
    settings = Settings(_env_file=None, DATA_DIR=tmp_path)
    assert settings.milvus_uri == str(tmp_path / "milvus.db")
    assert not settings.milvus_is_server
    assert settings.metadata_url == f"sqlite:///{tmp_path / 'metadata.db'}"
    assert settings.PORT == 7000


def test_milvus_host_selects_a_server():
    settings = Settings(_env_file=None, MILVUS_HOST="milvus.local", MILVUS_PORT=19531)
    assert settings.milvus_uri == "http://milvus.local:19531"
    assert settings.milvus_is_server


def test_mysql_host_selects_mysql_with_quoted_credentials():
    settings = Settings(_env_file=None, MYSQL_HOST="db", MYSQL_USER="app", MYSQL_PWD="p@ss:word", MYSQL_DB="x")
    assert settings.metadata_url == "mysql+pymysql://app:p%40ss%3Aword@db:3306/x?charset=utf8mb4"


def test_environment_variables_are_read(monkeypatch):
    monkeypatch.setenv("MILVUS_TABLE", "fashion")
    monkeypatch.setenv("PORT", "7100")
    settings = Settings(_env_file=None)
    assert (settings.MILVUS_TABLE, settings.PORT) == ("fashion", 7100)


def test_an_empty_variable_means_unset(monkeypatch):
    """Before, TIRG_CHECKPOINT= became Path('.') and stopped the start."""
    for name in ("TIRG_CHECKPOINT", "MILVUS_HOST", "MYSQL_HOST", "MILVUS_TOKEN", "MILVUS_INDEX_TYPE"):
        monkeypatch.setenv(name, "")
    settings = Settings(_env_file=None)
    assert settings.TIRG_CHECKPOINT is None and settings.MILVUS_INDEX_TYPE is None
    assert not settings.milvus_is_server and settings.metadata_url.startswith("sqlite")


def test_clip_precision_defaults_to_auto(monkeypatch):
    monkeypatch.delenv("CLIP_PRECISION", raising=False)  # the tests' conftest pins fp32 for the servers it starts
    assert Settings(_env_file=None).CLIP_PRECISION == "auto"
