# hvitgan-tf on a GPU: the official TensorFlow 2.21 GPU image with the package installed.
#   docker build -t hvitgan-tf .
#   docker run --gpus all -v $PWD/runs:/work/runs -v $PWD/saved_models:/work/saved_models \
#       hvitgan-tf train --data pcam-h5:/data/pcam --preset pcam96 --out runs/pcam
# The image's entry point is the CLI, so `docker run hvitgan-tf sample ...` works the same way.
FROM tensorflow/tensorflow:2.21.0-gpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    TF_CPP_MIN_LOG_LEVEL=2

WORKDIR /opt/hvitgan-tf
COPY setup.py README.md ./
COPY hvitgan_tf ./hvitgan_tf
COPY pipelines ./pipelines
# The image already holds tensorflow 2.21; pip keeps it and adds the rest.
RUN pip install . && hvitgan-tf --version

WORKDIR /work
ENTRYPOINT ["hvitgan-tf"]
CMD ["--help"]
