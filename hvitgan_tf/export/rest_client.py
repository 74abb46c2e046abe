"""A minimal client for an hvitgan model on TF Serving's REST API (standard library + NumPy).

    from hvitgan_tf.export import rest_client
    url = "http://localhost:8501/v1/models/hvitgan"          # or .../versions/3
    out = rest_client.generate(url, labels=[0, 1], seeds=[7, 8], truncation=0.7)
    out["images"].shape, out["confidence"]                    # uint8 [2, S, S, 3], float32 [2]
    rest_client.classify(url, out["images"])["label"]

Requests use the columnar ``"inputs"`` format of TF Serving's predict API
(``POST <url>:predict`` with ``{"signature_name": ..., "inputs": {name: nested lists}}``); the
answer is ``{"outputs": {name: nested lists}}`` (or a bare list when a signature has one output).
int64 seeds travel as JSON integers, which Python's json module keeps exact. Failures, including
the model's own input checks ("truncation (psi) must be >= 0"), come back as HTTP 400 with
``{"error": message}`` and are raised as :class:`ServingError`.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np

#: dtype of each output, as the signatures declare it (JSON loses it).
OUTPUT_DTYPES = {"images": np.uint8, "probabilities": np.float32, "confidence": np.float32,
                 "label": np.int32, "features": np.float32}


class ServingError(RuntimeError):
    """TF Serving answered with an error (the message is the server's)."""


def predict(url: str, signature_name: str, inputs: dict, timeout: float = 60.0) -> dict:
    """POST one columnar predict request; returns ``{output name: numpy array}``.

    ``url`` is the model URL (``http://host:8501/v1/models/NAME[/versions/N]``), with or without
    the trailing ``:predict``.
    """
    endpoint = url if url.endswith(":predict") else url.rstrip("/") + ":predict"
    body = json.dumps({"signature_name": signature_name,
                       "inputs": {name: np.asarray(value).tolist()
                                  for name, value in inputs.items()}}).encode("utf-8")
    request = urllib.request.Request(endpoint, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as error:
        text = error.read().decode("utf-8", "replace")
        try:
            message = json.loads(text).get("error", text)
        except (json.JSONDecodeError, AttributeError):
            message = text
        raise ServingError(f"{endpoint} ({signature_name}): HTTP {error.code}: "
                           f"{message}") from None
    if "error" in answer:
        raise ServingError(f"{endpoint} ({signature_name}): {answer['error']}")
    outputs = answer["outputs"]
    if not isinstance(outputs, dict):  # a one-output signature answers with a bare value
        outputs = {"output": outputs}
    return {name: np.asarray(value, dtype=OUTPUT_DTYPES.get(name))
            for name, value in outputs.items()}


def generate(url: str, labels, seeds, truncation=1.0, timeout: float = 60.0) -> dict:
    """``images`` uint8 ``[N, S, S, 3]``, ``probabilities`` ``[N, C]``, ``confidence`` ``[N]``.

    ``truncation`` is ψ, one number for all samples or one per sample.
    """
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    seeds = np.asarray(seeds, dtype=np.int64).reshape(-1)
    psi = np.broadcast_to(np.asarray(truncation, dtype=np.float64), labels.shape)
    return predict(url, "generate", {"label": labels, "seed": seeds, "truncation": psi},
                   timeout=timeout)


def classify(url: str, images, timeout: float = 60.0) -> dict:
    """``probabilities`` ``[N, C]`` and ``label`` ``[N]`` for uint8 images ``[N, H, W, 3]``."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"classify sends uint8 images [N, H, W, 3], got {images.dtype}")
    return predict(url, "classify", {"images": images}, timeout=timeout)
