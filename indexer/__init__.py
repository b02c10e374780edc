"""The batch pipeline: diff a folder against a store, decode and embed what changed, commit."""
