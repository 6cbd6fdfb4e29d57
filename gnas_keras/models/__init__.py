"""The trainable models of a run, all `base.AttributeModel`s in `keras.ops`: `supernet.Supernet`
(every tree of a search space, weight sharing), `tree_net.TreeNetwork` (one `Architecture`)
and `galm_net.GalmChild`; their train steps per backend: `tf_backend`, `jax_backend`."""
