"""The trainable models of a run, all `base.AttributeModel`s: `supernet.Supernet` (every tree
of a search space, weight sharing) and `tree_net.TreeNetwork` (one `Architecture`)."""
