"""Adam with TensorFlow's fused update kernel.

Keras's Adam builds its update from about forty small graph ops per variable. The training
step unrolls ``n_critic + 1`` optimiser updates over a few hundred variables, so those ops
dominate both the tracing time and the per-step op dispatch on CPU. ``ResourceApplyAdam``
performs the identical update (the "epsilon-hat" form Keras uses:
``var -= lr * sqrt(1 - β2^t) / (1 - β1^t) * m / (sqrt(v) + ε)``) in one kernel, and the step
scalars (``β^t``, learning rate) are computed once per update instead of once per variable.
"""
import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="hvitgan_tf")
class FusedAdam(keras.optimizers.Adam):
    """Drop-in ``keras.optimizers.Adam``: same slot variables, checkpoints and numbers."""

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        if self.amsgrad:
            return super()._backend_update_step(grads, trainable_variables, learning_rate)
        variables = [v.value if isinstance(v, keras.Variable) else v
                     for v in trainable_variables]
        grads_and_vars = self._all_reduce_sum_gradients(list(zip(grads, variables)))
        step = tf.cast(self.iterations + 1, tf.float32)
        beta_1 = tf.cast(self.beta_1, tf.float32)
        beta_2 = tf.cast(self.beta_2, tf.float32)
        scalars = (tf.pow(beta_1, step), tf.pow(beta_2, step),
                   tf.cast(learning_rate, tf.float32), beta_1, beta_2,
                   tf.cast(self.epsilon, tf.float32))
        tf.__internal__.distribute.interim.maybe_merge_call(
            self._fused_update, self._distribution_strategy, grads_and_vars, scalars)

    def _fused_update(self, distribution, grads_and_vars, scalars):
        for grad, var in grads_and_vars:
            if grad is None:
                continue
            distribution.extended.update(var, self._apply_adam, args=(grad, scalars),
                                         group=False)

    def _apply_adam(self, variable, gradient, scalars):
        index = self._get_variable_index(variable)
        beta1_power, beta2_power, lr, beta_1, beta_2, epsilon = (
            tf.cast(s, variable.dtype) for s in scalars)
        return tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=_handle(self._momentums[index]),
            v=_handle(self._velocities[index]),
            beta1_power=beta1_power, beta2_power=beta2_power, lr=lr,
            beta1=beta_1, beta2=beta_2, epsilon=epsilon,
            grad=tf.cast(gradient, variable.dtype),
            use_locking=False, use_nesterov=False,
        )


def _handle(variable):
    """The resource handle of a Keras variable (the per-device one under tf.distribute)."""
    return variable.value.handle if isinstance(variable, keras.Variable) else variable.handle
