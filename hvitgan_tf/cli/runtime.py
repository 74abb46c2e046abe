"""Commands that need TensorFlow use ``cls=TFCommand``: it starts TensorFlow quietly
(``hvitgan_tf._backend.start_tensorflow``) after click has parsed the arguments, so ``--help``
and option errors never pay for the import.
"""
import click

from hvitgan_tf._backend import start_tensorflow


class TFCommand(click.Command):
    """A click command that starts TensorFlow (quietly) right before it runs."""

    def invoke(self, ctx):
        root = ctx.find_root()
        start_tensorflow(bool((root.obj or {}).get("verbose")),
                         deterministic=bool(ctx.params.get("deterministic")))
        return super().invoke(ctx)
