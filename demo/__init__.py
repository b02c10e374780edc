"""Built-in demo: a synthetic, labelled music library in several styles."""
