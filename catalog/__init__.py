"""What is in a library: scanning folders, reading tags, Track records and the on-disk store."""
