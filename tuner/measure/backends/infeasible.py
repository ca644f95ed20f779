"""The exception a backend raises for a config this machine cannot run."""


class Infeasible(Exception):
    """The config cannot run here; the message says why (recorded with status ``infeasible``)."""
