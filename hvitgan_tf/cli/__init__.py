"""The ``hvitgan-tf`` command line. Each command lives in its own module and is imported only
when it runs, so ``hvitgan-tf --help`` answers without importing TensorFlow."""
