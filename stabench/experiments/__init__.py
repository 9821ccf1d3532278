"""One module per matched experiment; each exposes ``run(...) -> pandas.DataFrame``."""
