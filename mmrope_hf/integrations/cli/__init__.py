"""The ``mmrope`` command line and its inspection tables and pictures."""
