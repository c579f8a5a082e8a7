"""IOC core: settings, configuration models, database access, KPIs and the command line."""

__version__ = "0.1.0"
