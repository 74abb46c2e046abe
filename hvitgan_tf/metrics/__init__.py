"""Image-quality metrics (docs/method.md §9): FID and KID over the features of a network.

A layer below training: the validation FID of training (``hvitgan_tf.training.validation_fid``)
and ``hvitgan-tf evaluate`` (``hvitgan_tf.evaluation``) both use it, and it imports neither.
Nothing is imported here, so ``import hvitgan_tf.metrics`` stays cheap; import the module you
need. TensorFlow is loaded only by the modules marked (TF).

    ``distances``             Fréchet distance and KID formulas (numpy, float64).
    ``feature_statistics``    ``FeatureStatistics``: mean, covariance and KID sample (numpy).
    ``feature_metrics``       (TF) streaming ``FrechetInceptionDistance`` /
                              ``KernelInceptionDistance`` Keras metrics over features.
    ``feature_extractors``    (TF on use) ``get_feature_extractor("inception" |
                              "classifier:PATH")`` and streaming over image batches.
    ``imagenet_weights``      where ImageNet weight files are found (never downloaded).
    ``reference_statistics``  (TF on use) real-data statistics of a split, and their on-disk
                              cache.
    ``generation_plan``       the fixed labels and seeds of the generated side (numpy).
"""
