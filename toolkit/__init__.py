"""toolkit: segments to validated trigger-campaign launches."""

__version__ = "0.1.0"
