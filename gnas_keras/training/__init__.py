"""Training and evaluation: the trainer (`loop`), the data a run reads (`data`), per-attribute
evaluations and seeds (`evaluation`), metrics (`metrics`)."""
