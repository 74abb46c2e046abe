"""Training: the GAN model with its custom train_step, augmentation, strategies, checkpoints."""
