"""The built-in plugins, registered through the `ganzoo` entry-point group."""
