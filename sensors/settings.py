"""The simulator's configuration (``config/simulator.yaml``): its models live in the core,
:mod:`ioc.config.simulator`, beside the other sections, so that ``ioc config check`` validates
the file without importing the simulator. Re-exported here for the simulator's modules."""

from __future__ import annotations

from ioc.config.simulator import (
    ApplicationsSection,
    FaultsSection,
    FleetSection,
    SimulatorFile,
    load_simulator_settings,
)

__all__ = [
    "ApplicationsSection",
    "FaultsSection",
    "FleetSection",
    "SimulatorFile",
    "load_simulator_settings",
]
