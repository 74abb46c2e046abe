"""Evaluation (docs/method.md §9): FID/KID of generated images and the augmentation benchmark's
metrics.

Nothing is imported here, so ``import hvitgan_tf.evaluation`` stays cheap; import the module
you need. TensorFlow is loaded only by the modules marked (TF).

Image quality
    ``distances``             Fréchet distance and KID formulas (numpy, float64).
    ``feature_metrics``       (TF) streaming ``FrechetInceptionDistance`` /
                              ``KernelInceptionDistance`` Keras metrics over features.
    ``feature_extractors``    (TF on use) ``get_feature_extractor("inception" |
                              "classifier:PATH")`` and streaming over image batches.
    ``reference_statistics``  ``FeatureStatistics`` and the on-disk cache of real-data statistics.
    ``imagenet_weights``      where ImageNet weight files are found (never downloaded).
    ``evaluate``              (TF on use) ``hvitgan-tf evaluate``: FID/KID of an exported GAN
                              or a sample folder vs a split; ``classify`` signature metrics.
    ``training_fid``          (TF) ``--fid-every``: validation FID/KID during training and the
                              best checkpoint (``best.json``).

Augmentation benchmark
    ``classification_metrics`` accuracy, ROC AUC, sensitivity, specificity, mean ± std (numpy).
    ``reports``               Markdown table, CSV, ROC and bar plots (atomic writes).
    ``classifier_layers``     (TF) CBAM and residual blocks.
    ``classifiers``           (TF) ``build_classifier("resnet34" | "resnet50_cbam" |
                              "densenet169", ...)``.
    ``classifier_export``     (TF) ``export_classifier`` -> SavedModel with ``classify`` and
                              ``features`` signatures.
    ``gan_head``              (TF) ``hvitgan_head``: the GAN discriminator's class head as a
                              classifier (registers itself on import).
    ``benchmark``             (TF) ``hvitgan-tf benchmark``: arms, runs, reports.
"""
