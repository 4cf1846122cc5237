"""Where a query's encode time goes: latency per stage and torch.profiler's top operators, with the
arithmetic that bounds it, for one text query and one image query through the server's ClipEncoder.

    python scripts/profile_encoders.py [--model ViT-B-32] [--precision auto|fp32|bf16] [--runs 40]
                                       [--compile] [--int8] [--onnx] [--tirg CHECKPOINT] [--pretrained FILE]
                                       [--out docs/profile_encoders.json]

Weights are random (timing does not depend on them) unless --pretrained names a checkpoint. Stages:
tokenize, the text tower over the real length (webserver/encoders/short_context.py), image preprocess,
the image tower. `--compile` also times
the towers under torch.compile (inductor; needs a C compiler) and checks the vectors against eager ones.
`--int8` times a copy with int8 weights in every Linear layer (torch's dynamic quantization: the weights
stored in int8, activations quantized on the fly) and its cosine to the model's own vectors on 64
Fashion-MNIST images and captions (meaningful with --pretrained).
`--tirg CHECKPOINT` times a composed query's stages through the server's TirgEncoder (image features, the
text LSTM, the composition, end to end), torch against ONNX Runtime for the image features.
`--onnx` times the towers as ONNX Runtime runs them (CLIP_RUNTIME=onnx: webserver/encoders/onnx_towers.py),
the export's cost, their cosine to torch's vectors on the same images and captions, and ONNX Runtime's own
profile of the text tower (its top operators).
Prints a table and writes JSON with the machine's facts; medians, as this machine is noisy.
"""
from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import _bootstrap
import numpy as np
import torch

from tirg.hardware import machine_summary

ROOT = _bootstrap.ROOT
QUERY = "a red dress with long sleeves"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd towers")
    parser.add_argument("--int8", action="store_true", help="also time towers with dynamic int8 Linear weights")
    parser.add_argument("--onnx", action="store_true", help="also time the towers run by ONNX Runtime")
    parser.add_argument("--tirg", type=Path, help="also profile a composed query through this TIRG checkpoint "
                                                   "(models/tirg-css.pt): its stages in torch and ONNX Runtime")
    parser.add_argument("--pretrained", help="a checkpoint of --model (default: random weights)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "profile_encoders.json")
    return parser.parse_args(argv)


def median_ms(fn, runs: int) -> float:
    for _ in range(3):
        fn()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(samples), 2)


def top_operators(fn, runs: int, count: int = 8) -> list[dict]:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(runs):
            fn()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1
    return [{"op": e.key, "self_ms_per_call": round(e.self_cpu_time_total / runs / 1000, 3),
             "share": round(e.self_cpu_time_total / total, 3)} for e in events[:count]]


def matmul_weights(module: torch.nn.Module) -> int:
    """The weights a pass multiplies by: every Linear layer's and attention's input projection."""
    weights = sum(m.weight.numel() for m in module.modules() if isinstance(m, torch.nn.Linear))
    return weights + sum(m.in_proj_weight.numel() for m in module.modules()
                         if isinstance(m, torch.nn.MultiheadAttention) and m.in_proj_weight is not None)


def tower_flops(module: torch.nn.Module, tokens: int) -> float:
    """2 x weights x tokens: the matmul arithmetic of one pass (attention's own score and value products
    add tokens^2 x width per layer, small at these lengths)."""
    return 2.0 * matmul_weights(module) * tokens


def matmul_gflops(dtype: torch.dtype, size: int = 512, tokens: int = 64) -> float:
    """What this CPU sustains on the towers' shape of matmul (tokens x width @ width x 4 width)."""
    a, b = torch.randn(tokens, size, dtype=dtype), torch.randn(size, 4 * size, dtype=dtype)
    ms = median_ms(lambda: a @ b, 200)
    return round(2 * tokens * size * 4 * size / (ms / 1000) / 1e9, 1)


def profile_encoder(args, encoder) -> dict:
    from PIL import Image

    model = encoder.model
    tokens = encoder.tokenizer([QUERY])
    real = int((tokens != 0).sum())
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (224, 224, 3), dtype=np.uint8))
    pixels = encoder.preprocess_images([image]).to(encoder.dtype)

    def text_tower():
        with torch.inference_mode():
            return encoder.encode_text_tokens(tokens)

    def image_tower():
        with torch.inference_mode():
            return model.encode_image(pixels, normalize=True)

    patches = (model.visual.image_size[0] // model.visual.patch_size[0]) ** 2 + 1 \
        if hasattr(model.visual, "patch_size") else 0
    result = {
        "text": {"query": QUERY, "real_tokens": real,
                 "tokenize_ms": median_ms(lambda: encoder.tokenizer([QUERY]), args.runs),
                 "tower_ms": median_ms(text_tower, args.runs),
                 "end_to_end_ms": median_ms(lambda: encoder.encode_texts([QUERY]), args.runs),
                 "tower_gflop": round(tower_flops(model.transformer, real) / 1e9, 3),
                 "weights_mb": round(matmul_weights(model.transformer) * pixels.element_size() / 1e6, 1),
                 "top_operators": top_operators(text_tower, 10)},
        "image": {"preprocess_ms": median_ms(lambda: encoder.preprocess_images([image]), args.runs),
                  "tower_ms": median_ms(image_tower, args.runs),
                  "end_to_end_ms": median_ms(lambda: encoder.encode_images([image]), args.runs),
                  "tower_gflop": round(tower_flops(model.visual, patches) / 1e9, 3),
                  "weights_mb": round(matmul_weights(model.visual) * pixels.element_size() / 1e6, 1),
                  "top_operators": top_operators(image_tower, 5)},
    }
    if args.compile:
        result["compiled"] = compiled_towers(args, text_tower, image_tower, encoder, tokens, pixels)
    if args.int8:
        result["int8"] = int8_towers(args, encoder, tokens, pixels)
    if args.onnx:
        result["onnx"] = onnx_towers(args, encoder, tokens, pixels, image)
    return result


def agreement_samples(encoder):
    """64 Fashion-MNIST images (as the encoder's input) and 13 captions: what a variant's vectors are held to."""
    from _samples import LABELS, sample_images

    images = encoder.preprocess_images([image for image, _ in sample_images(64)])
    captions = [f"a photo of a {label}" for label in LABELS] + [QUERY, "a red dress", "white sneakers"]
    return images, captions


def onnx_towers(args, encoder, tokens, pixels, image) -> dict:
    """The same weights run by ONNX Runtime (exported into a fresh folder, so the export is timed)."""
    from webserver.encoders.clip import ClipEncoder

    with tempfile.TemporaryDirectory() as cache:  # the profile below reads the exported files
        started = time.perf_counter()
        onnx = ClipEncoder(args.model, args.weights, device="cpu", precision="fp32", runtime="onnx",
                           onnx_cache_dir=Path(cache))
        load_s = time.perf_counter() - started
        assert onnx.onnx is not None
        towers, (images, captions) = onnx.onnx, agreement_samples(encoder)
        batch = images[:32]
        text_cos = np.sum(onnx.encode_texts(captions) * encoder.encode_texts(captions), axis=1)
        image_cos = np.sum(onnx.encode_pixels(images) * encoder.encode_pixels(images), axis=1)
        return {"export_and_load_s": round(load_s, 1),
                "text_tower_ms": median_ms(lambda: towers.encode_tokens(tokens), args.runs),
                "text_end_to_end_ms": median_ms(lambda: onnx.encode_texts([QUERY]), args.runs),
                "image_tower_ms": median_ms(lambda: towers.encode_pixels(pixels), args.runs),
                "image_end_to_end_ms": median_ms(lambda: onnx.encode_images([image]), args.runs),
                "bulk_img_per_s": round(32_000 / median_ms(lambda: towers.encode_pixels(batch), 3), 1),
                "bulk_img_per_s_torch": round(32_000 / median_ms(lambda: encoder.encode_pixels(batch), 3), 1),
                "text_cosine_min": round(float(text_cos.min()), 6),
                "image_cosine_min": round(float(image_cos.min()), 6),
                "text_top_operators": onnx_top_operators(towers.text, tokens, args.runs),
                "int8": onnx_int8(args, towers, tokens, pixels, onnx.tokenizer(captions), images)}


def onnx_int8(args, towers, tokens, pixels, caption_tokens, images) -> dict:
    """ONNX Runtime's own dynamic int8 quantization of the exported towers (weights int8, activations
    quantized on the fly): time and cosine to the fp32 graph."""
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    def cut(batch):
        return batch[:, :int(batch.argmax(dim=-1).max()) + 1].numpy()

    result = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, session, feed, samples in (("text", towers.text, "tokens", cut(caption_tokens)),
                                             ("image", towers.image, "pixels", images.float().numpy())):
            quantized = Path(folder) / f"{name}-int8.onnx"
            quantize_dynamic(session._model_path, str(quantized), weight_type=QuantType.QInt8)
            options = ort.SessionOptions()
            options.intra_op_num_threads, options.log_severity_level = torch.get_num_threads(), 3
            int8 = ort.InferenceSession(str(quantized), options, providers=["CPUExecutionProvider"])
            one = cut(tokens) if name == "text" else pixels.float().numpy()
            ours, theirs = int8.run(None, {feed: samples})[0], session.run(None, {feed: samples})[0]
            cosine = np.sum(ours * theirs, axis=1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
            result[f"{name}_tower_ms"] = median_ms(functools.partial(int8.run, None, {feed: one}), args.runs)
            result[f"{name}_cosine_min"] = round(float(cosine.min()), 5)
    return result


def onnx_top_operators(session, tokens, runs: int, count: int = 6) -> list[dict]:
    """ONNX Runtime's own profile of `runs` passes of one session: time per operator type."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.enable_profiling = True
    options.intra_op_num_threads = torch.get_num_threads()
    options.log_severity_level = 3
    with tempfile.TemporaryDirectory() as folder:
        options.profile_file_prefix = str(Path(folder) / "ort")
        profiled = ort.InferenceSession(session._model_path, options, providers=["CPUExecutionProvider"])
        cut = {"tokens": tokens[:, :int(tokens.argmax(dim=-1).max()) + 1].numpy()}
        for _ in range(runs):
            profiled.run(None, cut)
        events = json.loads(Path(profiled.end_profiling()).read_text())
    per_op: dict[str, float] = {}
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            op = event.get("args", {}).get("op_name", "?")
            per_op[op] = per_op.get(op, 0.0) + event["dur"] / 1000
    total = sum(per_op.values()) or 1.0
    ranked = sorted(per_op.items(), key=lambda item: -item[1])[:count]
    return [{"op": op, "ms_per_pass": round(ms / runs, 3), "share": round(ms / total, 3)} for op, ms in ranked]


def int8_towers(args, encoder, tokens, pixels) -> dict:
    """The towers with int8 Linear weights (MultiheadAttention's input projection stays fp32: dynamic
    quantization covers nn.Linear only) against the encoder's own, for speed and agreement."""
    import copy

    from torch.ao.quantization import quantize_dynamic

    from webserver.encoders.short_context import short_context_encode

    model = quantize_dynamic(copy.deepcopy(encoder.model).float(), {torch.nn.Linear}, dtype=torch.qint8)
    # open_clip reads the text tower's dtype from an MLP weight, which int8 layers hold packed.
    model.transformer.get_cast_dtype = lambda: torch.float32
    encode_text = short_context_encode(model) or (lambda t: model.encode_text(t, normalize=True))
    images, captions = agreement_samples(encoder)
    batch = images[:32].float()
    with torch.inference_mode():
        text_ms = median_ms(lambda: encode_text(tokens), args.runs)
        image_ms = median_ms(lambda: model.encode_image(pixels.float(), normalize=True), args.runs)
        bulk_int8 = median_ms(lambda: model.encode_image(batch, normalize=True), 3)
        bulk_own = median_ms(lambda: encoder.model.encode_image(batch.to(encoder.dtype), normalize=True), 3)
        ours_text = encode_text(encoder.tokenizer(captions))
        image_cos = torch.nn.functional.cosine_similarity(
            model.encode_image(images.float()), torch.from_numpy(encoder.encode_pixels(images)))
    text_cos = torch.nn.functional.cosine_similarity(ours_text, torch.from_numpy(encoder.encode_texts(captions)))
    return {"text_tower_ms": text_ms, "image_tower_ms": image_ms,
            "bulk_img_per_s": round(32_000 / bulk_int8, 1), "bulk_img_per_s_own_precision": round(32_000 / bulk_own, 1),
            "text_cosine_min": round(float(text_cos.min()), 5), "image_cosine_min": round(float(image_cos.min()), 5),
            "image_cosine_median": round(float(image_cos.median()), 5)}


def compiled_towers(args, text_tower, image_tower, encoder, tokens, pixels) -> dict:
    try:
        text_fn = torch.compile(encoder.encode_text_tokens)
        image_fn = torch.compile(lambda p: encoder.model.encode_image(p, normalize=True))
        with torch.inference_mode():
            started = time.perf_counter()
            text_out, image_out = text_fn(tokens), image_fn(pixels)
            compile_s = time.perf_counter() - started
            text_cos = float(torch.nn.functional.cosine_similarity(text_out.float(), text_tower().float()).min())
            image_cos = float(torch.nn.functional.cosine_similarity(image_out.float(), image_tower().float()).min())
            text_ms = median_ms(lambda: text_fn(tokens), args.runs)
            image_ms = median_ms(lambda: image_fn(pixels), args.runs)
    except Exception as exc:  # noqa: BLE001 - a backend that cannot compile here is a result too
        return {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    return {"compile_s": round(compile_s, 1), "text_tower_ms": text_ms, "image_tower_ms": image_ms,
            "text_cosine_to_eager": round(text_cos, 6), "image_cosine_to_eager": round(image_cos, 6)}


def profile_tirg(args, cache: Path) -> dict:
    """A composed query's stages (one scene and one change) through TirgEncoder in each runtime."""
    from _samples import sample_images

    from webserver.encoders.tirg import TirgEncoder

    image, change = sample_images(1)[0][0], "make top-left red object blue"
    result: dict = {"checkpoint": str(args.tirg)}
    for runtime in ("torch", "onnx"):
        encoder = TirgEncoder(args.tirg, device="cpu", runtime=runtime, onnx_cache_dir=cache)
        result[encoder.runtime] = tirg_stages(args, encoder, image, change)
    return result


def tirg_stages(args, encoder, image, change: str) -> dict:
    model, pixels = encoder.composer.model, encoder.preprocess_images([image])
    if encoder.onnx is None:
        features_ms = median_ms(lambda: model.extract_img_feature(pixels), args.runs)
    else:
        features_ms = median_ms(functools.partial(encoder.onnx.query, pixels), args.runs)
    with torch.inference_mode():
        features, texts = model.extract_img_feature(pixels), model.extract_text_feature([change])
        return {"preprocess_ms": median_ms(lambda: encoder.preprocess_images([image]), args.runs),
                "image_features_ms": features_ms,
                "text_lstm_ms": median_ms(lambda: model.extract_text_feature([change]), args.runs),
                "compose_ms": median_ms(lambda: model.compose_img_text_features(features, texts), args.runs),
                "end_to_end_ms": median_ms(lambda: encoder.compose([image], [change]), args.runs)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from webserver.encoders.clip import ClipEncoder, save_random_weights

    with tempfile.TemporaryDirectory() as tmp:
        weights = args.pretrained or save_random_weights(args.model, Path(tmp) / "random.pt")
        args.weights = str(weights)
        encoder = ClipEncoder(args.model, str(weights), device="cpu", precision=args.precision)
        result = profile_encoder(args, encoder)
        if args.tirg:
            result["tirg"] = profile_tirg(args, Path(tmp))
    result.update(model=args.model, weights=args.pretrained or "random", precision=encoder.precision.precision,
                  machine=machine_summary(),
                  matmul_gflops=matmul_gflops(encoder.dtype))
    text, image = result["text"], result["image"]
    print(f"{args.model} {result['precision']} on {result['machine']['hardware']} "
          f"({result['machine']['processor']}, {result['machine']['threads']} threads); "
          f"matmul {result['matmul_gflops']} GFLOP/s")
    print("| query | stage | p50 ms | arithmetic at the matmul rate, ms | weights read per pass |")
    print("|---|---|---|---|---|")
    for name, part, prep in (("text", text, "tokenize_ms"), ("image", image, "preprocess_ms")):
        bound = round(part["tower_gflop"] / result["matmul_gflops"] * 1000, 2)
        rate = round(part["weights_mb"] / part["tower_ms"], 1)  # MB/ms = GB/s
        print(f"| {name} | {prep[:-3]} | {part[prep]} | | |")
        print(f"| {name} | tower | {part['tower_ms']} | {bound} ({part['tower_gflop']} GFLOP) "
              f"| {part['weights_mb']} MB ({rate} GB/s) |")
        print(f"| {name} | end to end | {part['end_to_end_ms']} | | |")
    for name in ("text", "image"):
        print(f"top operators, {name} tower: " + ", ".join(
            f"{op['op']} {op['self_ms_per_call']} ms ({op['share']:.0%})" for op in result[name]["top_operators"][:5]))
    if "compiled" in result:
        print("torch.compile:", json.dumps(result["compiled"]))
    if "int8" in result:
        print("int8 Linear weights:", json.dumps(result["int8"]))
    if "onnx" in result:
        print("ONNX Runtime:", json.dumps(result["onnx"]))
    if "tirg" in result:
        print("TIRG composed query:", json.dumps(result["tirg"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
