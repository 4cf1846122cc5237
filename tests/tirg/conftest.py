import pytest

from tirg.scenes.generate import generate


@pytest.fixture(scope="session")
def tiny_css(tmp_path_factory):
    """A small generated data set (2D renderer: fast) shared by the tirg tests."""
    root = tmp_path_factory.mktemp("css") / "CSSDataset"
    generate(root, train_images=160, test_images=80, renderer="2d", image_size=32, seed=3, workers=1)
    return root
