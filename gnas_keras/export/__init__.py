"""What leaves a run: the pruned SavedModel (`saved_model`) and its model card (`model_card`)."""
