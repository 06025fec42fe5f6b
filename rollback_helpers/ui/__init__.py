"""The notebook face: how steps show themselves, progress on long waits, widgets and decisions."""
