from tests.images import sample_pngs


def upload(client, collection: str, count: int, start: int = 0, *, with_labels: bool = True):
    """POST `count` Fashion-MNIST images; returns (response, [(png bytes, label)])."""
    samples = sample_pngs(count, start)
    files = [("files", (f"img{start + i}.png", data, "image/png")) for i, (data, _) in enumerate(samples)]
    data = {}
    if with_labels:
        data = {"captions": [f"a photo of a {label}" for _, label in samples],
                "metadata": [f'{{"label": "{label}", "n": {start + i}}}' for i, (_, label) in enumerate(samples)]}
    return client.post(f"/collections/{collection}/images", files=files, data=data), samples
