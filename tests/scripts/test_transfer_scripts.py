"""export_collection.py and import_collection.py, as a user runs them."""
import json

from tests.scripts.helpers import run_script, script_env, write_image_folder


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
