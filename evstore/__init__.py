"""evstore: a peer-to-peer, event-sourced configuration store for fleets of machines."""

__version__ = "0.1.0"

__all__ = ["__version__"]
