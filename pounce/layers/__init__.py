"""Built-in layers: each a small immutable object with one job."""
