"""The ``weft`` command line: the composition root that wires the API, the
workers and the ``weft dev`` supervisor together."""
