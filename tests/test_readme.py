"""The README's API examples, run as they are against a fresh demo (`scripts/demo.py` with its defaults:
5,000 scenes, Fashion-MNIST's 10,000 test images, the shipped models), each answer checked against what
the README says of it. Only the port differs (a free one for 7000), and the demo's folder."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT
from tests.images import FASHION_MNIST
from tests.servers import free_port, wait_for_port

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not FASHION_MNIST.exists(), reason="apt-get install dataset-fashion-mnist")]
MARK = "@@@ command "


def api_block() -> str:
    """The bash block of the README's "Using the API" section."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Using the API"):]
    start = section.index("```bash\n") + len("```bash\n")
    return section[start:section.index("```\n", start)]


def commands(block: str) -> list[str]:
    """Each command of the block, continuation lines joined; comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", "", block)
    return [line for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def run_block(block: str, port: int, temp: Path) -> dict[str, str]:
    """Run the block in one bash (so its variables carry), marking each command's output: command -> output.
    Its temporary folders are made under `temp`."""
    listed = commands(block.replace("127.0.0.1:7000", f"127.0.0.1:{port}"))
    script = "\n".join(f"echo '{MARK}{i}'\n{command}" for i, command in enumerate(listed))
    result = subprocess.run(["bash", "-u", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "TMPDIR": str(temp)})
    assert result.stderr == "", result.stderr
    outputs = result.stdout.split(MARK)[1:]
    by_index = {int(part.split("\n", 1)[0]): part.split("\n", 1)[1] for part in outputs}
    assert len(by_index) == len(listed)
    return {command.replace(f"127.0.0.1:{port}", "127.0.0.1:7000"): by_index[i] for i, command in enumerate(listed)}


def answer(outputs: dict[str, str], *fragments: str) -> str:
    """The output of the command written exactly so, else of the one command holding every fragment."""
    if fragments[0] in outputs:
        return outputs[fragments[0]]
    found = [out for command, out in outputs.items() if all(f in command for f in fragments)]
    assert len(found) == 1, (fragments, list(outputs))
    return found[0]


def as_json(outputs: dict[str, str], *fragments: str):
    return json.loads(answer(outputs, *fragments))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """`python scripts/demo.py` as the quick start runs it (its own folder and a free port)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MILVUS_", "MYSQL_", "TIRG_", "CLIP_", "DATA_"))}
    env.update(PORT=str(port))
    folder = tmp_path_factory.mktemp("demo")
    process = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "demo.py"), "--dir", str(folder)], env=env,
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        wait_for_port(port, 900)
        yield port, folder
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.communicate(timeout=60)


def test_every_curl_example_answers_as_the_readme_says(demo, tmp_path):
    port, _ = demo
    outputs = run_block(api_block(), port, tmp_path)

    assert as_json(outputs, "/healthz") == {"status": "ok"}
    assert as_json(outputs, "/readyz")["status"] == "ready"
    listed = as_json(outputs, "curl -s http://127.0.0.1:7000/collections")
    assert {c["name"] for c in listed["items"]} == {"images", "scenes", "fused", "fashion"}
    assert listed["defaults"] == {"text": "images", "image": "images", "composed": "scenes"}
    fashion = as_json(outputs, "/collections/fashion")
    assert fashion["metadata_count"] == fashion["milvus_count"] == 10000
    assert fashion["encoder_id"].startswith("open_clip/css-clip/")

    dresses = as_json(outputs, "text='a dress'")
    assert (dresses["mode"], dresses["collection"]) == ("text", "fashion")
    assert len(dresses["results"]) == 5
    assert sum(hit["metadata"] == {"label": "dress"} and hit["caption"] == "dress" for hit in dresses["results"]) >= 4
    sneakers = as_json(outputs, "image=@docs/samples/sneaker.png")["results"]
    assert [hit["metadata"]["label"] for hit in sneakers] == ["sneaker"] * 5
    filtered = as_json(outputs, "text='a bag'")["results"]
    assert [hit["metadata"]["label"] for hit in filtered] == ["sandal"] * 3

    added = as_json(outputs, "-F captions='a dress'")
    assert [(item["id"], item["duplicate"]) for item in added["items"]] == [(25001, False), (25002, False)]
    dress, sneaker = (item["id"] for item in added["items"])
    assert [i["id"] for i in as_json(outputs, "/collections/my_catalog/images?")["items"]] == [dress, sneaker]
    assert as_json(outputs, "curl -s http://127.0.0.1:7000/images/$DRESS")["caption"] == "a dress"
    (copy,) = tmp_path.glob("*/dress-copy.png")  # written under $WORK, not the repository
    assert copy.read_bytes() == (ROOT / "docs/samples/dress.png").read_bytes()
    assert not (ROOT / "dress-copy.png").exists() and not (ROOT / "scene.png").exists()
    assert [hit["id"] for hit in as_json(outputs, "image_id=$DRESS")["results"]] == [sneaker]

    (tirg_query,) = [command for command in outputs if "image_id=$SCENE" in command and "collection=" not in command]
    composed = json.loads(outputs[tirg_query])
    assert (composed["mode"], composed["collection"], composed["composer"]) == ("composed", "scenes", None)
    expected_first = re.search(r"# -> first: (.*)", api_block()).group(1).strip()
    assert composed["results"][0]["caption"] == expected_first, [h["caption"] for h in composed["results"]]
    on_clip = as_json(outputs, "collection=images -F image_id=$SCENE")
    assert (on_clip["mode"], on_clip["collection"], on_clip["composer"]) == ("composed", "images", "trained")
    assert on_clip["results"][0]["caption"] == expected_first, [h["caption"] for h in on_clip["results"]]
    fused = as_json(outputs, "collection=fused -F image_id=$SCENE")
    assert (fused["mode"], fused["collection"], fused["composer"]) == ("composed", "fused", None)
    assert fused["results"][0]["caption"] == expected_first, [h["caption"] for h in fused["results"]]

    assert answer(outputs, "countTable").strip() == "5000"
    similar = as_json(outputs, "getSimilarResult")
    assert len(similar) == 10 and all("getImage?img=css_test_" in url for url in similar)
    assert "search_stage_duration_seconds_count" in answer(outputs, "/metrics")
    assert answer(outputs, "DELETE http://127.0.0.1:7000/images/$SNEAKER") == ""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        assert client.get("/collections/my_catalog").status_code == 404
        assert "<html" in client.get("/").text.lower()
