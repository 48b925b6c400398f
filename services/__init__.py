"""The three Vitals services and the ``vitals`` command line."""
