"""export_collection.py and import_collection.py, as a user runs them."""
import json
import signal
import subprocess
import sys

from tests.conftest import ROOT
from tests.scripts.helpers import run_script, script_env, write_image_folder
from tests.servers import free_port, wait_for_port


def test_export_then_import_into_another_data_dir(tmp_path, clip_checkpoint):
    write_image_folder(tmp_path / "images", 8)
    loaded = run_script("insert_milvus.py", str(tmp_path / "images"), "--collection", "fashion",
                        env=script_env(tmp_path / "source", clip_checkpoint))
    assert loaded.returncode == 0, loaded.stderr

    exported = run_script("export_collection.py", "--collection", "fashion", "--out", str(tmp_path / "dump"),
                          env=script_env(tmp_path / "source", clip_checkpoint))
    assert exported.returncode == 0, exported.stderr
    assert "exported 8 images (8 files, 1 shards)" in exported.stdout
    assert json.loads((tmp_path / "dump" / "manifest.json").read_text())["counts"]["images"] == 8

    target_env = script_env(tmp_path / "target", clip_checkpoint)
    imported = run_script("import_collection.py", str(tmp_path / "dump"), "--collection", "copy", env=target_env)
    assert imported.returncode == 0, imported.stderr
    assert "copy: added 8, already present 0; now 8 images" in imported.stdout
    again = run_script("import_collection.py", str(tmp_path / "dump"), "--collection", "copy", env=target_env)
    assert "added 0, already present 8; now 8 images" in again.stdout

    wrong = run_script("import_collection.py", str(tmp_path / "dump"), "--encoder", "open_clip/ViT-B-32/openai",
                       env=target_env)
    assert wrong.returncode == 2 and "not open_clip/ViT-B-32/openai" in wrong.stderr


def test_backup_restore_then_fsck(tmp_path, clip_checkpoint):
    write_image_folder(tmp_path / "images", 6)
    source_env = script_env(tmp_path / "source", clip_checkpoint)
    assert run_script("insert_milvus.py", str(tmp_path / "images"), "--collection", "fashion",
                      env=source_env).returncode == 0
    made = run_script("backup.py", "--out", str(tmp_path / "backup"), env=source_env)
    assert made.returncode == 0, made.stderr
    assert "fashion: 6 images" in made.stdout and (tmp_path / "backup" / "backup.json").is_file()

    target_env = script_env(tmp_path / "target", clip_checkpoint)
    restored = run_script("restore.py", str(tmp_path / "backup"), env=target_env)
    assert restored.returncode == 0, restored.stderr
    assert "fashion: restored 6 images" in restored.stdout
    again = run_script("restore.py", str(tmp_path / "backup"), env=target_env)
    assert again.returncode == 2 and "empty stores" in again.stderr
    checked = run_script("fsck.py", "--all", "--grace-s", "0", env=target_env)
    assert checked.returncode == 0 and "clean" in checked.stdout, checked.stdout


def test_backup_of_a_running_embedded_server(tmp_path, clip_checkpoint):
    """The Milvus Lite file is the running server's: a backup opening it is refused with the --server
    hint, and --server has the server make the backup and stream it here (before: stop the server)."""
    write_image_folder(tmp_path / "images", 6)
    port = free_port()
    env = script_env(tmp_path / "source", clip_checkpoint, PORT=str(port), HOST="127.0.0.1",
                     API_KEYS="backup-key-0123456789")
    assert run_script("insert_milvus.py", str(tmp_path / "images"), env=env).returncode == 0
    server = subprocess.Popen([sys.executable, str(ROOT / "main.py")], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, 90)
        locked = run_script("backup.py", "--out", str(tmp_path / "local"), env=env)
        assert locked.returncode == 2 and f"--server http://127.0.0.1:{port}" in locked.stderr
        made = run_script("backup.py", "--out", str(tmp_path / "backup"), "--server", f"http://127.0.0.1:{port}",
                          env=env)
        assert made.returncode == 0, made.stderr
        assert "images: 6 images" in made.stdout
        refused = run_script("backup.py", "--out", str(tmp_path / "backup"), "--server",
                             f"http://127.0.0.1:{port}", env=env)
        assert refused.returncode == 2 and "holds a backup already" in refused.stderr
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    target_env = script_env(tmp_path / "target", clip_checkpoint)
    assert run_script("restore.py", str(tmp_path / "backup"), env=target_env).returncode == 0
    checked = run_script("fsck.py", "--all", "--grace-s", "0", env=target_env)
    assert checked.returncode == 0 and "clean" in checked.stdout, checked.stdout
