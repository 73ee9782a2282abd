"""The conformance kit's checks, one module per group of plugin kinds.

Internal: plugin authors import the public names from :mod:`ganzoo.testing`.
"""
