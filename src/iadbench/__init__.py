"""iadbench: a data-versioned benchmark for industrial visual anomaly detection and localization."""

__version__ = "0.1.0"
