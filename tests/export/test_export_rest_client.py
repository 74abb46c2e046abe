"""``hvitgan_tf.export.rest_client`` against a small stand-in for TF Serving's REST predict API.

TF Serving itself cannot run here (no binary, no Docker). The stand-in implements what the
client relies on, as documented for TF Serving: ``POST /v1/models/<name>[/versions/<v>]:predict``
with ``{"signature_name": ..., "inputs": {...}}`` (columnar) answered by ``{"outputs": {...}}``,
and errors as HTTP 400 ``{"error": message}``; it calls the loaded SavedModel's signatures.
"""
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from hvitgan_tf.export import rest_client

pytestmark = pytest.mark.slow

_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)(/versions/(?P<version>\d+))?:predict$")


def serving_stub(models):
    """An HTTP server answering predict requests for ``{(name, version): loaded SavedModel}``."""
    import tensorflow as tf

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            match = _PATH.match(self.path)
            if not match:
                return self.reply(404, {"error": f"Malformed request: POST {self.path}"})
            versions = {v: m for (n, v), m in models.items() if n == match["name"]}
            if not versions:
                return self.reply(404, {"error": f"Servable not found for request: Latest("
                                                 f"{match['name']})"})
            version = int(match["version"]) if match["version"] else max(versions)
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            signature = versions[version].signatures[
                request.get("signature_name", "serving_default")]
            _, specs = signature.structured_input_signature
            try:
                inputs = {name: tf.constant(value, dtype=specs[name].dtype)
                          for name, value in request["inputs"].items()}
                outputs = signature(**inputs)
            except (tf.errors.InvalidArgumentError, ValueError, TypeError, KeyError) as error:
                message = getattr(error, "message", str(error))
                return self.reply(400, {"error": message})
            self.reply(200, {"outputs": {k: v.numpy().tolist() for k, v in outputs.items()}})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def served(tiny_saved_model):
    import tensorflow as tf

    loaded = tf.saved_model.load(tiny_saved_model[1])
    server = serving_stub({("hvitgan", 1): loaded})
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/models/hvitgan", loaded
    server.shutdown()


def test_generate_and_classify_over_rest_match_the_savedmodel(served):
    import tensorflow as tf

    url, loaded = served
    labels, seeds = [0, 1, 1], [3, 4, 2**62 + 1]  # int64 seeds survive JSON exactly
    out = rest_client.generate(url, labels, seeds, truncation=[1.0, 0.5, 0.7])
    direct = loaded.signatures["generate"](
        label=tf.constant(labels, tf.int32), seed=tf.constant(seeds, tf.int64),
        truncation=tf.constant([1.0, 0.5, 0.7], tf.float32))
    assert out["images"].dtype == np.uint8 and out["images"].shape == (3, 16, 16, 3)
    np.testing.assert_array_equal(out["images"], direct["images"])
    np.testing.assert_array_equal(out["probabilities"], direct["probabilities"])
    np.testing.assert_array_equal(out["confidence"], direct["confidence"])
    # The same numbers through a version-pinned URL, with one psi for all samples.
    pinned = rest_client.generate(url + "/versions/1", labels, seeds, truncation=1.0)
    np.testing.assert_array_equal(pinned["images"][0], out["images"][0])

    classified = rest_client.classify(url, out["images"])
    np.testing.assert_array_equal(classified["probabilities"], out["probabilities"])
    assert classified["label"].dtype == np.int32
    np.testing.assert_array_equal(classified["label"], out["probabilities"].argmax(1))


def test_server_errors_are_raised_with_the_model_message(served):
    url, _ = served
    with pytest.raises(rest_client.ServingError, match=r"(?s)HTTP 400: .*truncation \(psi\) must"):
        rest_client.generate(url, [0], [1], truncation=-1.0)
    with pytest.raises(rest_client.ServingError, match="label must be in"):
        rest_client.generate(url, [5], [1])
    with pytest.raises(rest_client.ServingError, match="HTTP 404"):
        rest_client.generate(url.replace("hvitgan", "other"), [0], [1])
    with pytest.raises(ValueError, match="uint8"):
        rest_client.classify(url, np.zeros((1, 16, 16, 3), np.float32))
