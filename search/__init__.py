"""Query time: open a store read-only, embed outside queries, filtered FAISS search."""
