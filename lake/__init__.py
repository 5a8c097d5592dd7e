"""Lake plumbing: settings, the engine seam and the table catalog."""
