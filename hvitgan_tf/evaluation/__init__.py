"""Evaluation (docs/method.md §9): FID/KID of generated images and the augmentation benchmark's
metrics.

Nothing is imported here, so ``import hvitgan_tf.evaluation`` stays cheap; import the module
you need. TensorFlow is loaded only by the modules marked (TF).

Image quality (the metrics themselves are ``hvitgan_tf.metrics``, a layer below training)
    ``evaluate``              (TF on use) ``hvitgan-tf evaluate``: FID/KID of an exported GAN
                              or a sample folder vs a split; ``classify`` signature metrics.

Augmentation benchmark
    ``classification_metrics`` accuracy, ROC AUC, sensitivity, specificity, mean ± std (numpy).
    ``reports``               Markdown table, CSV, ROC and bar plots (atomic writes), and
                              ``write_reports``: all of them into a benchmark's folder.
    ``classifier_layers``     (TF) CBAM and residual blocks.
    ``classifiers``           (TF) ``build_classifier("resnet34" | "resnet50_cbam" |
                              "densenet169", ...)``.
    ``gan_head``              (TF) ``hvitgan_head``: the GAN discriminator's class head as a
                              classifier (registers itself on import).
    ``benchmark_arms``        the models, arms ("real", "+ Aug (CP+SA)", ...) and recipe
                              compared, with their defaults (no TF).
    ``benchmark_data``        (TF on use) the synthetic sets and each run's training batches.
    ``benchmark``             (TF) ``hvitgan-tf benchmark``: one run, and the loop over all.

The benchmark classifiers are exported by ``hvitgan_tf.export.classifier``.
"""
