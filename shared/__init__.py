"""Code shared by every Vigil service: settings, configuration, streams."""
